package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
)

// logWatcher is the intake's stderr in a test: it keeps every line and hands
// over the address from the "listening" line.
type logWatcher struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	partial   []byte
	listening chan string
}

func newLogWatcher() *logWatcher { return &logWatcher{listening: make(chan string, 1)} }

func (w *logWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		var l struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(w.partial[:i], &l) == nil && l.Msg == "listening" {
			w.listening <- l.Addr
		}
		w.partial = w.partial[i+1:]
	}
}

func (w *logWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// serving is one intake (Main) run in the background.
type serving struct {
	t      *testing.T
	url    string
	stderr *logWatcher
	stop   context.CancelFunc
	exited chan int
}

// serveHarness is one test's Redis and environment for Main.
type serveHarness struct {
	t    *testing.T
	srv  *redistest.Server
	insp *asynq.Inspector
	env  map[string]string
}

func newServeHarness(t *testing.T) *serveHarness {
	t.Helper()
	srv := redistest.New(t)
	return &serveHarness{t: t, srv: srv, insp: asynq.NewInspectorFromRedisClient(srv.Client(t)), env: map[string]string{"MEARI_SOURCE_APP": "72"}}
}

// run runs Main to its end with args and returns its exit code and stderr.
func (h *serveHarness) run(args ...string) (int, string) {
	h.t.Helper()
	var stderr bytes.Buffer
	code := Main(h.t.Context(), append([]string{"--redis-url", h.srv.URL}, args...), func(k string) string { return h.env[k] }, &stderr)
	return code, stderr.String()
}

// startServe runs Main with args on 127.0.0.1:0 against the harness's
// Redis and waits until it listens.
func (h *serveHarness) startServe(args ...string) *serving {
	h.t.Helper()
	ctx, stop := context.WithCancel(h.t.Context())
	s := &serving{t: h.t, stderr: newLogWatcher(), stop: stop, exited: make(chan int, 1)}
	args = append([]string{"--redis-url", h.srv.URL, "--addr", "127.0.0.1:0"}, args...)
	go func() {
		s.exited <- Main(ctx, args, func(k string) string { return h.env[k] }, s.stderr)
	}()
	select {
	case addr := <-s.listening():
		s.url = "http://" + addr
	case code := <-s.exited:
		h.t.Fatalf("the intake exited with %d before listening:\n%s", code, s.stderr)
	case <-time.After(10 * time.Second):
		h.t.Fatalf("the intake did not listen within 10s:\n%s", s.stderr)
	}
	h.t.Cleanup(stop)
	return s
}

func (s *serving) listening() <-chan string { return s.stderr.listening }

// shutdown stops serve as SIGTERM would and returns its exit code.
func (s *serving) shutdown() int {
	s.t.Helper()
	s.stop()
	select {
	case code := <-s.exited:
		return code
	case <-time.After(shutdownTimeout + 5*time.Second):
		s.t.Fatalf("serve did not stop:\n%s", s.stderr)
	}
	return -1
}

// call sends one request and returns the status and body.
func (s *serving) call(method, path, token, body string) (int, string) {
	s.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(s.t.Context(), method, s.url+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestServe(t *testing.T) {
	t.Parallel()
	const token = "intake-token-4d9b2c7e1f" // a test value, not a secret
	tests := []struct {
		name string
		// setup returns the extra flags and sets the harness's environment.
		setup func(t *testing.T, h *serveHarness) []string
		token string // what the client sends
		auth  bool
	}{
		{name: "token file", token: token, auth: true, setup: func(t *testing.T, h *serveHarness) []string {
			path := filepath.Join(t.TempDir(), "intake_token")
			if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			h.env["INTAKE_TOKEN_FILE"] = path
			return nil
		}},
		{name: "token from the environment", token: token, auth: true, setup: func(_ *testing.T, h *serveHarness) []string {
			h.env["INTAKE_TOKEN"] = token
			return nil
		}},
		{name: "no token on loopback", setup: func(*testing.T, *serveHarness) []string { return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newServeHarness(t)
			s := h.startServe(tt.setup(t, h)...)

			if code, body := s.call(http.MethodGet, "/healthz", "", ""); code != http.StatusOK || body != "{\"status\":\"ok\"}\n" {
				t.Errorf("healthz: want 200 ok, got %d %s", code, body)
			}
			if code, body := s.call(http.MethodGet, "/readyz", "", ""); code != http.StatusOK {
				t.Errorf("readyz: want 200, got %d %s", code, body)
			}
			item := `[{"provider":"pandapon","orderId":2542285634920880794},{"provider":"meari","userAccount":"u@x.com","orderType":1,"orderNum":"A1"}]`
			if tt.auth {
				if code, body := s.call(http.MethodPost, "/v1/cancellations", "", item); code != http.StatusUnauthorized {
					t.Errorf("without the token: want 401, got %d %s", code, body)
				}
				if code, body := s.call(http.MethodPost, "/v1/cancellations", token+"-not", item); code != http.StatusUnauthorized {
					t.Errorf("with a wrong token: want 401, got %d %s", code, body)
				}
			}
			code, body := s.call(http.MethodPost, "/v1/cancellations", tt.token, item)
			if code != http.StatusAccepted || !strings.Contains(body, `"task_id":"pandapon:2542285634920880794"`) || !strings.Contains(body, `"task_id":"meari:72:1:A1"`) {
				t.Fatalf("post: want 202 with both tasks, got %d %s", code, body)
			}
			info, err := h.insp.GetTaskInfo(tasks.QueuePandaPon, "pandapon:2542285634920880794")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(info.Payload), `"order_id":2542285634920880794,`) {
				t.Errorf("payload: want the order ID exact, got %s", info.Payload)
			}
			if _, err := h.insp.GetTaskInfo(tasks.QueueMeari, "meari:72:1:A1"); err != nil {
				t.Fatal(err)
			}
			if code, body := s.call(http.MethodGet, "/v1/cancellations/pandapon/2542285634920880794", tt.token, ""); code != http.StatusOK || !strings.Contains(body, `"state":"pending"`) {
				t.Errorf("status: want 200 pending, got %d %s", code, body)
			}
			if code, body := s.call(http.MethodGet, "/v1/cancellations/pandapon/1", tt.token, ""); code != http.StatusNotFound {
				t.Errorf("status of an unknown order: want 404, got %d %s", code, body)
			}

			if code := s.shutdown(); code != ExitOK {
				t.Errorf("after SIGTERM: want exit 0, got %d:\n%s", code, s.stderr)
			}
			logs := s.stderr.String()
			for _, want := range []string{`"msg":"listening"`, `"msg":"request","method":"POST","path":"/v1/cancellations","status":202`, `"msg":"stopped"`} {
				if !strings.Contains(logs, want) {
					t.Errorf("stderr: want %s in it, got:\n%s", want, logs)
				}
			}
			if warned := strings.Contains(logs, "authentication is off"); warned == tt.auth {
				t.Errorf("stderr: want the auth-off warning %v, got:\n%s", !tt.auth, logs)
			}
			if strings.Contains(logs, token) {
				t.Errorf("stderr shows the token:\n%s", logs)
			}
		})
	}
}

// TestServeTokenNeverShown checks that a bad token configuration is
// reported without the token.
func TestServeTokenNeverShown(t *testing.T) {
	t.Parallel()
	const short = "s3cr3t-x" // too short, and must not be echoed
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "flag refused", args: []string{"--token", short + short}, want: "--token: secrets are not taken on the command line"},
		{name: "short environment", env: map[string]string{"INTAKE_TOKEN": short}, want: "INTAKE_TOKEN: the token must be at least 16 characters, got 8"},
		{name: "short file", args: []string{"--token-file", "TOKENFILE"}, want: "--token-file: the token must be at least 16 characters, got 8"},
		{name: "both, with a bad address", args: []string{"--token-file", "TOKENFILE", "--addr", "x"}, env: map[string]string{"INTAKE_TOKEN": short + short}, want: "INTAKE_TOKEN: set either it or --token-file, not both"},
		{name: "not loopback without a token", args: []string{"--addr", "0.0.0.0:0"}, want: "INTAKE_TOKEN: is required (or INTAKE_TOKEN_FILE (--token-file)) when listening on 0.0.0.0:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(path, []byte(short), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"--redis-url", "redis://" + workertest.ClosedAddr(t)}
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "TOKENFILE", path))
			}
			var stderr bytes.Buffer
			code := Main(t.Context(), args, func(k string) string { return tt.env[k] }, &stderr)
			if code != ExitUsage || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("want exit 2 and %q, got %d:\n%s", tt.want, code, stderr.String())
			}
			if strings.Contains(stderr.String(), short) {
				t.Errorf("the output shows the token:\n%s", stderr.String())
			}
		})
	}
}

