package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
)

// syncBuffer is a process's output, written and read concurrently.
type syncBuffer = workertest.Buffer

func envFunc(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{name: "nothing configured", want: []string{"no provider is configured"}},
		{name: "half-configured meari", env: map[string]string{"MEARI_BASE_URL": "https://meari.example"},
			want: []string{"MEARI_PARTNER_KEY (--meari-partner-key): required", "MEARI_PARTNER_SECRET: required", "MEARI_SOURCE_APP (--meari-source-app): required"}},
		{name: "bad values, all reported", env: map[string]string{
			"PANDAPON_BASE_URL": "ftp://x", "PANDAPON_ACCESS_KEY": "k", "PANDAPON_ACCESS_SECRET": "s", "PANDAPON_USER_ID": "u",
			"WORKER_CONCURRENCY": "zero", "LOG_LEVEL": "loud", "LOG_FORMAT": "xml", "SHUTDOWN_TIMEOUT": "soon", "MEARI_SIGN_MODE": "magic",
			"REDIS_URL": "http://user:hunter2@localhost"},
			want: []string{
				"PANDAPON_BASE_URL (--pandapon-base-url): must start with http:// or https://",
				"WORKER_CONCURRENCY (--concurrency): must be an integer",
				"LOG_LEVEL (--log-level): must be debug, info, warn or error",
				"LOG_FORMAT (--log-format): must be json or console",
				"SHUTDOWN_TIMEOUT (--shutdown-timeout): must be a duration",
				"MEARI_SIGN_MODE (--meari-sign-mode): must be",
				"REDIS_URL (--redis-url): invalid URL scheme: http",
			}},
		{name: "secret flags refused", args: []string{"--meari-partner-secret", "s3cr3t-value", "--pandapon-access-secret=hunter2", "--admin-password", "hunter2", "--redis-password", "hunter2"},
			want: []string{
				"--meari-partner-secret: secrets are not taken on the command line",
				"a file holding it in MEARI_PARTNER_SECRET_FILE (--meari-partner-secret-file)",
				"--pandapon-access-secret: secrets are not taken on the command line",
				"--admin-password: secrets are not taken on the command line",
				"--redis-password: secrets are not taken on the command line",
			}},
		{name: "Redis password in the URL flag refused", args: []string{"--redis-url", "redis://:hunter2@127.0.0.1:6379/0"},
			want: []string{"--redis-url: must not hold a password on the command line", "REDIS_PASSWORD_FILE (--redis-password-file)"}},
		{name: "Redis password twice", env: map[string]string{"REDIS_URL": "redis://:hunter2@127.0.0.1:6379/0", "REDIS_PASSWORD": "s3cr3t-value"},
			want: []string{"REDIS_URL (--redis-url): holds a password and REDIS_PASSWORD or REDIS_PASSWORD_FILE is set too"}},
		{name: "bad admin allowed host", env: map[string]string{"ADMIN_ALLOWED_HOSTS": "https://admin.example"},
			want: []string{`ADMIN_ALLOWED_HOSTS (--admin-allowed-hosts): "https://admin.example" is not a host name`}},
		{name: "flag wins over env", env: map[string]string{"WORKER_CONCURRENCY": "5"}, args: []string{"--concurrency", "-3"},
			want: []string{"--concurrency: must be at least 1, got -3"}},
		{name: "dequeuers and poll interval", env: map[string]string{"WORKER_CONCURRENCY": "4", "WORKER_DEQUEUERS": "5", "WORKER_POLL_INTERVAL": "20s"},
			want: []string{"WORKER_DEQUEUERS (--dequeuers): must be at most WORKER_CONCURRENCY (4): each dequeuer needs a share of it, got 5",
				"WORKER_POLL_INTERVAL (--poll-interval): must be from 1ms to 10s, got 20s"}},
		{name: "dequeuers zero, poll interval not a duration", args: []string{"--dequeuers", "0", "--poll-interval", "often"},
			want: []string{"--dequeuers: must be at least 1, got 0", "--poll-interval: must be a duration"}},
		{name: "too many dequeuers, poll interval too short", env: map[string]string{"WORKER_DEQUEUERS": "17", "WORKER_POLL_INTERVAL": "100us"},
			want: []string{"WORKER_DEQUEUERS (--dequeuers): must be at most 16, got 17", "WORKER_POLL_INTERVAL (--poll-interval): must be from 1ms to 10s, got 100µs"}},
		{name: "prefetch neither auto nor a number", env: map[string]string{"WORKER_PREFETCH": "lots"}, args: []string{"--concurrency", "4"},
			want: []string{`WORKER_PREFETCH (--prefetch): must be auto or an integer from 0 to 1000, got "lots"`}},
		{name: "prefetch negative", env: map[string]string{"WORKER_PREFETCH": "-1"},
			want: []string{"WORKER_PREFETCH (--prefetch): must be at least 0, got -1"}},
		{name: "prefetch too large, the flag over the environment", env: map[string]string{"WORKER_PREFETCH": "auto"}, args: []string{"--prefetch", "1001"},
			want: []string{"--prefetch: must be at most 1000, got 1001"}},
		{name: "prefetch empty", env: map[string]string{"WORKER_PREFETCH": " "},
			want: []string{`WORKER_PREFETCH (--prefetch): must be auto or an integer from 0 to 1000, got " "`}},
		{name: "secret and its file", env: map[string]string{"MEARI_PARTNER_SECRET": "s3cr3t-value", "MEARI_PARTNER_SECRET_FILE": "/nonexistent"},
			want: []string{"MEARI_PARTNER_SECRET: set either it or MEARI_PARTNER_SECRET_FILE"}},
		{name: "unreadable secret file", env: map[string]string{"PANDAPON_ACCESS_SECRET_FILE": "/nonexistent/secret"},
			want: []string{"PANDAPON_ACCESS_SECRET_FILE (--pandapon-access-secret-file): cannot read the file"}},
		{name: "public admin address without credentials", env: map[string]string{
			"PANDAPON_BASE_URL": "http://127.0.0.1:1", "PANDAPON_ACCESS_KEY": "k", "PANDAPON_ACCESS_SECRET": "s", "PANDAPON_USER_ID": "u",
			"ADMIN_ADDR": "0.0.0.0:8080"},
			want: []string{"ADMIN_ADDR (--admin-addr): \"0.0.0.0:8080\" is not a loopback address", "ADMIN_USER (--admin-user)", "ADMIN_PASSWORD"}},
		{name: "public admin flag without credentials, in the demo too", args: []string{"--demo", "--admin-addr", ":9090"},
			want: []string{"--admin-addr: \":9090\" is not a loopback address", "ADMIN_USER", "ADMIN_PASSWORD"}},
		{name: "admin read-only not a bool", env: map[string]string{"ADMIN_READONLY": "sure", "ADMIN_USER": "ops", "ADMIN_PASSWORD": "hunter2"},
			want: []string{`ADMIN_READONLY (--admin-readonly): must be true or false, got "sure"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, envFunc(tt.env), &stdout, &stderr)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			for _, secret := range []string{"hunter2", "s3cr3t-value"} {
				if strings.Contains(stderr.String(), secret) {
					t.Errorf("stderr echoes a secret:\n%s", stderr.String())
				}
			}
		})
	}
}

func TestWarnsUpstreamTimeoutOverShutdown(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	env := map[string]string{
		"REDIS_URL":         "redis://127.0.0.1:1/0",
		"PANDAPON_BASE_URL": "http://127.0.0.1:1", "PANDAPON_ACCESS_KEY": "k", "PANDAPON_ACCESS_SECRET": "s", "PANDAPON_USER_ID": "u",
		"UPSTREAM_TIMEOUT": "30s", "SHUTDOWN_TIMEOUT": "5s",
	}
	run(t.Context(), nil, envFunc(env), &stdout, &stderr)
	if !strings.Contains(stderr.String(), "UPSTREAM_TIMEOUT (30s) is longer than SHUTDOWN_TIMEOUT (5s)") {
		t.Errorf("no warning:\n%s", stderr.String())
	}
	stderr.Reset()
	env["SHUTDOWN_TIMEOUT"] = "30s"
	run(t.Context(), nil, envFunc(env), &stdout, &stderr)
	if strings.Contains(stderr.String(), "UPSTREAM_TIMEOUT") {
		t.Errorf("a warning with equal timeouts:\n%s", stderr.String())
	}
}

func TestRedisUnreachable(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	env := map[string]string{
		"REDIS_URL":         "redis://:hunter2@127.0.0.1:1/0",
		"PANDAPON_BASE_URL": "http://127.0.0.1:1", "PANDAPON_ACCESS_KEY": "k", "PANDAPON_ACCESS_SECRET": "s", "PANDAPON_USER_ID": "u",
	}
	if code := run(t.Context(), nil, envFunc(env), &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "127.0.0.1:1") || strings.Contains(stderr.String(), "hunter2") {
		t.Fatalf("stderr should name the address without the password:\n%s", stderr.String())
	}
}

func TestDemo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--demo", "--log-level", "warn"}, envFunc(map[string]string{"ADMIN_ADDR": "127.0.0.1:0"}), &stdout, &stderr)
	}()
	deadline := time.After(90 * time.Second)
	for !strings.Contains(stdout.String(), "Press Ctrl-C") {
		select {
		case code := <-done:
			t.Fatalf("demo exited early with %d:\n%s\n%s", code, stdout.String(), stderr.String())
		case <-deadline:
			t.Fatalf("demo never settled:\n%s", stdout.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	out := stdout.String()
	want := map[string]string{
		"DEMO-OK ":             "completed",
		"DEMO-1005-TWICE":      "completed",
		"DEMO-4001":            "dead-lettered",
		"DEMO-4002":            "dead-lettered",
		"DEMO-OUTAGE":          "dead-lettered",
		"2542285634920880794 ": "completed",
		"2542285634920880795":  "completed",
		"2542285634920880797":  "completed",
		"2542285634920880798":  "dead-lettered",
	}
	for order, state := range want {
		line := ""
		for l := range strings.Lines(out) {
			if line == "" && strings.Contains(l, order) {
				line = l
			}
		}
		if !strings.Contains(line, state) {
			t.Errorf("demo row for %s = %q, want state %s", strings.TrimSpace(order), strings.TrimSpace(line), state)
		}
	}
	if !strings.Contains(out, "Nothing is durable") || !strings.Contains(out, "retries exhausted") {
		t.Errorf("demo output lacks the non-durable warning or the exhausted row:\n%s", out)
	}
	ui := regexp.MustCompile(`Monitoring UI: +(http://127\.0\.0\.1:[0-9]+)/monitoring/\n`).FindStringSubmatch(out)
	if ui == nil {
		t.Fatalf("demo banner lacks the monitoring UI's address:\n%s", out)
	}
	for path, want := range map[string]string{
		"/monitoring/":    "cancelworker-dlq-link",
		"/monitoring/dlq": "DEMO-4001",
		"/metrics":        `cancelworker_dead_lettered_total{provider="meari",reason="permanent"} 2`,
		"/readyz":         "ready",
	} {
		if code, body := httpGet(t, ui[1]+path); code != 200 || !strings.Contains(body, want) {
			t.Errorf("demo GET %s: %d, want 200 holding %q", path, code, want)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("demo exit %d after Ctrl-C", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("demo did not stop after its context ended")
	}
}

// TestSIGTERMInFlight runs the real binary, sends it SIGTERM with calls in
// flight, restarts it, and checks every order ends cancelled.
func TestSIGTERMInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the worker binary")
	}
	t.Parallel()
	bin, redis, rdb, sb, srv := binaryRig(t)

	const n = 12
	enq := tasks.NewEnqueuer(rdb, tasks.Shards{})
	var ids []string
	for i := range n {
		order := fmt.Sprintf("25422856349208%05d", i)
		// The first call of each order outlasts the shutdown timeout.
		sb.Script("pandapon", order, sandbox.Slow(20*time.Second, sandbox.OK()), sandbox.OK())
		id, _ := tasks.ParseOrderID(order)
		task, err := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: id})
		if err != nil {
			t.Fatal(err)
		}
		res, err := enq.Enqueue(t.Context(), task, false)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.TaskID)
	}
	env := append(os.Environ(),
		"REDIS_URL="+redis.URL,
		"PANDAPON_BASE_URL="+srv.URL, "PANDAPON_ACCESS_KEY=ak", "PANDAPON_ACCESS_SECRET=as-secret", "PANDAPON_USER_ID=u1",
		"WORKER_CONCURRENCY=4", "SHUTDOWN_TIMEOUT=1s", "UPSTREAM_TIMEOUT=30s", "LOG_FORMAT=json", "ADMIN_ADDR=127.0.0.1:0",
	)
	start := func() (*exec.Cmd, *syncBuffer) { return startWorker(t, bin, env) }

	first, logs := start()
	// Wait until four calls are in flight.
	workertest.Wait(t, "four calls in flight", func() (bool, string) {
		return sb.TotalCalls() >= 4, fmt.Sprintf("%d calls; logs:\n%s", sb.TotalCalls(), logs.String())
	})
	if err := first.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("worker exit after SIGTERM: %v; logs:\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("worker did not exit after SIGTERM; logs:\n%s", logs.String())
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	info, err := insp.GetQueueInfo(tasks.QueuePandaPon)
	if err != nil {
		t.Fatal(err)
	}
	if info.Completed != 0 || info.Active != 0 || info.Pending != n {
		t.Fatalf("after SIGTERM: %d pending, %d active, %d completed; want all %d back in pending", info.Pending, info.Active, info.Completed, n)
	}

	// The upstream recovers: whatever each order's script had left, it now
	// answers at once.
	for _, id := range ids {
		sb.Script("pandapon", strings.TrimPrefix(id, "pandapon:"), sandbox.OK())
	}
	second, logs2 := start()
	workertest.WaitUpTo(t, time.Minute, fmt.Sprintf("%d completed after the restart", n), func() (bool, string) {
		info, err = insp.GetQueueInfo(tasks.QueuePandaPon)
		return err == nil && info.Completed == n, fmt.Sprintf("%+v, %v; logs:\n%s", info, err, logs2.String())
	})
	for _, id := range ids {
		order := strings.TrimPrefix(id, "pandapon:")
		if !sb.Cancelled("pandapon", order) {
			t.Errorf("order %s not cancelled at the upstream", order)
		}
	}
	if c, err := dlq.New(rdb).Count(t.Context(), ""); err != nil || c != 0 {
		t.Errorf("DLQ count %d (err %v), want 0", c, err)
	}
	_ = second.Process.Signal(syscall.SIGTERM)
	if err := second.Wait(); err != nil {
		t.Errorf("second worker exit: %v", err)
	}
}

// httpGet fetches url and returns the status and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// TestAdminServer runs the worker as main does and checks the admin server
// it starts: the log line with its address, readiness, the UI, metrics that
// count a real cancellation, and its end at shutdown.
func TestAdminServer(t *testing.T) {
	t.Parallel()
	redis := redistest.New(t)
	rdb := redis.Client(t)
	sb := sandbox.New(sandbox.Config{PandaPon: sandbox.PandaPonAccount{AccessKey: "ak", AccessSecret: "as-secret", UserID: "u1"}})
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	env := map[string]string{
		"REDIS_URL":         redis.URL,
		"PANDAPON_BASE_URL": srv.URL, "PANDAPON_ACCESS_KEY": "ak", "PANDAPON_ACCESS_SECRET": "as-secret", "PANDAPON_USER_ID": "u1",
		"ADMIN_ADDR": "127.0.0.1:0", "ADMIN_READONLY": "true", "LOG_FORMAT": "json",
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, nil, envFunc(env), &stdout, &stderr) }()

	// The log line "admin server listening" names the bound address.
	base := "http://" + logField(t, &stderr, "admin server listening", "addr", 20*time.Second)

	sb.Script("pandapon", "2542285634920880794", sandbox.OK())
	task, err := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: 2542285634920880794})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tasks.NewEnqueuer(rdb, tasks.Shards{}).Enqueue(t.Context(), task, false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sb.Called("pandapon", "2542285634920880794"):
	case <-time.After(10 * time.Second):
		t.Fatal("upstream never called")
	}
	// The counter is bumped right after the call returns: poll it.
	const counted = `cancelworker_attempts_total{class="success",code="",provider="pandapon"} 1`
	workertest.Wait(t, "/metrics to show "+counted, func() (bool, string) {
		_, body := httpGet(t, base+"/metrics")
		return strings.Contains(body, counted), fmt.Sprintf("%.3000s", body)
	})
	for path, want := range map[string]string{
		"/readyz":      "ready",
		"/healthz":     "ok",
		"/monitoring/": `FLAG_READ_ONLY="true"`,
		"/metrics":     `cancelworker_dlq_entries{provider="pandapon"} 0`,
	} {
		if code, body := httpGet(t, base+path); code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, want 200 holding %q", path, code, want)
		}
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after shutdown:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("worker did not stop")
	}
	if resp, err := http.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("the admin server still answers after the worker stopped: %d", resp.StatusCode)
	}
}

