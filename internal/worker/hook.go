package worker

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/redis/go-redis/v9"
)

// scriptWatch watches, on the client asynq's servers use, every dequeue
// this process makes: which are in flight, and which task each one took,
// noted as the reply arrives, before asynq can start the task. Between
// its dequeue and its handler's start (a heartbeat in the way, the
// process paused) a task is this process's, and the recoverer must know.
//
// asynq v0.26 dequeues with one script (internal/rdb's dequeueCmd) whose
// keys are the queue's pending, paused, active and lease keys; the reply
// is the task's message.
//
// It also times each task's stages (stages, when not nil): the dequeue
// from asynq's call to its reply, and the reply of asynq's completion
// script. It watches the calls as asynq makes them (watchedClient), so a
// wait for a shared pipeline's round trip (WORKER_PIPELINE) counts in
// the stage, and a dequeue counts as in flight from the moment asynq asks.
type scriptWatch struct {
	seen   *seenRing // nil: the early recovery is off
	stages *stageClock
	now    func() time.Time
}

// watchedClient is the client asynq's servers use, its script calls
// seen by watch. asynq runs every script through go-redis's Script.Run:
// EvalSha, then Eval if Redis does not have the script.
type watchedClient struct {
	redis.UniversalClient
	watch scriptWatch
}

func (c watchedClient) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	call := c.watch.before(keys, args)
	cmd := c.UniversalClient.EvalSha(ctx, sha1, keys, args...)
	c.watch.after(call, cmd)
	return cmd
}

func (c watchedClient) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	call := c.watch.before(keys, args)
	cmd := c.UniversalClient.Eval(ctx, script, keys, args...)
	c.watch.after(call, cmd)
	return cmd
}

// watchedCall is what scriptWatch.before learnt of a call.
type watchedCall struct {
	completed string // the task ID of a completion; "" for none
	dequeue   bool
	token     uint64
	sent      time.Time
}

func (w scriptWatch) before(keys []string, args []any) watchedCall {
	if w.stages != nil {
		if id, ok := completedID(keys, args); ok {
			return watchedCall{completed: id}
		}
	}
	if !isDequeue(keys) {
		return watchedCall{}
	}
	call := watchedCall{dequeue: true, sent: w.now()}
	if w.seen != nil {
		call.token = w.seen.dequeueStart(call.sent)
	}
	return call
}

func (w scriptWatch) after(call watchedCall, cmd *redis.Cmd) {
	switch {
	case call.completed != "":
		if cmd.Err() == nil {
			w.stages.completed(call.completed, w.now())
		}
	case call.dequeue:
		id := ""
		if s, ok := cmd.Val().(string); ok && cmd.Err() == nil {
			id = taskstore.MessageID([]byte(s))
		}
		if w.seen != nil {
			w.seen.dequeueEnd(call.token, id)
		}
		if w.stages != nil && id != "" {
			w.stages.fetched(id, call.sent, w.now())
		}
	}
}

// asynqClient returns the client asynq's servers use: rdb, or with
// pipeline its autopipeliner, where the calls of every slot that are
// waiting while a pipeline is out go together in the next one. Each is
// still one script call that Redis runs whole, with the same keys,
// arguments and reply; what changes is that one write and one read carry
// many. A client other than go-redis's Client (a single Redis, through
// Sentinel or not) or ClusterClient keeps one round trip a call.
func asynqClient(rdb redis.UniversalClient, pipeline bool) (redis.UniversalClient, error) {
	if !pipeline {
		return rdb, nil
	}
	// The blocking face's defaults (one batch out at a time, in order),
	// with batches of about 100: a few hundred slots fill two, and
	// go-redis pools its batch slices at that size.
	opt := redis.DefaultBlockingAutoPipelineOptions()
	opt.MaxBatchSize = 100
	var ap *redis.AutoPipeliner
	var err error
	switch c := rdb.(type) {
	case *redis.Client:
		ap, err = c.AutoPipelineWithOptions(opt)
	case *redis.ClusterClient:
		ap, err = c.AutoPipelineWithOptions(opt)
	default:
		return rdb, nil
	}
	if err != nil {
		return nil, fmt.Errorf("WORKER_PIPELINE: %w", err)
	}
	return ap, nil
}

// completedID returns the task ID of asynq's completion script
// (internal/rdb's markAsCompleteCmd and markAsCompleteUniqueCmd: keys
// active, lease, completed, the task, two counters and maybe a unique
// key; the first argument the task ID).
func completedID(keys []string, args []any) (string, bool) {
	if (len(keys) != 6 && len(keys) != 7) || len(args) == 0 || !asynqKeys(keys, "}:active", "}:lease", "}:completed") {
		return "", false
	}
	id, ok := args[0].(string)
	return id, ok
}

// isDequeue reports whether keys are those of asynq's dequeue script.
func isDequeue(keys []string) bool {
	return len(keys) >= 4 && asynqKeys(keys, "}:pending", "}:paused", "}:active", "}:lease")
}

// asynqKeys reports whether keys begin with asynq's keys of a queue
// ending in suffixes, in order.
func asynqKeys(keys []string, suffixes ...string) bool {
	if len(keys) < len(suffixes) {
		return false
	}
	for i, suffix := range suffixes {
		if !strings.HasPrefix(keys[i], "asynq:{") || !strings.HasSuffix(keys[i], suffix) {
			return false
		}
	}
	return true
}
