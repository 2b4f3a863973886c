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
type dequeueHook struct {
	seen *seenRing
	now  func() time.Time
}

var _ redis.Hook = dequeueHook{}

func (dequeueHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (dequeueHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next // asynq does not dequeue in a pipeline
}

func (h dequeueHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isDequeue(cmd) {
			return next(ctx, cmd)
		}
		token := h.seen.dequeueStart(h.now())
		err := next(ctx, cmd)
		id := ""
		if c, ok := cmd.(*redis.Cmd); ok && err == nil {
			if s, ok := c.Val().(string); ok {
				if m, derr := taskstore.DecodeMessage([]byte(s)); derr == nil {
					id = m.ID
				}
			}
		}
		h.seen.dequeueEnd(token, id)
		return err
	}
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
