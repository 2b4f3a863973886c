package redistest

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterMasters is how many masters NewCluster starts.
const ClusterMasters = 3

// Cluster is a real Redis Cluster for one test: ClusterMasters masters,
// no replicas, all redis-server processes on free loopback ports (and bus
// ports), joined with redis-cli --cluster create and killed at cleanup.
type Cluster struct {
	// Addrs are the masters' host:port, for REDIS_CLUSTER_ADDRS.
	Addrs []string
}

// NewCluster starts a Cluster for t and waits until every node reports
// cluster_state:ok. It skips t when redis-server or redis-cli is missing,
// and fails it instead with REQUIRE_REDIS=1.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	server, err := exec.LookPath("redis-server")
	if err == nil {
		_, err = exec.LookPath("redis-cli")
	}
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("redistest: %s=1 and redis-server or redis-cli is not on PATH: %v", EnvRequire, err)
		}
		t.Skipf("redistest: redis-server or redis-cli is not on PATH (%v): the Cluster test needs real servers", err)
	}
	c := &Cluster{}
	for i := range ClusterMasters {
		bus, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		p, err := startFree(t, server, []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(bus),
			"--cluster-node-timeout", "2000",
		})
		if err != nil {
			t.Fatalf("redistest: start cluster node %d: %v", i, err)
		}
		c.Addrs = append(c.Addrs, p.addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*startTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range c.Addrs {
		rc := redis.NewClient(&redis.Options{Addr: a})
		for {
			info, err := rc.ClusterInfo(ctx).Result()
			if err == nil && infoField(info, "cluster_state") == "ok" && infoField(info, "cluster_known_nodes") == strconv.Itoa(ClusterMasters) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("redistest: node %s never reported the cluster ok: %v\n%s", a, err, info)
			}
			time.Sleep(50 * time.Millisecond) // nothing signals it
		}
		_ = rc.Close()
	}
	return c
}

// URL is the form of c that REDIS_CLUSTER_ADDRS takes.
func (c *Cluster) URL() string { return strings.Join(c.Addrs, ",") }

// Client returns a Cluster client for c, closed at t's cleanup.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// MasterOf returns the host:port of the master that holds key's slot.
func (c *Cluster) MasterOf(t testing.TB, rc *redis.ClusterClient, key string) string {
	t.Helper()
	m, err := rc.MasterForKey(context.Background(), key)
	if err != nil {
		t.Fatalf("redistest: master of %q: %v", key, err)
	}
	return m.Options().Addr
}
