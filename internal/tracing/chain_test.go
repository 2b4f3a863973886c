package tracing_test

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// span is one exported span, as the collector decoded it.
type span struct {
	service, name       string
	traceID, id, parent string
	kind                tracepb.Span_SpanKind
	attrs               map[string]string
}

// collector is an OTLP/HTTP trace endpoint: it decodes each protobuf
// export request and keeps the spans.
type collector struct {
	mu    sync.Mutex
	spans []span
	bad   []string
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	var req coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &req)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || err != nil {
		c.bad = append(c.bad, fmt.Sprintf("%s %s (%s): %v", r.Method, r.URL.Path, r.Header.Get("Content-Type"), err))
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	for _, rs := range req.ResourceSpans {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				attrs := map[string]string{}
				for _, kv := range s.Attributes {
					switch v := kv.GetValue().GetValue().(type) {
					case *commonpb.AnyValue_StringValue:
						attrs[kv.Key] = v.StringValue
					case *commonpb.AnyValue_IntValue:
						attrs[kv.Key] = strconv.FormatInt(v.IntValue, 10)
					case *commonpb.AnyValue_BoolValue:
						attrs[kv.Key] = strconv.FormatBool(v.BoolValue)
					default:
						attrs[kv.Key] = fmt.Sprint(v)
					}
				}
				c.spans = append(c.spans, span{
					service: service, name: s.Name, kind: s.Kind,
					traceID: hex.EncodeToString(s.TraceId), id: hex.EncodeToString(s.SpanId), parent: hex.EncodeToString(s.ParentSpanId),
					attrs: attrs,
				})
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

func (c *collector) trace(id string) []span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []span
	for _, s := range c.spans {
		if s.traceID == id {
			out = append(out, s)
		}
	}
	return out
}

// build compiles the named commands into a temporary directory.
func build(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-o", dir + "/"}
	for _, n := range names {
		args = append(args, "../../cmd/"+n)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// start runs a binary with env until the test ends, and returns the
// address it logs with msg.
func start(t *testing.T, bin string, env []string, msg string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// SIGTERM: the process flushes its last spans as it stops.
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	if msg == "" {
		go func() { _, _ = io.Copy(&log, stderr) }()
		return ""
	}
	addr, _ := workertest.LogAddr(stderr, msg)
	select {
	case a := <-addr:
		return a
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not log %q within 30s", filepath.Base(bin), msg)
	}
	return ""
}

// TestTraceChain sends a cancellation to the intake with a traceparent,
// and follows it: the intake's server span, its producer span, then, for
// each of the three runs of the task (Meari answers 1005 twice, then
// cancels), a process span under that producer span, an attempt under
// it, and the upstream call under the attempt, whose traceparent reached
// the upstream. Then the CLI: a run of `enqueue meari` is a trace of its
// own, whose root span holds the producer span the worker's spans follow.
// Every process exports OTLP over HTTP/protobuf to a real HTTP endpoint,
// switched on by the standard variables alone.
func TestTraceChain(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the worker and the intake")
	}
	col := &collector{}
	otlp := httptest.NewServer(col)
	t.Cleanup(otlp.Close)
	sb, upstream := workertest.Upstream(t)
	srv := redistest.New(t)
	const order = "TRACE-RETRY"
	sb.Script("meari", order, sandbox.MeariCode("1005"), sandbox.MeariCode("1005"), sandbox.OK())

	bin := build(t, "worker", "intake", "enqueue")
	otel := []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + otlp.URL,
		"OTEL_BSP_SCHEDULE_DELAY=100",
		"REDIS_URL=" + srv.URL,
		"MEARI_SOURCE_APP=" + strconv.Itoa(workertest.SourceApp),
		"LOG_LEVEL=warn",
	}
	start(t, filepath.Join(bin, "worker"), append(otel,
		"MEARI_BASE_URL="+upstream,
		"MEARI_PARTNER_KEY="+workertest.MeariPartnerKey,
		"MEARI_PARTNER_SECRET="+workertest.MeariPartnerSecret,
		"RETRY_INITIAL_INTERVAL=100ms",
		"ADMIN_ADDR=off",
	), "")
	intakeAddr := start(t, filepath.Join(bin, "intake"), append(otel, "LOG_LEVEL=info"), "listening", "--addr", "127.0.0.1:0")

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, err := http.NewRequest(http.MethodPost, "http://"+intakeAddr+"/v1/cancellations",
		strings.NewReader(`{"provider":"meari","userAccount":"test@123.com","orderType":1,"orderNum":"`+order+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("intake answered %d: %s", resp.StatusCode, b)
	}

	// Three runs, each with its process, attempt and call spans, plus the
	// intake's two.
	var spans []span
	workertest.Wait(t, "the trace's spans", func() (bool, string) {
		spans = col.trace(traceID)
		n := 0
		for _, s := range spans {
			if strings.HasPrefix(s.name, "POST meari") {
				n++
			}
		}
		return n == 3 && len(spans) >= 11, fmt.Sprintf("%d spans, %d upstream calls; bad exports: %v", len(spans), n, col.bad)
	})
	byID := map[string]span{}
	for _, s := range spans {
		byID[s.id] = s
	}
	parentOf := func(s span) span { return byID[s.parent] }

	var server, producer span
	for _, s := range spans {
		switch {
		case s.kind == tracepb.Span_SPAN_KIND_SERVER:
			server = s
		case s.kind == tracepb.Span_SPAN_KIND_PRODUCER:
			producer = s
		}
	}
	if server.name != "POST /v1/cancellations" || server.parent != "00f067aa0ba902b7" || server.service != "cancelworker-intake" {
		t.Errorf("intake span = %+v, want POST /v1/cancellations under the client's span 00f067aa0ba902b7, service cancelworker-intake", server)
	}
	if producer.parent != server.id || producer.attrs["messaging.destination.name"] != "cancel:meari" || producer.service != "cancelworker-intake" {
		t.Errorf("producer span = %+v, want a child of the intake's span sending to cancel:meari", producer)
	}

	outcomes := map[string]int{}
	attempts := map[string]bool{}
	for _, call := range spans {
		if !strings.HasPrefix(call.name, "POST meari") {
			continue
		}
		attempt := parentOf(call)
		process := parentOf(attempt)
		if call.kind != tracepb.Span_SPAN_KIND_CLIENT || attempt.name != "attempt" || process.kind != tracepb.Span_SPAN_KIND_CONSUMER || process.parent != producer.id {
			t.Errorf("call %s: chain %q < %q < %q (parent %s), want POST meari cancel < attempt < process under the producer span %s",
				call.id, call.name, attempt.name, process.name, process.parent, producer.id)
		}
		if call.service != "cancelworker-worker" || call.attrs["cancelworker.order"] != "1:"+order || call.attrs["http.response.status_code"] != "200" {
			t.Errorf("call %s: service %s, attributes %v", call.id, call.service, call.attrs)
		}
		for k, v := range call.attrs {
			if strings.Contains(strings.ToLower(k), "sign") || strings.Contains(v, workertest.MeariPartnerSecret) {
				t.Errorf("call %s: attribute %s=%q looks like a signature or a secret", call.id, k, v)
			}
		}
		outcomes[call.attrs["cancelworker.outcome"]+" "+call.attrs["cancelworker.result_code"]]++
		attempts[call.attrs["cancelworker.attempt"]] = true
		// The upstream got this call's span as its parent.
		found := false
		for _, c := range sb.Calls("meari", order) {
			if c.Header.Get("traceparent") == "00-"+traceID+"-"+call.id+"-01" {
				found = true
			}
		}
		if !found {
			t.Errorf("call %s: no request reached the upstream with its traceparent", call.id)
		}
	}
	if outcomes["transient 1005"] != 2 || outcomes["success "] != 1 {
		t.Errorf("call outcomes = %v, want 2 × transient 1005 and 1 success", outcomes)
	}
	if !attempts["1"] || !attempts["2"] || !attempts["3"] {
		t.Errorf("attempt numbers = %v, want 1, 2 and 3", attempts)
	}

	// The CLI: a new trace per run.
	cli := exec.Command(filepath.Join(bin, "enqueue"), "meari", "--user-account", "test@123.com", "--order-type", "1", "--order-num", "TRACE-CLI")
	cli.Env = append([]string{"PATH=" + os.Getenv("PATH")}, otel...)
	if out, err := cli.CombinedOutput(); err != nil {
		t.Fatalf("enqueue meari: %v\n%s", err, out)
	}
	var root span
	var chain []span
	workertest.Wait(t, "the CLI's trace", func() (bool, string) {
		col.mu.Lock()
		for _, s := range col.spans {
			if s.service == "cancelworker-enqueue" && s.parent == "" {
				root = s
			}
		}
		col.mu.Unlock()
		if root.id == "" {
			return false, "no root span from cancelworker-enqueue"
		}
		chain = col.trace(root.traceID)
		return len(chain) >= 5, fmt.Sprintf("%d spans in the CLI's trace", len(chain))
	})
	if root.name != "enqueue meari" {
		t.Errorf("the CLI's root span is %q, want enqueue meari", root.name)
	}
	ids := map[string]span{}
	for _, s := range chain {
		ids[s.id] = s
	}
	calls := 0
	for _, s := range chain {
		if strings.HasPrefix(s.name, "POST meari") {
			calls++
			process := ids[ids[s.parent].parent]
			send := ids[process.parent]
			if send.kind != tracepb.Span_SPAN_KIND_PRODUCER || send.parent != root.id || send.service != "cancelworker-enqueue" {
				t.Errorf("the CLI's call %s: process under %+v, want the producer span under the root %s", s.id, send, root.id)
			}
			if s.attrs["cancelworker.order"] != "1:TRACE-CLI" {
				t.Errorf("the CLI's call is for order %q", s.attrs["cancelworker.order"])
			}
		}
	}
	if calls != 1 {
		t.Errorf("the CLI's trace has %d upstream calls, want 1", calls)
	}
}
