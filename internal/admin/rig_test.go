package admin_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/admin"
	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/metrics"
	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/worker"
	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/cancelworker/cancelworker/retry"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const testSourceApp = 72

// fastPolicy keeps the production shape with millisecond delays.
var fastPolicy = retry.Policy{
	InitialInterval: 20 * time.Millisecond,
	MaxInterval:     100 * time.Millisecond,
	MaxAttempts:     5,
	AuthInterval:    50 * time.Millisecond,
	MaxAge:          time.Hour,
}

// rig is a running worker with metrics and the admin server, against a
// real Redis and the sandbox upstream, wired as cmd/worker wires them.
type rig struct {
	rdb   *redis.Client
	sb    *sandbox.Sandbox
	w     *worker.Worker
	m     *metrics.Metrics
	adm   *admin.Server
	store *dlq.Store
	enq   *tasks.Enqueuer
	insp  *asynq.Inspector
	logs  *observer.ObservedLogs
	base  string // the admin server's URL
}

func newRig(t *testing.T, ac config.Admin) *rig {
	t.Helper()
	srv := redistest.New(t)
	rdb := srv.Client(t)
	sb := sandbox.New(sandbox.Config{
		Meari:    sandbox.MeariAccount{PartnerKey: "pk-test", PartnerSecret: "ps-test-secret", SourceApp: testSourceApp, SignMode: meari.SignSorted},
		PandaPon: sandbox.PandaPonAccount{AccessKey: "ak-test", AccessSecret: "as-test-secret", UserID: "2100007341207"},
	})
	up := httptest.NewServer(sb)
	t.Cleanup(up.Close)
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)

	m, err := metrics.New(metrics.Options{Redis: rdb, Logger: log})
	if err != nil {
		t.Fatalf("metrics.New: %v", err)
	}
	w, err := worker.New(worker.Options{
		Config: config.Config{
			Meari: config.Meari{Enabled: true, BaseURL: up.URL, PartnerKey: "pk-test", PartnerSecret: "ps-test-secret",
				SourceApp: testSourceApp, SignMode: meari.SignSorted, TimestampFormat: meari.TimestampMillis},
			PandaPon:        config.PandaPon{Enabled: true, BaseURL: up.URL, AccessKey: "ak-test", AccessSecret: "as-test-secret", UserID: "2100007341207"},
			Concurrency:     4,
			ShutdownTimeout: 2 * time.Second,
			UpstreamTimeout: 2 * time.Second,
			LogLevel:        zapcore.InfoLevel,
		},
		Redis:                    rdb,
		Logger:                   log,
		Observer:                 m,
		Policies:                 map[string]retry.Policy{tasks.ProviderMeari: fastPolicy, tasks.ProviderPandaPon: fastPolicy},
		DelayedTaskCheckInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("worker.New: %v", err)
	}
	if err := w.Start(); err != nil {
		t.Fatalf("worker Start: %v", err)
	}
	t.Cleanup(w.Shutdown)

	if ac.Addr == "" {
		ac.Addr = "127.0.0.1:0"
	}
	adm, err := admin.New(admin.Options{
		Config:   ac,
		Redis:    redisOptions(srv),
		DLQ:      dlq.New(rdb),
		Enqueuer: tasks.NewEnqueuer(rdb),
		Metrics:  m.Handler(),
		Checks:   []admin.Check{admin.RedisCheck(rdb), admin.WorkerCheck(w.Running)},
		Logger:   log,
	})
	if err != nil {
		t.Fatalf("admin.New: %v", err)
	}
	if err := adm.Start(); err != nil {
		t.Fatalf("admin Start: %v", err)
	}
	t.Cleanup(func() {
		// t.Context() is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := adm.Shutdown(ctx); err != nil {
			t.Errorf("admin Shutdown: %v", err)
		}
	})
	return &rig{
		rdb: rdb, sb: sb, w: w, m: m, adm: adm, logs: logs,
		store: dlq.New(rdb),
		enq:   tasks.NewEnqueuer(rdb),
		insp:  asynq.NewInspectorFromRedisClient(rdb),
		base:  adm.URL(),
	}
}

// redisOptions returns fresh options for srv: a live client's Options must
// not be shared.
func redisOptions(srv *redistest.Server) *redis.Options {
	c := srv.ConnOpt()
	return &redis.Options{Addr: c.Addr, Username: c.Username, Password: c.Password, DB: c.DB, TLSConfig: c.TLSConfig}
}

func (r *rig) enqueueMeari(t *testing.T, orderNum string, steps ...sandbox.Step) tasks.Result {
	t.Helper()
	r.sb.Script(tasks.ProviderMeari, orderNum, steps...)
	task, err := tasks.NewMeariCancelTask(tasks.MeariCancel{SourceApp: testSourceApp, UserAccount: "test@123.com", OrderType: 1, OrderNum: orderNum})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.enq.Enqueue(t.Context(), task, false)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (r *rig) enqueuePandaPon(t *testing.T, orderID string, steps ...sandbox.Step) tasks.Result {
	t.Helper()
	r.sb.Script(tasks.ProviderPandaPon, orderID, steps...)
	id, err := tasks.ParseOrderID(orderID)
	if err != nil {
		t.Fatal(err)
	}
	task, err := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: id, CancelReason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.enq.Enqueue(t.Context(), task, false)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// waitState polls asynq until the task reaches want: nothing in Redis
// signals a state change.
func (r *rig) waitState(t *testing.T, res tasks.Result, want asynq.TaskState) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		info, err := r.insp.GetTaskInfo(res.Queue, res.TaskID)
		if err == nil && info.State == want {
			return
		}
		if err == nil {
			last = fmt.Sprintf("%s (retried %d, last error %q)", info.State, info.Retried, info.LastErr)
		} else {
			last = err.Error()
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("task %s never reached %s; last seen: %s", res.TaskID, want, last)
}

// get fetches base+path over real HTTP, with basic auth when user is set,
// and returns the status and body.
func get(t *testing.T, base, path, user, password string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// contains fails t unless s holds every one of want.
func contains(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}
