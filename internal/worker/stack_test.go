package worker_test

import (
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

// TestSuccessFitsItsStack runs a Meari and a PandaPon cancellation's success path as the
// worker runs it in production (the JSON logger writing to a file, the
// metrics observer, the provider's breaker, fasthttp on a kept-alive
// connection) and checks that its goroutine never grows the stack
// growStack gave it, with stackMargin to spare: a task in flight then
// holds 8 KiB of stack, not 16 (at a concurrency of 200, 1.6 MB less, and
// as much less heap, which the collector sizes with the stacks).
func TestSuccessFitsItsStack(t *testing.T) {
	if raceEnabled {
		// The race detector's frames and stack guard are larger than
		// production's: measured without it, in a test binary of its own.
		if testing.Short() {
			t.Skip("builds the package's tests without -race")
		}
		out, err := exec.CommandContext(t.Context(), "go", "test", "-count=1", "-run", "^TestSuccessFitsItsStack$", ".").CombinedOutput()
		if err != nil {
			t.Fatalf("go test -run TestSuccessFitsItsStack without -race: %v\n%s", err, out)
		}
		return
	}
	// No collection while it runs: one could shrink the stack, which moves
	// it too.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
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
