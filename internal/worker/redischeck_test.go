package worker_test

import (
	"strings"
	"testing"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/worker"
	"github.com/redis/go-redis/v9"
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

// TestRedisWarningsCluster: on a Cluster every master is checked, and a
// warning names the node it is about.
func TestRedisWarningsCluster(t *testing.T) {
	t.Parallel()
	c := redistest.NewCluster(t)
	ctx := t.Context()
	for _, a := range c.Addrs[1:] {
		rc := redis.NewClient(&redis.Options{Addr: a})
		if err := rc.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
			t.Fatal(err)
		}
		_ = rc.Close()
	}
	cc := c.Client(t)
	ws := worker.RedisWarnings(ctx, cc)
	if len(ws) != 1 || !strings.HasPrefix(ws[0], "node "+c.Addrs[0]+": ") || !strings.Contains(ws[0], "neither AOF nor RDB") {
		t.Errorf("warnings %q, want one for node %s", ws, c.Addrs[0])
	}
	sum, err := worker.RedisSummary(ctx, cc)
	if err != nil || !strings.HasPrefix(sum, "Redis Cluster of 3 masters: ") || strings.Count(sum, "AOF on") != 2 || strings.Count(sum, "redis_mode") != 0 || !strings.Contains(sum, "(cluster)") {
		t.Errorf("summary %q, %v", sum, err)
	}
}
