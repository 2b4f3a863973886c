package worker_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/guard"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
)

// TestRateLimitedWorker runs 60 cancellations through a worker whose
// concurrency (16) would send them at once, with a PandaPon limit of 20
// calls per second and a burst of 2: the sandbox never sees more than
// 22 in a second, every order is cancelled once, and no task used an
// attempt for waiting (asynq's retry count stays 0).
func TestRateLimitedWorker(t *testing.T) {
	t.Parallel()
	const n, rate, burst = 60, 20, 2
	r := workertest.Start(t, workertest.WithConcurrency(16), func(r *workertest.Rig) {
		r.Options.Limits = map[string]guard.Limit{tasks.ProviderPandaPon: {Rate: rate, Burst: burst}}
		r.Options.RateMaxWait = 200 * time.Millisecond // some are put back, some wait
	})
	var res []tasks.Result
	for i := range n {
		res = append(res, r.EnqueuePandaPon(t, fmt.Sprint(7000000+i)))
	}
	for _, x := range res {
		if info := r.WaitState(t, x, asynq.TaskStateCompleted); info.Retried != 0 {
			t.Errorf("%s: retried %d, want 0: waiting for the limit is not an attempt", x.TaskID, info.Retried)
		}
	}
	var at []time.Time
	for i := range n {
		calls := r.Sandbox.Calls(tasks.ProviderPandaPon, fmt.Sprint(7000000+i))
		if len(calls) != 1 {
			t.Errorf("order %d: %d calls, want 1", 7000000+i, len(calls))
		}
		for _, c := range calls {
			at = append(at, c.At)
		}
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	most := 0
	for i := range at {
		most = max(most, sort.Search(len(at), func(j int) bool { return !at[j].Before(at[i].Add(time.Second)) })-i)
	}
	if most > rate+burst+1 { // +1: Redis's clock and the sandbox's may differ by a few ms
		t.Errorf("the sandbox saw %d calls in one second, want at most %d", most, rate+burst)
	}
	if span := at[len(at)-1].Sub(at[0]); span < time.Duration(float64(n-burst-rate)/rate*float64(time.Second)) {
		t.Errorf("%d calls in %s: faster than %d/s", n, span, rate)
	}
}

// TestBreakerHoldsCalls takes PandaPon down (503 on every call) with 30
// tasks waiting: the breaker opens after 5 failures and the upstream sees
// a few probes per open period instead of a call per task and retry; no
// task is dead-lettered, and once the provider is back every order is
// cancelled with its budget intact.
func TestBreakerHoldsCalls(t *testing.T) {
	t.Parallel()
	const n = 30
	r := workertest.Start(t, workertest.WithConcurrency(8), func(r *workertest.Rig) {
		r.Options.Breaker = guard.Breaker{Failures: 5, OpenFor: 200 * time.Millisecond, Probes: 1}
	})
	r.Sandbox.SetOutage(tasks.ProviderPandaPon, sandbox.HTTPStatus(503))
	var res []tasks.Result
	for i := range n {
		res = append(res, r.EnqueuePandaPon(t, fmt.Sprint(8000000+i)))
	}
	workertest.Wait(t, "the breaker to open", func() (bool, string) {
		return r.Logs.FilterMessageSnippet("circuit breaker open").Len() > 0, fmt.Sprintf("%d calls", r.Sandbox.TotalCalls())
	})
	time.Sleep(time.Second) // the outage goes on: a sleep is the scenario
	during := r.Sandbox.TotalCalls()
	r.Sandbox.ClearOutage()
	for _, x := range res {
		r.WaitState(t, x, asynq.TaskStateCompleted)
	}
	if c, err := r.DLQ.Count(t.Context(), ""); err != nil || c != 0 {
		t.Errorf("DLQ holds %d (%v), want 0", c, err)
	}
	// Without the breaker each of the 30 tasks would fail its way through
	// the 5 attempts of FastPolicy in this time (150 calls) and be
	// dead-lettered. With it: 5 to open, then one probe per 200ms period
	// (and the calls in flight when it opened).
	if during > 5+8+10 {
		t.Errorf("the upstream saw %d calls in the outage, want at most 23 (5 to open, 8 in flight, a probe per period)", during)
	}
	t.Logf("%d calls during the outage for %d tasks; %d in all", during, n, r.Sandbox.TotalCalls())
}

// TestThrottleHoldsOthers answers one PandaPon order with 429 and a
// Retry-After of 2s: with the provider's limit configured, the next
// order's call waits out the same 2s, though its own task never saw the
// 429, and neither task uses an attempt for the hold.
func TestThrottleHoldsOthers(t *testing.T) {
	t.Parallel()
	r := workertest.Start(t, workertest.WithConcurrency(4), func(r *workertest.Rig) {
		r.Options.Limits = map[string]guard.Limit{tasks.ProviderPandaPon: {Rate: 1000}}
	})
	a := r.EnqueuePandaPon(t, "9100001", sandbox.RetryAfter(429, 2*time.Second), sandbox.OK())
	first := r.WaitCalls(t, tasks.ProviderPandaPon, "9100001", 1)[0].At
	b := r.EnqueuePandaPon(t, "9100002")
	r.WaitState(t, b, asynq.TaskStateCompleted)
	if info := r.WaitState(t, a, asynq.TaskStateCompleted); info.Retried != 1 {
		t.Errorf("the 429'd task: retried %d, want 1 (the 429 itself; the hold is not an attempt)", info.Retried)
	}
	bAt := r.Sandbox.Calls(tasks.ProviderPandaPon, "9100002")[0].At
	if wait := bAt.Sub(first); wait < 1900*time.Millisecond {
		t.Errorf("the other order was called %s after the 429, want the 2s Retry-After held", wait)
	}
}
