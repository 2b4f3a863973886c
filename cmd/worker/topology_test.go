package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/worker"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/redis/go-redis/v9"
)

// TestCheckSentinel runs `worker check` through a real Sentinel set (a
// master, a replica, three Sentinels) with one more Sentinel address that
// refuses connections: each Sentinel that answers names the master, the
// replica and the two other Sentinels; the silent one is a warning, not a
// failure. Then the Sentinels are asked with one that takes connections
// and never answers: the others still answer, within the check's time.
func TestCheckSentinel(t *testing.T) {
	t.Parallel()
	s := redistest.NewSentinel(t)
	// Sentinels find each other through hello messages, every 2 s: until
	// then check rightly warns that a failover could not happen.
	for _, a := range s.Addrs {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a})
		workertest.Wait(t, "sentinel "+a+" to know the two others", func() (bool, string) {
			others, err := sc.Sentinels(t.Context(), redistest.MasterName).Result()
			return err == nil && len(others) == 2, fmt.Sprintf("%d others, %v", len(others), err)
		})
		_ = sc.Close()
	}
	// One more that takes connections and never answers, as a host that
	// hangs: it must not use up the others' time.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	_, base := workertest.Upstream(t)
	env := providerEnv(base)
	env["REDIS_SENTINEL_ADDRS"] = strings.Join(append(append([]string{}, s.Addrs...), workertest.ClosedAddr(t)), ",")
	env["REDIS_MASTER_NAME"] = redistest.MasterName
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"check"}, envFunc(env), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, want 0\n%s%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, a := range s.Addrs {
		want := "ok    sentinel " + a + `: master "` + redistest.MasterName + `" at ` + s.Master + "; 1 replica(s) up ("
		if !strings.Contains(out, want) || !strings.Contains(out, "knows 2 other Sentinel(s)") {
			t.Errorf("output lacks %q and the two other Sentinels:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "warn  sentinel 127.0.0.1:") || !strings.Contains(out, "did not answer") {
		t.Errorf("the silent Sentinel is not a warning:\n%s", out)
	}
	if strings.Contains(out, "a failover could not happen") || strings.Contains(out, "fewer than 3") {
		t.Errorf("a healthy set is warned about:\n%s", out)
	}

	// The Sentinel that hangs, asked with the others: they answer on their
	// own clocks. (Not through run: go-redis's own master lookup waits on
	// a Sentinel that hangs, so the worker's Redis line would fail first.)
	start := time.Now()
	lines := worker.RedisTopology(t.Context(), config.RedisConn{Failover: &redis.FailoverOptions{
		MasterName: redistest.MasterName, SentinelAddrs: append(append([]string{}, s.Addrs...), silent.Addr().String()),
	}})
	took := time.Since(start)
	ok := 0
	for _, l := range lines {
		switch {
		case l.Status == worker.CheckOK && strings.HasPrefix(l.What, "sentinel "):
			ok++
		case l.What == "sentinel "+silent.Addr().String() && l.Status != worker.CheckWarn:
			t.Errorf("the Sentinel that hangs: %+v, want a warning", l)
		}
	}
	if ok != len(s.Addrs) || took > 5*time.Second {
		t.Errorf("with a Sentinel that hangs: %d of %d Sentinels ok, in %s (want all, within 5 s): %+v", ok, len(s.Addrs), took.Round(time.Millisecond), lines)
	}
}

// TestCheckCluster runs `worker check` on a real Cluster of three masters:
// all answer and serve every slot; then, with slots 0-99 served by none,
// it fails naming them.
func TestCheckCluster(t *testing.T) {
	t.Parallel()
	c := redistest.NewCluster(t)
	_, base := workertest.Upstream(t)
	env := providerEnv(base)
	env["REDIS_CLUSTER_ADDRS"] = c.URL()
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"check"}, envFunc(env), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, want 0\n%s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "ok    cluster: 3 masters (") || !strings.Contains(stdout.String(), "all answer and serve all 16384 slots") {
		t.Errorf("output lacks the Cluster's line:\n%s", stdout.String())
	}
	if !strings.Contains(stdout.String(), "warn  cluster: no master has a replica") {
		t.Errorf("output lacks the warning of no replica:\n%s", stdout.String())
	}

	// Every node forgets slots 0-99.
	for _, a := range c.Addrs {
		rc := redis.NewClient(&redis.Options{Addr: a})
		if err := rc.Do(context.Background(), "CLUSTER", "DELSLOTSRANGE", 0, 99).Err(); err != nil {
			t.Fatalf("CLUSTER DELSLOTSRANGE on %s: %v", a, err)
		}
		_ = rc.Close()
	}
	stdout.Reset()
	if code := run(t.Context(), []string{"check"}, envFunc(env), &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "fail  cluster: slots served by no master: 0-99") {
		t.Errorf("output lacks the uncovered slots:\n%s", stdout.String())
	}
}