// TestServeListenFails checks that an address in use is a failure (exit 1).
func TestServeListenFails(t *testing.T) {
	t.Parallel()
	h := newServeHarness(t)
	s := h.startServe()
	addr := strings.TrimPrefix(s.url, "http://")
	code, stderr := h.run("--addr", addr)
	if code != ExitFailure || !strings.Contains(stderr, "listen on "+addr) {
		t.Errorf("want exit 1 naming the address, got %d:\n%s", code, stderr)
	}
	if code := s.shutdown(); code != ExitOK {
		t.Errorf("the first server: want exit 0, got %d", code)
	}
}

// TestMainUsage checks that each bad setting is a usage error (exit 2)
// naming it, all of them at once, one line each.
func TestMainUsage(t *testing.T) {
	t.Parallel()
	const notLoopback = "INTAKE_TOKEN: is required (or INTAKE_TOKEN_FILE (--token-file)) when listening on "
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{name: "not loopback without a token", args: []string{"--addr", "0.0.0.0:8081"}, want: []string{notLoopback + "0.0.0.0:8081, which is not a loopback address"}},
		{name: "every interface without a token", env: map[string]string{"INTAKE_ADDR": ":8081"}, want: []string{notLoopback + ":8081, which is not a loopback address"}},
		{name: "a host name without a token", args: []string{"--addr", "intake.internal:8081"}, want: []string{notLoopback + "intake.internal:8081"}},
		// Only the log level is wrong: LOCALHOST needs no token.
		{name: "localhost in any case is loopback", args: []string{"--addr", "LOCALHOST:0"}, env: map[string]string{"LOG_LEVEL": "loud"}, want: []string{`LOG_LEVEL (--log-level): must be`}},
		{name: "bad address", args: []string{"--addr", "8081"}, want: []string{`--addr: must be host:port, e.g. 127.0.0.1:8081, got "8081"`}},
		{name: "bad port from the environment", env: map[string]string{"INTAKE_ADDR": "127.0.0.1:http"}, want: []string{`INTAKE_ADDR (--addr): must have a port from 0 to 65535, got "http"`}},
		{name: "token file missing", args: []string{"--token-file", "/nonexistent/token"}, want: []string{"--token-file: cannot read the file: no such file or directory"}},
		{name: "token and token file", args: []string{"--token-file", "/nonexistent/token"}, env: map[string]string{"INTAKE_TOKEN": "0123456789abcdef0123"},
			want: []string{"INTAKE_TOKEN: set either it or --token-file, not both"}},
		{name: "token flag refused", args: []string{"--token="}, want: []string{"--token: secrets are not taken on the command line"}},
		{name: "bad allowed host", args: []string{"--allowed-hosts", "https://x"}, want: []string{`--allowed-hosts: "https://x" is not a host name`}},
		{name: "bad timeout", args: []string{"--timeout", "0s"}, want: []string{"--timeout: must be from 1ms to 1h0m0s, got 0s"}},
		{name: "bad source app", env: map[string]string{"MEARI_SOURCE_APP": "x"}, want: []string{`MEARI_SOURCE_APP (--source-app): must be an integer, got "x"`}},
		{name: "bad log level", env: map[string]string{"LOG_LEVEL": "loud"}, want: []string{`LOG_LEVEL (--log-level): must be debug, info, warn or error, got "loud"`}},
		{name: "redis URL with a password on the command line", args: []string{"--redis-url", "redis://:pw-9@127.0.0.1:1/0"}, want: []string{"--redis-url: must not hold a password on the command line"}},
		{name: "everything at once", args: []string{"--addr", "x", "--timeout", "soon"}, env: map[string]string{"LOG_FORMAT": "xml"}, want: []string{
			`--addr: must be host:port`, `LOG_FORMAT (--log-format): must be json or console, got "xml"`, `--timeout: must be a duration such as 30s or 2m, got "soon"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"--redis-url", "redis://" + workertest.ClosedAddr(t)}, tt.args...)
			if slices.Contains(tt.args, "--redis-url") {
				args = tt.args
			}
			var stderr bytes.Buffer
			code := Main(t.Context(), args, func(k string) string { return tt.env[k] }, &stderr)
			if code != ExitUsage {
				t.Fatalf("want exit 2, got %d:\n%s", code, stderr.String())
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if len(lines) != len(tt.want)+1 || lines[0] != "intake: invalid configuration:" {
				t.Fatalf("want the heading and %d problems, got:\n%s", len(tt.want), stderr.String())
			}
			for _, w := range tt.want {
				if !slices.ContainsFunc(lines[1:], func(l string) bool { return strings.HasPrefix(l, w) }) {
					t.Errorf("want a line starting %q, got:\n%s", w, stderr.String())
				}
			}
			if strings.Contains(stderr.String(), "pw-9") || strings.Contains(stderr.String(), "0123456789abcdef0123") {
				t.Errorf("the output shows a secret:\n%s", stderr.String())
			}
		})
	}
}
