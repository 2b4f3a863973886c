package httpserve_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/httpserve"
	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"go.uber.org/zap"
)

func TestHealthFormat(t *testing.T) {
	t.Parallel()
	ok := httpserve.Check{Name: "redis", Func: func(context.Context) error { return nil }}
	down := httpserve.Check{Name: "worker", Func: func(context.Context) error { return errors.New("shutting down") }}
	slow := httpserve.Check{Name: "slow", Func: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	tests := []struct {
		name     string
		h        http.HandlerFunc
		wantCode int
		wantBody string
	}{
		{name: "healthz", h: httpserve.Health, wantCode: 200, wantBody: `{"status":"ok"}`},
		{name: "ready", h: httpserve.Ready([]httpserve.Check{ok}, 0, nil), wantCode: 200, wantBody: `{"status":"ready"}`},
		{name: "no checks", h: httpserve.Ready(nil, 0, nil), wantCode: 200, wantBody: `{"status":"ready"}`},
		{name: "one failed", h: httpserve.Ready([]httpserve.Check{ok, down}, 0, nil), wantCode: 503,
			wantBody: `{"status":"unavailable","reason":"worker: shutting down"}`},
		{name: "every failure named, the slow one bounded", h: httpserve.Ready([]httpserve.Check{down, slow}, 20*time.Millisecond, zap.NewNop()), wantCode: 503,
			wantBody: `{"status":"unavailable","reason":"worker: shutting down; slow: context deadline exceeded"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := httptest.NewRecorder()
			tt.h(w, httptest.NewRequest(http.MethodGet, "/", nil))
			if w.Code != tt.wantCode || strings.TrimSpace(w.Body.String()) != tt.wantBody {
				t.Errorf("got %d %s, want %d %s", w.Code, w.Body, tt.wantCode, tt.wantBody)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" || w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("headers %v", w.Header())
			}
		})
	}
}

func TestSameSecret(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		a, b string
		want bool
	}{{"s3cret-token", "s3cret-token", true}, {"s3cret-token", "s3cret-tokem", false}, {"short", "s3cret-token", false}, {"", "", true}, {"x", "", false}} {
		if got := httpserve.SameSecret(tt.a, tt.b); got != tt.want {
			t.Errorf("SameSecret(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestStartShutdown serves over real TCP, falls back to a free port when
// asked, names the setting when it cannot listen, and shuts down.
func TestStartShutdown(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if _, err := httpserve.Start(httpserve.Config{Addr: busy.Addr().String(), Setting: "TEST_ADDR", Handler: http.NotFoundHandler(), Logger: zap.NewNop()}); err == nil ||
		!strings.Contains(err.Error(), "listen on "+busy.Addr().String()+" (TEST_ADDR)") {
		t.Fatalf("Start on a busy port: %v, want an error naming the address and the setting", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", httpserve.Health)
	s, err := httpserve.Start(httpserve.Config{Addr: busy.Addr().String(), Setting: "TEST_ADDR", FallbackToFreePort: true, Handler: mux, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr() == busy.Addr().String() {
		t.Fatalf("fell back to the busy address %s", s.Addr())
	}
	resp, err := http.Get(s.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"status":"ok"}` {
		t.Errorf("healthz: %d %s", resp.StatusCode, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done not closed after Shutdown")
	}
	if s.Err() != nil {
		t.Errorf("Err after Shutdown = %v, want nil", s.Err())
	}
	if _, err := http.Get(s.URL() + "/healthz"); err == nil {
		t.Error("still serving after Shutdown")
	}
}

func TestBaseURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"": "", "0.0.0.0:80": "http://127.0.0.1:80", "[::]:81": "http://127.0.0.1:81", ":82": "http://127.0.0.1:82", "10.0.0.1:83": "http://10.0.0.1:83"} {
		if got := httpserve.BaseURL(in); got != want {
			t.Errorf("BaseURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRedisCheckRefusedWrites checks that /readyz reports 503, with the
// reason, while Redis answers PING but refuses writes: out of memory
// (maxmemory with noeviction) and a read-only replica.
func TestRedisCheckRefusedWrites(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	if srv.Kind != redistest.KindRedisServer {
		t.Skipf("changes the server's configuration: needs its own redis-server, got %s", srv.Kind)
	}
	rdb := srv.Client(t)
	ctx := t.Context()
	ready := httpserve.Ready([]httpserve.Check{httpserve.RedisCheck(rdb)}, 0, nil)
	answer := func() (int, string) {
		w := httptest.NewRecorder()
		ready(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return w.Code, strings.TrimSpace(w.Body.String())
	}
	if code, body := answer(); code != http.StatusOK {
		t.Fatalf("healthy Redis: %d %s", code, body)
	}
	steps := []struct {
		name       string
		set, reset []any
		want       string
	}{
		{name: "out of memory", set: []any{"config", "set", "maxmemory", "1"}, reset: []any{"config", "set", "maxmemory", "0"},
			want: `{"status":"unavailable","reason":"redis: answers but refuses writes: OOM command not allowed when used memory \u003e 'maxmemory'."}`},
		{name: "read-only replica", set: []any{"replicaof", "127.0.0.1", strings.TrimPrefix(workertest.ClosedAddr(t), "127.0.0.1:")}, reset: []any{"replicaof", "no", "one"},
			want: `{"status":"unavailable","reason":"redis: answers but refuses writes: READONLY You can't write against a read only replica."}`},
	}
	for _, st := range steps {
		if err := rdb.Do(ctx, st.set...).Err(); err != nil {
			t.Fatal(err)
		}
		code, body := answer()
		if err := rdb.Do(ctx, st.reset...).Err(); err != nil {
			t.Fatal(err)
		}
		if code != http.StatusServiceUnavailable || body != st.want {
			t.Errorf("%s: %d %s, want 503 %s", st.name, code, body, st.want)
		}
		if code, body := answer(); code != http.StatusOK {
			t.Errorf("after %s ended: %d %s, want 200", st.name, code, body)
		}
	}
}
