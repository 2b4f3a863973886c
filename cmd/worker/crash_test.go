package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// buildWorker builds the worker binary into a temporary directory.
func buildWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "worker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startWorker starts the worker binary bin with env, its output in the
// returned buffer; it is killed at cleanup if still running.
func startWorker(t *testing.T, bin string, env []string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = env
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, &logs
}

// binaryRig builds the worker binary and starts a Redis and a sandbox
// PandaPon upstream (access key "ak", secret "as-secret", user "u1") for it.
func binaryRig(t *testing.T) (bin string, srv *redistest.Server, rdb *redis.Client, sb *sandbox.Sandbox, up *httptest.Server) {
	t.Helper()
	bin = buildWorker(t)
	srv = redistest.New(t)
	rdb = srv.Client(t)
	sb = sandbox.New(sandbox.Config{PandaPon: sandbox.PandaPonAccount{AccessKey: "ak", AccessSecret: "as-secret", UserID: "u1"}})
	up = httptest.NewServer(sb)
	t.Cleanup(up.Close)
	return bin, srv, rdb, sb, up
}

// logField waits until logs hold a JSON line with message msg and returns
// its field key.
func logField(t *testing.T, logs *syncBuffer, msg, key string, timeout time.Duration) string {
	t.Helper()
	var v string
	workertest.WaitUpTo(t, timeout, fmt.Sprintf("a log line %q with %s", msg, key), func() (bool, string) {
		for l := range strings.Lines(logs.String()) {
			var line map[string]any
			if json.Unmarshal([]byte(l), &line) == nil && line["msg"] == msg {
				var ok bool
				if v, ok = line[key].(string); ok {
					return true, ""
				}
			}
		}
		return false, "logs:\n" + logs.String()
	})
	return v
}

// TestSIGKILLMidCall kills the real worker binary with SIGKILL while the
// upstream is taking the cancel, and restarts it: the new process proves
// the old one dead (same machine, its PID gone) and puts its task back at
// once, without waiting out asynq's lease (30 s, and 30 s more for its
// recoverer). The retry is refused, as an already-cancelled order is, and
// the dead-letter entry says the outcome was unknown, as does the metric.
func TestSIGKILLMidCall(t *testing.T) {
	if testing.Short() {
		t.Skip("kills the worker binary and waits out asynq's lease")
	}
	t.Parallel()
	bin, redis, rdb, sb, up := binaryRig(t)

	const order = "2542285634920880794"
	refused := false
	// The first call takes the cancel but answers late; the second is
	// refused (data false), as a provider answers an already-cancelled order.
	sb.Script("pandapon", order, sandbox.Slow(5*time.Second, sandbox.OK()), sandbox.PandaPonCode(200, &refused))
	task, err := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: 2542285634920880794})
	if err != nil {
		t.Fatal(err)
	}
	res, err := tasks.NewEnqueuer(rdb, tasks.Shards{}).Enqueue(t.Context(), task, false)
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"REDIS_URL="+redis.URL,
		"PANDAPON_BASE_URL="+up.URL, "PANDAPON_ACCESS_KEY=ak", "PANDAPON_ACCESS_SECRET=as-secret", "PANDAPON_USER_ID=u1",
		"WORKER_CONCURRENCY=2", "LOG_FORMAT=json", "ADMIN_ADDR=127.0.0.1:0", "UPSTREAM_TIMEOUT=20s", "SHUTDOWN_TIMEOUT=25s",
	)
	first, logs := startWorker(t, bin, env)
	select {
	case <-sb.Called("pandapon", order):
	case <-time.After(20 * time.Second):
		t.Fatalf("the worker never called the upstream:\n%s", logs.String())
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	killed := time.Now()
	// The upstream finishes the call it took, for a client that is gone.
	workertest.Wait(t, "the sandbox to take the cancel", func() (bool, string) {
		return sb.Cancelled("pandapon", order), "not cancelled"
	})

	_, logs2 := startWorker(t, bin, env)
	base := "http://" + logField(t, logs2, "admin server listening", "addr", 20*time.Second)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	workertest.WaitUpTo(t, 30*time.Second, "the task to be dead-lettered", func() (bool, string) {
		info, err := insp.GetTaskInfo(res.Queue, res.TaskID)
		return err == nil && info.State == asynq.TaskStateArchived, fmt.Sprintf("%+v, %v\nlogs:\n%s", info, err, logs2.String())
	})
	took := time.Since(killed)
	t.Logf("dead-lettered %s after the kill", took.Round(time.Second))
	if !strings.Contains(logs2.String(), "put back a task whose worker stopped") {
		t.Errorf("the restarted worker did not say it put the dead one's task back:\n%s", logs2.String())
	}
	e, err := dlq.New(rdb).Get(t.Context(), res.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if !e.OutcomeUnknown || e.Reason != dlq.ReasonPermanent || e.UpstreamCode != "200" || e.Attempts != 2 {
		t.Errorf("entry %+v: want permanent (code 200, data false), outcome unknown, 2 attempts", e)
	}
	if n := len(sb.Calls("pandapon", order)); n != 2 {
		t.Errorf("upstream calls %d, want 2", n)
	}
	_, metrics := httpGet(t, base+"/metrics")
	if !strings.Contains(metrics, `cancelworker_dead_lettered_outcome_unknown_total{provider="pandapon"} 1`) {
		t.Errorf("/metrics lacks the outcome-unknown dead-lettering:\n%.2000s", metrics)
	}
}
