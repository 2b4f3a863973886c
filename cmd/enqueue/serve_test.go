package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/tasks"
)

// logWatcher is serve's stderr in a test: it keeps every line and hands
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

// serving is one `enqueue serve` run in the background.
type serving struct {
	t      *testing.T
	url    string
	stderr *logWatcher
	stop   context.CancelFunc
	exited chan int
}

// startServe runs `enqueue serve` with args on 127.0.0.1:0 against the
// harness's Redis and waits until it listens.
func (h *harness) startServe(args ...string) *serving {
	h.t.Helper()
	ctx, stop := context.WithCancel(h.t.Context())
	s := &serving{t: h.t, stderr: newLogWatcher(), stop: stop, exited: make(chan int, 1)}
	args = append([]string{"--redis-url", h.srv.URL, "serve", "--addr", "127.0.0.1:0"}, args...)
	go func() {
		s.exited <- runIO(ctx, args, strings.NewReader(""), io.Discard, s.stderr, func(k string) string { return h.env[k] })
	}()
	select {
	case addr := <-s.listening():
		s.url = "http://" + addr
	case code := <-s.exited:
		h.t.Fatalf("serve exited with %d before listening:\n%s", code, s.stderr)
	case <-time.After(10 * time.Second):
		h.t.Fatalf("serve did not listen within 10s:\n%s", s.stderr)
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
		setup func(t *testing.T, h *harness) []string
		token string // what the client sends
		auth  bool
	}{
		{name: "token file", token: token, auth: true, setup: func(t *testing.T, h *harness) []string {
			path := filepath.Join(t.TempDir(), "intake_token")
			if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			h.env[envIntakeTokenFile] = path
			return nil
		}},
		{name: "token from the environment", token: token, auth: true, setup: func(_ *testing.T, h *harness) []string {
			h.env[envIntakeToken] = token
			return nil
		}},
		{name: "no token on loopback", setup: func(*testing.T, *harness) []string { return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
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
			info := h.taskInfo(tasks.QueuePandaPon, "pandapon:2542285634920880794")
			if !strings.Contains(string(info.Payload), `"order_id":2542285634920880794,`) {
				t.Errorf("payload: want the order ID exact, got %s", info.Payload)
			}
			h.taskInfo(tasks.QueueMeari, "meari:72:1:A1")
			if code, body := s.call(http.MethodGet, "/v1/cancellations/pandapon/2542285634920880794", tt.token, ""); code != http.StatusOK || !strings.Contains(body, `"state":"pending"`) {
				t.Errorf("status: want 200 pending, got %d %s", code, body)
			}
			if code, body := s.call(http.MethodGet, "/v1/cancellations/pandapon/1", tt.token, ""); code != http.StatusNotFound {
				t.Errorf("status of an unknown order: want 404, got %d %s", code, body)
			}

			if code := s.shutdown(); code != exitOK {
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
		{name: "flag refused", args: []string{"serve", "--token", short + short}, want: "--token: secrets are not taken on the command line"},
		{name: "short environment", args: []string{"serve"}, env: map[string]string{envIntakeToken: short}, want: "INTAKE_TOKEN: the token must be at least 16 characters, got 8"},
		{name: "short file", args: []string{"serve", "--token-file", "TOKENFILE"}, want: "--token-file: the token must be at least 16 characters, got 8"},
		{name: "both, with a bad address", args: []string{"serve", "--token-file", "TOKENFILE", "--addr", "x"}, env: map[string]string{envIntakeToken: short + short}, want: "INTAKE_TOKEN: cannot be combined with --token-file: set one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(path, []byte(short), 0o600); err != nil {
				t.Fatal(err)
			}
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "TOKENFILE", path)
			}
			args = append([]string{"--redis-url", "redis://" + closedAddr(t)}, args...)
			for _, json := range []bool{false, true} {
				if json {
					args = append([]string{"--json"}, args...)
				}
				r := execute(t, tt.env, args...)
				if r.code != exitUsage || !strings.Contains(r.stderr, tt.want) {
					t.Errorf("json %v: want exit 2 and %q, got %s", json, tt.want, r)
				}
				if strings.Contains(r.stdout+r.stderr, short) {
					t.Errorf("json %v: the output shows the token:\n%s", json, r)
				}
			}
		})
	}
}

// TestServeListenFails checks that an address in use is a failure (exit 1).
func TestServeListenFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	s := h.startServe()
	addr := strings.TrimPrefix(s.url, "http://")
	r := h.run("serve", "--addr", addr)
	if r.code != exitFailure || !strings.Contains(r.stderr, "listen on "+addr) {
		t.Errorf("want exit 1 naming the address, got %s", r)
	}
	if code := s.shutdown(); code != exitOK {
		t.Errorf("the first server: want exit 0, got %d", code)
	}
}
