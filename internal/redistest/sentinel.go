package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// MasterName is the name the Sentinels of NewSentinel know the master by.
const MasterName = "cancelworker"

// Sentinel is a real Sentinel set for one test: a master, a replica and
// three Sentinels (quorum 2, down after 1s), all redis-server processes on
// free loopback ports, killed at cleanup.
type Sentinel struct {
	// Addrs are the Sentinels' host:port, for REDIS_SENTINEL_ADDRS: their
	// TLS ports with WithTLS.
	Addrs  []string
	Master string // the first master's host:port (its TLS port with WithTLS)
	// TLS is the CA and certificate every server serves, with WithTLS.
	TLS    *TLSFiles
	master *process
	t      testing.TB
}

// NewSentinel starts a Sentinel set for t. It skips t when redis-server is
// missing, and fails it instead with REQUIRE_REDIS=1.
func NewSentinel(t testing.TB, opts ...Option) *Sentinel {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("redistest: %s=1 and redis-server is not on PATH: %v", EnvRequire, err)
		}
		t.Skipf("redistest: redis-server is not on PATH (%v): the Sentinel test needs real servers", err)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	s := &Sentinel{t: t, TLS: o.tls}
	// No delay before the first sync (Redis waits 5s by default, to
	// batch replicas).
	args, masterTLS := withTLS(t, s.TLS, []string{"--repl-diskless-sync-delay", "0"})
	master, err := startFree(t, path, args)
	if err != nil {
		t.Fatalf("redistest: start the master: %v", err)
	}
	s.master, s.Master = master, clientAddr(master, masterTLS)
	host, port, _ := net.SplitHostPort(s.Master)
	args, _ = withTLS(t, s.TLS, []string{"--replicaof", host, port})
	replica, err := startFree(t, path, args)
	if err != nil {
		t.Fatalf("redistest: start the replica: %v", err)
	}
	// The replica's first sync must be done, or a failover promotes an
	// empty server.
	rc := redis.NewClient(&redis.Options{Addr: replica.addr})
	deadline := time.Now().Add(3 * startTimeout)
	for {
		info, err := rc.Info(context.Background(), "replication").Result()
		if err == nil && infoField(info, "master_link_status") == "up" && infoField(info, "master_sync_in_progress") == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: the replica never synced: %v\n%s", err, info)
		}
		time.Sleep(50 * time.Millisecond) // nothing signals it
	}
	_ = rc.Close()
	var plainSentinels []string // where the readiness probes go
	for i := range 3 {
		// A Sentinel rewrites its configuration file: one of its own each.
		conf := filepath.Join(t.TempDir(), fmt.Sprintf("sentinel-%d.conf", i))
		body := fmt.Sprintf("sentinel monitor %s %s %s 2\nsentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 10000\nsentinel resolve-hostnames no\n",
			MasterName, host, port, MasterName, MasterName)
		extra, sentinelTLS := withTLS(t, s.TLS, nil)
		for j := 0; j+1 < len(extra); j += 2 {
			body += strings.TrimPrefix(extra[j], "--") + " " + extra[j+1] + "\n"
		}
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := startFreeConf(t, path, conf)
		if err != nil {
			t.Fatalf("redistest: start sentinel %d: %v", i, err)
		}
		plainSentinels = append(plainSentinels, p.addr)
		s.Addrs = append(s.Addrs, clientAddr(p, sentinelTLS))
	}
	// Wait until every Sentinel knows the replica: a failover needs it.
	for _, a := range plainSentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: a})
		deadline := time.Now().Add(startTimeout)
		for {
			reps, err := c.Replicas(context.Background(), MasterName).Result()
			if err == nil && len(reps) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: sentinel %s never saw the replica: %v %v", a, reps, err)
			}
			time.Sleep(50 * time.Millisecond) // nothing signals it
		}
		_ = c.Close()
	}
	return s
}

// KillMaster kills the current first master with SIGKILL.
func (s *Sentinel) KillMaster() {
	s.t.Helper()
	if err := s.master.cmd.Process.Kill(); err != nil {
		s.t.Fatal(err)
	}
	<-s.master.done
}

// startFree starts a redis-server with extra arguments on a free port.
func startFree(t testing.TB, path string, extra []string) (*process, error) {
	var last error
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p, err := start(t, path, port, extra)
		if err == nil {
			return p, nil
		}
		last = err
	}
	return nil, last
}

// startFreeConf starts a Sentinel from conf on a free port.
func startFreeConf(t testing.TB, path, conf string) (*process, error) {
	var last error
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p, err := startSentinel(t, path, conf, port)
		if err == nil {
			return p, nil
		}
		last = err
	}
	return nil, last
}

// startSentinel is start for a Sentinel: the configuration file first.
func startSentinel(t testing.TB, path, conf string, port int) (*process, error) {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	out := &limitedBuffer{limit: outputLimit}
	cmd := exec.Command(path, conf, "--sentinel", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--daemonize", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{addr: addr, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	if err := p.waitReady(); err != nil {
		_ = p.stop()
		if strings.Contains(out.String(), "Address already in use") {
			return nil, errPortTaken
		}
		return nil, fmt.Errorf("%w; output: %s", err, strings.TrimSpace(out.String()))
	}
	t.Cleanup(func() { _ = p.stop() })
	return p, nil
}
