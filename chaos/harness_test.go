// Package chaos holds the fault scenarios of `make chaos`: the real worker
// binary (and the enqueue and intake binaries), a real redis-server this
// harness starts, kills and restarts, and the sandbox upstream on a real
// HTTP server, with exact counts asserted. They run only with CHAOS=1
// (make chaos); each is bounded in tasks and time.
package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
)

// bins are the binaries built once for every scenario: worker, enqueue,
// intake.
var bins = map[string]string{}

func TestMain(m *testing.M) {
	if os.Getenv("CHAOS") != "1" {
		fmt.Println("chaos: skipped; run with CHAOS=1 (make chaos)")
		os.Exit(0)
	}
	// The scenarios take Redis down on purpose: go-redis's dial logs
	// would drown the output.
	redis.SetLogger(&logging.VoidLogger{})
	dir, err := os.MkdirTemp("", "chaos-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, name := range []string{"worker", "enqueue", "intake"} {
		bin := filepath.Join(dir, name)
		if out, err := exec.Command("go", "build", "-o", bin, "../cmd/"+name).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, out)
			os.Exit(1)
		}
		bins[name] = bin
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// redisProc is a redis-server this harness owns: it can kill it with
// SIGKILL and start it again on the same port and files.
type redisProc struct {
	t    *testing.T
	port int
	dir  string
	aof  bool
	cmd  *exec.Cmd
}

func startRedis(t *testing.T, aof bool) *redisProc {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is required: %v", err)
	}
	r := &redisProc{t: t, port: freePort(t), dir: t.TempDir(), aof: aof}
	r.start()
	t.Cleanup(func() { r.kill() })
	return r
}

func (r *redisProc) start() {
	r.t.Helper()
	args := []string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir, "--save", "", "--protected-mode", "yes"}
	if r.aof {
		args = append(args, "--appendonly", "yes", "--appendfsync", "everysec")
	} else {
		args = append(args, "--appendonly", "no")
	}
	r.cmd = exec.Command("redis-server", args...)
	r.cmd.Stdout, r.cmd.Stderr = io.Discard, io.Discard
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1})
	defer c.Close()
	workertest.Wait(r.t, "redis-server to answer", func() (bool, string) {
		err := c.Ping(context.Background()).Err()
		if err == nil {
			// A restart loads the AOF before it serves: PING answers
			// LOADING until then.
			return true, ""
		}
		return false, err.Error()
	})
}

func (r *redisProc) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }
func (r *redisProc) url() string  { return "redis://" + r.addr() + "/0" }

// kill ends redis-server with SIGKILL: no shutdown, no final write.
func (r *redisProc) kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	_ = r.cmd.Wait()
	r.cmd = nil
}

func (r *redisProc) client(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.addr(), PoolSize: 64})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// upstream is the sandbox on a real HTTP server, with a chaos gate in
// front: a call the gate fails never reaches the sandbox.
type upstream struct {
	sb  *sandbox.Sandbox
	url string
	mu  sync.Mutex
	// failFirst fails the first call of an order with 503 when it says so.
	failFirst func(order string) bool
	seen      map[string]bool
	failed    int
}

