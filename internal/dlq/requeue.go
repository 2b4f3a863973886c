package dlq

import (
	"context"
	"fmt"
	"time"

	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
)

// Requeue puts the order of entry id back on its queue and then removes the
// entry, comparing its Seq. The order matters: enqueue first, remove
// second, so a crash in between leaves a duplicate, never a loss.
//
// The task is rebuilt from the stored payload with RequestedAt cleared, so
// the retry policy's maximum age counts afresh, and enqueued with force,
// replacing the archived asynq task of the same ID. An entry whose payload
// no longer parses is kept, and the error names it. If the order failed
// again while Requeue ran, the fresh entry is kept.
func Requeue(ctx context.Context, s *Store, enq *tasks.Enqueuer, id string) (tasks.Result, error) {
	e, err := s.Get(ctx, id)
	if err != nil {
		return tasks.Result{}, fmt.Errorf("requeue: %w", err)
	}
	if e.Corrupt != "" {
		return tasks.Result{}, fmt.Errorf("requeue %s: %w (%s): check the order by hand, then purge the entry; entry kept", id, ErrCorrupt, e.Corrupt)
	}
	t, taskID, err := rebuild(e)
	if err != nil {
		return tasks.Result{}, fmt.Errorf("requeue %s: %w; entry kept", id, err)
	}
	if taskID != e.ID {
		return tasks.Result{}, fmt.Errorf("requeue %s: payload is for task %s; entry kept", id, taskID)
	}
	res, err := Replace(ctx, s, enq, t, e)
	if err != nil {
		return res, fmt.Errorf("requeue %s: %w", id, err)
	}
	return res, nil
}

// Replace enqueues t, a task for the order of entry e, in place of the
// order's task (force), and then removes e, comparing its Seq: enqueue
// first, remove second, so a crash in between leaves a duplicate, never a
// loss. When e is marked OutcomeUnknown, t is rebuilt
// WithPriorOutcomeUnknown, so that a permanent answer to it is marked
// again, however long ago e was written. If the order failed again while
// Replace ran, the fresh entry is kept.
func Replace(ctx context.Context, s *Store, enq *tasks.Enqueuer, t *asynq.Task, e Entry) (tasks.Result, error) {
	if e.OutcomeUnknown && !tasks.PriorOutcomeUnknown(t) {
		var err error
		if t, err = tasks.Rebuild(t, tasks.WithPriorOutcomeUnknown()); err != nil {
			return tasks.Result{}, fmt.Errorf("%w; entry kept", err)
		}
	}
	res, err := enq.Enqueue(ctx, t, true)
	if err != nil {
		return tasks.Result{}, fmt.Errorf("%w; entry kept", err)
	}
	if e.Queue != "" && e.Queue != res.Queue {
		// The entry came from another queue (the shard count changed
		// since): its archived task stays there, where the reconciler
		// would file it again once the entry is gone.
		if _, err := s.tasks.DropArchived(ctx, e.Queue, e.ID); err != nil {
			return res, fmt.Errorf("enqueued on %s, but the archived task on %s could not be dropped: %w; entry kept", res.Queue, e.Queue, err)
		}
	}
	if _, err := s.Remove(ctx, e.ID, e.Seq); err != nil {
		return res, fmt.Errorf("enqueued, but the entry could not be removed: %w", err)
	}
	return res, nil
}

// rebuild returns the task of e's payload and headers, with RequestedAt
// cleared, and its task ID.
func rebuild(e Entry) (*asynq.Task, string, error) {
	opts, err := tasks.OptionsFrom(e.Headers)
	if err != nil {
		return nil, "", fmt.Errorf("stored headers: %w", err)
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
