// Package demo runs the worker with no dependencies: an in-process Redis
// (miniredis), the sandbox upstream for both providers, short retry delays,
// and a set of sample orders that show every outcome. Nothing in it is
// durable.
package demo

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/cancelworker/cancelworker/internal/admin"
	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/httpserve"
	"github.com/cancelworker/cancelworker/internal/metrics"
	"github.com/cancelworker/cancelworker/internal/status"
	"github.com/cancelworker/cancelworker/internal/worker"
	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/cancelworker/cancelworker/providers/pandapon"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/cancelworker/cancelworker/retry"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// OutageOrder is the Meari order whose provider answers 1005 for longer
// than the demo's retry budget: it is dead-lettered, and cancelled once
// requeued.
const OutageOrder = "DEMO-OUTAGE"

// RedisAddr is where the demo's in-process Redis listens, so that the
// enqueue CLI reaches it at a known address; a free port when it is taken.
const RedisAddr = "127.0.0.1:6399"

// SettleTimeout bounds how long Run waits for the sample orders to settle
// before it prints the table anyway.
const SettleTimeout = 60 * time.Second

// Demo credentials: the sandbox checks every signature against them.
const (
	meariPartnerKey    = "demo-partner-key"
	meariPartnerSecret = "demo-partner-secret"
	meariSourceApp     = 72
	pandaponAccessKey  = "demo-access-key"
	pandaponSecret     = "demo-access-secret"
	pandaponUserID     = "2100007341207"
)

// policy is the demo's retry policy: the production curve, compressed so
// that everything settles within seconds.
var policy = retry.Policy{
	InitialInterval: 300 * time.Millisecond,
	MaxInterval:     2 * time.Second,
	MaxAttempts:     4,
	AuthInterval:    2 * time.Second,
	MaxAge:          10 * time.Minute,
}

// sample is one demo order: what the sandbox will answer, and what a user
// should expect to see.
type sample struct {
	provider string
	order    string // Meari order number or PandaPon order ID
	steps    []sandbox.Step
	expect   string
}

func samples() []sample {
	return []sample{
		{tasks.ProviderMeari, "DEMO-OK", []sandbox.Step{sandbox.OK()}, "cancelled at once"},
		{tasks.ProviderMeari, "DEMO-1005-TWICE", append(sandbox.Times(2, sandbox.MeariCode("1005")), sandbox.OK()), "1005 twice, then cancelled"},
		{tasks.ProviderMeari, "DEMO-4001", []sandbox.Step{sandbox.MeariCode("4001")}, "4001: dead-lettered"},
		{tasks.ProviderMeari, "DEMO-4002", []sandbox.Step{sandbox.MeariCode("4002")}, "4002: dead-lettered"},
		// Out for longer than the retry budget: dead-lettered, then
		// cancelled when an operator requeues it (the README's tour).
		{tasks.ProviderMeari, OutageOrder, append(sandbox.Times(policy.MaxAttempts, sandbox.MeariCode("1005")), sandbox.OK()), "1005 until retries ran out; requeue it"},
		{tasks.ProviderPandaPon, "2542285634920880794", []sandbox.Step{sandbox.OK()}, "19-digit order ID, cancelled"},
		{tasks.ProviderPandaPon, "2542285634920880795", []sandbox.Step{sandbox.HTTPStatus(503), sandbox.OK()}, "HTTP 503, retried, cancelled"},
		{tasks.ProviderPandaPon, "2542285634920880796", []sandbox.Step{sandbox.RetryAfter(429, time.Second), sandbox.OK()}, "429 Retry-After 1s, cancelled"},
		{tasks.ProviderPandaPon, "2542285634920880797", []sandbox.Step{sandbox.Reset(), sandbox.OK()}, "connection reset, retried, cancelled"},
		{tasks.ProviderPandaPon, "2542285634920880798", []sandbox.Step{sandbox.PandaPonCode(200, new(false))}, "upstream refused: dead-lettered"},
	}
}

