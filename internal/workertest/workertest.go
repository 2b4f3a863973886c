// Package workertest is the test rig the integration tests of every package
// share: a real Redis (package redistest), the sandbox upstream on a real
// HTTP server, a worker wired as cmd/worker wires it, helpers to enqueue
// cancellations, and Wait, the one way a test polls for a condition.
//
// It is for tests only: it takes a *testing.T and fails it.
package workertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/guard"
	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/worker"
	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/cancelworker/cancelworker/providers/pandapon"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/cancelworker/cancelworker/retry"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// The test accounts: the sandbox accepts them and MeariConfig and
// PandaPonConfig sign with them. They are test values, not secrets.
const (
	SourceApp          = 72
	MeariPartnerKey    = "pk-test"
	MeariPartnerSecret = "ps-test-secret"
	PandaPonAccessKey  = "ak-test"
	PandaPonSecret     = "as-test-secret"
	PandaPonUserID     = "2100007341207"
)

// Accounts is the sandbox's configuration for the test accounts.
var Accounts = sandbox.Config{
	Meari:    sandbox.MeariAccount{PartnerKey: MeariPartnerKey, PartnerSecret: MeariPartnerSecret, SourceApp: SourceApp, SignMode: meari.SignSorted},
	PandaPon: sandbox.PandaPonAccount{AccessKey: PandaPonAccessKey, AccessSecret: PandaPonSecret, UserID: PandaPonUserID},
}

// MeariConfig is the worker's Meari account for the sandbox at base.
func MeariConfig(base string) *meari.Config {
	return &meari.Config{BaseURL: base, PartnerKey: MeariPartnerKey, PartnerSecret: MeariPartnerSecret,
		SourceApp: SourceApp, SignMode: meari.SignSorted, TimestampFormat: meari.TimestampMillis}
}

// PandaPonConfig is the worker's PandaPon account for the sandbox at base.
func PandaPonConfig(base string) *pandapon.Config {
	return &pandapon.Config{BaseURL: base, AccessKey: PandaPonAccessKey, AccessSecret: PandaPonSecret, UserID: PandaPonUserID}
}

// FastPolicy keeps the production policy's shape with millisecond delays.
var FastPolicy = retry.Policy{
	InitialInterval: 20 * time.Millisecond,
	MaxInterval:     100 * time.Millisecond,
	MaxAttempts:     5,
	AuthInterval:    50 * time.Millisecond,
	MaxAge:          time.Hour,
}

// Policies returns p for both providers, as worker.Options.Retry.
func Policies(p retry.Policy) map[string]retry.Policy {
	return map[string]retry.Policy{tasks.ProviderMeari: p, tasks.ProviderPandaPon: p}
}

// Upstream starts a sandbox for Accounts on a real HTTP server, closed at
// cleanup, and returns it with its URL.
func Upstream(t testing.TB) (*sandbox.Sandbox, string) {
	t.Helper()
	sb := sandbox.New(Accounts)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return sb, srv.URL
}

// Rig is a running worker against a real Redis and the sandbox upstream,
// with the clients a test inspects them by.
type Rig struct {
	// Redis and RDB are the test's own redis-server and its client; both
	// nil on a Cluster (WithCluster).
	Redis *redistest.Server
	RDB   *redis.Client
	// Client is the client every part of the rig uses: RDB, or the
	// Cluster's.
	Client   redis.UniversalClient
	Sandbox  *sandbox.Sandbox
	Upstream string // the sandbox's URL
	// Options are the worker's; Options may change them before it starts,
	// and StartWorker starts another worker with them.
	Options   worker.Options
	Worker    *worker.Worker
	Enqueuer  *tasks.Enqueuer
	DLQ       *dlq.Store
	Inspector *asynq.Inspector
	// Logs holds every line the worker logged, debug included.
	Logs *observer.ObservedLogs

	t testing.TB
}

// Option changes a Rig before its worker starts: Redis, the sandbox and
// the default Options are ready.
type Option func(*Rig)

// WithPolicy gives both providers the retry policy p.
func WithPolicy(p retry.Policy) Option { return func(r *Rig) { r.Options.Retry = Policies(p) } }

// WithConcurrency sets the worker's concurrency.
func WithConcurrency(n int) Option { return func(r *Rig) { r.Options.Run.Concurrency = n } }

// WithUpstreamTimeout bounds each upstream call.
func WithUpstreamTimeout(d time.Duration) Option {
	return func(r *Rig) { r.Options.Run.UpstreamTimeout = d }
}

// WithShutdownTimeout bounds the calls in flight at shutdown.
func WithShutdownTimeout(d time.Duration) Option {
	return func(r *Rig) { r.Options.Run.ShutdownTimeout = d }
}

