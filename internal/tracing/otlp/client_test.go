package otlp

import (
	"compress/gzip"
	"context"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// export is one request a collector received.
type export struct {
	path   string
	query  string
	header http.Header
	req    *coltracepb.ExportTraceServiceRequest
	err    error
}

// collector is an OTLP/HTTP endpoint that decodes each request with the
// collector's own types and answers with reply's status, headers and body
// for each attempt in turn (200 and nothing once they run out).
type collector struct {
	mu      sync.Mutex
	got     []export
	replies []func(w http.ResponseWriter)
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	var err error
	if r.Header.Get("Content-Encoding") == "gzip" {
		body, err = gzip.NewReader(r.Body)
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	if err == nil {
		var b []byte
		if b, err = io.ReadAll(body); err == nil {
			err = proto.Unmarshal(b, req)
		}
	}
	c.mu.Lock()
	c.got = append(c.got, export{path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone(), req: req, err: err})
	var reply func(http.ResponseWriter)
	if len(c.replies) > 0 {
		reply, c.replies = c.replies[0], c.replies[1:]
	}
	c.mu.Unlock()
	if reply != nil {
		reply(w)
	}
}

func (c *collector) exports() []export {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]export(nil), c.got...)
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// served returns a client of an endpoint that h serves, named by
// OTEL_EXPORTER_OTLP_ENDPOINT, with retries a millisecond apart.
func served(t *testing.T, h http.Handler) *client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := newClient(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL}), os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	c.backoff = quick
	return c
}

// spans are two resources' spans, as otlptrace hands them to a client.
func spans() []*tracepb.ResourceSpans {
	return []*tracepb.ResourceSpans{
		{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{Name: "a", TraceId: make([]byte, 16), SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8}}}}}},
		{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{Name: "b"}, {Name: "c"}}}}},
	}
}

func quick() backoff.BackOff {
	return backoff.WithMaxRetries(backoff.NewConstantBackOff(time.Millisecond), 3)
}

// TestClientExports: the request decodes with the collector's own types
// to the spans given, at the path the variables name, with their headers,
// compressed when asked.
func TestClientExports(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      map[string]string
		wantPath string
		gzip     bool
	}{
		{name: "base endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "{url}/base/"}, wantPath: "/base/v1/traces"},
		{name: "traces endpoint as is", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "{url}/base", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "{url}/custom/path"}, wantPath: "/custom/path"},
		{name: "traces endpoint without a path", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "{url}"}, wantPath: "/"},
		{name: "user and query left out", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "{userurl}/base?token=x#f"}, wantPath: "/base/v1/traces"},
		{name: "gzip", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "{url}", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}, wantPath: "/v1/traces", gzip: true},
		{name: "per-signal compression over the general", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "{url}", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "none"}, wantPath: "/v1/traces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			col := &collector{}
			srv := httptest.NewServer(col)
			defer srv.Close()
			e := map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "api-key=s%20ecret, X-Team = ops ", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-only=traces"}
			for k, v := range tc.env {
				e[k] = strings.NewReplacer("{url}", srv.URL, "{userurl}", strings.Replace(srv.URL, "://", "://user:pw@", 1)).Replace(v)
			}
			c, err := newClient(env(e), os.ReadFile)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.UploadTraces(t.Context(), spans()); err != nil {
				t.Fatal(err)
			}
			got := col.exports()
			if len(got) != 1 {
				t.Fatalf("%d requests, want 1", len(got))
			}
			g := got[0]
			if g.err != nil {
				t.Fatalf("the collector could not decode the request: %v", g.err)
			}
			if !proto.Equal(g.req, &coltracepb.ExportTraceServiceRequest{ResourceSpans: spans()}) {
				t.Errorf("request decodes to %v, want the spans given", g.req)
			}
			if g.path != tc.wantPath || g.query != "" {
				t.Errorf("path %q, query %q; want %q and none", g.path, g.query, tc.wantPath)
			}
			if a, ua := g.header.Get("Authorization"), g.header.Get("User-Agent"); a != "" || !strings.HasPrefix(ua, "cancelworker/") {
				t.Errorf("Authorization %q, User-Agent %q: want none, and cancelworker's", a, ua)
			}
			if ce := g.header.Get("Content-Encoding"); (ce == "gzip") != tc.gzip {
				t.Errorf("Content-Encoding %q, want gzip %v", ce, tc.gzip)
			}
			// The per-signal headers replace the general ones, as otlptracehttp reads them.
			if h := g.header; h.Get("Content-Type") != "application/x-protobuf" || h.Get("X-Only") != "traces" || h.Get("Api-Key") != "" {
				t.Errorf("headers %v: want Content-Type application/x-protobuf and the TRACES_HEADERS only", h)
			}
		})
	}
	t.Run("general headers", func(t *testing.T) {
		col := &collector{}
		srv := httptest.NewServer(col)
		defer srv.Close()
		c, err := newClient(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL, "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s%20ecret, X-Team = ops "}), os.ReadFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.UploadTraces(t.Context(), spans()); err != nil {
			t.Fatal(err)
		}
		if h := col.exports()[0].header; h.Get("Api-Key") != "s ecret" || h.Get("X-Team") != "ops" {
			t.Errorf("headers %v: want Api-Key \"s ecret\" (percent-decoded) and X-Team \"ops\" (trimmed)", h)
		}
	})
}

