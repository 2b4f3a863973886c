package config_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/redistest"
)

// TestAwaitSentinels: Sentinels that name one master are agreed at once;
// Sentinels naming two masters (two sets watching a master by the same
// name, as just after a failover when one has not heard of it yet) are
// waited on until the deadline, and reported as not agreeing.
func TestAwaitSentinels(t *testing.T) {
	t.Parallel()
	a, b := redistest.NewSentinel(t), redistest.NewSentinel(t)
	conn := func(addrs ...string) config.RedisConn {
		return config.RedisConn{Mode: config.RedisSentinel,
			Failover: &redis.FailoverOptions{MasterName: redistest.MasterName, SentinelAddrs: addrs}}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if !conn(a.Addrs...).AwaitSentinels(ctx) {
		t.Fatalf("one Sentinel set: not agreed")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("one Sentinel set: agreed after %s, want at once", d)
	}

	// An unreachable Sentinel does not count against agreement.
	if !conn(append([]string{"127.0.0.1:1"}, a.Addrs...)...).AwaitSentinels(ctx) {
		t.Errorf("one Sentinel set and an unreachable address: not agreed")
	}

	const wait = 700 * time.Millisecond
	ctx2, cancel2 := context.WithTimeout(context.Background(), wait)
	defer cancel2()
	start = time.Now()
	if conn(a.Addrs[0], b.Addrs[0]).AwaitSentinels(ctx2) {
		t.Fatalf("two Sentinel sets naming %s and %s: agreed", a.Master, b.Master)
	}
	if d := time.Since(start); d < wait {
		t.Errorf("two Sentinel sets: gave up after %s, want to wait out the %s deadline", d, wait)
	}

	if !(config.RedisConn{Mode: config.RedisSingle, Single: &redis.Options{Addr: "127.0.0.1:1"}}).AwaitSentinels(ctx) {
		t.Errorf("a single server: AwaitSentinels = false, want true (nothing to wait for)")
	}
}