// WithShards spreads the providers' tasks over queues as shards says, for
// the worker and the rig's Enqueuer.
func WithShards(shards tasks.Shards) Option {
	return func(r *Rig) {
		r.Options.Shards = shards
		r.Enqueuer = tasks.NewEnqueuer(r.Client, shards)
	}
}

// WithCluster runs the rig on the Redis Cluster c instead of a server of
// its own, with shards: RDB and Redis are nil, Client is the Cluster's.
func WithCluster(c *redistest.Cluster, shards tasks.Shards) Option {
	return func(r *Rig) {
		cc := c.Client(r.t)
		r.Redis, r.RDB, r.Client = nil, nil, cc
		r.Options.Redis = cc
		r.DLQ, r.Inspector = dlq.New(cc), asynq.NewInspectorFromRedisClient(cc)
		WithShards(shards)(r)
	}
}

// WithObserver sends the worker's metrics events to o.
func WithObserver(o worker.Observer) Option { return func(r *Rig) { r.Options.Observer = o } }

// WithMaintenance sets how often completed tasks are compacted and the
// archive reconciled, and how long a completed task stays whole.
func WithMaintenance(interval, compactAfter time.Duration) Option {
	return func(r *Rig) { r.Options.MaintenanceInterval, r.Options.CompactAfter = interval, compactAfter }
}

// Start starts a Rig: its worker serves both providers with FastPolicy,
// concurrency 8, 2s timeouts and a 20ms check for due retries, and is shut
// down at cleanup.
func Start(t testing.TB, opts ...Option) *Rig {
	t.Helper()
	r := New(t, opts...)
	r.Worker = r.StartWorker(t)
	return r
}

// New is Start without starting the worker: for tests that build their own
// from r.Options.
func New(t testing.TB, opts ...Option) *Rig {
	t.Helper()
	srv := redistest.New(t)
	rdb := srv.Client(t)
	sb, base := Upstream(t)
	core, logs := observer.New(zapcore.DebugLevel)
	r := &Rig{
		Redis: srv, RDB: rdb, Client: rdb, Sandbox: sb, Upstream: base, Logs: logs, t: t,
		Options: worker.Options{
			Meari:    MeariConfig(base),
			PandaPon: PandaPonConfig(base),
			Retry:    Policies(FastPolicy),
			Run: config.Worker{
				Concurrency: 8, Dequeuers: 1, Pipeline: true, PollInterval: config.PollIntervalDefault,
				ShutdownTimeout: 2 * time.Second, UpstreamTimeout: 2 * time.Second,
			},
			// A breaker that opens as in production and probes again soon.
			Breaker:                  guard.Breaker{OpenFor: 50 * time.Millisecond},
			LogLevel:                 zapcore.InfoLevel,
			Redis:                    rdb,
			Logger:                   zap.New(core),
			DelayedTaskCheckInterval: 20 * time.Millisecond,
		},
		Enqueuer:  tasks.NewEnqueuer(rdb, tasks.Shards{}),
		DLQ:       dlq.New(rdb),
		Inspector: asynq.NewInspectorFromRedisClient(rdb),
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// StartWorker starts a worker with r.Options, shut down at cleanup.
func (r *Rig) StartWorker(t testing.TB) *worker.Worker {
	t.Helper()
	w, err := worker.New(r.Options)
	if err != nil {
		t.Fatalf("worker.New: %v", err)
	}
	if err := w.Start(); err != nil {
		t.Fatalf("worker Start: %v", err)
	}
	t.Cleanup(w.Shutdown)
	return w
}

// EnqueueMeari scripts the sandbox's answers for orderNum, if any, and
// enqueues its cancellation for the test account (order type 1).
func (r *Rig) EnqueueMeari(t testing.TB, orderNum string, steps ...sandbox.Step) tasks.Result {
	t.Helper()
	if len(steps) > 0 {
		r.Sandbox.Script(tasks.ProviderMeari, orderNum, steps...)
	}
	task, err := tasks.NewMeariCancelTask(tasks.MeariCancel{SourceApp: SourceApp, UserAccount: "test@123.com", OrderType: 1, OrderNum: orderNum})
	if err != nil {
		t.Fatal(err)
	}
	return r.enqueue(t, task)
}

// EnqueuePandaPon scripts the sandbox's answers for orderID, if any, and
// enqueues its cancellation.
func (r *Rig) EnqueuePandaPon(t testing.TB, orderID string, steps ...sandbox.Step) tasks.Result {
	t.Helper()
	if len(steps) > 0 {
		r.Sandbox.Script(tasks.ProviderPandaPon, orderID, steps...)
	}
	id, err := tasks.ParseOrderID(orderID)
	if err != nil {
		t.Fatal(err)
	}
	task, err := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: id, CancelReason: "不想要了"})
	if err != nil {
		t.Fatal(err)
	}
	return r.enqueue(t, task)
}

