package config

import (
	"net"
	"runtime"
	"strconv"
	"strings"

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

// Pool is c's connection pool settings: size and buffers, as SizePool
// sets them.
type Pool struct {
	Size                    int
	ReadBuffer, WriteBuffer int
}

// SizePool returns c with each pool setting left at zero set from p
// (per node, on a Cluster).
func (c RedisConn) SizePool(p Pool) RedisConn {
	set := func(size, rb, wb *int) {
		if *size == 0 {
			*size = p.Size
		}
		if *rb == 0 {
			*rb = p.ReadBuffer
		}
		if *wb == 0 {
			*wb = p.WriteBuffer
		}
	}
	switch {
	case c.Failover != nil:
		o := *c.Failover
		set(&o.PoolSize, &o.ReadBufferSize, &o.WriteBufferSize)
		c.Failover = &o
	case c.Cluster != nil:
		o := *c.Cluster
		set(&o.PoolSize, &o.ReadBufferSize, &o.WriteBufferSize)
		c.Cluster = &o
	case c.Single != nil:
		o := *c.Single
		set(&o.PoolSize, &o.ReadBufferSize, &o.WriteBufferSize)
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
