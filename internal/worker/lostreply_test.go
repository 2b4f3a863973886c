package worker_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/worker"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// loseReply lets the first dequeue after it is armed run on Redis, then
// answers the caller with an error instead of its reply: what a Sentinel
// failover or a cut connection does to a dequeue whose reply was on its
// way. It sits between the worker's own hook and Redis.
type loseReply struct{ armed, lost atomic.Bool }

func (*loseReply) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *loseReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			l.lose(cmd) // the pipeline's other replies arrive
		}
		return err
	}
}

func (l *loseReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := next(ctx, cmd); err != nil {
			return err
		}
		return l.lose(cmd)
	}
}

// lose replaces the reply of cmd, a dequeue that ran, with an error, if
// armed.
func (l *loseReply) lose(cmd redis.Cmder) error {
	if cmd.Err() != nil || !worker.IsDequeue(cmd) || !l.armed.Load() {
		return cmd.Err()
	}
	if v, _ := cmd.(*redis.Cmd).Val().(string); v == "" || !l.armed.CompareAndSwap(true, false) {
		return nil // took nothing: not the one to lose
	}
	l.lost.Store(true)
	lost := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer (test: reply lost)")}
	cmd.SetErr(lost)
	return lost
}

// TestLostDequeueReplyPutBack: a task whose dequeue ran on Redis but whose
// reply never reached the worker is active under a lease nobody holds;
// asynq never starts it. The worker's recoverer puts it back once the
// lease has settled, rather than after asynq's rule (lease expired 30s
// ago: about a minute), and the order is cancelled once.
func TestLostDequeueReplyPutBack(t *testing.T) {
	t.Parallel()
	r := workertest.New(t)
	r.Options.RecoverInterval = 200 * time.Millisecond
	w, err := worker.New(r.Options)
	if err != nil {
		t.Fatal(err)
	}
	lose := &loseReply{}
	lose.armed.Store(true)
	r.RDB.AddHook(lose) // after the worker's: between it and Redis
	res := r.EnqueueMeari(t, "LOSTREPLY1")
	start := time.Now()
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	r.WaitCalls(t, tasks.ProviderMeari, "LOSTREPLY1", 1)
	took := time.Since(start)
	if !lose.lost.Load() {
		t.Fatal("no dequeue reply was lost: the test did not test anything")
	}
	info := r.WaitState(t, res, asynq.TaskStateCompleted)
	if took > 15*time.Second {
		t.Errorf("called %s after the start, want within the lease's 5s settling and a few passes (asynq's rule: about a minute)", took.Round(time.Millisecond))
	}
	if calls := r.Sandbox.Calls(tasks.ProviderMeari, "LOSTREPLY1"); len(calls) != 1 {
		t.Errorf("%d calls, want 1", len(calls))
	}
	putBack := r.Logs.FilterMessageSnippet("put back a task").All()
	if len(putBack) != 1 || !strings.Contains(putBack[0].ContextMap()["why"].(string), "never delivered") {
		t.Errorf("put-back log lines %v, want one saying the dequeue never delivered it", putBack)
	}
	t.Logf("the task whose dequeue reply was lost was called %s after the start; retried %d", took.Round(time.Millisecond), info.Retried)
}
