package worker

import (
	"hash/maphash"
	"slices"
	"sync"
	"time"
)

// seenWindow is how long seenRing remembers a task after its run ended:
// asynq may still write its outcome until the lease's deadline, which a
// heartbeat may push up to 30s past the moment the write began, and the
// write may itself take until the lease's deadline at the time: 60s, and
// some slack.
const seenWindow = 70 // seconds

// seenRing knows which tasks this process holds: dequeued (seen by
// scriptWatch as the reply arrives) or running, and which it finished in
// the last seenWindow seconds; and which of its dequeues are in flight.
// Tasks are kept as 64-bit hashes, the finished ones in one-second buckets:
// a few bytes a task and no allocation once warm. A hash collision can
// only make the recoverer wait longer. It is safe for concurrent use.
type seenRing struct {
	seed maphash.Seed
	mu   sync.Mutex
	// held counts each task dequeued or started and not yet ended.
	held     map[uint64]int
	dequeued map[uint64]int // of those, seen dequeued by scriptWatch and not yet started
	buckets  [seenWindow][]uint64
	second   [seenWindow]int64 // the Unix second each bucket holds
	// inflight holds the start of each dequeue in flight, by token.
	inflight map[uint64]time.Time
	token    uint64
}

func newSeenRing() *seenRing {
	return &seenRing{seed: maphash.MakeSeed(), held: map[uint64]int{}, dequeued: map[uint64]int{}, inflight: map[uint64]time.Time{}}
}

// dequeueStart notes a dequeue sent at now; dequeueEnd, its reply: the
// task it dequeued, if any ("" for none).
func (s *seenRing) dequeueStart(now time.Time) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token++
	s.inflight[s.token] = now
	return s.token
}

func (s *seenRing) dequeueEnd(token uint64, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inflight, token)
	if id != "" {
		h := maphash.String(s.seed, id)
		s.held[h]++
		s.dequeued[h]++
	}
}

// start notes that task id starts running; end, at now, that it ends.
func (s *seenRing) start(id string) {
	h := maphash.String(s.seed, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dequeued[h] > 0 {
		// scriptWatch saw it dequeued: already held.
		if s.dequeued[h]--; s.dequeued[h] == 0 {
			delete(s.dequeued, h)
		}
		return
	}
	s.held[h]++
}

func (s *seenRing) end(id string, now time.Time) {
	h := maphash.String(s.seed, id)
	sec := now.Unix()
	i := int(sec % seenWindow)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.second[i] != sec {
		s.buckets[i], s.second[i] = s.buckets[i][:0], sec
	}
	s.buckets[i] = append(s.buckets[i], h)
	if n := s.held[h] - 1; n > 0 {
		s.held[h] = n
	} else {
		delete(s.held, h)
	}
}

// state reports whether this process holds task id, and whether it holds
// it or finished it within seenWindow before now.
func (s *seenRing) state(id string, now time.Time) (held, lately bool) {
	h := maphash.String(s.seed, id)
	oldest := now.Unix() - seenWindow
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[h] > 0 {
		return true, true
	}
	for i := range s.buckets {
		if s.second[i] > oldest && slices.Contains(s.buckets[i], h) {
			return false, true
		}
	}
	return false, false
}

// oldestDequeue returns when the oldest dequeue in flight began, and
// false when none is.
func (s *seenRing) oldestDequeue() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var oldest time.Time
	for _, t := range s.inflight {
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	return oldest, !oldest.IsZero()
}

// idle reports whether this process holds no task.
func (s *seenRing) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held) == 0 && len(s.inflight) == 0
}
