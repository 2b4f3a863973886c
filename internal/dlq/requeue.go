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
	if err == nil && e.OutcomeUnknown {
		// The attempt record that said so may be long gone: the task
		// carries it, however old the entry.
		t, err = tasks.Rebuild(t, tasks.WithPriorOutcomeUnknown())
	}
	if err != nil {
		return tasks.Result{}, fmt.Errorf("requeue %s: %w; entry kept", id, err)
	}
	if taskID != e.ID {
		return tasks.Result{}, fmt.Errorf("requeue %s: payload is for task %s; entry kept", id, taskID)
	}
	res, err := enq.Enqueue(ctx, t, true)
	if err != nil {
		return tasks.Result{}, fmt.Errorf("requeue %s: %w; entry kept", id, err)
	}
	if _, err := s.Remove(ctx, id, e.Seq); err != nil {
		return res, fmt.Errorf("requeue %s: enqueued, but the entry could not be removed: %w", id, err)
	}
	return res, nil
}

// rebuild returns the task of e's payload, with RequestedAt cleared, and
// its task ID.
func rebuild(e Entry) (*asynq.Task, string, error) {
	switch e.TaskType {
	case tasks.TypeMeariCancel:
		m, err := tasks.ParseMeariCancel(e.Payload)
		if err != nil {
			return nil, "", fmt.Errorf("stored payload: %w", err)
		}
		m.RequestedAt = time.Time{}
		t, err := tasks.NewMeariCancelTask(m)
		return t, m.TaskID(), err
	case tasks.TypePandaPonCancel:
		p, err := tasks.ParsePandaPonCancel(e.Payload)
		if err != nil {
			return nil, "", fmt.Errorf("stored payload: %w", err)
		}
		p.RequestedAt = time.Time{}
		t, err := tasks.NewPandaPonCancelTask(p)
		return t, p.TaskID(), err
	}
	return nil, "", fmt.Errorf("task_type: unknown type %q", e.TaskType)
}
