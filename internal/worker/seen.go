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

// seenRing remembers which tasks this process is running, and which it
// started or finished in the last seenWindow seconds, as 64-bit hashes in
// one-second buckets: a few bytes a task and no allocation once warm. A
// hash collision can only make the recoverer wait longer. It is safe for
// concurrent use.
type seenRing struct {
	seed    maphash.Seed
	mu      sync.Mutex
	running map[uint64]int
	buckets [seenWindow][]uint64
	second  [seenWindow]int64 // the Unix second each bucket holds
}

func newSeenRing() *seenRing { return &seenRing{seed: maphash.MakeSeed(), running: map[uint64]int{}} }

// start notes that task id starts running at now; end, that it ends.
func (s *seenRing) start(id string, now time.Time) { s.note(id, now, 1) }
func (s *seenRing) end(id string, now time.Time)   { s.note(id, now, -1) }

func (s *seenRing) note(id string, now time.Time, delta int) {
	h := maphash.String(s.seed, id)
	sec := now.Unix()
	i := int(sec % seenWindow)
	s.mu.Lock()
	if s.second[i] != sec {
		s.buckets[i], s.second[i] = s.buckets[i][:0], sec
	}
	s.buckets[i] = append(s.buckets[i], h)
	if n := s.running[h] + delta; n > 0 {
		s.running[h] = n
	} else {
		delete(s.running, h)
	}
	s.mu.Unlock()
}

// state reports whether task id is running, and whether it started or
// ended within seenWindow before now.
func (s *seenRing) state(id string, now time.Time) (running, lately bool) {
	h := maphash.String(s.seed, id)
	oldest := now.Unix() - seenWindow
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[h] > 0 {
		return true, true
	}
	for i := range s.buckets {
		if s.second[i] > oldest && slices.Contains(s.buckets[i], h) {
			return false, true
		}
	}
	return false, false
}
