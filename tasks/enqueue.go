package tasks

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Result says what Enqueue did with a task.
type Result struct {
	TaskID string `json:"task_id"`
	Queue  string `json:"queue"`
	// AlreadyQueued is true when a task for the same order already existed
	// (pending, scheduled, retrying, running, or finished within its
	// retention), and nothing new was enqueued.
	AlreadyQueued bool `json:"already_queued"`
	// Replaced is true when force removed a finished or waiting task for the
	// same order before enqueueing this one.
	Replaced bool `json:"replaced,omitempty"`
}

// ErrActive is returned by a forced Enqueue while a task for the same order
// is being processed: replacing it could send the cancel twice at once.
var ErrActive = errors.New("a task for this order is being processed right now; try again when it finishes")

// Enqueuer enqueues cancellation tasks idempotently. It is safe for
// concurrent use. It holds no connections of its own: the caller closes the
// Redis client given to NewEnqueuer.
type Enqueuer struct {
	client    *asynq.Client
	inspector *asynq.Inspector
}

// NewEnqueuer returns an Enqueuer that talks to Redis through rdb. The
// caller keeps ownership of rdb.
func NewEnqueuer(rdb redis.UniversalClient) *Enqueuer {
	return &Enqueuer{
		client:    asynq.NewClientFromRedisClient(rdb),
		inspector: asynq.NewInspectorFromRedisClient(rdb),
	}
}

// Enqueue enqueues t, built by NewMeariCancelTask or NewPandaPonCancelTask.
// If a task for the same order exists, it reports AlreadyQueued and returns
// a nil error; with force it deletes that task (unless it is running, see
// ErrActive) and enqueues t anyway.
func (e *Enqueuer) Enqueue(ctx context.Context, t *asynq.Task, force bool) (Result, error) {
	info, err := e.client.EnqueueContext(ctx, t)
	if err == nil {
		return Result{TaskID: info.ID, Queue: info.Queue}, nil
	}
	if !errors.Is(err, asynq.ErrTaskIDConflict) {
		return Result{}, fmt.Errorf("enqueue %s: %w", t.Type(), err)
	}
	id, queue, err := e.identify(t)
	if err != nil {
		return Result{}, err
	}
	if !force {
		return Result{TaskID: id, Queue: queue, AlreadyQueued: true}, nil
	}
	old, err := e.inspector.GetTaskInfo(queue, id)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		// Gone since the conflict: enqueue below.
	case err != nil:
		return Result{}, fmt.Errorf("look up task %s: %w", id, err)
	case old.State == asynq.TaskStateActive:
		return Result{}, fmt.Errorf("force enqueue %s: %w", id, ErrActive)
	default:
		if err := e.inspector.DeleteTask(queue, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return Result{}, fmt.Errorf("force enqueue %s: delete the %s task: %w", id, old.State, err)
		}
	}
	info, err = e.client.EnqueueContext(ctx, t)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		// Someone enqueued the same order in between: that one stands.
		return Result{TaskID: id, Queue: queue, AlreadyQueued: true}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("enqueue %s: %w", t.Type(), err)
	}
	return Result{TaskID: info.ID, Queue: info.Queue, Replaced: true}, nil
}

// identify returns the task ID and queue that t was built with.
func (e *Enqueuer) identify(t *asynq.Task) (id, queue string, err error) {
	switch t.Type() {
	case TypeMeariCancel:
		m, err := ParseMeariCancel(t.Payload())
		if err != nil {
			return "", "", err
		}
		return m.TaskID(), QueueMeari, nil
	case TypePandaPonCancel:
		p, err := ParsePandaPonCancel(t.Payload())
		if err != nil {
			return "", "", err
		}
		return p.TaskID(), QueuePandaPon, nil
	}
	return "", "", fmt.Errorf("unknown task type %q", t.Type())
}