// TestAdminAddressInUse checks that the worker stops with exit 1, naming
// ADMIN_ADDR, when it cannot bind the admin server.
func TestAdminAddressInUse(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	redis := redistest.New(t)
	env := map[string]string{
		"REDIS_URL":         redis.URL,
		"PANDAPON_BASE_URL": "http://127.0.0.1:1", "PANDAPON_ACCESS_KEY": "ak", "PANDAPON_ACCESS_SECRET": "as-secret", "PANDAPON_USER_ID": "u1",
		"ADMIN_ADDR": busy.Addr().String(),
	}
	var stdout, stderr syncBuffer
	if code := run(t.Context(), nil, envFunc(env), &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "ADMIN_ADDR") || !strings.Contains(stderr.String(), "address already in use") {
		t.Errorf("stderr should name ADMIN_ADDR and the cause:\n%s", stderr.String())
	}
}

// TestCheck runs `worker check`: every check passes against a real Redis
// and a listening upstream, a refused upstream fails it, and so does an
// invalid configuration; nothing is ever sent to an upstream.
func TestCheck(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	var (
		mu   sync.Mutex
		sent int // requests the upstream received
	)
	up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		mu.Lock()
		sent++
		mu.Unlock()
	}))
	t.Cleanup(up.Close)
	base := map[string]string{
		"REDIS_URL":      srv.URL,
		"MEARI_BASE_URL": up.URL, "MEARI_PARTNER_KEY": "k", "MEARI_PARTNER_SECRET": "s3cr3t-value", "MEARI_SOURCE_APP": "72",
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name     string
		env      map[string]string
		wantCode int
		want     []string
	}{
		{name: "all good", env: base, wantCode: 0, want: []string{
			"ok    configuration: meari enabled, pandapon disabled", "ok    redis ", "Redis ", "maxmemory-policy",
			"ok    meari " + up.URL + ": TCP connection in", "no request sent", "ok    tracing: off"}},
		{name: "tracing on", env: with(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": up.URL}), wantCode: 0,
			want: []string{"ok    tracing " + up.URL + ": on: OTLP over HTTP/protobuf; TCP connection in"}},
		{name: "tracing endpoint unreachable", env: with(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + workertest.ClosedAddr(t)}), wantCode: 0,
			want: []string{"warn  tracing http://", "spans will be dropped"}},
		{name: "tracing misconfigured", env: with(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": up.URL, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "WORKER_DEQUEUERS": "0"}), wantCode: 1,
			want: []string{"fail  configuration:", "WORKER_DEQUEUERS (--dequeuers): must be at least 1", "OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf is supported"}},
		{name: "exporter misconfigured", env: with(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://x", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "5s", "OTEL_EXPORTER_OTLP_HEADERS": "api-key=hidden,x"}), wantCode: 1,
			want: []string{"fail  configuration:", "OTEL_EXPORTER_OTLP_ENDPOINT: must be an http:// or https:// URL with a host\nOTEL_EXPORTER_OTLP_HEADERS: entry 2 has no '='", `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: must be a positive whole number of milliseconds, got "5s"`}},
		{name: "OTEL variables left for other programs", env: with(map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_TRACES_EXPORTER": "console"}), wantCode: 0,
			want: []string{"ok    tracing: off"}},
		{name: "upstream refused", env: with(map[string]string{
			"PANDAPON_BASE_URL": "http://" + workertest.ClosedAddr(t), "PANDAPON_ACCESS_KEY": "k", "PANDAPON_ACCESS_SECRET": "s", "PANDAPON_USER_ID": "u"}),
			wantCode: 1, want: []string{"ok    meari ", "fail  pandapon http://", "refused"}},
		{name: "invalid configuration", env: with(map[string]string{"WORKER_DEQUEUERS": "0"}), wantCode: 1,
			want: []string{"fail  configuration:", "WORKER_DEQUEUERS (--dequeuers): must be at least 1, got 0"}},
		// What only the providers' own validation refused, at the
		// worker's start, once check had passed it.
		{name: "key with white space", env: with(map[string]string{"MEARI_PARTNER_KEY": "k "}), wantCode: 1,
			want: []string{"fail  configuration:", "MEARI_PARTNER_KEY (--meari-partner-key): must not start or end with white space"}},
		{name: "secret not ASCII", env: with(map[string]string{
			"PANDAPON_BASE_URL": up.URL, "PANDAPON_ACCESS_KEY": "k", "PANDAPON_ACCESS_SECRET": "s3cr3t-value-é", "PANDAPON_USER_ID": "u"}), wantCode: 1,
			want: []string{"fail  configuration:", "PANDAPON_ACCESS_SECRET: must be printable ASCII"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(t.Context(), []string{"check"}, envFunc(tt.env), &stdout, &stderr); code != tt.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, stdout.String())
				}
			}
			if o := stdout.String() + stderr.String(); strings.Contains(o, "s3cr3t-value") || strings.Contains(o, "hidden") {
				t.Error("the output shows the secret or a header's value")
			}
			if tt.wantCode == 0 || !strings.Contains(stdout.String(), "fail  configuration:") {
				return
			}
			// The worker refuses it at start the same way: one validation.
			stderr.Reset()
			if code := run(t.Context(), nil, envFunc(tt.env), io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), tt.want[1]) {
				t.Errorf("the worker itself: exit %d, %s; want 2 and %q", code, stderr.String(), tt.want[1])
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if sent != 0 {
		t.Errorf("the upstream received %d requests; check must send none", sent)
	}
}
