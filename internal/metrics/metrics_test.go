package metrics_test

import (
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/buildinfo"
	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/metrics"
	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestObserver(t *testing.T) {
	t.Parallel()
	m, err := metrics.New(metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.Attempt("meari", "success", "", 40*time.Millisecond)
	m.Attempt("meari", "transient", "1005", 20*time.Millisecond)
	m.Attempt("meari", "transient", "1005", 20*time.Millisecond)
	m.Attempt("meari", "transient", "9999", 3*time.Second) // unknown code
	m.Attempt("pandapon", "permanent", "200", time.Second)
	m.Attempt("acme", "success", "", time.Millisecond) // unknown provider
	m.DeadLettered("meari", dlq.ReasonRetriesExhausted, true)
	m.DeadLettered("pandapon", dlq.ReasonPermanent, false)

	want := `
# HELP cancelworker_attempts_total Upstream cancel calls, by provider, outcome class (success, transient, permanent, auth) and upstream code ("" on success; codes outside the known set are "other").
# TYPE cancelworker_attempts_total counter
cancelworker_attempts_total{class="success",code="",provider="meari"} 1
cancelworker_attempts_total{class="success",code="",provider="other"} 1
cancelworker_attempts_total{class="success",code="",provider="pandapon"} 0
cancelworker_attempts_total{class="transient",code="1005",provider="meari"} 2
cancelworker_attempts_total{class="transient",code="other",provider="meari"} 1
cancelworker_attempts_total{class="permanent",code="200",provider="pandapon"} 1
# HELP cancelworker_dead_lettered_outcome_unknown_total Dead-lettered tasks whose earlier attempt may already have cancelled the order, by provider.
# TYPE cancelworker_dead_lettered_outcome_unknown_total counter
cancelworker_dead_lettered_outcome_unknown_total{provider="meari"} 1
cancelworker_dead_lettered_outcome_unknown_total{provider="pandapon"} 0
# HELP cancelworker_dead_lettered_total Tasks written to the dead-letter queue, by provider and reason.
# TYPE cancelworker_dead_lettered_total counter
cancelworker_dead_lettered_total{provider="meari",reason="bad payload"} 0
cancelworker_dead_lettered_total{provider="meari",reason="max age exceeded"} 0
cancelworker_dead_lettered_total{provider="meari",reason="not servable"} 0
cancelworker_dead_lettered_total{provider="meari",reason="permanent"} 0
cancelworker_dead_lettered_total{provider="meari",reason="retries exhausted"} 1
cancelworker_dead_lettered_total{provider="pandapon",reason="bad payload"} 0
cancelworker_dead_lettered_total{provider="pandapon",reason="max age exceeded"} 0
cancelworker_dead_lettered_total{provider="pandapon",reason="not servable"} 0
cancelworker_dead_lettered_total{provider="pandapon",reason="permanent"} 1
cancelworker_dead_lettered_total{provider="pandapon",reason="retries exhausted"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"cancelworker_attempts_total", "cancelworker_dead_lettered_total", "cancelworker_dead_lettered_outcome_unknown_total"); err != nil {
		t.Error(err)
	}
	// The histogram: meari's four calls (20ms, 20ms, 40ms, 3s).
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range fams {
		if f.GetName() != "cancelworker_upstream_latency_seconds" {
			continue
		}
		for _, mm := range f.GetMetric() {
			if mm.GetLabel()[0].GetValue() != "meari" {
				continue
			}
			found = true
			h := mm.GetHistogram()
			if h.GetSampleCount() != 4 || h.GetSampleSum() < 3.079 || h.GetSampleSum() > 3.081 {
				t.Errorf("meari latency: count %d, sum %v; want 4 and 3.08", h.GetSampleCount(), h.GetSampleSum())
			}
			cum := map[float64]uint64{}
			for _, b := range h.GetBucket() {
				cum[b.GetUpperBound()] = b.GetCumulativeCount()
			}
			if cum[0.025] != 2 || cum[0.05] != 3 || cum[2.5] != 3 || cum[5] != 4 {
				t.Errorf("meari latency buckets %v, want le=0.025: 2, 0.05: 3, 2.5: 3, 5: 4", cum)
			}
		}
	}
	if !found {
		t.Error("no meari latency histogram")
	}

	// The breaker: its state, and each opening counted.
	for _, st := range []int{2, 1, 2, 1, 0} {
		m.BreakerState("meari", st)
	}
	want = `
# HELP cancelworker_breaker_opened_total Times the provider's circuit breaker in this process opened (from closed or half-open).
# TYPE cancelworker_breaker_opened_total counter
cancelworker_breaker_opened_total{provider="meari"} 2
cancelworker_breaker_opened_total{provider="pandapon"} 0
# HELP cancelworker_breaker_state The provider's circuit breaker in this process: 0 closed, 1 half-open, 2 open.
# TYPE cancelworker_breaker_state gauge
cancelworker_breaker_state{provider="meari"} 0
cancelworker_breaker_state{provider="pandapon"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "cancelworker_breaker_opened_total", "cancelworker_breaker_state"); err != nil {
		t.Error(err)
	}
}

func TestScrapeTimeCollectors(t *testing.T) {
	t.Parallel()
	rdb := redistest.New(t).Client(t)
	store := dlq.New(rdb)
	for _, e := range []dlq.Entry{
		{ID: "meari:72:1:A", Provider: "meari", Order: "1:A", TaskType: tasks.TypeMeariCancel, Queue: tasks.QueueMeari, Payload: []byte(`{}`), Reason: dlq.ReasonPermanent},
		{ID: "meari:72:1:B", Provider: "meari", Order: "1:B", TaskType: tasks.TypeMeariCancel, Queue: tasks.QueueMeari, Payload: []byte(`{}`), Reason: dlq.ReasonPermanent},
		{ID: "pandapon:1", Provider: "pandapon", Order: "1", TaskType: tasks.TypePandaPonCancel, Queue: tasks.QueuePandaPon, Payload: []byte(`{}`), Reason: dlq.ReasonMaxAge},
	} {
		if _, err := store.Put(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	enq := tasks.NewEnqueuer(rdb, tasks.Shards{})
	for _, order := range []string{"P-1", "P-2"} {
		task, err := tasks.NewMeariCancelTask(tasks.MeariCancel{SourceApp: 72, UserAccount: "u@example.com", OrderType: 1, OrderNum: order})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := enq.Enqueue(t.Context(), task, false); err != nil {
			t.Fatal(err)
		}
	}
	m, err := metrics.New(metrics.Options{Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}
	want := `
# HELP cancelworker_dlq_entries Entries in the dead-letter queue, by provider.
# TYPE cancelworker_dlq_entries gauge
cancelworker_dlq_entries{provider="meari"} 2
cancelworker_dlq_entries{provider="pandapon"} 1
# HELP asynq_queue_size Tasks in a queue, all states but completed.
# TYPE asynq_queue_size gauge
asynq_queue_size{queue="cancel:meari"} 2
asynq_queue_size{queue="cancel:pandapon"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "cancelworker_dlq_entries", "asynq_queue_size"); err != nil {
		t.Error(err)
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	pending := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "asynq_tasks_enqueued_total" {
			continue
		}
		for _, mm := range f.GetMetric() {
			var q, state string
			for _, l := range mm.GetLabel() {
				switch l.GetName() {
				case "queue":
					q = l.GetValue()
				case "state":
					state = l.GetValue()
				}
			}
			if state == "pending" {
				pending[q] = mm.GetGauge().GetValue()
			}
		}
	}
	if pending[tasks.QueueMeari] != 2 || pending[tasks.QueuePandaPon] != 0 || len(pending) != 2 {
		t.Errorf("pending by queue = %v, want cancel:meari 2 and cancel:pandapon 0", pending)
	}
}

// silentRedis accepts connections and never answers; everything is closed
// at t's cleanup.
func silentRedis(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	return ln.Addr().String()
}

// TestScrapeWithRedisDown checks that a scrape still answers, promptly,
// with the in-process metrics when Redis is down or silent, leaves the
// Redis-backed ones out, and logs why.
func TestScrapeWithRedisDown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{name: "connection refused", addr: func(*testing.T) string { return "127.0.0.1:1" }},
		{name: "no answer", addr: silentRedis},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rdb := redis.NewClient(&redis.Options{Addr: tt.addr(t), MaxRetries: -1, ReadTimeout: 5 * time.Second})
			t.Cleanup(func() { rdb.Close() })
			core, logs := observer.New(zapcore.WarnLevel)
			m, err := metrics.New(metrics.Options{Redis: rdb, CollectTimeout: 200 * time.Millisecond, Logger: zap.New(core)})
			if err != nil {
				t.Fatal(err)
			}
			m.Attempt("meari", "success", "", time.Millisecond)
			start := time.Now()
			rec := httptest.NewRecorder()
			m.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), "GET", "/metrics", nil))
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("scrape took %s with Redis down, want about the 200ms collect timeout", d)
			}
			body := rec.Body.String()
			if rec.Code != 200 || !strings.Contains(body, `cancelworker_attempts_total{class="success",code="",provider="meari"} 1`) || !strings.Contains(body, "go_goroutines") {
				t.Fatalf("scrape with Redis down: %d, want 200 with the in-process metrics:\n%.2000s", rec.Code, body)
			}
			for _, gone := range []string{"cancelworker_dlq_entries{", "asynq_queue_size{"} {
				if strings.Contains(body, gone) {
					t.Errorf("scrape with Redis down holds %s", gone)
				}
			}
			if logs.FilterMessage("metrics scrape incomplete").Len() == 0 {
				t.Error("the failed collection was not logged")
			}
		})
	}
}

// TestBuildInfo: cancelworker_build_info is 1, labelled with this build's
// version, revision and Go version, as --version prints them.
func TestBuildInfo(t *testing.T) {
	m, err := metrics.New(metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bi := buildinfo.Read()
	want := fmt.Sprintf(`
# HELP cancelworker_build_info Always 1; its labels say which build this worker is: module version, VCS revision (12 characters, +dirty for a modified tree) and Go version.
# TYPE cancelworker_build_info gauge
cancelworker_build_info{goversion=%q,revision=%q,version=%q} 1
`, runtime.Version(), bi.Short(), bi.Version)
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "cancelworker_build_info"); err != nil {
		t.Error(err)
	}
}
