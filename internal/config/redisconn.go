package config

import (
	"cmp"
	"context"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis connection modes.
const (
	RedisSingle   = "single"   // REDIS_URL
	RedisSentinel = "sentinel" // REDIS_SENTINEL_ADDRS + REDIS_MASTER_NAME
	RedisCluster  = "cluster"  // REDIS_CLUSTER_ADDRS
)

// RedisConn is a resolved Redis connection: one server, the master a set
// of Sentinels elects, or a Cluster. Exactly one of Single, Failover and
// Cluster is set (none after a problem). Every process builds its
// clients with NewClient, so that each form works everywhere.
type RedisConn struct {
	Mode     string
	Single   *redis.Options
	Failover *redis.FailoverOptions
	Cluster  *redis.ClusterOptions
	// Shown is the connection as it may be logged: no password.
	Shown string
}

// Valid reports whether the connection was resolved.
func (c RedisConn) Valid() bool { return c.Single != nil || c.Failover != nil || c.Cluster != nil }

// NewClient returns a new client for c; the caller closes it.
func (c RedisConn) NewClient() redis.UniversalClient {
	switch {
	case c.Failover != nil:
		o := *c.Failover
		return redis.NewFailoverClient(&o)
	case c.Cluster != nil:
		o := *c.Cluster
		return redis.NewClusterClient(&o)
	}
	o := *c.Single
	return redis.NewClient(&o)
}

// AwaitSentinels waits until every Sentinel that answers names the same
// master, or until ctx is done, and reports whether they agreed; it does
// nothing (and reports true) outside Sentinel mode.
//
// go-redis asks all Sentinels at once and takes the first answer. Just
// after a failover a Sentinel that has not yet heard of the new master
// (Sentinels learn it from each other's hello messages, every 2 s) still
// names the old one, so a one-shot process such as the CLI could dial a
// dead master although the failover is complete. Waiting for agreement
// first closes that window; a disagreement that outlasts ctx is left to
// the caller's ping to report.
func (c RedisConn) AwaitSentinels(ctx context.Context) bool {
	fo := c.Failover
	if fo == nil {
		return true
	}
	const every = 100 * time.Millisecond
	for {
		if sentinelsAgree(ctx, fo) {
			return true
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// sentinelsAgree asks every Sentinel in fo for the master's address, all at
// once, and reports whether those that answered name at most one master.
func sentinelsAgree(ctx context.Context, fo *redis.FailoverOptions) bool {
	names := make([]string, len(fo.SentinelAddrs))
	var wg sync.WaitGroup
	for i, addr := range fo.SentinelAddrs {
		wg.Go(func() {
			sc := AskSentinel(fo, addr, fo.DialTimeout)
			defer func() { _ = sc.Close() }() // read-only: nothing to flush
			if a, err := sc.GetMasterAddrByName(ctx, fo.MasterName).Result(); err == nil && len(a) == 2 {
				names[i] = net.JoinHostPort(a[0], a[1])
			}
		})
	}
	wg.Wait()
	seen := ""
	for _, n := range names {
		switch {
		case n == "":
		case seen == "":
			seen = n
		case n != seen:
			return false
		}
	}
	return true
}

// AskSentinel returns a client for the Sentinel at addr with fo's
// credentials and TLS, for a few questions answered now: one connection,
// one dial attempt (within dialTimeout; 0 is go-redis's default), no
// retries, each reply bounded by the caller's context. The caller closes
// it.
func AskSentinel(fo *redis.FailoverOptions, addr string, dialTimeout time.Duration) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{
		Addr: addr, Username: fo.SentinelUsername, Password: fo.SentinelPassword,
		TLSConfig: fo.TLSConfig, DialTimeout: dialTimeout, ReadTimeout: fo.ReadTimeout,
		MaxRetries: -1, DialerRetries: 1, PoolSize: 1, ContextTimeoutEnabled: true,
	})
}

// Pool is c's connection pool settings: size and buffers, as SizePool
// sets them.
type Pool struct {
	Size                    int
	ReadBuffer, WriteBuffer int
	// PipelineBuffer sizes both buffers of each connection of go-redis's
	// pipeline pool (its default: 128 KiB each way); 0 leaves them.
	PipelineBuffer int
}

// SizePool returns c with each pool setting left at zero set from p
// (per node, on a Cluster).
func (c RedisConn) SizePool(p Pool) RedisConn {
	set := func(size, rb, wb, prb, pwb *int) {
		*size = cmp.Or(*size, p.Size)
		*rb = cmp.Or(*rb, p.ReadBuffer)
		*wb = cmp.Or(*wb, p.WriteBuffer)
		*prb = cmp.Or(*prb, p.PipelineBuffer)
		*pwb = cmp.Or(*pwb, p.PipelineBuffer)
	}
	switch {
	case c.Failover != nil:
		o := *c.Failover
		set(&o.PoolSize, &o.ReadBufferSize, &o.WriteBufferSize, &o.PipelineReadBufferSize, &o.PipelineWriteBufferSize)
		c.Failover = &o
	case c.Cluster != nil:
		o := *c.Cluster
		set(&o.PoolSize, &o.ReadBufferSize, &o.WriteBufferSize, &o.PipelineReadBufferSize, &o.PipelineWriteBufferSize)
		c.Cluster = &o
	case c.Single != nil:
		o := *c.Single
		set(&o.PoolSize, &o.ReadBufferSize, &o.WriteBufferSize, &o.PipelineReadBufferSize, &o.PipelineWriteBufferSize)
		c.Single = &o
	}
	return c
}

// WithMinPool returns c with a pool of at least n connections (per node
// on a Cluster), so that n commands in flight never wait for one.
func (c RedisConn) WithMinPool(n int) RedisConn {
	at := func(size int) int {
		if size == 0 {
			size = 10 * runtime.GOMAXPROCS(0) // go-redis's default
		}
		return max(size, n)
	}
	switch {
	case c.Failover != nil:
		o := *c.Failover
		o.PoolSize = at(o.PoolSize)
		c.Failover = &o
	case c.Cluster != nil:
		o := *c.Cluster
		o.PoolSize = at(o.PoolSize)
		c.Cluster = &o
	case c.Single != nil:
		o := *c.Single
		o.PoolSize = at(o.PoolSize)
		c.Single = &o
	}
	return c
}

// FailFast returns c with go-redis's retries off and one dial attempt: for
// a ping that must answer at once whether Redis is there.
func (c RedisConn) FailFast() RedisConn {
	switch {
	case c.Failover != nil:
		o := *c.Failover
		o.MaxRetries, o.DialerRetries, o.PoolSize = -1, 1, 1
		c.Failover = &o
	case c.Cluster != nil:
		o := *c.Cluster
		o.MaxRetries, o.DialerRetries, o.PoolSize, o.MaxRedirects = -1, 1, 1, 1
		c.Cluster = &o
	case c.Single != nil:
		o := *c.Single
		o.MaxRetries, o.DialerRetries, o.PoolSize = -1, 1, 1
		c.Single = &o
	}
	return c
}

// parseAddrs splits a comma-separated list of host:port, each checked.
func parseAddrs(l *Loader, s *Setting) []string {
	var addrs []string
	for _, a := range strings.Split(s.Value(), ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		host, port, err := net.SplitHostPort(a)
		n, perr := strconv.ParseUint(port, 10, 16)
		if err != nil || host == "" || perr != nil || n == 0 {
			l.Bad(s, "each address must be host:port with a port from 1 to 65535, got %q", a)
			return nil
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		l.Bad(s, "must list at least one host:port")
	}
	return addrs
}
