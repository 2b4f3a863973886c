package admin_test

import (
	"sort"
	"strings"
	"testing"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/hibiken/asynq"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// series flattens one scraped metric family to "label=value,..." → value
// (the sample count for a histogram).
func series(t *testing.T, fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("scrape lacks %s", name)
	}
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(ls)
		var v float64
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			v = m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			v = m.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM:
			v = float64(m.GetHistogram().GetSampleCount())
		default:
			t.Fatalf("%s: unexpected type %s", name, f.GetType())
		}
		out[strings.Join(ls, ",")] = v
	}
	return out
}

// equal fails t unless got holds exactly want.
func equal(t *testing.T, name string, got, want map[string]float64) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s{%s} = %v (present %v), want %v", name, k, g, ok, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s{%s} = %v, not expected", name, k, g)
		}
	}
}

// TestMetricsEndToEnd runs a scripted set of outcomes through a real worker
// and checks the exact counters scraped from the admin server's /metrics.
func TestMetricsEndToEnd(t *testing.T) {
	t.Parallel()
	r := newRig(t, config.Admin{})
	refused := false
	ok := r.EnqueueMeari(t, "M-OK", sandbox.OK())
	twice := r.EnqueueMeari(t, "M-1005", append(sandbox.Times(2, sandbox.MeariCode("1005")), sandbox.OK())...)
	perm := r.EnqueueMeari(t, "M-4001", sandbox.MeariCode("4001"))
	retried := r.EnqueuePandaPon(t, "2542285634920880001", sandbox.HTTPStatus(503), sandbox.OK())
	denied := r.EnqueuePandaPon(t, "2542285634920880002", sandbox.PandaPonCode(200, &refused))
	r.WaitState(t, ok, asynq.TaskStateCompleted)
	r.WaitState(t, twice, asynq.TaskStateCompleted)
	r.WaitState(t, perm, asynq.TaskStateArchived)
	r.WaitState(t, retried, asynq.TaskStateCompleted)
	r.WaitState(t, denied, asynq.TaskStateArchived)

	code, body := get(t, r.base, "/metrics", "", "")
	if code != 200 {
		t.Fatalf("GET /metrics: %d\n%s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}

	equal(t, "cancelworker_attempts_total", series(t, fams, "cancelworker_attempts_total"), map[string]float64{
		"class=success,code=,provider=meari":              2,
		"class=transient,code=1005,provider=meari":        2,
		"class=permanent,code=4001,provider=meari":        1,
		"class=success,code=,provider=pandapon":           1,
		"class=transient,code=http_503,provider=pandapon": 1,
		"class=permanent,code=200,provider=pandapon":      1,
	})
	deadWant := map[string]float64{}
	for _, p := range []string{"meari", "pandapon"} {
		for _, reason := range []string{"bad payload", "max age exceeded", "not servable", "permanent", "retries exhausted"} {
			deadWant["provider="+p+",reason="+reason] = 0
		}
	}
	deadWant["provider=meari,reason=permanent"] = 1
	deadWant["provider=pandapon,reason=permanent"] = 1
	equal(t, "cancelworker_dead_lettered_total", series(t, fams, "cancelworker_dead_lettered_total"), deadWant)
	equal(t, "cancelworker_dead_lettered_outcome_unknown_total", series(t, fams, "cancelworker_dead_lettered_outcome_unknown_total"),
		map[string]float64{"provider=meari": 0, "provider=pandapon": 0})
	equal(t, "cancelworker_dlq_entries", series(t, fams, "cancelworker_dlq_entries"),
		map[string]float64{"provider=meari": 1, "provider=pandapon": 1})
	equal(t, "cancelworker_upstream_latency_seconds", series(t, fams, "cancelworker_upstream_latency_seconds"),
		map[string]float64{"provider=meari": 5, "provider=pandapon": 3})

	enq := series(t, fams, "asynq_tasks_enqueued_total")
	for k, want := range map[string]float64{
		"queue=cancel:meari,state=completed":    2,
		"queue=cancel:meari,state=archived":     1,
		"queue=cancel:meari,state=pending":      0,
		"queue=cancel:meari,state=retry":        0,
		"queue=cancel:pandapon,state=completed": 1,
		"queue=cancel:pandapon,state=archived":  1,
		"queue=cancel:pandapon,state=active":    0,
	} {
		if enq[k] != want {
			t.Errorf("asynq_tasks_enqueued_total{%s} = %v, want %v", k, enq[k], want)
		}
	}
	equal(t, "asynq_queue_size", series(t, fams, "asynq_queue_size"), map[string]float64{"queue=cancel:meari": 3, "queue=cancel:pandapon": 2})
	for _, name := range []string{"asynq_queue_latency_seconds", "go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("scrape lacks %s", name)
		}
	}
}
