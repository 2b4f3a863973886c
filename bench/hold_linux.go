package main

import (
	"container/heap"
	"context"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// hold waits d, or until ctx ends, and returns ctx's error if it ended
// first.
//
// It does not wait on a Go timer alone: when its P is idle, Go's runtime
// sleeps in epoll_wait, whose timeout is whole milliseconds, so a
// time.Sleep(20ms) on the stub's one P came back about 0.65 ms late on
// average here, and the stub's "20 ms" was really about 20.7 ms for every
// contender. One process-wide timerfd, armed for the earliest waiter,
// becomes readable when the kernel's high-resolution timer fires, which
// wakes an idle poller at once (about 0.08 ms late here, 50 waiters at
// GOMAXPROCS=1). On a busy P the poller is looked at less often, but Go
// checks its timers each time it schedules a goroutine, so the wait also
// ends at a Go timer (the timerfd's read deadline) for the same instant:
// whichever comes first. A timerfd per call kept time as well but doubled
// the stub's CPU per call at 20 ms / C=200.
//
// Against time.Sleep in the same runs (2026-12-06, two each): at 20 ms /
// C=50 the stub's mean time per call went from 20.6 to 20.3 ms and asynq's
// no-op handler from 2,292–2,315 to 2,390–2,396 tasks/s; at C=200, where
// the stub's P is busy and Go's timers were already on time, it cost the
// stub about 17 µs more CPU per call (71–77 against 88–95 µs), which every
// contender there pays alike.
func hold(ctx context.Context, d time.Duration) error {
	h, err := theHolder()
	if err != nil {
		return sleepCtx(ctx, d)
	}
	w := &waiter{at: time.Now().Add(d), done: make(chan struct{})}
	h.add(w)
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err() // w stays queued until its time; nobody waits on it then
	}
}

var (
	holderOnce sync.Once
	holderP    *holder
	holderErr  error
)

func theHolder() (*holder, error) {
	holderOnce.Do(func() { holderP, holderErr = newHolder() })
	return holderP, holderErr
}

// holder wakes waiters at their times from one timerfd.
type holder struct {
	fd int
	f  *os.File // fd, non-blocking: read through the runtime's poller

	mu      sync.Mutex
	waiters waitHeap  // by time
	armed   time.Time // the time the timerfd is set for; zero while none waits
	idle    chan struct{}
}

type waiter struct {
	at   time.Time
	done chan struct{}
}

func newHolder() (*holder, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	h := &holder{fd: fd, f: os.NewFile(uintptr(fd), "timerfd"), idle: make(chan struct{}, 1)}
	go h.run()
	return h, nil
}

// add queues w and, if it is now the first to be due, makes the loop
// re-arm for it.
func (h *holder) add(w *waiter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	heap.Push(&h.waiters, w)
	switch {
	case h.armed.IsZero():
		select {
		case h.idle <- struct{}{}:
		default:
		}
	case w.at.Before(h.armed):
		_ = h.f.SetReadDeadline(time.Unix(1, 0)) // end the loop's read now
	}
}

func (h *holder) run() {
	var expirations [8]byte
	for {
		h.mu.Lock()
		now := time.Now()
		for len(h.waiters) > 0 && !h.waiters[0].at.After(now) {
			close(heap.Pop(&h.waiters).(*waiter).done)
		}
		if len(h.waiters) == 0 {
			h.armed = time.Time{}
			h.mu.Unlock()
			<-h.idle
			continue
		}
		next := h.waiters[0].at
		h.armed = next
		// Armed under the lock, so that an earlier waiter's add comes
		// after this and its early deadline is not overwritten.
		spec := unix.ItimerSpec{Value: unix.NsecToTimespec(max(time.Until(next), time.Microsecond).Nanoseconds())}
		err := unix.TimerfdSettime(h.fd, 0, &spec, nil)
		_ = h.f.SetReadDeadline(next)
		h.mu.Unlock()
		if err != nil {
			time.Sleep(time.Until(next))
			continue
		}
		_, _ = h.f.Read(expirations[:]) // the timerfd fired, or the deadline came
	}
}

type waitHeap []*waiter

func (q waitHeap) Len() int           { return len(q) }
func (q waitHeap) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q waitHeap) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *waitHeap) Push(x any)        { *q = append(*q, x.(*waiter)) }
func (q *waitHeap) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return w
}
