package worker

import (
	"hash/maphash"
	"slices"
	"sync"
	"time"
)

// seenWindow is how long seenRing remembers a task: asynq's lease (30s),
// within which a run's outcome may still be written (its syncer retries a
// failed write until the lease's deadline), and some slack.
const seenWindow = 40 // seconds

// seenRing remembers which tasks this process started or finished in the
// last seenWindow seconds, as 64-bit hashes in one-second buckets: a few
// bytes a task and no allocation once warm. A hash collision can only
// make the recoverer wait longer. It is safe for concurrent use.
type seenRing struct {
	seed    maphash.Seed
	mu      sync.Mutex
	buckets [seenWindow][]uint64
	second  [seenWindow]int64 // the Unix second each bucket holds
}

func newSeenRing() *seenRing { return &seenRing{seed: maphash.MakeSeed()} }

// add notes task id at now.
func (s *seenRing) add(id string, now time.Time) {
	h := maphash.String(s.seed, id)
	sec := now.Unix()
	i := int(sec % seenWindow)
	s.mu.Lock()
	if s.second[i] != sec {
		s.buckets[i], s.second[i] = s.buckets[i][:0], sec
	}
	s.buckets[i] = append(s.buckets[i], h)
	s.mu.Unlock()
}

// has reports whether task id was noted within seenWindow before now.
func (s *seenRing) has(id string, now time.Time) bool {
	h := maphash.String(s.seed, id)
	oldest := now.Unix() - seenWindow
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.buckets {
		if s.second[i] > oldest && slices.Contains(s.buckets[i], h) {
			return true
		}
	}
	return false
}
