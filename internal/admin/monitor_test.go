package admin

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
)

// TestMonitorBuiltAtFirstRequest: asynqmon's handler, its Redis client
// with it, is built by the first request for the UI, not before; after
// Close the UI answers 503 and nothing is built again.
func TestMonitorBuiltAtFirstRequest(t *testing.T) {
	m := &monitor{opts: asynqmon.Options{
		RootPath:     "/monitoring",
		RedisConnOpt: clientOpt{config.RedisConn{Mode: config.RedisSingle, Single: &redis.Options{Addr: "127.0.0.1:1"}}},
	}}
	if m.h != nil {
		t.Fatal("built before any request")
	}
	get := func() int {
		rec := httptest.NewRecorder()
		m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/monitoring/", nil))
		return rec.Code
	}
	if code := get(); code != http.StatusOK || m.h == nil {
		t.Fatalf("first request: %d, built %v; want 200 and built", code, m.h != nil)
	}
	h := m.h
	if code := get(); code != http.StatusOK || m.h != h {
		t.Fatalf("second request: %d; want 200 from the same handler", code)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if code := get(); code != http.StatusServiceUnavailable || m.h != h {
		t.Fatalf("after Close: %d; want 503 and nothing built again", code)
	}

	never := &monitor{}
	if err := never.Close(); err != nil || never.h != nil || !never.closed {
		t.Fatalf("Close of a handler never built: %v", err)
	}
}