// TestClientReplies: what each kind of reply makes of an export.
func TestClientReplies(t *testing.T) {
	status := func(code int, hdr ...string) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			for i := 0; i+1 < len(hdr); i += 2 {
				w.Header().Set(hdr[i], hdr[i+1])
			}
			w.WriteHeader(code)
			_, _ = io.WriteString(w, "the collector's words")
		}
	}
	partial := func(w http.ResponseWriter) {
		b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 2, ErrorMessage: "too old"}})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(b)
	}
	emptyProto := func(w http.ResponseWriter) {
		b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(b)
	}
	for _, tc := range []struct {
		name     string
		replies  []func(http.ResponseWriter)
		attempts int
		wantErr  string // "" for none
	}{
		{name: "ok", replies: []func(http.ResponseWriter){emptyProto}, attempts: 1},
		{name: "503 then ok", replies: []func(http.ResponseWriter){status(503), status(502), status(200)}, attempts: 3},
		{name: "429 and 504 are retried", replies: []func(http.ResponseWriter){status(429), status(504), emptyProto}, attempts: 3},
		{name: "400 is not retried", replies: []func(http.ResponseWriter){status(400)}, attempts: 1, wantErr: "400 Bad Request: the collector's words"},
		{name: "503 until the retries run out", replies: []func(http.ResponseWriter){status(503), status(503), status(503), status(503), status(503)}, attempts: 4, wantErr: "503 Service Unavailable"},
		{name: "partial success", replies: []func(http.ResponseWriter){partial}, attempts: 1, wantErr: `rejected 2 spans: "too old"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			col := &collector{replies: tc.replies}
			err := served(t, col).UploadTraces(t.Context(), spans())
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("err %v, want none", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("err %v, want one containing %q", err, tc.wantErr)
			}
			if n := len(col.exports()); n != tc.attempts {
				t.Errorf("%d attempts, want %d", n, tc.attempts)
			}
		})
	}

	t.Run("Retry-After beyond the timeout ends the export", func(t *testing.T) {
		col := &collector{replies: []func(http.ResponseWriter){status(503, "Retry-After", "30")}}
		c := served(t, col)
		// As the batch processor calls it: within its export timeout.
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		start := time.Now()
		if err := c.UploadTraces(ctx, spans()); err == nil {
			t.Fatal("no error")
		}
		if d := time.Since(start); d > time.Second || len(col.exports()) != 1 {
			t.Errorf("%d attempts in %v: want one, and no wait for a retry the timeout leaves no room for", len(col.exports()), d)
		}
	})

	t.Run("an endpoint that cannot be reached is retried", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		c, err := newClient(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": url}), os.ReadFile)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		c.backoff = func() backoff.BackOff {
			return backoff.WithMaxRetries(&countingBackoff{n: &n}, 2)
		}
		if err := c.UploadTraces(t.Context(), spans()); err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("err %v, want connection refused", err)
		}
		if n != 2 {
			t.Errorf("%d waits before a retry, want 2", n)
		}
	})
}

type countingBackoff struct{ n *int }

func (b *countingBackoff) NextBackOff() time.Duration { *b.n++; return time.Millisecond }
func (b *countingBackoff) Reset()                     {}

// TestClientTLS: an https endpoint whose certificate is trusted only
// through OTEL_EXPORTER_OTLP_CERTIFICATE, and one that wants a client
// certificate.
func TestClientTLS(t *testing.T) {
	col := &collector{}
	srv := httptest.NewTLSServer(col)
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := newClient(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL}), os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	c.backoff = quick
	if err := c.UploadTraces(t.Context(), spans()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA: err %v, want a certificate error", err)
	}
	c, err = newClient(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL, "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": ca}), os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.UploadTraces(t.Context(), spans()); err != nil {
		t.Errorf("with the CA: %v", err)
	}
}

// TestClientConfigErrors: each bad variable is named, all at once, and a
// header's value is never echoed.
func TestClientConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := newClient(env(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":           "ftp://example.com",
		"OTEL_EXPORTER_OTLP_HEADERS":            "api-key=topsecret,novalue,bad name=x,k=%zz",
		"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT":     "10s",
		"OTEL_EXPORTER_OTLP_COMPRESSION":        "zstd",
		"OTEL_EXPORTER_OTLP_CERTIFICATE":        notPEM,
		"OTEL_EXPORTER_OTLP_CLIENT_KEY":         filepath.Join(dir, "key.pem"),
		"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": "",
	}), os.ReadFile)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT: must be an http:// or https:// URL",
		"OTEL_EXPORTER_OTLP_HEADERS: entry 2 has no '='",
		"OTEL_EXPORTER_OTLP_HEADERS: entry 3: the name before '=' is not a valid header name",
		"OTEL_EXPORTER_OTLP_HEADERS: entry 4 (k): the value is not validly percent-encoded",
		`OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: must be a positive whole number of milliseconds, got "10s"`,
		`OTEL_EXPORTER_OTLP_COMPRESSION: must be gzip or none, got "zstd"`,
		"OTEL_EXPORTER_OTLP_CERTIFICATE: " + notPEM + " holds no PEM certificate",
		"OTEL_EXPORTER_OTLP_CLIENT_KEY: needs OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE too",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "topsecret") || strings.Contains(msg, "%zz") || strings.Contains(msg, "bad name") {
		t.Errorf("error echoes a header's value:\n%s", msg)
	}
	if n := len(strings.Split(msg, "\n")); n != 8 {
		t.Errorf("%d problems, want 8:\n%s", n, msg)
	}
}

// TestClientCertificatePair: a client certificate and its key are taken
// from one level, the traces' own or the general one.
func TestClientCertificatePair(t *testing.T) {
	_, err := newClient(env(map[string]string{
		"OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE": "/c.pem",
		"OTEL_EXPORTER_OTLP_CLIENT_KEY":                "/k.pem",
	}), os.ReadFile)
	if err == nil || err.Error() != "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE: needs OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY too" {
		t.Errorf("err %v, want the traces' certificate to need the traces' key", err)
	}
}

// TestExportBackoff: the real backoff waits about 5 s before the first
// retry (±50%) and stops within a minute, as otlptracehttp's.
func TestExportBackoff(t *testing.T) {
	b := exportBackoff()
	if d := b.NextBackOff(); d < 2500*time.Millisecond || d > 7500*time.Millisecond {
		t.Errorf("first wait %v, want 5 s ±50%%", d)
	}
	eb, ok := b.(*backoff.ExponentialBackOff)
	if !ok || eb.MaxElapsedTime != time.Minute || eb.MaxInterval != 30*time.Second {
		t.Errorf("backoff %#v: want at most 30 s apart for at most a minute", b)
	}
}

// TestPartialSuccessDecoding: the hand-written decoding agrees with the
// collector's types, other fields skipped, and a truncated reply is an
// error.
func TestPartialSuccessDecoding(t *testing.T) {
	b, err := proto.Marshal(&coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 7, ErrorMessage: "why"}})
	if err != nil {
		t.Fatal(err)
	}
	unknown := []byte{0x10, 0x05} // field 2, varint 5: a field of a later version
	n, msg, err := partialSuccess(append(append([]byte{}, unknown...), b...))
	if err != nil || n != 7 || msg != "why" {
		t.Errorf("got %d, %q, %v; want 7, \"why\", nil", n, msg, err)
	}
	if _, _, err := partialSuccess(b[:len(b)-1]); err == nil {
		t.Error("a truncated reply decoded without error")
	}
	if n, msg, err := partialSuccess(nil); n != 0 || msg != "" || err != nil {
		t.Errorf("an empty reply: %d, %q, %v", n, msg, err)
	}
}
