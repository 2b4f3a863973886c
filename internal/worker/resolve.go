package worker

import (
	"context"
	"sync"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"go.uber.org/zap"
)

// Settling the dead-letter side of successes (dlq.Store.Resolve) happens
// off the task's path: each success is noted in memory, and the notes go
// to Redis in one round trip every resolveEvery. A worker killed before a
// flush leaves an entry for a cancelled order; a requeue of it finds the
// task completed, says so and drops it.
const (
	resolveEvery = 250 * time.Millisecond
	// resolveMax bounds the successes held while Redis does not answer;
	// past it the oldest are dropped, with a warning.
	resolveMax = 50_000
	// resolveBatch is the most successes one flush sends.
	resolveBatch = 2_000
)

// resolver collects successes and settles them in batches. It is safe for
// concurrent use.
type resolver struct {
	dlq *dlq.Store
	log *zap.Logger
	obs Observer

	mu      sync.Mutex
	pending []dlq.Done
	dropped int
}

// add notes one success.
func (r *resolver) add(d dlq.Done) {
	r.mu.Lock()
	if len(r.pending) >= resolveMax {
		r.pending = r.pending[1:]
		r.dropped++
	}
	r.pending = append(r.pending, d)
	r.mu.Unlock()
}

// run flushes every resolveEvery until ctx ends, then once more within
// bookkeepingTimeout.
func (r *resolver) run(ctx context.Context) {
	t := time.NewTicker(resolveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
			defer cancel()
			for r.flush(fctx) {
			}
			return
		case <-t.C:
			for r.flush(ctx) {
			}
		}
	}
}

// flush sends one batch and reports whether another is waiting. On a
// Redis error the batch goes back for the next tick.
func (r *resolver) flush(ctx context.Context) (more bool) {
	r.mu.Lock()
	n := min(len(r.pending), resolveBatch)
	batch := r.pending[:n:n]
	r.pending = append([]dlq.Done(nil), r.pending[n:]...)
	dropped := r.dropped
	r.dropped = 0
	r.mu.Unlock()
	if dropped > 0 {
		r.log.Warn("successes not checked against the dead-letter queue: Redis did not answer for too long; a requeue of their entries finds the orders cancelled",
			zap.Int("dropped", dropped))
	}
	if n == 0 {
		return false
	}
	removed, err := r.dlq.Resolve(ctx, batch)
	for _, e := range removed {
		r.obs.Resolved(e.Provider)
		r.log.Info("order cancelled by a task that came back without a requeue (the monitoring UI's Run, a forced enqueue): its dead-letter entry is removed",
			zap.String("provider", e.Provider), zap.String("order", e.Order), zap.String("task_id", e.ID), zap.Int64("entry_seq", e.Seq), zap.String("reason", e.Reason))
	}
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("could not check successes against the dead-letter queue; trying again", zap.Int("tasks", n), zap.Error(err))
		}
		r.mu.Lock()
		r.pending = append(batch, r.pending...)
		if over := len(r.pending) - resolveMax; over > 0 {
			r.pending, r.dropped = r.pending[over:], r.dropped+over
		}
		r.mu.Unlock()
		return false
	}
	r.mu.Lock()
	more = len(r.pending) > 0
	r.mu.Unlock()
	return more && ctx.Err() == nil
}
