package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
)

// ErrAlreadyRequeued is matched (errors.Is) by the error of a Requeue
// whose entry has already left the queue the way a requeue does: another
// requeue took it first, or the order's task, brought back another way,
// settled it. The error is an *AlreadyRequeuedError.
var ErrAlreadyRequeued = errors.New("already requeued")

// AlreadyRequeuedError is the error of a Requeue that found its entry
// already gone back: Trail says how, or is nil while another requeue is
// at it.
type AlreadyRequeuedError struct {
	ID    string
	Trail *Trail
}

func (e *AlreadyRequeuedError) Error() string {
	return fmt.Sprintf("requeue %s: already requeued: %s", e.ID, e.Detail())
}

// Detail says how the entry went back.
func (e *AlreadyRequeuedError) Detail() string {
	if e.Trail == nil {
		return fmt.Sprintf("another requeue has been putting it back for over %s", claimWait)
	}
	return e.Trail.String()
}

// Is matches ErrAlreadyRequeued.
func (e *AlreadyRequeuedError) Is(target error) bool { return target == ErrAlreadyRequeued }

// RequeueOptions changes what Requeue does.
type RequeueOptions struct {
	// Force replaces the order's task whatever its state (pending,
	// retrying, completed: the order may then be cancelled twice), never
	// an active one (tasks.ErrActive). For an explicit operator decision.
	Force bool
	// By says who requeues, for the log and the entry's trail: an
	// operator and the way, such as "alice (dead-letter page)".
	By string
}

// Requeued is what Requeue did with an entry.
type Requeued struct {
	tasks.Result
	// Seq is the requeued entry's Seq.
	Seq int64 `json:"seq"`
	// Trail is what became of the entry: TrailRequeued when a task was
	// enqueued; TrailAlreadyQueued or TrailAlreadyCancelled when the
	// order's task was found live and the entry, stale, was dropped.
	Trail string `json:"trail"`
	// Note says what else happened, "" for nothing.
	Note string `json:"note,omitempty"`
}

// claimWait bounds how long a requeue that finds its entry claimed by
// another waits for that one to settle, so as to say what became of it.
const claimWait = 5 * time.Second

// Requeue puts the order of entry id back on its queue, in two steps
// that never lose the entry: it claims the entry (one script that takes
// it only if it is still the one read, so that of two requeues at once
// exactly one wins and the other gets ErrAlreadyRequeued), then enqueues
// the order's task and releases the claim, leaving the entry's trail. If
// the enqueue fails the entry is put back; if the requeuer dies in
// between, the worker's maintenance settles the claim (SettleClaim).
//
// The task is rebuilt from the stored payload with RequestedAt cleared, so
// the retry policy's maximum age counts afresh, marked as requeued from
// the entry (tasks.WithRequeuedFrom), and it takes the place of the
// order's archived task, or of none. An order whose task is waiting,
// running, retrying or completed (brought back another way: the
// monitoring UI's Run, a forced enqueue) is not enqueued again: the
// entry was stale, and is dropped with its trail saying so. o.Force
// replaces such a task but an active one.
//
// An entry that is corrupt or whose payload no longer parses is kept, and
// the error names it.
func Requeue(ctx context.Context, s *Store, enq *tasks.Enqueuer, id string, o RequeueOptions) (Requeued, error) {
	const attempts = 4 // the entry rewritten by a fresh failure meanwhile
	for range attempts {
		e, raw, err := s.get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			back, err := waitClaim(ctx, s, id)
			if err != nil {
				return Requeued{}, err
			}
			if back {
				continue // the other requeue put it back: try it ourselves
			}
			if tr, ok, terr := s.Trail(ctx, id); terr == nil && ok {
				if tr.Action == TrailPurged {
					return Requeued{}, fmt.Errorf("requeue: %w: %s", ErrNotFound, tr)
				}
				return Requeued{}, &AlreadyRequeuedError{ID: id, Trail: &tr}
			}
			return Requeued{}, fmt.Errorf("requeue %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return Requeued{}, fmt.Errorf("requeue: %w", err)
		}
		if e.Corrupt != "" {
			return Requeued{}, fmt.Errorf("requeue %s: %w (%s): check the order by hand, then purge the entry; entry kept", id, ErrCorrupt, e.Corrupt)
		}
		t, taskID, err := rebuild(e)
		if err != nil {
			return Requeued{}, fmt.Errorf("requeue %s: %w; entry kept", id, err)
		}
		if taskID != e.ID {
			return Requeued{}, fmt.Errorf("requeue %s: payload is for task %s; entry kept", id, taskID)
		}
		ok, err := s.claim(ctx, e, raw)
		if err != nil {
			return Requeued{}, fmt.Errorf("requeue %s: %w; entry kept", id, err)
		}
		if !ok {
			continue // gone (another requeue, a purge) or rewritten: read it again
		}
		res, err := requeueClaimed(ctx, s, enq, t, e, raw, o)
		if err != nil {
			return res, fmt.Errorf("requeue %s: %w", id, err)
		}
		return res, nil
	}
	return Requeued{}, fmt.Errorf("requeue %s: the entry kept changing during %d attempts; entry kept", id, attempts)
}

