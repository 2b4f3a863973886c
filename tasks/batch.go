package tasks

import (
	"context"
	"slices"
	"sync"

	"github.com/cancelworker/cancelworker/internal/taskstore"
)

// Batching bounds: the most enqueues in one round trip, and the most round
// trips in flight at once.
const (
	batchMax     = 256
	batchSenders = 2
)

// batcher coalesces the Enqueue calls in flight at the same moment into
// pipelined round trips (taskstore.EnqueueMany). A call made while fewer
// than batchSenders round trips are in flight goes out at once, with
// whatever else is waiting; calls made meanwhile wait for the next. A lone
// call therefore waits for nothing, and under load one round trip, and one
// write and read on each side, carries many tasks. Redis runs a pipeline
// in order, so calls for the same order made one after the other (the
// second once the first has returned) fare as they would one at a time;
// concurrent calls are in no promised order, as with round trips of their
// own.
type batcher struct {
	store *taskstore.Store

	mu      sync.Mutex
	pending []*enqueueCall
	senders int
}

// answered reports whether c has its result.
func answered(c *enqueueCall) bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// enqueueCall is one Enqueue waiting for its round trip.
type enqueueCall struct {
	ctx  context.Context
	m    taskstore.Message
	res  taskstore.EnqueueResult
	done chan struct{}
}

// enqueue enqueues m in the next round trip and returns its result. If ctx
// ends while the call still waits for a round trip, it returns ctx's error
// and m is not enqueued; once the call is sent, it waits for the answer
// (bounded by the Redis client's timeouts), so that it never reports a
// task it may have enqueued as not enqueued.
func (b *batcher) enqueue(ctx context.Context, m taskstore.Message) taskstore.EnqueueResult {
	c := &enqueueCall{ctx: ctx, m: m, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, c)
	if b.senders < batchSenders {
		b.senders++
		b.mu.Unlock()
		b.send(c)
		<-c.done
		return c.res
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.res
	case <-ctx.Done():
	}
	b.mu.Lock()
	if i := slices.Index(b.pending, c); i >= 0 {
		b.pending = slices.Delete(b.pending, i, i+1)
		b.mu.Unlock()
		return taskstore.EnqueueResult{Err: ctx.Err()}
	}
	b.mu.Unlock()
	<-c.done // sent: its answer is on the way
	return c.res
}

// send sends what is pending, batchMax at a time, until nothing is; it
// holds one of the sender places, and gives it back when done. Once own
// (the caller's call, if any) has its answer, it hands the place and the
// rest of the work to a goroutine, so that its caller returns.
func (b *batcher) send(own *enqueueCall) {
	for {
		b.mu.Lock()
		n := min(len(b.pending), batchMax)
		if n == 0 {
			b.senders--
			b.mu.Unlock()
			return
		}
		if own != nil && answered(own) {
			b.mu.Unlock()
			go b.send(nil)
			return
		}
		batch := slices.Clone(b.pending[:n])
		b.pending = slices.Delete(b.pending, 0, n)
		b.mu.Unlock()

		live := batch[:0:0]
		for _, c := range batch {
			if err := c.ctx.Err(); err != nil {
				c.res = taskstore.EnqueueResult{Err: err}
				close(c.done)
				continue
			}
			live = append(live, c)
		}
		if len(live) == 0 {
			continue
		}
		ms := make([]taskstore.Message, len(live))
		for i, c := range live {
			ms[i] = c.m
		}
		// Once sent, a call's answer is read even if its caller has gone:
		// the round trip is bounded by the client's timeouts, not by the
		// first caller's context.
		res := b.store.EnqueueMany(context.WithoutCancel(live[0].ctx), ms)
		for i, c := range live {
			c.res = res[i]
			close(c.done)
		}
	}
}