// Run starts everything, enqueues the samples, prints a table of outcomes
// once they have settled, and keeps serving until ctx is done. The admin
// server (monitoring UI, metrics, health) listens on cfg.Admin.Addr, or on
// a free port of its host when that one is in use.
func Run(ctx context.Context, cfg config.Config, log *zap.Logger, out io.Writer) error {
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr(RedisAddr); err != nil {
		if err = mr.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("start in-process Redis: %w", err)
		}
	}
	defer mr.Close()
	redisOpt := &redis.Options{Addr: mr.Addr()}
	rdb := redis.NewClient(redisOpt)
	defer rdb.Close()

	// The demo's accounts, signed as configured (MEARI_SIGN_MODE,
	// MEARI_TIMESTAMP_FORMAT: the sandbox checks either).
	var signMode meari.SignMode
	var tsFormat meari.TimestampFormat
	if cfg.Meari != nil {
		signMode, tsFormat = cfg.Meari.SignMode, cfg.Meari.TimestampFormat
	}
	sb, srv, base, err := sandbox.Start(sandbox.Config{
		Meari:    sandbox.MeariAccount{PartnerKey: meariPartnerKey, PartnerSecret: meariPartnerSecret, SourceApp: meariSourceApp, SignMode: signMode, TimestampFormat: tsFormat},
		PandaPon: sandbox.PandaPonAccount{AccessKey: pandaponAccessKey, AccessSecret: pandaponSecret, UserID: pandaponUserID},
	})
	if err != nil {
		return fmt.Errorf("start the sandbox upstream: %w", err)
	}
	defer srv.Close()

	run := cfg.Worker
	run.ShutdownTimeout = 2 * time.Second

	m, err := metrics.New(metrics.Options{Redis: rdb, Logger: log})
	if err != nil {
		return err
	}
	w, err := worker.New(worker.Options{
		Meari: &meari.Config{BaseURL: base, PartnerKey: meariPartnerKey, PartnerSecret: meariPartnerSecret,
			SourceApp: meariSourceApp, SignMode: signMode, TimestampFormat: tsFormat},
		PandaPon: &pandapon.Config{BaseURL: base, AccessKey: pandaponAccessKey, AccessSecret: pandaponSecret, UserID: pandaponUserID},
		Retry:    map[string]retry.Policy{tasks.ProviderMeari: policy, tasks.ProviderPandaPon: policy},
		Run:      run, LogLevel: cfg.Log.Level, Redis: rdb, Logger: log, Observer: m,
		DelayedTaskCheckInterval: 100 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	var adm *admin.Server
	if cfg.Admin.Addr != "" {
		adm, err = admin.New(admin.Options{
			Config: cfg.Admin, Redis: config.RedisConn{Mode: config.RedisSingle, Single: redisOpt, Shown: "miniredis " + mr.Addr()}, DLQ: dlq.New(rdb), Enqueuer: tasks.NewEnqueuer(rdb, tasks.Shards{}), Metrics: m.Handler(),
			Checks: []httpserve.Check{httpserve.RedisCheck(rdb), admin.WorkerCheck(w.Running)},
			Logger: log, Observer: m, FallbackToFreePort: true,
		})
		if err != nil {
			return err
		}
		if err := adm.Start(); err != nil {
			_ = adm.Shutdown(context.Background())
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = adm.Shutdown(sctx)
		}()
	}

	fmt.Fprintf(out, "DEMO MODE: in-process Redis at %s and a sandbox upstream at %s.\n", mr.Addr(), base)
	fmt.Fprintf(out, "Nothing is durable: every task and dead-letter entry is gone when this process ends.\n\n")
	if adm != nil {
		fmt.Fprintf(out, "Monitoring UI:     %s%s\n", adm.URL(), admin.MonitoringPath)
		fmt.Fprintf(out, "Dead-letter queue: %s%s\n", adm.URL(), admin.DLQPath)
		fmt.Fprintf(out, "Metrics:           %s%s\n\n", adm.URL(), admin.MetricsPath)
	}

	enq := tasks.NewEnqueuer(rdb, tasks.Shards{})
	ss := samples()
	ids := make([]string, len(ss))
	for i, s := range ss {
		sb.Script(s.provider, s.order, s.steps...)
		t, err := build(s)
		if err != nil {
			return err
		}
		res, err := enq.Enqueue(ctx, t, false)
		if err != nil {
			return err
		}
		ids[i] = res.TaskID
	}
	fmt.Fprintf(out, "Enqueued %d sample orders; retries are shortened to settle in seconds.\n\n", len(ss))
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Shutdown()

	store := dlq.New(rdb)
	sts, err := settle(ctx, rdb, store, ss, ids)
	if err != nil {
		return err
	}
	printTable(out, ss, sts, sb)
	fmt.Fprintf(out, "\nThe worker keeps running. In another terminal, requeue %s, whose provider was out longer than its retries:\n\n", OutageOrder)
	fmt.Fprintf(out, "  export REDIS_URL=redis://%s/0 MEARI_SOURCE_APP=%d\n", mr.Addr(), meariSourceApp)
	fmt.Fprintf(out, "  go run ./cmd/enqueue dlq list\n")
	fmt.Fprintf(out, "  go run ./cmd/enqueue dlq requeue <the ID of its row>\n")
	fmt.Fprintf(out, "  go run ./cmd/enqueue status meari %s\n\n", OutageOrder)
	fmt.Fprintf(out, "Press Ctrl-C to stop.\n")
	<-ctx.Done()
	return nil
}

func build(s sample) (*asynq.Task, error) {
	if s.provider == tasks.ProviderMeari {
		return tasks.NewMeariCancelTask(tasks.MeariCancel{SourceApp: meariSourceApp, UserAccount: "demo@example.com", OrderType: 1, OrderNum: s.order})
	}
	id, err := tasks.ParseOrderID(s.order)
	if err != nil {
		return nil, fmt.Errorf("sample order %s: %w", s.order, err)
	}
	return tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: id, CancelReason: "demo"})
}

func settled(st status.Status) bool {
	return st.State == status.StateCompleted || st.State == status.StateDeadLettered
}

// settle polls the samples' status until all are completed or
// dead-lettered, or SettleTimeout passes. Polling: nothing in Redis signals.
func settle(ctx context.Context, rdb redis.UniversalClient, store *dlq.Store, ss []sample, ids []string) ([]status.Status, error) {
	deadline := time.Now().Add(SettleTimeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		sts := make([]status.Status, len(ss))
		done := true
		for i := range ss {
			st, err := status.Lookup(ctx, rdb, store, tasks.Shards{}, ids[i], "")
			if err != nil {
				return nil, err
			}
			sts[i] = st
			done = done && settled(st)
		}
		if done || time.Now().After(deadline) {
			return sts, nil
		}
		select {
		case <-ctx.Done():
			return sts, nil
		case <-tick.C:
		}
	}
}

func printTable(out io.Writer, ss []sample, sts []status.Status, sb *sandbox.Sandbox) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tORDER\tSCRIPTED\tCALLS\tOUTCOME\tDETAIL")
	for i, s := range ss {
		st := sts[i]
		detail := ""
		if st.DLQ != nil {
			detail = st.DLQ.Reason
			if st.DLQ.UpstreamCode != "" {
				detail += " (" + st.DLQ.UpstreamCode + ")"
			}
		} else if st.LastError != "" && !settled(st) {
			detail = firstLine(st.LastError)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", s.provider, s.order, s.expect, len(sb.Calls(s.provider, s.order)), st.State, detail)
	}
	tw.Flush()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}
