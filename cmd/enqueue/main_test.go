package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
)

func TestMain(m *testing.M) {
	// As in main: the unreachable-Redis tests would otherwise fill the
	// output with go-redis's own dial logs.
	redis.SetLogger(&logging.VoidLogger{})
	os.Exit(m.Run())
}

// result is what one run of the command printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

// execute runs the command line args in-process with env as the whole
// environment.
func execute(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runEnv(t.Context(), args, &stdout, &stderr, func(k string) string { return env[k] })
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// harness is one test's Redis and the helpers around it.
type harness struct {
	t    *testing.T
	srv  *redistest.Server
	insp *asynq.Inspector
	env  map[string]string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	srv := redistest.New(t)
	return &harness{
		t:    t,
		srv:  srv,
		insp: asynq.NewInspectorFromRedisClient(srv.Client(t)),
		env:  map[string]string{envSourceApp: "72"},
	}
}

// run runs the command line args against the harness's Redis.
func (h *harness) run(args ...string) result {
	h.t.Helper()
	return execute(h.t, h.env, append([]string{"--redis-url", h.srv.URL}, args...)...)
}

// mustRun runs args and fails the test unless the exit code is want.
func (h *harness) mustRun(want int, args ...string) result {
	h.t.Helper()
	r := h.run(args...)
	if r.code != want {
		h.t.Fatalf("enqueue %s: want exit %d, got %s", strings.Join(args, " "), want, r)
	}
	return r
}

// taskInfo returns the asynq task id in queue, failing the test if there is
// none.
func (h *harness) taskInfo(queue, id string) *asynq.TaskInfo {
	h.t.Helper()
	info, err := h.insp.GetTaskInfo(queue, id)
	if err != nil {
		h.t.Fatalf("task %s in queue %s: %v", id, queue, err)
	}
	return info
}

// waitState waits until task id in queue is in state want.
func (h *harness) waitState(queue, id string, want asynq.TaskState) *asynq.TaskInfo {
	h.t.Helper()
	return workertest.WaitState(h.t, h.insp, queue, id, want)
}

// queueSize returns how many tasks queue holds, in any state.
func (h *harness) queueSize(queue string) int {
	h.t.Helper()
	qi, err := h.insp.GetQueueInfo(queue)
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return 0
	}
	if err != nil {
		h.t.Fatalf("queue %s: %v", queue, err)
	}
	return qi.Size + qi.Completed
}

// process starts an asynq server on queue whose handler returns handle's
// error, and stops it at cleanup.
func (h *harness) process(queue string, handle func() error) {
	h.t.Helper()
	srv := asynq.NewServerFromRedisClient(h.srv.Client(h.t), asynq.Config{
		Concurrency:              1,
		Queues:                   map[string]int{queue: 1},
		RetryDelayFunc:           func(int, error, *asynq.Task) time.Duration { return time.Hour },
		LogLevel:                 asynq.FatalLevel,
		ShutdownTimeout:          time.Second,
		DelayedTaskCheckInterval: time.Hour,
	})
	err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return handle() }))
	if err != nil {
		h.t.Fatalf("start asynq server: %v", err)
	}
	h.t.Cleanup(srv.Shutdown)
}

// decodeJSON parses s, which must be exactly one JSON value, into v.
func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, s)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON value:\n%s", s)
	}
}
