package redistest

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func TestNewServes(t *testing.T) {
	t.Parallel()
	s := New(t)
	c := s.Client(t)
	if got, err := c.Ping(t.Context()).Result(); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v; want PONG", got, err)
	}
	if !strings.HasPrefix(s.URL, "redis://"+s.Addr+"/") || !strings.HasSuffix(s.URL, "/"+strconv.Itoa(s.DB)) {
		t.Errorf("URL %q does not match Addr %q and DB %d", s.URL, s.Addr, s.DB)
	}
	opt, err := redis.ParseURL(s.URL)
	if err != nil || opt.Addr != s.Addr || opt.DB != s.DB {
		t.Errorf("ParseURL(URL) = %+v, %v; want Addr %q DB %d", opt, err, s.Addr, s.DB)
	}

	// asynq reaches the same database through ConnOpt.
	client := asynq.NewClient(s.ConnOpt())
	t.Cleanup(func() { client.Close() })
	if _, err := client.EnqueueContext(t.Context(), asynq.NewTask("test:ping", nil), asynq.Queue("redistest")); err != nil {
		t.Fatalf("asynq enqueue: %v", err)
	}
	n, err := c.LLen(t.Context(), "asynq:{redistest}:pending").Result()
	if err != nil || n != 1 {
		t.Fatalf("pending tasks seen by Client = %d, %v; want 1", n, err)
	}
}

func TestNewKind(t *testing.T) {
	t.Parallel()
	kind, _, err := choose(os.Getenv, exec.LookPath)
	if err != nil {
		t.Skipf("no Redis here: %v", err)
	}
	if s := New(t); s.Kind != kind {
		t.Errorf("Kind = %q, want %q", s.Kind, kind)
	}
}

