// Package redistest gives each test an isolated Redis: a fresh redis-server
// process, a leased database on the server named by REDIS_URL, or, when
// neither is available, an in-process miniredis.
//
// The choice, made by New for every test:
//
//  1. REDIS_URL set: that server. Each test leases one of its databases 1 to
//     15 (the lease is a key in database 0, set with SET NX and a TTL that is
//     kept alive while the test runs) and uses it only if it is empty. At
//     cleanup the test's keys are deleted and the lease is released. REDIS_URL
//     must name a disposable server: its database number is ignored.
//  2. redis-server on PATH: a fresh process per test on a free 127.0.0.1 port,
//     with persistence off and a temporary directory, killed at cleanup.
//  3. Otherwise miniredis, logged with t.Log; with REQUIRE_REDIS=1 the test
//     fails instead, so CI cannot pass on the fallback by accident.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Kinds of Server, as found in Server.Kind.
const (
	KindRedisServer = "redis-server"
	KindURL         = "REDIS_URL"
	KindMiniredis   = "miniredis"
)

// Environment variables read by New.
const (
	EnvURL     = "REDIS_URL"
	EnvRequire = "REQUIRE_REDIS"
)

// Server is one test's Redis. Its fields are read-only.
type Server struct {
	// URL is "redis://127.0.0.1:port/db". With REDIS_URL it keeps that URL's
	// scheme and credentials: do not log it.
	URL string
	// Addr is "host:port".
	Addr string
	// DB is the database the test owns.
	DB int
	// Kind is KindRedisServer, KindURL or KindMiniredis.
	Kind string

	opt *redis.Options
}

// New returns an isolated Redis for t, chosen as the package documentation
// describes, and releases it with t.Cleanup. It fails t if no Redis can be
// had.
func New(t testing.TB) *Server {
	t.Helper()
	kind, path, err := choose(os.Getenv, exec.LookPath)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	switch kind {
	case KindURL:
		return newLeased(t, os.Getenv(EnvURL), leaseConfigDefault)
	case KindRedisServer:
		return startServer(t, path, freePort)
	}
	t.Logf("redistest: no redis-server on PATH and %s unset: using in-process miniredis (set %s=1 to fail instead)", EnvURL, EnvRequire)
	m := miniredis.RunT(t)
	return newServer(KindMiniredis, &redis.Options{Addr: m.Addr()})
}

// choose decides which kind of Redis New uses, from the environment and the
// PATH, and returns the redis-server path for KindRedisServer.
func choose(getenv func(string) string, lookPath func(string) (string, error)) (kind, path string, err error) {
	if getenv(EnvURL) != "" {
		return KindURL, "", nil
	}
	if p, err := lookPath("redis-server"); err == nil {
		return KindRedisServer, p, nil
	}
	require := false
	if v := getenv(EnvRequire); v != "" {
		require, err = strconv.ParseBool(v)
		if err != nil {
			return "", "", fmt.Errorf("%s: must be 1 or 0, got %q", EnvRequire, v)
		}
	}
	if require {
		return "", "", fmt.Errorf("%s=1 but no redis-server on PATH and %s unset; install redis-server", EnvRequire, EnvURL)
	}
	return KindMiniredis, "", nil
}

// newServer returns a Server for kind that connects with opt.
func newServer(kind string, opt *redis.Options) *Server {
	u := url.URL{Scheme: "redis", Host: opt.Addr, Path: "/" + strconv.Itoa(opt.DB)}
	if opt.TLSConfig != nil {
		u.Scheme = "rediss"
	}
	switch {
	case opt.Username != "":
		u.User = url.UserPassword(opt.Username, opt.Password)
	case opt.Password != "":
		u.User = url.UserPassword("", opt.Password)
	}
	return &Server{URL: u.String(), Addr: opt.Addr, DB: opt.DB, Kind: kind, opt: opt}
}

// Client returns a new go-redis client for s, closed at t's cleanup.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	opt := *s.opt
	c := redis.NewClient(&opt)
	t.Cleanup(func() {
		if err := c.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			t.Errorf("redistest: close client: %v", err)
		}
	})
	return c
}

// ConnOpt returns the connection options for asynq servers, clients and
// inspectors. Whoever builds them from it closes them.
func (s *Server) ConnOpt() asynq.RedisClientOpt {
	return asynq.RedisClientOpt{
		Addr:      s.opt.Addr,
		Username:  s.opt.Username,
		Password:  s.opt.Password,
		DB:        s.opt.DB,
		TLSConfig: s.opt.TLSConfig,
	}
}

// UsedMemory returns the used_memory of rdb's server (INFO memory), in
// bytes: what a test of Redis's memory per task reads before and after.
func UsedMemory(t testing.TB, rdb redis.UniversalClient) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("INFO memory has no used_memory")
	return 0
}
