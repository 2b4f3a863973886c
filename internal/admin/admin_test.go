package admin_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/admin"
	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/httpserve"
	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// newServer returns an admin server (not listening) over a real Redis, its
// handler served by an httptest server, and the Redis client.
func newServer(t *testing.T, o admin.Options) (*admin.Server, *httptest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.New(t)
	rdb := srv.Client(t)
	if !o.Redis.Valid() {
		o.Redis = workertest.Conn(srv)
	}
	if o.DLQ == nil {
		o.DLQ = dlq.New(rdb)
	}
	if o.Enqueuer == nil {
		o.Enqueuer = tasks.NewEnqueuer(rdb, tasks.Shards{})
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Metrics == nil {
		o.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "# metrics") })
	}
	s, err := admin.New(o)
	if err != nil {
		t.Fatalf("admin.New: %v", err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return s, hs, rdb
}

// TestBasicAuth checks who needs credentials: everything but health off
// loopback, and everything but health wherever credentials are configured.
// The decision follows the configured address; the test server itself
// listens on loopback.
func TestBasicAuth(t *testing.T) {
	t.Parallel()
	const user, pass = "ops", "correct horse battery"
	configs := map[string]config.Admin{
		"public":         {Addr: "0.0.0.0:8080", User: user, Password: pass},
		"loopback":       {Addr: "127.0.0.1:8080"},
		"loopback+creds": {Addr: "[::1]:8080", User: user, Password: pass},
		"public+pprof":   {Addr: "0.0.0.0:8080", User: user, Password: pass, Profiling: true},
		"loopback+pprof": {Addr: "127.0.0.1:8080", Profiling: true},
	}
	servers := map[string]*httptest.Server{}
	for name, c := range configs {
		_, hs, _ := newServer(t, admin.Options{Config: c})
		servers[name] = hs
	}
	tests := []struct {
		name       string
		server     string
		path       string
		user, pass string
		want       int
	}{
		{name: "public metrics without credentials", server: "public", path: "/metrics", want: 401},
		{name: "public metrics wrong password", server: "public", path: "/metrics", user: user, pass: "wrong", want: 401},
		{name: "public metrics wrong user", server: "public", path: "/metrics", user: "root", pass: pass, want: 401},
		{name: "public metrics password prefix", server: "public", path: "/metrics", user: user, pass: "correct", want: 401},
		{name: "public metrics right credentials", server: "public", path: "/metrics", user: user, pass: pass, want: 200},
		{name: "public UI without credentials", server: "public", path: "/monitoring/", want: 401},
		{name: "public UI right credentials", server: "public", path: "/monitoring/", user: user, pass: pass, want: 200},
		{name: "public UI API without credentials", server: "public", path: "/monitoring/api/queues", want: 401},
		{name: "public UI API right credentials", server: "public", path: "/monitoring/api/queues", user: user, pass: pass, want: 200},
		{name: "public DLQ page without credentials", server: "public", path: "/monitoring/dlq", want: 401},
		{name: "public DLQ page right credentials", server: "public", path: "/monitoring/dlq", user: user, pass: pass, want: 200},
		{name: "public index without credentials", server: "public", path: "/", want: 401},
		{name: "public healthz open", server: "public", path: "/healthz", want: 200},
		{name: "public readyz open", server: "public", path: "/readyz", want: 200},
		{name: "loopback metrics open", server: "loopback", path: "/metrics", want: 200},
		{name: "loopback UI open", server: "loopback", path: "/monitoring/", want: 200},
		{name: "loopback DLQ page open", server: "loopback", path: "/monitoring/dlq", want: 200},
		{name: "loopback with credentials asks for them", server: "loopback+creds", path: "/metrics", want: 401},
		{name: "loopback with credentials accepts them", server: "loopback+creds", path: "/monitoring/", user: user, pass: pass, want: 200},
		{name: "loopback with credentials healthz open", server: "loopback+creds", path: "/healthz", want: 200},
		{name: "unknown path", server: "loopback", path: "/nope", want: 404},
		{name: "profiles off by default", server: "loopback", path: "/debug/pprof/", want: 404},
		{name: "public profiles without credentials", server: "public+pprof", path: "/debug/pprof/", want: 401},
		{name: "public heap profile without credentials", server: "public+pprof", path: "/debug/pprof/heap", want: 401},
		{name: "public profiles right credentials", server: "public+pprof", path: "/debug/pprof/", user: user, pass: pass, want: 200},
		{name: "public heap profile right credentials", server: "public+pprof", path: "/debug/pprof/heap", user: user, pass: pass, want: 200},
		{name: "command line not served", server: "public+pprof", path: "/debug/pprof/cmdline", user: user, pass: pass, want: 404},
		{name: "loopback goroutine dump", server: "loopback+pprof", path: "/debug/pprof/goroutine?debug=1", want: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, servers[tt.server].URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.user != "" {
				req.SetBasicAuth(tt.user, tt.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("GET %s: %d, want %d", tt.path, resp.StatusCode, tt.want)
			}
			if tt.want == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("401 without a Basic challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestNewRefusesPublicWithoutCredentials(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  config.Admin
	}{
		{name: "wildcard", cfg: config.Admin{Addr: ":8080"}},
		{name: "public IP, user only", cfg: config.Admin{Addr: "192.0.2.1:8080", User: "ops"}},
		{name: "host name", cfg: config.Admin{Addr: "admin.example:8080", Password: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := admin.New(admin.Options{Config: tt.cfg, Redis: config.RedisConn{Mode: config.RedisSingle, Single: &redis.Options{Addr: "127.0.0.1:1"}}, DLQ: dlq.New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})), Logger: zap.NewNop()})
			if err == nil || !strings.Contains(err.Error(), "ADMIN_USER") || !strings.Contains(err.Error(), "ADMIN_PASSWORD") {
				t.Fatalf("admin.New = %v, want an error naming ADMIN_USER and ADMIN_PASSWORD", err)
			}
		})
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	for _, ro := range []bool{false, true} {
		t.Run(fmt.Sprintf("readonly=%v", ro), func(t *testing.T) {
			t.Parallel()
			_, hs, _ := newServer(t, admin.Options{Config: config.Admin{Addr: "127.0.0.1:0", ReadOnly: ro}})
			code, body := get(t, hs.URL, "/monitoring/", "", "")
			if code != 200 || !strings.Contains(body, fmt.Sprintf(`FLAG_READ_ONLY="%v"`, ro)) {
				t.Errorf("UI page: %d, want 200 with FLAG_READ_ONLY=%v", code, ro)
			}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, hs.URL+"/monitoring/api/queues/cancel:meari:pause", nil)
			req.Header.Set("Origin", hs.URL) // as the UI's own page sends it
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.StatusCode == http.StatusMethodNotAllowed; got != ro {
				t.Errorf("POST pause: %d; read-only refusal %v, want %v", resp.StatusCode, got, ro)
			}
		})
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	r := newRig(t, config.Admin{})
	if code, body := get(t, r.base, "/readyz", "", ""); code != 200 || body != "{\"status\":\"ready\"}\n" {
		t.Fatalf("readyz with Redis and worker up: %d %q, want 200 ready", code, body)
	}
	if code, body := get(t, r.base, "/healthz", "", ""); code != 200 || body != "{\"status\":\"ok\"}\n" {
		t.Fatalf("healthz: %d %q", code, body)
	}

	// Redis unreachable: nothing listens on port 1.
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { dead.Close() })
	_, hs, _ := newServer(t, admin.Options{
		Config: config.Admin{Addr: "127.0.0.1:0"},
		Checks: []httpserve.Check{httpserve.RedisCheck(dead), admin.WorkerCheck(r.Worker.Running)},
	})
	code, body := get(t, hs.URL, "/readyz", "", "")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with Redis down: %d %q, want 503", code, body)
	}
	contains(t, "readyz with Redis down", body, `"status":"unavailable"`, `"reason":"redis: `, "127.0.0.1:1")
	if strings.Contains(body, "worker:") {
		t.Errorf("readyz blames the running worker:\n%s", body)
	}
	if code, _ := get(t, hs.URL, "/healthz", "", ""); code != 200 {
		t.Errorf("healthz with Redis down: %d, want 200", code)
	}

	// The worker shut down, Redis up.
	r.Worker.Shutdown()
	code, body = get(t, r.base, "/readyz", "", "")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("readyz after worker shutdown: %d %q, want 503", code, body)
	}
	contains(t, "readyz after worker shutdown", body, "worker: the asynq server is shutting down")
}

