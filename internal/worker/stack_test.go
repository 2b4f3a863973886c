package worker_test

import (
	"math"
	"os"
	"os/exec"
	"runtime/debug"
	"testing"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/metrics"
	"github.com/cancelworker/cancelworker/internal/worker"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"go.uber.org/zap/zapcore"
)

// stackMargin is the stack a task's success path must leave free in the
// goroutine growStack sized: room for what this test does not take (a
// slower clock, a longer log line, another Go release's frames).
const stackMargin = 1 << 10

// stackChild marks the test binary run without -race by the one built
// with it.
const stackChild = "CANCELWORKER_STACK_TEST_CHILD"

// TestSuccessFitsItsStack runs the success path of a Meari and of a
// PandaPon cancellation as the worker runs it by default (the JSON logger
// writing to a file, the metrics observer, the provider's breaker, fasthttp
// on a kept-alive connection, tracing off) and checks that its goroutine
// never grows the stack growStack gave it, with stackMargin to spare: a
// task in flight then holds 8 KiB of stack, not 16 (at a concurrency of
// 200, 1.6 MB less, and as much less heap, which the collector paces with
// the stacks).
func TestSuccessFitsItsStack(t *testing.T) {
	if raceEnabled {
		// The race detector's frames and stack guard are larger than
		// production's: measured without it, in a test binary of its own.
		if os.Getenv(stackChild) != "" {
			t.Fatal("built with -race although asked not to be")
		}
		if testing.Short() {
			t.Skip("builds the package's tests without -race")
		}
		cmd := exec.CommandContext(t.Context(), "go", "test", "-race=false", "-count=1", "-run", "^TestSuccessFitsItsStack$", ".")
		cmd.Env = append(os.Environ(), stackChild+"=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go test -run TestSuccessFitsItsStack without -race: %v\n%s", err, out)
		}
		return
	}
	// No collection while it runs: one could shrink the stack, which moves
	// it too.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	if worker.Fits8KiBMore(false) {
		t.Skip("the runtime starts goroutines on more than 8 KiB of stack here (GODEBUG adaptivestackstart): nothing to measure")
	}
	if worker.Fits8KiBMore(true) {
		t.Fatal("growStack gives a goroutine more than 8 KiB of stack")
	}
	r := workertest.New(t)
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devnull.Close() })
	r.Options.Logger = config.NewLogger(config.Log{Level: zapcore.InfoLevel, Format: "json"}, devnull)
	m, err := metrics.New(metrics.Options{Redis: r.RDB, Queues: []string{tasks.QueueMeari, tasks.QueuePandaPon}})
	if err != nil {
		t.Fatal(err)
	}
	r.Options.Observer = m
	w := r.StartWorker(t)

	meariTask, err := tasks.NewMeariCancelTask(tasks.MeariCancel{SourceApp: workertest.SourceApp, UserAccount: "test@123.com", OrderType: 1, OrderNum: "STACK-1"})
	if err != nil {
		t.Fatal(err)
	}
	pandaTask, err := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: 2718281828, CancelReason: "不想要了"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		provider, order string
		task            *asynq.Task
	}{{tasks.ProviderMeari, "STACK-1", meariTask}, {tasks.ProviderPandaPon, "2718281828", pandaTask}} {
		// The first call dials the connection, as each connection's first
		// does in production: a deeper path, once per connection.
		if _, err := worker.ProcessGrowsStack(t.Context(), w, c.task, 0); err != nil {
			t.Fatalf("%s, first call: %v", c.provider, err)
		}
		for i := range 3 {
			grew, err := worker.ProcessGrowsStack(t.Context(), w, c.task, stackMargin)
			if err != nil {
				t.Fatalf("%s, call %d: %v", c.provider, i+2, err)
			}
			if grew {
				t.Fatalf("%s, call %d: the task's goroutine outgrew the stack growStack gives it, with %d bytes in use below the handler", c.provider, i+2, stackMargin)
			}
		}
		if n := r.Sandbox.Calls(c.provider, c.order); len(n) != 4 {
			t.Fatalf("%s: the sandbox saw %d calls, want 4", c.provider, len(n))
		}
	}
}