func (r *Rig) enqueue(t testing.TB, task *asynq.Task) tasks.Result {
	t.Helper()
	res, err := r.Enqueuer.Enqueue(t.Context(), task, false)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// WaitState waits until the task of res is in state want.
func (r *Rig) WaitState(t testing.TB, res tasks.Result, want asynq.TaskState) *asynq.TaskInfo {
	t.Helper()
	return WaitState(t, r.Inspector, res.Queue, res.TaskID, want)
}

// WaitCalls waits until the sandbox has seen n calls for order, and
// returns them.
func (r *Rig) WaitCalls(t testing.TB, provider, order string, n int) []sandbox.Call {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	calls, err := r.Sandbox.WaitCalls(ctx, provider, order, n)
	if err != nil {
		t.Fatalf("%s %s: waited for %d upstream calls, saw %d: %v", provider, order, n, len(r.Sandbox.Calls(provider, order)), err)
	}
	return calls
}

// WaitState waits until task id in queue is in state want, and returns
// its info. Nothing in Redis signals a state change: this polls.
func WaitState(t testing.TB, insp *asynq.Inspector, queue, id string, want asynq.TaskState) *asynq.TaskInfo {
	t.Helper()
	var info *asynq.TaskInfo
	Wait(t, fmt.Sprintf("task %s to reach %s", id, want), func() (bool, string) {
		var err error
		info, err = insp.GetTaskInfo(queue, id)
		if err != nil {
			return false, err.Error()
		}
		return info.State == want, fmt.Sprintf("%s (retried %d, last error %q)", info.State, info.Retried, info.LastErr)
	})
	return info
}

// WaitTimeout bounds every Wait: long enough for a loaded CI machine,
// short enough that a hang fails the test instead of the suite.
const WaitTimeout = 20 * time.Second

// waitPoll is the pause between two looks.
const waitPoll = 10 * time.Millisecond

// Wait calls cond until it reports done, and fails t after WaitTimeout
// with what and cond's last word on the state it saw. It is the one poll
// loop of the tests: where something signals, wait on the signal instead.
func Wait(t testing.TB, what string, cond func() (done bool, last string)) {
	t.Helper()
	WaitUpTo(t, WaitTimeout, what, cond)
}

// WaitUpTo is Wait with its own bound, for the few waits that take longer
// by design (thousands of tasks).
func WaitUpTo(t testing.TB, timeout time.Duration, what string, cond func() (done bool, last string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, last := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s; last seen: %s", timeout, what, last)
		}
		time.Sleep(waitPoll)
	}
}

// ClosedAddr returns a loopback host:port that nothing listens on: a
// connection to it is refused.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return addr
}

// LogAddr reads JSON log lines from r until its end and sends, once, the
// "addr" field of the first line whose message is msg (such as
// "listening"); drained is closed at the end of r. Read a process's pipe
// to the end before its Wait.
func LogAddr(r io.Reader, msg string) (addr <-chan string, drained <-chan struct{}) {
	a, d := make(chan string, 1), make(chan struct{})
	go func() {
		defer close(d)
		sent := false
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var l struct{ Msg, Addr string }
			if !sent && json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == msg {
				a <- l.Addr
				sent = true
			}
		}
	}()
	return a, d
}

// Conn returns srv as the processes' configuration gives Redis: fresh
// options each time (a live client's must not be shared).
func Conn(srv *redistest.Server) config.RedisConn {
	c := srv.ConnOpt()
	return config.RedisConn{
		Mode:   config.RedisSingle,
		Single: &redis.Options{Addr: c.Addr, Username: c.Username, Password: c.Password, DB: c.DB, TLSConfig: c.TLSConfig},
		Shown:  "test redis " + c.Addr,
	}
}

// Buffer is a process's output: written by one goroutine (exec, a
// logger), read by the test. It is safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Tail returns the last n bytes written, for a failure message.
func (b *Buffer) Tail(n int) string {
	s := b.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// CancelOnArrival returns a context of t's that is cancelled as soon as
// arrived receives or is closed: a call cut off mid-flight. If nothing
// arrives within timeout it is left alone, and the test's own checks fail.
func CancelOnArrival(t testing.TB, arrived <-chan struct{}, timeout time.Duration) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	go func() {
		select {
		case <-arrived:
			cancel()
		case <-time.After(timeout):
		}
	}()
	return ctx
}
