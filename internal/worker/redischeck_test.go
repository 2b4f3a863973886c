package worker_test

import (
	"strings"
	"testing"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/worker"
)

func TestRedisWarnings(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	if srv.Kind != redistest.KindRedisServer {
		t.Skip("changes the server's settings: needs a redis-server of its own")
	}
	rdb := srv.Client(t)
	ctx := t.Context()
	set := func(k, v string) {
		t.Helper()
		if err := rdb.ConfigSet(ctx, k, v).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// The harness's server: no persistence, noeviction.
	ws := worker.RedisWarnings(ctx, rdb)
	if len(ws) != 1 || !strings.Contains(ws[0], "neither AOF nor RDB") {
		t.Errorf("without persistence: %q", ws)
	}
	set("maxmemory-policy", "allkeys-lru")
	ws = worker.RedisWarnings(ctx, rdb)
	if len(ws) != 2 || !strings.Contains(ws[0], `"allkeys-lru", not noeviction`) {
		t.Errorf("with allkeys-lru: %q", ws)
	}
	set("maxmemory-policy", "noeviction")
	set("save", "900 1")
	if ws := worker.RedisWarnings(ctx, rdb); len(ws) != 0 {
		t.Errorf("with RDB snapshots: %q", ws)
	}
	set("save", "")
	set("appendonly", "yes")
	if ws := worker.RedisWarnings(ctx, rdb); len(ws) != 0 {
		t.Errorf("with AOF: %q", ws)
	}
}