func startUpstream(t *testing.T, failFirst func(order string) bool) *upstream {
	t.Helper()
	u := &upstream{sb: sandbox.New(workertest.Accounts), failFirst: failFirst, seen: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u.failFirst != nil {
			body, _ := io.ReadAll(r.Body)
			order := orderOf(body)
			u.mu.Lock()
			first := !u.seen[order]
			u.seen[order] = true
			fail := first && u.failFirst(order)
			if fail {
				u.failed++
			}
			u.mu.Unlock()
			if fail {
				http.Error(w, "chaos: unavailable", http.StatusServiceUnavailable)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		u.sb.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u.url = srv.URL
	return u
}

// orderOf finds the PandaPon orderId in a request body, "" for none.
func orderOf(body []byte) string {
	const key = `"orderId":`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return ""
	}
	rest := body[i+len(key):]
	j := bytes.IndexAny(rest, ",}")
	if j < 0 {
		return ""
	}
	return string(bytes.TrimSpace(rest[:j]))
}

// successes returns how many calls for order the sandbox answered with a
// cancel: more than one is a duplicate.
func (u *upstream) successes(order string) int {
	n := 0
	for _, c := range u.sb.Calls(tasks.ProviderPandaPon, order) {
		if c.Reject == "" && c.Outcome == "ok" {
			n++
		}
	}
	return n
}

// lastSuccess returns the arrival of the latest successful call of orders.
func (u *upstream) lastSuccess(orders []string) time.Time {
	var last time.Time
	for _, o := range orders {
		for _, c := range u.sb.Calls(tasks.ProviderPandaPon, o) {
			if c.Outcome == "ok" && c.At.After(last) {
				last = c.At
			}
		}
	}
	return last
}

// busiestSecond returns the most calls of orders that arrived within one
// second of each other, in [from, to).
func (u *upstream) busiestSecond(orders []string, from, to time.Time) int {
	var at []time.Time
	for _, o := range orders {
		for _, c := range u.sb.Calls(tasks.ProviderPandaPon, o) {
			if !c.At.Before(from) && c.At.Before(to) {
				at = append(at, c.At)
			}
		}
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	most := 0
	for i := range at {
		n := sort.Search(len(at), func(j int) bool { return !at[j].Before(at[i].Add(time.Second)) }) - i
		most = max(most, n)
	}
	return most
}

// workerProc is one worker process.
type workerProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	logs  *workertest.Buffer
	admin string // the admin server's URL
	done  chan struct{}
}

// workerEnv is a worker's environment against r and u, with extra
// settings appended.
func workerEnv(r *redisProc, u *upstream, extra ...string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"REDIS_URL=" + r.url(),
		"PANDAPON_BASE_URL=" + u.url, "PANDAPON_ACCESS_KEY=" + workertest.PandaPonAccessKey,
		"PANDAPON_ACCESS_SECRET=" + workertest.PandaPonSecret, "PANDAPON_USER_ID=" + workertest.PandaPonUserID,
		"MEARI_BASE_URL=" + u.url, "MEARI_PARTNER_KEY=" + workertest.MeariPartnerKey,
		"MEARI_PARTNER_SECRET=" + workertest.MeariPartnerSecret, "MEARI_SOURCE_APP=" + strconv.Itoa(workertest.SourceApp),
		"WORKER_CONCURRENCY=50", "SHUTDOWN_TIMEOUT=5s", "UPSTREAM_TIMEOUT=5s",
		"ADMIN_ADDR=127.0.0.1:0", "LOG_LEVEL=info", "LOG_FORMAT=json",
	}, extra...)
}

func startWorker(t *testing.T, env []string) *workerProc {
	t.Helper()
	w := &workerProc{t: t, logs: &workertest.Buffer{}, done: make(chan struct{})}
	w.cmd = exec.Command(bins["worker"])
	w.cmd.Env = env
	w.cmd.Stdout, w.cmd.Stderr = w.logs, w.logs
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = w.cmd.Wait(); close(w.done) }()
	t.Cleanup(w.kill)
	// ADMIN_ADDR=127.0.0.1:0: the log line names the port picked.
	workertest.Wait(t, "the worker's admin server", func() (bool, string) {
		select {
		case <-w.done:
			t.Fatalf("the worker exited:\n%s", w.logs.Tail(4000))
		default:
		}
		for l := range strings.Lines(w.logs.String()) {
			var line struct{ Msg, Addr string }
			if json.Unmarshal([]byte(l), &line) == nil && line.Msg == "admin server listening" {
				w.admin = "http://" + line.Addr
				return true, ""
			}
		}
		return false, "no admin server line yet"
	})
	return w
}

