package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// The tracing part runs the worker with tracing off and on, interleaved,
// at these cells: where the worker is bound by CPU (0 ms) and by slots
// (20 ms, C=200).
var tracingCells = []struct {
	delay time.Duration
	conc  int
}{{0, 50}, {20 * time.Millisecond, 200}}

// tracingEnv is what the traced worker gets besides the endpoint: a span
// queue that holds a second of spans at this rate (the SDK's default, 2048,
// drops most of them above ~700 tasks/s), exported every second in
// batches of 2048. A user tracing every task at this rate would set the
// same; with a sampler (OTEL_TRACES_SAMPLER) it costs less.
const tracingEnv = "OTEL_BSP_MAX_QUEUE_SIZE=32768 OTEL_BSP_MAX_EXPORT_BATCH_SIZE=2048 OTEL_BSP_SCHEDULE_DELAY=1000"

// otlpSink is an OTLP/HTTP trace endpoint that decodes each export and
// counts its spans, as a collector would receive them.
type otlpSink struct {
	spans, exports, bad atomic.Int64
	srv                 *http.Server
	url                 string
}

func startSink() (*otlpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &otlpSink{url: "http://" + ln.Addr().String()}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	n := 0
	if err == nil {
		// ExportTraceServiceRequest: resource_spans (1) → scope_spans (2)
		// → spans (2).
		n, err = countNested(b, 1, 2, 2)
	}
	if err != nil || r.URL.Path != "/v1/traces" {
		s.bad.Add(1)
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	s.spans.Add(int64(n))
	s.exports.Add(1)
	// An empty ExportTraceServiceResponse: all accepted.
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

// countNested decodes the protocol-buffer message b down the path of
// embedded-message field numbers and counts the messages at its end. It
// decodes by field number (as bench/batch.go reads asynq's messages), so
// that the bench binary, which also runs the baselines, does not link the
// OTLP packages, whose start-up would add to the baselines' memory.
func countNested(b []byte, path ...protowire.Number) (int, error) {
	n := 0
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return 0, protowire.ParseError(l)
		}
		b = b[l:]
		l = protowire.ConsumeFieldValue(num, typ, b)
		if l < 0 {
			return 0, protowire.ParseError(l)
		}
		if num == path[0] && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b)
			if len(path) == 1 {
				n++
			} else {
				m, err := countNested(v, path[1:]...)
				if err != nil {
					return 0, err
				}
				n += m
			}
		}
		b = b[l:]
	}
	return n, nil
}

func (s *otlpSink) close() { _ = s.srv.Close() }

// tracingResult is one run of the tracing part.
type tracingResult struct {
	runResult
	spansPerTask float64 // spans the sink received per task; 0 when off
}

// measureTracing runs the worker with tracing off and on at tracingCells,
// reps times, interleaved.
func (b *bench) measureTracing(ctx context.Context, r *report, note func(string, []string)) error {
	sink, err := startSink()
	if err != nil {
		return err
	}
	defer sink.close()
	traced := contender{key: workerBin.key + " traced", name: "(c) worker, tracing on", env: "OTEL_EXPORTER_OTLP_ENDPOINT=" + sink.url + " " + tracingEnv}
	for _, tc := range tracingCells {
		for rep := range b.s.reps {
			for _, k := range []contender{workerBin, traced} {
				before := sink.spans.Load()
				res, bad, err := b.throughput(ctx, k, tc.delay, tc.conc, b.s.n)
				what := fmt.Sprintf("tracing, %s, delay %s, concurrency %d, repetition %d", k.key, tc.delay, tc.conc, rep+1)
				if err != nil {
					b.keep = true
					return fmt.Errorf("%s: %w", what, err)
				}
				// throughput stops the worker, which flushes its spans.
				tr := tracingResult{runResult: res, spansPerTask: float64(sink.spans.Load()-before) / float64(b.s.n)}
				if k == traced && tr.spansPerTask < 3 {
					bad = append(bad, fmt.Sprintf("the sink received %.2f spans per task, want 3 (process, attempt, call)", tr.spansPerTask))
				}
				note(what, bad)
				key := cell{k, tc.delay, tc.conc}
				r.tracing[key] = append(r.tracing[key], tr)
				fmt.Fprintf(os.Stderr, "bench: %-60s %7.0f tasks/s  %4.0f µs CPU/task  %3.0f MB  %.2f spans/task\n", what, res.rate, micros(res.cpu), mb(res.rss), tr.spansPerTask)
			}
		}
	}
	if sink.bad.Load() > 0 {
		note("tracing", []string{fmt.Sprintf("%d exports the sink could not decode", sink.bad.Load())})
	}
	return nil
}

// tracingTable writes the tracing part's table.
func (r *report) tracingTable(w func(string, ...any)) {
	if len(r.tracing) == 0 {
		return
	}
	w("\n## Tracing on and off\n\n")
	w("The worker as in the throughput runs, then with tracing on: `OTEL_EXPORTER_OTLP_ENDPOINT` naming an OTLP/HTTP endpoint in the bench process that decodes every export and counts its spans, every task traced (the default sampler; the tasks carry no trace context, so each run is a root), and `%s`. Each task makes three spans (process, attempt, upstream call), exported in batches. Interleaved, medians of %d.\n\n", tracingEnv, r.s.reps)
	w("| upstream delay | concurrency | tracing | tasks/s | on / off | CPU µs/task | peak RSS MB | spans exported per task |\n|---|---|---|---|---|---|---|---|\n")
	for _, tc := range tracingCells {
		var off []tracingResult
		for k, rs := range r.tracing {
			if k.delay == tc.delay && k.conc == tc.conc && k.k == workerBin {
				off = rs
			}
		}
		for _, on := range []bool{false, true} {
			for k, rs := range r.tracing {
				if k.delay != tc.delay || k.conc != tc.conc || (k.k == workerBin) == on {
					continue
				}
				rates := pick(rs, func(x tracingResult) float64 { return x.rate })
				ratio := ""
				if on && len(off) == len(rs) {
					var rr []float64
					for i := range rs {
						rr = append(rr, rs[i].rate/off[i].rate)
					}
					ratio = fmt.Sprintf("%.2f×", median(rr))
				}
				label := "off"
				if on {
					label = "on"
				}
				w("| %s | %d | %s | %s | %s | %.0f | %.1f | %.2f |\n", tc.delay, tc.conc, label, spread(rates, "%.0f"), ratio,
					median(pick(rs, func(x tracingResult) float64 { return micros(x.cpu) })),
					median(pick(rs, func(x tracingResult) float64 { return mb(x.rss) })),
					median(pick(rs, func(x tracingResult) float64 { return x.spansPerTask })))
			}
		}
	}
	w("\n")
}
