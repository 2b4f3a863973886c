package intake

import (
	"context"
	"fmt"
	"sync"

	"github.com/hibiken/asynq"
)

// BatchTarget enqueues tasks one at a time and many at once; *Submitter is
// one.
type BatchTarget interface {
	Target
	// SubmitMany is Submit without force for each task, in order.
	SubmitMany(ctx context.Context, ts []*asynq.Task) []Outcome
}

var _ BatchTarget = (*Submitter)(nil)

// Stream enqueues tasks submitted one after the other, in batches: the
// tasks submitted until the batch is full or Flush goes out together
// (BatchTarget.SubmitMany, a pipelined round trip), while the caller fills
// the next batch. It is for a caller that has its tasks in order and at
// hand, such as a file: where a Pool hands each task to a goroutine of
// its own, a Stream hands over a batch. Batches go out one at a time, in
// order, so each task fares as it would enqueued one after the other: the
// first of an order's tasks is enqueued and the later ones are "already
// queued". A task with Cancellation.Force is a replace of its own, in its
// place in the order; a run of them goes out at once, but for the tasks
// of one order, one after the other. A Stream is for one goroutine; Close
// it once the last task is submitted.
type Stream struct {
	enq     BatchTarget
	max     int
	cur     []streamItem
	batches chan []streamItem // to the sender
	failure firstFailure
}

// streamItem is one submitted task and its claim.
type streamItem struct {
	ctx context.Context
	c   Cancellation
	tk  *Ticket
}

// NewStream returns a Stream that enqueues through enq, up to size tasks
// per batch (WorkersDefault if size < 1).
func NewStream(enq BatchTarget, size int) *Stream {
	if size < 1 {
		size = WorkersDefault
	}
	s := &Stream{enq: enq, max: size, batches: make(chan []streamItem, 1)}
	go s.send()
	return s
}

// Submit adds c's task to the batch being filled and returns its Ticket,
// settled once the batch has gone out; a full batch goes out at once. It
// blocks while the batch before is still waiting to go out. If ctx is done
// first, the outcome of every task not yet sent is ctx's error and
// nothing of them is enqueued.
func (s *Stream) Submit(ctx context.Context, c Cancellation) *Ticket {
	tk := &Ticket{done: make(chan struct{})}
	if err := ctx.Err(); err != nil {
		tk.out.Err = err
		close(tk.done)
		return tk
	}
	s.cur = append(s.cur, streamItem{ctx: ctx, c: c, tk: tk})
	if len(s.cur) == s.max {
		s.Flush()
	}
	return tk
}

// Flush sends the batch being filled, if any, without waiting for more
// tasks: a caller whose next task may be long in coming calls it first.
func (s *Stream) Flush() {
	if len(s.cur) == 0 {
		return
	}
	b := s.cur
	s.cur = make([]streamItem, 0, s.max)
	select {
	case s.batches <- b:
	case <-b[0].ctx.Done():
		for _, it := range b {
			it.tk.out.Err = b[0].ctx.Err()
			close(it.tk.done)
		}
	}
}

// Close sends the last batch; the tickets handed out are settled once the
// sender is done with them.
func (s *Stream) Close() {
	s.Flush()
	close(s.batches)
}

// Err returns the first failure that was not about one order alone (Redis
// unreachable, the context done), or nil, as Pool.Err does.
func (s *Stream) Err() error { return s.failure.get() }

// send sends the batches in order until Close. Once a batch has failed
// for Redis (Err), the later ones are settled with that failure unsent,
// rather than each waiting out the client's timeouts in turn.
func (s *Stream) send() {
	var ts []*asynq.Task
	for b := range s.batches {
		if err := s.Err(); err != nil {
			for _, it := range b {
				s.settle(it, Outcome{Err: fmt.Errorf("not sent after an earlier failure: %w", err)})
			}
			continue
		}
		for len(b) > 0 {
			n := 1
			if b[0].c.Force {
				for n < len(b) && b[n].c.Force {
					n++
				}
				s.force(b[:n])
				b = b[n:]
				continue
			}
			// The tasks up to the next forced one go out together.
			for n < len(b) && !b[n].c.Force {
				n++
			}
			ts = ts[:0]
			for _, it := range b[:n] {
				ts = append(ts, it.c.Task)
			}
			outs := s.enq.SubmitMany(b[0].ctx, ts)
			for i, it := range b[:n] {
				if i < len(outs) {
					s.settle(it, outs[i])
				} else {
					s.settle(it, Outcome{Err: fmt.Errorf("no outcome for %s: %d outcomes for %d tasks", it.c.TaskID, len(outs), n)})
				}
			}
			b = b[n:]
		}
	}
}

// force sends forced tasks, each a replace of its own: those of different
// orders at once, those of one order one after the other, in order.
func (s *Stream) force(its []streamItem) {
	byOrder := map[string][]streamItem{}
	var orders []string
	for _, it := range its {
		if _, ok := byOrder[it.c.TaskID]; !ok {
			orders = append(orders, it.c.TaskID)
		}
		byOrder[it.c.TaskID] = append(byOrder[it.c.TaskID], it)
	}
	var wg sync.WaitGroup
	for _, id := range orders {
		wg.Go(func() {
			for _, it := range byOrder[id] {
				sub, err := s.enq.Submit(it.ctx, it.c.Task, true)
				s.settle(it, Outcome{Submission: sub, Err: err})
			}
		})
	}
	wg.Wait()
}

func (s *Stream) settle(it streamItem, out Outcome) {
	it.tk.out = out
	s.failure.note(out.Err)
	close(it.tk.done)
}
