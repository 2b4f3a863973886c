package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// startAttempts bounds how many ports are tried before giving up.
	startAttempts = 5
	// startTimeout bounds how long one redis-server may take to answer.
	startTimeout = 10 * time.Second
	// pollInterval is the pause between two readiness probes: a starting
	// redis-server has no way to signal that it listens.
	pollInterval = 5 * time.Millisecond
	// probeTimeout bounds one readiness probe.
	probeTimeout = 250 * time.Millisecond
	// stopTimeout bounds the wait for a killed redis-server to exit.
	stopTimeout = 10 * time.Second
	// outputLimit is the most bytes of redis-server output kept for errors.
	outputLimit = 8 << 10
)

// errPortTaken reports that redis-server could not listen on its port, or
// that another server answered there.
var errPortTaken = errors.New("port taken")

// startServer starts a redis-server for t on a free loopback port, retrying
// with another port when the chosen one is taken, and kills it at cleanup.
// ports returns the port to try next; New passes freePort.
func startServer(t testing.TB, path string, ports func() (int, error)) *Server {
	t.Helper()
	var errs []string
	for range startAttempts {
		port, err := ports()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		p, err := start(t, path, port, nil)
		if err == nil {
			return newServer(KindRedisServer, &redis.Options{Addr: p.addr})
		}
		errs = append(errs, fmt.Sprintf("port %d: %v", port, err))
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	t.Fatalf("redistest: start %s: %s", path, strings.Join(errs, "; "))
	return nil
}

// process is a running redis-server.
type process struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd.Wait returns
}

// start starts one redis-server, its arguments followed by extra, and
// waits until it answers. On success the process is killed at t's
// cleanup; on failure it is already gone.
func start(t testing.TB, path string, port int, extra []string) (*process, error) {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	out := &limitedBuffer{limit: outputLimit}
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", t.TempDir(),
		"--loglevel", "warning",
	}
	cmd := exec.Command(path, append(args, extra...)...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{addr: addr, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit status of a killed server says nothing
		close(p.done)
	}()
	if err := p.waitReady(); err != nil {
		p.stop()
		if strings.Contains(out.String(), "Address already in use") {
			return nil, errPortTaken
		}
		if o := strings.TrimSpace(out.String()); o != "" {
			err = fmt.Errorf("%w; output: %s", err, o)
		}
		return nil, err
	}
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("redistest: %v", err)
		}
	})
	return p, nil
}

// waitReady polls the server until it answers as this process, it exits, or
// startTimeout passes.
func (p *process) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	// Short timeouts: a probe that times out is simply repeated, and one
	// that hangs on a silent listener must not delay noticing the exit.
	c := redis.NewClient(&redis.Options{
		Addr:         p.addr,
		MaxRetries:   -1,
		DialTimeout:  probeTimeout,
		ReadTimeout:  probeTimeout,
		WriteTimeout: probeTimeout,
		PoolSize:     1,
	})
	defer c.Close()
	want := strconv.Itoa(p.cmd.Process.Pid)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		info, err := c.Info(ctx, "server").Result()
		if err == nil {
			if pid := infoField(info, "process_id"); pid != want {
				// Another server holds the port; ours cannot bind it.
				return errPortTaken
			}
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("redis-server on %s exited before answering", p.addr)
		case <-ctx.Done():
			return fmt.Errorf("redis-server on %s did not answer within %s: %w", p.addr, startTimeout, err)
		case <-tick.C:
		}
	}
}

// stop kills the process and waits for it to exit.
func (p *process) stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Kill(); err != nil {
		select {
		case <-p.done:
			return nil
		default:
		}
		return fmt.Errorf("kill redis-server pid %d: %w", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		return fmt.Errorf("redis-server pid %d still running %s after kill", p.cmd.Process.Pid, stopTimeout)
	}
}

// infoField returns the value of field in the text of an INFO reply.
func infoField(info, field string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// limitedBuffer keeps the first limit bytes written to it. It is safe for
// concurrent use.
type limitedBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	limit int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.limit - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
