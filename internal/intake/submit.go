package intake

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// What became of a submitted cancellation, as the HTTP intake answers it
// per item and the enqueue commands print it.
const (
	// StateQueued: enqueued now; with force, in place of the order's
	// earlier task (Replaced, and Result.State, "task_state", its state).
	StateQueued = "queued"
	// StateAlreadyQueued: a task for the order is waiting, retrying or
	// running; nothing new was enqueued.
	StateAlreadyQueued = "already_queued"
	// StateAlreadyCancelled: the order's cancellation completed, within
	// its retention; nothing new was enqueued.
	StateAlreadyCancelled = "already_cancelled"
	// StateDeadLettered: the worker gave up on the order and it is in the
	// dead-letter queue; nothing new was enqueued. Force, or dlq requeue,
	// sends it again.
	StateDeadLettered = "dead_lettered"
	// StateArchived: the order's task was archived without a dead-letter
	// entry yet (the worker files one within seconds); nothing new was
	// enqueued. Force sends it again.
	StateArchived = "archived"
)

// Submission is what Submit did with one task.
type Submission struct {
	tasks.Result
	// State is one of the State constants.
	State string `json:"state"`
	// DLQReason is the dead-letter entry's reason, for StateDeadLettered.
	DLQReason string `json:"dlq_reason,omitempty"`
	// Hint says how to go on when the order was not enqueued because it is
	// dead-lettered or archived, or what went wrong after it was enqueued.
	Hint string `json:"hint,omitempty"`
}

// Settled reports whether the order needs nothing more from the caller:
// queued now, already queued or already cancelled. A dead-lettered or
// archived order is not settled: the caller meant it to be cancelled.
func (s Submission) Settled() bool {
	switch s.State {
	case StateQueued, StateAlreadyQueued, StateAlreadyCancelled:
		return true
	}
	return false
}

// Submitter enqueues tasks and tells the truth about orders it did not
// enqueue, from asynq's state and the dead-letter queue. It is safe for
// concurrent use.
type Submitter struct {
	enq   *tasks.Enqueuer
	store *dlq.Store
	by    string
}

// NewSubmitter returns a Submitter on rdb that enqueues to the queues of
// shards; the caller keeps ownership of rdb. by names who submits, for
// the trail a forced enqueue leaves on a dead-letter entry it replaces,
// such as "alice@host (enqueue CLI)".
func NewSubmitter(rdb redis.UniversalClient, shards tasks.Shards, by string) *Submitter {
	return &Submitter{enq: tasks.NewEnqueuer(rdb, shards), store: dlq.New(rdb), by: by}
}

// Submit enqueues t. Without force, an order that has a task already is
// left as it is, and the Submission says in which state. With force, the
// order's task is replaced (never a running one: tasks.ErrActive), and its
// dead-letter entry, if any, is removed once the new task is in, its
// outcome-unknown mark carried by the new task.
func (s *Submitter) Submit(ctx context.Context, t *asynq.Task, force bool) (Submission, error) {
	if force {
		return s.replace(ctx, t)
	}
	res, err := s.enq.Enqueue(ctx, t, false)
	if err != nil {
		return Submission{}, err
	}
	return s.settle(ctx, res)
}

// SubmitMany is Submit without force for each of ts, in order, as
// tasks.Enqueuer.EnqueueBatch sends them: the outcome of ts[i] is
// outs[i], and what Submit would have said.
func (s *Submitter) SubmitMany(ctx context.Context, ts []*asynq.Task) []Outcome {
	results, errs := s.enq.EnqueueBatch(ctx, ts)
	outs := make([]Outcome, len(ts))
	var wg sync.WaitGroup
	for i := range ts {
		switch {
		case errs[i] != nil:
			outs[i].Err = errs[i]
		case results[i].AlreadyQueued && results[i].State == tasks.StateArchived:
			// Its dead-letter entry is a round trip of its own: all at
			// once, as many Submit calls would make them.
			wg.Go(func() { outs[i].Submission, outs[i].Err = s.settle(ctx, results[i]) })
		default:
			outs[i].Submission, outs[i].Err = s.settle(ctx, results[i])
		}
	}
	wg.Wait()
	return outs
}

// settle says what became of an order that Enqueue, without force, gave
// res for: queued, already queued or cancelled, or, for one archived,
// dead-lettered with its reason.
func (s *Submitter) settle(ctx context.Context, res tasks.Result) (Submission, error) {
	sub := Submission{Result: res, State: StateAlreadyQueued}
	switch {
	case !res.AlreadyQueued:
		sub.State = StateQueued
	case res.State == tasks.StateCompleted:
		sub.State = StateAlreadyCancelled
	case res.State == tasks.StateArchived:
		e, err := s.store.Get(ctx, res.TaskID)
		switch {
		case errors.Is(err, dlq.ErrNotFound):
			sub.State = StateArchived
			sub.Hint = "the order's task is archived without a dead-letter entry (the worker files one shortly); send it again with force to cancel it anew"
		case err != nil:
			return Submission{}, fmt.Errorf("look up the dead-letter entry of %s: %w", res.TaskID, err)
		default:
			sub.State, sub.DLQReason = StateDeadLettered, e.Reason
			sub.Hint = fmt.Sprintf("the order is in the dead-letter queue (%s); send it again with force, or requeue it with `enqueue dlq requeue %s`", e.Reason, res.TaskID)
		}
	}
	return sub, nil
}

// replace is Submit with force.
func (s *Submitter) replace(ctx context.Context, t *asynq.Task) (Submission, error) {
	id, _, err := tasks.Identify(t)
	if err != nil {
		return Submission{}, fmt.Errorf("force enqueue: %w", err)
	}
	e, err := s.store.Get(ctx, id)
	switch {
	case errors.Is(err, dlq.ErrNotFound):
		res, err := s.enq.Enqueue(ctx, t, true)
		if err != nil {
			return Submission{}, err
		}
		return Submission{Result: res, State: StateQueued}, nil
	case err != nil:
		return Submission{}, fmt.Errorf("look up the dead-letter entry of %s: %w", id, err)
	}
	res, err := dlq.Replace(ctx, s.store, s.enq, t, e, s.by)
	sub := Submission{Result: res, State: StateQueued}
	if err != nil && res.TaskID == "" {
		return Submission{}, fmt.Errorf("force enqueue %s: %w", id, err)
	}
	if err != nil {
		sub.Hint = err.Error()
	}
	return sub, nil
}