// kill ends the worker with SIGKILL: no shutdown, calls in flight cut.
func (w *workerProc) kill() {
	if w.cmd.Process != nil {
		_ = w.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-w.done
}

// alive reports whether the process still runs.
func (w *workerProc) alive() bool {
	select {
	case <-w.done:
		return false
	default:
		return true
	}
}

// ready returns /readyz's status and body.
func (w *workerProc) ready() (int, string) {
	resp, err := http.Get(w.admin + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// orders returns n PandaPon order IDs starting at base.
func orders(base, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(base + i)
	}
	return out
}

// enqueueAll enqueues a cancellation for each order, and fails t on any
// error.
func enqueueAll(t *testing.T, rdb *redis.Client, ids []string) {
	t.Helper()
	enq := tasks.NewEnqueuer(rdb, tasks.Shards{})
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	sem := make(chan struct{}, 64)
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func(id string) {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := enqueueOne(t.Context(), enq, id); err != nil {
				errs <- err
			}
		}(id)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("enqueue: %v", err)
	}
}

func enqueueOne(ctx context.Context, enq *tasks.Enqueuer, id string) (tasks.Result, error) {
	n, err := tasks.ParseOrderID(id)
	if err != nil {
		return tasks.Result{}, err
	}
	task, err := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: n, CancelReason: "chaos"})
	if err != nil {
		return tasks.Result{}, err
	}
	return enq.Enqueue(ctx, task, false)
}

// waitCancelled waits up to timeout until the sandbox has cancelled every
// PandaPon order, and returns how long that took.
func waitCancelled(t *testing.T, u *upstream, ids []string, timeout time.Duration) time.Duration {
	t.Helper()
	return waitCancelledOf(t, u, tasks.ProviderPandaPon, ids, timeout)
}

// waitCancelledOf is waitCancelled for provider's orders.
func waitCancelledOf(t *testing.T, u *upstream, provider string, ids []string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	workertest.WaitUpTo(t, timeout, fmt.Sprintf("%d orders cancelled", len(ids)), func() (bool, string) {
		missing := 0
		for _, id := range ids {
			if !u.sb.Cancelled(provider, id) {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d not cancelled", missing)
	})
	return time.Since(start)
}

// cancelledWithin waits up to timeout until the sandbox has cancelled every
// one of provider's orders ids, and returns how long it waited and the
// orders still not cancelled then.
func cancelledWithin(u *upstream, provider string, ids []string, timeout time.Duration) (time.Duration, []string) {
	start := time.Now()
	for {
		var missing []string
		for _, id := range ids {
			if !u.sb.Cancelled(provider, id) {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 || time.Since(start) > timeout {
			return time.Since(start), missing
		}
		time.Sleep(100 * time.Millisecond) // the sandbox does not signal
	}
}

// infoValue returns field's value in the text of an INFO reply.
func infoValue(info, field string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// enqueueMeari enqueues a Meari cancellation for each order number, and
// fails t on any error.
func enqueueMeari(t *testing.T, rdb *redis.Client, nums []string) {
	t.Helper()
	enq := tasks.NewEnqueuer(rdb, tasks.Shards{})
	for _, num := range nums {
		task, err := tasks.NewMeariCancelTask(tasks.MeariCancel{SourceApp: workertest.SourceApp, UserAccount: "chaos@example.com", OrderType: 1, OrderNum: num})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := enq.Enqueue(t.Context(), task, false); err != nil {
			t.Fatalf("enqueue: %v", err)
		}
	}
}

// metricValue returns the value of the sample of metric name whose
// labels are exactly labels (as written in the text format, such as
// provider="meari"), and whether the scrape had it.
func metricValue(scrape, name, labels string) (float64, bool) {
	prefix := name + "{" + labels + "} "
	for l := range strings.Lines(scrape) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// deadLettered returns the DLQ's size and the PandaPon queue's archive.
func deadLettered(t *testing.T, rdb *redis.Client) (dlqSize int64, archived int) {
	t.Helper()
	return deadLetteredIn(t, rdb, tasks.QueuePandaPon)
}

// deadLetteredIn returns the DLQ's size and queue's archive.
func deadLetteredIn(t *testing.T, rdb *redis.Client, queue string) (dlqSize int64, archived int) {
	t.Helper()
	n, err := dlq.New(rdb).Count(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	info, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(queue)
	if err != nil {
		t.Fatal(err)
	}
	return n, info.Archived
}

func has(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}
