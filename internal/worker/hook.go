package worker

import (
	"context"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/redis/go-redis/v9"
)

// dequeueHook watches, on the Redis client asynq dequeues through, every
// dequeue this process makes: which are in flight, and which task each
// one took, noted as the reply arrives, before asynq can start the task.
// Between its dequeue and its handler's start (a heartbeat in the way, the
// process paused) a task is this process's, and the recoverer must know.
//
// asynq v0.26 dequeues with one script (internal/rdb's dequeueCmd) whose
// keys are the queue's pending, paused, active and lease keys; the reply
// is the task's message.
//
// It also times each task's stages (stages, when not nil): the dequeue's
// round trip, and the reply of asynq's completion script.
type dequeueHook struct {
	seen   *seenRing // nil: the early recovery is off
	stages *stageClock
	now    func() time.Time
}

var _ redis.Hook = dequeueHook{}

func (dequeueHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (dequeueHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next // asynq does not dequeue in a pipeline
}

func (h dequeueHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.stages != nil {
			if id, ok := completedID(cmd); ok {
				err := next(ctx, cmd)
				if err == nil {
					h.stages.completed(id, h.now())
				}
				return err
			}
		}
		if !isDequeue(cmd) {
			return next(ctx, cmd)
		}
		sent := h.now()
		var token uint64
		if h.seen != nil {
			token = h.seen.dequeueStart(sent)
		}
		err := next(ctx, cmd)
		id := ""
		if c, ok := cmd.(*redis.Cmd); ok && err == nil {
			if s, ok := c.Val().(string); ok {
				id = taskstore.MessageID([]byte(s))
			}
		}
		if h.seen != nil {
			h.seen.dequeueEnd(token, id)
		}
		if h.stages != nil && id != "" {
			h.stages.fetched(id, sent, h.now())
		}
		return err
	}
}

// completedID returns the task ID of asynq's completion script
// (internal/rdb's markAsCompleteCmd and markAsCompleteUniqueCmd: keys
// active, lease, completed, the task, two counters and maybe a unique
// key; the first argument the task ID).
func completedID(cmd redis.Cmder) (string, bool) {
	name := cmd.Name()
	if name != "evalsha" && name != "eval" {
		return "", false
	}
	args := cmd.Args()
	if len(args) < 10 {
		return "", false
	}
	n, ok := args[2].(int)
	if !ok || (n != 6 && n != 7) || len(args) < 4+n {
		return "", false
	}
	for i, suffix := range []string{"}:active", "}:lease", "}:completed"} {
		k, ok := args[3+i].(string)
		if !ok || !strings.HasPrefix(k, "asynq:{") || !strings.HasSuffix(k, suffix) {
			return "", false
		}
	}
	id, ok := args[3+n].(string)
	return id, ok
}

// isDequeue reports whether cmd is asynq's dequeue script.
func isDequeue(cmd redis.Cmder) bool {
	name := cmd.Name()
	if name != "evalsha" && name != "eval" {
		return false
	}
	args := cmd.Args()
	if len(args) < 7 {
		return false
	}
	for i, suffix := range []string{"}:pending", "}:paused", "}:active", "}:lease"} {
		k, ok := args[3+i].(string)
		if !ok || !strings.HasPrefix(k, "asynq:{") || !strings.HasSuffix(k, suffix) {
			return false
		}
	}
	return true
}