// waitClaim waits, up to claimWait, while another requeue holds the claim
// on entry id, and reports whether the entry came back (that requeue's
// enqueue failed). It returns an *AlreadyRequeuedError if the claim is
// still held after claimWait.
func waitClaim(ctx context.Context, s *Store, id string) (back bool, err error) {
	deadline := time.Now().Add(claimWait)
	for {
		c, err := s.claimed(ctx, id)
		if err != nil {
			return false, fmt.Errorf("requeue %s: %w", id, err)
		}
		if c == "" {
			_, _, err := s.get(ctx, id)
			return err == nil, nil
		}
		if time.Now().After(deadline) {
			return false, &AlreadyRequeuedError{ID: id}
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		case <-t.C:
		}
	}
}

// requeueClaimed enqueues t for the claimed entry e and settles the claim.
func requeueClaimed(ctx context.Context, s *Store, enq *tasks.Enqueuer, t *asynq.Task, e Entry, raw string, o RequeueOptions) (Requeued, error) {
	out := Requeued{Seq: e.Seq}
	putBack := func(cause error) (Requeued, error) {
		// Without the caller's context, which may be what ended.
		bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := s.unclaim(bg, e, raw); err != nil {
			return out, fmt.Errorf("%w; and the entry could not be put back (the worker restores it within a minute): %w", cause, err)
		}
		return out, fmt.Errorf("%w; entry kept", cause)
	}
	target := enq.Shards().Queue(e.Provider, e.ID)
	if e.Queue != "" && e.Queue != target && !o.Force {
		// Dead-lettered from another shard layout: the order's task may be
		// live there (run from the monitoring UI).
		old, err := s.tasks.Peek(ctx, e.Queue, e.ID)
		if err != nil {
			return putBack(err)
		}
		if old.State != "" && old.State != taskstore.StateArchived {
			out.Result = tasks.Result{TaskID: e.ID, Queue: e.Queue, AlreadyQueued: true, State: old.State, CompletedAt: old.CompletedAt}
			return settleLive(ctx, s, e, raw, out, o)
		}
	}
	res, err := enq.Requeue(ctx, t, o.Force)
	if err != nil {
		return putBack(err)
	}
	out.Result = res
	if res.AlreadyQueued {
		return settleLive(ctx, s, e, raw, out, o)
	}
	if e.Queue != "" && e.Queue != res.Queue {
		// The entry came from another queue (the shard count changed
		// since): its archived task stays there, where the reconciler
		// would file it again once the entry is gone.
		if _, err := s.tasks.DropArchived(ctx, e.Queue, e.ID); err != nil {
			return out, fmt.Errorf("enqueued on %s, but the archived task on %s could not be dropped: %w; the worker settles the entry within a minute", res.Queue, e.Queue, err)
		}
	}
	out.Trail = TrailRequeued
	action := TrailRequeued
	if res.Replaced && res.State != tasks.StateArchived {
		action = TrailReplaced
	}
	released, err := s.release(ctx, e, raw, trailOf(e, action, o.By, s.nowFunc()))
	if err != nil {
		return out, fmt.Errorf("enqueued, but the claim could not be released: %w; the worker settles it within a minute", err)
	}
	if !released {
		out.Note = "the requeue took over a minute and the worker had settled its claim meanwhile: the entry may be listed again until the order is cancelled"
	}
	return out, nil
}