func TestNewIsolated(t *testing.T) {
	t.Parallel()
	a, b := New(t), New(t)
	ca, cb := a.Client(t), b.Client(t)
	if err := ca.Set(t.Context(), "k", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := cb.Exists(t.Context(), "k").Result(); err != nil || n != 0 {
		t.Errorf("key set in the first server exists in the second: %d, %v", n, err)
	}
	if n, err := cb.DBSize(t.Context()).Result(); err != nil || n != 0 {
		t.Errorf("second server has %d keys (%v), want 0", n, err)
	}
}

func TestChoose(t *testing.T) {
	t.Parallel()
	found := func(string) (string, error) { return "/usr/bin/redis-server", nil }
	missing := func(string) (string, error) { return "", exec.ErrNotFound }
	tests := []struct {
		name     string
		env      map[string]string
		lookPath func(string) (string, error)
		kind     string
		path     string
		err      string
	}{
		{name: "url wins over redis-server", env: map[string]string{EnvURL: "redis://127.0.0.1:1/0"}, lookPath: found, kind: KindURL},
		{name: "url wins over require", env: map[string]string{EnvURL: "redis://127.0.0.1:1/0", EnvRequire: "1"}, lookPath: missing, kind: KindURL},
		{name: "redis-server on path", lookPath: found, kind: KindRedisServer, path: "/usr/bin/redis-server"},
		{name: "redis-server satisfies require", env: map[string]string{EnvRequire: "1"}, lookPath: found, kind: KindRedisServer, path: "/usr/bin/redis-server"},
		{name: "fallback to miniredis", lookPath: missing, kind: KindMiniredis},
		{name: "require 0 falls back", env: map[string]string{EnvRequire: "0"}, lookPath: missing, kind: KindMiniredis},
		{name: "require 1 fails", env: map[string]string{EnvRequire: "1"}, lookPath: missing, err: "REQUIRE_REDIS=1 but no redis-server on PATH and REDIS_URL unset; install redis-server"},
		{name: "require junk fails", env: map[string]string{EnvRequire: "yes please"}, lookPath: missing, err: `REQUIRE_REDIS: must be 1 or 0, got "yes please"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kind, path, err := choose(func(k string) string { return tt.env[k] }, tt.lookPath)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("choose() error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || kind != tt.kind || path != tt.path {
				t.Fatalf("choose() = %q, %q, %v; want %q, %q", kind, path, err, tt.kind, tt.path)
			}
		})
	}
}

func TestServerKilledAtCleanup(t *testing.T) {
	t.Parallel()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("no redis-server on PATH")
	}
	var addr string
	t.Run("run", func(t *testing.T) {
		addr = startServer(t, path, freePort).Addr
	})
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("redis-server still listens on %s after cleanup", addr)
	}
}

func TestServerPortTaken(t *testing.T) {
	t.Parallel()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("no redis-server on PATH")
	}
	other := startServer(t, path, freePort)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	tests := []struct {
		name  string
		taken int
	}{
		{name: "by another redis-server", taken: portOf(t, other.Addr)},
		{name: "by a silent listener", taken: l.Addr().(*net.TCPAddr).Port},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			ports := func() (int, error) {
				calls++
				if calls == 1 {
					return tt.taken, nil
				}
				return freePort()
			}
			s := startServer(t, path, ports)
			if calls != 2 || s.Addr == other.Addr {
				t.Fatalf("started on %s after %d ports; want a second, free port", s.Addr, calls)
			}
			if err := s.Client(t).Set(t.Context(), "mine", 1, 0).Err(); err != nil {
				t.Fatal(err)
			}
			if n, err := other.Client(t).Exists(t.Context(), "mine").Result(); err != nil || n != 0 {
				t.Errorf("key written to the new server reached the one on the taken port: %d, %v", n, err)
			}
		})
	}
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// scratchURL returns the URL of a private Redis with 16 databases, for
// testing the REDIS_URL mode without touching a shared server.
func scratchURL(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("redis-server"); err == nil {
		return "redis://" + startServer(t, path, freePort).Addr
	}
	return "redis://" + miniredis.RunT(t).Addr()
}

func testLeaseConfig() leaseConfig {
	cfg := leaseConfigDefault
	cfg.first, cfg.last = 1, 3
	cfg.keyPrefix = "test:lease:"
	cfg.wait = 200 * time.Millisecond
	cfg.poll = 10 * time.Millisecond
	return cfg
}

func dbClient(t *testing.T, rawURL string, db int) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	opt.DB = db
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLeased(t *testing.T) {
	t.Parallel()
	raw := scratchURL(t)
	cfg := testLeaseConfig()
	ctrl := dbClient(t, raw, 0)

	var dbs []int
	t.Run("lease", func(t *testing.T) {
		a, b := newLeased(t, raw, cfg), newLeased(t, raw, cfg)
		if a.Kind != KindURL || a.DB == b.DB || a.DB < cfg.first || b.DB > cfg.last {
			t.Fatalf("leased %s database %d and %d; want two distinct in %d..%d", a.Kind, a.DB, b.DB, cfg.first, cfg.last)
		}
		dbs = []int{a.DB, b.DB}
		if err := a.Client(t).Set(t.Context(), "k", "a", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if n, err := b.Client(t).Exists(t.Context(), "k").Result(); err != nil || n != 0 {
			t.Errorf("key set in database %d exists in database %d: %d, %v", a.DB, b.DB, n, err)
		}
		for _, db := range dbs {
			if ttl, err := ctrl.PTTL(t.Context(), cfg.keyPrefix+strconv.Itoa(db)).Result(); err != nil || ttl <= 0 || ttl > cfg.ttl {
				t.Errorf("lease key of database %d has TTL %s (%v), want in (0, %s]", db, ttl, err, cfg.ttl)
			}
		}
	})
	for _, db := range dbs {
		if n, err := dbClient(t, raw, db).DBSize(t.Context()).Result(); err != nil || n != 0 {
			t.Errorf("database %d holds %d keys (%v) after cleanup, want 0", db, n, err)
		}
		if n, err := ctrl.Exists(t.Context(), cfg.keyPrefix+strconv.Itoa(db)).Result(); err != nil || n != 0 {
			t.Errorf("lease of database %d still held after cleanup", db)
		}
	}
}

func TestLeaseSkipsNonEmpty(t *testing.T) {
	t.Parallel()
	raw := scratchURL(t)
	cfg := testLeaseConfig()
	if err := dbClient(t, raw, 1).Set(t.Context(), "someone's", "data", 0).Err(); err != nil {
		t.Fatal(err)
	}
	t.Run("lease", func(t *testing.T) {
		if s := newLeased(t, raw, cfg); s.DB != 2 {
			t.Errorf("leased database %d, want 2 (1 is not empty)", s.DB)
		}
	})
	if got, err := dbClient(t, raw, 1).Get(t.Context(), "someone's").Result(); err != nil || got != "data" {
		t.Errorf("key in the skipped database = %q, %v; want it untouched", got, err)
	}
}

func TestLeaseNoDatabase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, raw string, cfg leaseConfig)
		want  string
	}{
		{
			name: "all not empty",
			setup: func(t *testing.T, raw string, cfg leaseConfig) {
				for db := cfg.first; db <= cfg.last; db++ {
					if err := dbClient(t, raw, db).Set(t.Context(), "x", 1, 0).Err(); err != nil {
						t.Fatal(err)
					}
				}
			},
			want: "not empty or unusable",
		},
		{
			name: "all leased",
			setup: func(t *testing.T, raw string, cfg leaseConfig) {
				for db := cfg.first; db <= cfg.last; db++ {
					if err := dbClient(t, raw, 0).Set(t.Context(), cfg.keyPrefix+strconv.Itoa(db), "other", 0).Err(); err != nil {
						t.Fatal(err)
					}
				}
			},
			want: "stayed leased",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := scratchURL(t)
			cfg := testLeaseConfig()
			tt.setup(t, raw, cfg)
			opt, err := parseURL(raw)
			if err != nil {
				t.Fatal(err)
			}
			l, err := acquire(t.Context(), opt, cfg)
			if err == nil {
				l.release()
				t.Fatalf("acquire leased database %d, want an error", l.opt.DB)
			}
			if !errors.Is(err, errNoDatabase) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("acquire() error = %v, want errNoDatabase saying %q", err, tt.want)
			}
		})
	}
}

func TestParseURLHidesPassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		url  string
	}{
		{name: "bad escape", url: "redis://:hunter2%zz@127.0.0.1:6379/0"},
		{name: "bad scheme", url: "http://:hunter2@127.0.0.1:6379/0"},
		{name: "bad port", url: "redis://:hunter2@127.0.0.1:port/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseURL(tt.url)
			if err == nil {
				t.Fatal("parseURL accepted a bad URL")
			}
			if strings.Contains(err.Error(), "hunter2") || !strings.HasPrefix(err.Error(), EnvURL+":") {
				t.Errorf("error %q must name %s and not hold the password", err, EnvURL)
			}
		})
	}
}

func TestInfoField(t *testing.T) {
	t.Parallel()
	info := "# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\n"
	for _, tt := range []struct{ name, field, want string }{
		{name: "present", field: "process_id", want: "4242"},
		{name: "absent", field: "run_id", want: ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := infoField(info, tt.field); got != tt.want {
				t.Errorf("infoField(%q) = %q, want %q", tt.field, got, tt.want)
			}
		})
	}
}