func TestReadyzCheckTimeout(t *testing.T) {
	t.Parallel()
	hang := httpserve.Check{Name: "slow", Func: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	_, hs, _ := newServer(t, admin.Options{Config: config.Admin{Addr: "127.0.0.1:0"}, Checks: []httpserve.Check{hang}, CheckTimeout: 50 * time.Millisecond})
	code, body := get(t, hs.URL, "/readyz", "", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "slow: context deadline exceeded") {
		t.Fatalf("readyz with a hanging check: %d %q, want 503 naming it", code, body)
	}
}

func TestDLQPage(t *testing.T) {
	t.Parallel()
	_, hs, rdb := newServer(t, admin.Options{Config: config.Admin{Addr: "127.0.0.1:0"}})
	store := dlq.New(rdb)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	put := func(i int, provider, order string, e dlq.Entry) {
		e.ID, e.Provider, e.Order = provider+":"+order, provider, order
		e.TaskType, e.Queue = "order:cancel:"+provider, "cancel:"+provider
		e.Payload = []byte(`{}`)
		e.Attempts = i + 1
		e.LastFailedAt = base.Add(time.Duration(i) * time.Minute)
		if e.Reason == "" {
			e.Reason = dlq.ReasonPermanent
		}
		if _, err := store.Put(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 7 {
		put(i, "meari", fmt.Sprintf("1:M-%d", i), dlq.Entry{UpstreamCode: "4001", Message: "server not found"})
	}
	put(7, "pandapon", "2542285634920880794", dlq.Entry{Reason: dlq.ReasonRetriesExhausted, UpstreamCode: "http_503", OutcomeUnknown: true, Message: "<script>alert(1)</script>"})
	put(8, "pandapon", "2542285634920880795", dlq.Entry{UpstreamCode: "200"})
	put(9, "pandapon", "2542285634920880796", dlq.Entry{UpstreamCode: "200"})

	tests := []struct {
		name     string
		query    string
		want     int
		rows     int
		contains []string
		lacks    []string
	}{
		{name: "first page of all", query: "?size=3", want: 200, rows: 3,
			contains: []string{"Entries 1–3 of 10, page 1 of 4", "all (10)", "meari (7)", "pandapon (3)", `data-id="meari:1:M-0"`, "next &rarr;", "page=2&amp;size=3", "4001", "2026-03-01 12:00:00Z"},
			lacks:    []string{"previous", `data-id="meari:1:M-3"`}},
		{name: "provider filter, last page", query: "?provider=pandapon&size=2&page=2", want: 200, rows: 1,
			contains: []string{"Entries 3–3 of 3, page 2 of 2", `data-id="pandapon:2542285634920880796"`, "&larr; previous", "provider=pandapon&amp;size=2"},
			lacks:    []string{"next &rarr;", `data-id="meari:`}},
		{name: "reason, code, outcome unknown, escaping", query: "?provider=pandapon", want: 200, rows: 3,
			contains: []string{"retries exhausted", "http_503", `class="unknown"`, "&lt;script&gt;alert(1)&lt;/script&gt;", "cancel:pandapon/tasks/pandapon:2542285634920880794"},
			lacks:    []string{"<script>alert(1)"}},
		{name: "past the last page", query: "?page=99", want: 200, rows: 0, contains: []string{"No entries on page 99; there are 10 in 1 pages."}},
		{name: "unknown provider", query: "?provider=acme", want: 400, contains: []string{`provider: must be one of meari, pandapon, got "acme"`}},
		{name: "page zero", query: "?page=0", want: 400, contains: []string{"page: must be an integer from 1"}},
		{name: "size too large", query: "?size=501", want: 400, contains: []string{"size: must be an integer from 1 to 500"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, body := get(t, hs.URL, "/monitoring/dlq"+tt.query, "", "")
			if code != tt.want {
				t.Fatalf("GET %s: %d, want %d\n%s", tt.query, code, tt.want, body)
			}
			if n := strings.Count(body, "<tr data-id="); n != tt.rows {
				t.Errorf("%d rows, want %d", n, tt.rows)
			}
			contains(t, "page", body, tt.contains...)
			for _, l := range tt.lacks {
				if strings.Contains(body, l) {
					t.Errorf("page holds %q", l)
				}
			}
		})
	}

	t.Run("read-only", func(t *testing.T) {
		t.Parallel()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, hs.URL+"/monitoring/dlq", nil)
		req.Header.Set("Origin", hs.URL)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST: %d, want 405", resp.StatusCode)
		}
	})
}

func TestDLQLinkInUI(t *testing.T) {
	t.Parallel()
	_, hs, _ := newServer(t, admin.Options{Config: config.Admin{Addr: "127.0.0.1:0"}})
	for _, path := range []string{"/monitoring/", "/monitoring/queues/cancel:meari"} {
		code, body := get(t, hs.URL, path, "", "")
		if code != 200 || strings.Count(body, `id="cancelworker-dlq-link"`) != 1 || !strings.Contains(body, `href="/monitoring/dlq"`) {
			t.Errorf("GET %s: %d, want 200 with one link to the dead-letter page", path, code)
		}
		if i, j := strings.Index(body, "cancelworker-dlq-link"), strings.LastIndex(body, "</body>"); i < 0 || j < i {
			t.Errorf("GET %s: the link is not inside the body", path)
		}
	}
	code, body := get(t, hs.URL, "/monitoring/api/queues", "", "")
	if code != 200 || !strings.HasPrefix(body, `{"queues":`) || strings.Contains(body, "cancelworker-dlq-link") {
		t.Errorf("API: %d %q, want 200 JSON, untouched", code, body)
	}
}

func TestStartAndShutdown(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	tests := []struct {
		name     string
		fallback bool
		wantErr  string
	}{
		{name: "address in use fails", wantErr: "ADMIN_ADDR"},
		{name: "address in use falls back to a free port", fallback: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			core, logs := observer.New(zapcore.InfoLevel)
			s, _, _ := newServer(t, admin.Options{Config: config.Admin{Addr: busy.Addr().String()}, Logger: zap.New(core), FallbackToFreePort: tt.fallback})
			err := s.Start()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "address already in use") {
					t.Fatalf("Start = %v, want an error naming %s and the cause", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			if s.Addr() == "" || s.Addr() == busy.Addr().String() {
				t.Fatalf("Addr = %q, want a free port other than %s", s.Addr(), busy.Addr())
			}
			lines := logs.FilterMessage("admin server listening").All()
			if len(lines) != 1 || lines[0].ContextMap()["addr"] != s.Addr() {
				t.Fatalf("want one %q log line with addr %s, got %v", "admin server listening", s.Addr(), lines)
			}
			if code, _ := get(t, s.URL(), "/healthz", "", ""); code != 200 {
				t.Fatalf("healthz: %d", code)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if resp, err := http.Get(s.URL() + "/healthz"); err == nil {
				resp.Body.Close()
				t.Fatalf("healthz answered %d after Shutdown", resp.StatusCode)
			}
		})
	}
}

// TestDLQPageCorruptEntry checks that an undecodable entry is shown as
// corrupt among the others, and that bidirectional controls in stored
// text do not reach the page.
func TestDLQPageCorruptEntry(t *testing.T) {
	t.Parallel()
	_, hs, rdb := newServer(t, admin.Options{Config: config.Admin{Addr: "127.0.0.1:0"}})
	store := dlq.New(rdb)
	good := dlq.Entry{ID: "meari:72:1:GOOD", Provider: "meari", Order: "1:GOOD", TaskType: tasks.TypeMeariCancel, Queue: tasks.QueueMeari,
		Reason: dlq.ReasonPermanent, UpstreamCode: "4001", Message: "upstream said \u202eevil"}
	if _, err := store.Put(t.Context(), good); err != nil {
		t.Fatal(err)
	}
	const bad = "pandapon:77"
	if err := rdb.HSet(t.Context(), dlq.PrefixDefault+"entries", bad, `{"id":"pandapon:77","provider":"pandapon","attempts":"x"}`).Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"by_time", "by_time:pandapon"} {
		if err := rdb.ZAdd(t.Context(), dlq.PrefixDefault+k, redis.Z{Score: 1, Member: bad}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	code, body := get(t, hs.URL, "/monitoring/dlq", "", "")
	if code != 200 {
		t.Fatalf("GET /monitoring/dlq: %d\n%s", code, body)
	}
	contains(t, "DLQ page", body, `data-id="meari:72:1:GOOD"`, "4001", `data-id="pandapon:77" class="corrupt"`, "corrupt entry:", "cannot unmarshal string", "upstream said  evil")
	if strings.Contains(body, "\u202e") {
		t.Errorf("the page carries U+202E")
	}
}