// settleLive drops the claimed entry e of an order whose task is live, as
// stale, leaving a trail that says what was found.
func settleLive(ctx context.Context, s *Store, e Entry, raw string, out Requeued, o RequeueOptions) (Requeued, error) {
	tr := trailOf(e, TrailAlreadyQueued, o.By, s.nowFunc())
	if out.State == tasks.StateCompleted {
		tr.Action, tr.CancelledAt = TrailAlreadyCancelled, out.CompletedAt
	}
	out.Trail = tr.Action
	released, err := s.release(ctx, e, raw, tr)
	if err != nil {
		return out, fmt.Errorf("the order's task is %s, but the stale entry could not be dropped: %w; the worker settles it within a minute", out.State, err)
	}
	if !released {
		out.Note = "the requeue took over a minute and the worker had settled its claim meanwhile: the stale entry may be listed again"
	}
	return out, nil
}

// Replace enqueues t, a task for the order of entry e, in place of the
// order's task (force: never an active one), in the two steps of Requeue:
// it claims e, enqueues, and releases the claim with the trail "replaced"
// by by, or puts e back if the enqueue fails. When e is marked
// OutcomeUnknown, t is rebuilt WithPriorOutcomeUnknown, so that a
// permanent answer to it is marked again, however long ago e was written.
// If e changed or left meanwhile, t is enqueued all the same and the
// entry, fresh or gone, is left alone.
func Replace(ctx context.Context, s *Store, enq *tasks.Enqueuer, t *asynq.Task, e Entry, by string) (tasks.Result, error) {
	if e.OutcomeUnknown && !tasks.PriorOutcomeUnknown(t) {
		var err error
		if t, err = tasks.Rebuild(t, tasks.WithPriorOutcomeUnknown()); err != nil {
			return tasks.Result{}, fmt.Errorf("%w; entry kept", err)
		}
	}
	cur, raw, err := s.get(ctx, e.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return tasks.Result{}, fmt.Errorf("%w; entry kept", err)
	}
	claimed := false
	if raw != "" && cur.Seq == e.Seq {
		if claimed, err = s.claim(ctx, e, raw); err != nil {
			return tasks.Result{}, fmt.Errorf("%w; entry kept", err)
		}
	}
	if !claimed {
		return enq.Enqueue(ctx, t, true)
	}
	res, err := requeueClaimed(ctx, s, enq, t, e, raw, RequeueOptions{Force: true, By: by})
	return res.Result, err
}

// rebuild returns the task of e's payload and headers, with RequestedAt
// cleared, marked as requeued from e and, when e is OutcomeUnknown, as
// following an unknown outcome; and its task ID.
func rebuild(e Entry) (*asynq.Task, string, error) {
	opts, err := tasks.OptionsFrom(e.Headers)
	if err != nil {
		return nil, "", fmt.Errorf("stored headers: %w", err)
	}
	opts = append(opts, tasks.WithRequeuedFrom(e.Seq))
	if e.OutcomeUnknown {
		// However long ago e was written, a permanent answer to the
		// requeued task is marked again.
		opts = append(opts, tasks.WithPriorOutcomeUnknown())
	}
	switch e.TaskType {
	case tasks.TypeMeariCancel:
		m, err := tasks.ParseMeariCancel(e.Payload)
		if err != nil {
			return nil, "", fmt.Errorf("stored payload: %w", err)
		}
		m.RequestedAt = time.Time{}
		t, err := tasks.NewMeariCancelTask(m, opts...)
		return t, m.TaskID(), err
	case tasks.TypePandaPonCancel:
		p, err := tasks.ParsePandaPonCancel(e.Payload)
		if err != nil {
			return nil, "", fmt.Errorf("stored payload: %w", err)
		}
		p.RequestedAt = time.Time{}
		t, err := tasks.NewPandaPonCancelTask(p, opts...)
		return t, p.TaskID(), err
	}
	return nil, "", fmt.Errorf("task_type: unknown type %q", e.TaskType)
}
