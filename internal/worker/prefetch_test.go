package worker_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/cancelworker/cancelworker/tasks"
)

// callCounter stands before the sandbox and counts the calls in flight.
type callCounter struct {
	next http.Handler

	mu       sync.Mutex
	inflight int
	max      int
	starts   []time.Time
}

func (c *callCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.inflight++
	c.max = max(c.max, c.inflight)
	c.starts = append(c.starts, time.Now())
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inflight--
		c.mu.Unlock()
	}()
	c.next.ServeHTTP(w, r)
}

func (c *callCounter) read() (inflight, most int, starts []time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inflight, c.max, append([]time.Time(nil), c.starts...)
}

// TestPrefetch: with WORKER_PREFETCH the worker holds more tasks than its
// concurrency, yet never has more upstream calls in flight than it; at
// shutdown the tasks waiting for a call slot go back to the queue without
// a call, and every order is cancelled once by the next worker.
func TestPrefetch(t *testing.T) {
	t.Parallel()
	const conc, prefetch, n = 2, 3, 10
	r := workertest.New(t, workertest.WithConcurrency(conc), workertest.WithShutdownTimeout(5*time.Second), func(r *workertest.Rig) {
		r.Options.Run.Prefetch = prefetch
		r.Options.Run.PollInterval = 10 * time.Millisecond
	})
	cc := &callCounter{next: r.Sandbox}
	up := httptest.NewServer(cc)
	t.Cleanup(up.Close)
	r.Options.Meari = workertest.MeariConfig(up.URL)
	for i := range n {
		r.EnqueueMeari(t, fmt.Sprintf("PF%02d", i), sandbox.Slow(400*time.Millisecond, sandbox.OK()))
	}
	w := r.StartWorker(t)

	// The worker takes concurrency + prefetch tasks; two of them call.
	workertest.Wait(t, fmt.Sprintf("%d tasks active, %d calls in flight", conc+prefetch, conc), func() (bool, string) {
		q, err := r.Inspector.GetQueueInfo(tasks.QueueMeari)
		if err != nil {
			return false, err.Error()
		}
		inflight, _, _ := cc.read()
		return q.Active == conc+prefetch && inflight == conc, fmt.Sprintf("%d active, %d calls in flight", q.Active, inflight)
	})
	stop := time.Now()
	w.Shutdown()
	_, most, starts := cc.read()
	if most > conc {
		t.Errorf("%d calls in flight at most, want at most the concurrency, %d", most, conc)
	}
	for _, s := range starts {
		if s.After(stop) {
			t.Errorf("a call started %s after the shutdown began: a task waiting for a call slot must go back instead", s.Sub(stop))
		}
	}
	called := len(starts)

	// The next worker cancels the rest, each order once.
	r.StartWorker(t)
	for i := range n {
		order := fmt.Sprintf("PF%02d", i)
		workertest.Wait(t, order+" cancelled", func() (bool, string) {
			return r.Sandbox.Cancelled(tasks.ProviderMeari, order), "not yet"
		})
		if calls := r.Sandbox.Calls(tasks.ProviderMeari, order); len(calls) != 1 {
			t.Errorf("order %s: %d upstream calls, want 1", order, len(calls))
		}
	}
	if _, most, _ := cc.read(); most > conc {
		t.Errorf("%d calls in flight at most, want at most %d", most, conc)
	}
	t.Logf("%d calls before the shutdown, %d orders in all", called, n)
}
