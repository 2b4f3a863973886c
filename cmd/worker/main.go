// Command worker pulls cancel-order tasks from Redis and cancels the orders
// at Meari and PandaPon, retrying transient failures and dead-lettering
// permanent ones. Run it with --demo for a zero-dependency tour, or --help
// for the configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cancelworker/cancelworker/internal/admin"
	"github.com/cancelworker/cancelworker/internal/buildinfo"
	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/demo"
	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/httpserve"
	"github.com/cancelworker/cancelworker/internal/metrics"
	"github.com/cancelworker/cancelworker/internal/tracing"
	"github.com/cancelworker/cancelworker/internal/tracing/otlp"
	"github.com/cancelworker/cancelworker/internal/worker"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run starts the worker and blocks until ctx is done (SIGINT or SIGTERM),
// then shuts down gracefully. It returns the process exit code: 0 after a
// clean shutdown, 1 on a runtime failure, 2 on a usage or configuration
// error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "check" {
		return check(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "config" {
		return configReference(args[1:], stdout, stderr)
	}
	cfg, err := config.Load(args, getenv, nil, stderr)
	switch {
	case errors.Is(err, config.ErrHelp):
		return 0
	case errors.Is(err, config.ErrVersion):
		fmt.Fprintln(stdout, buildinfo.Read().String("worker"))
		return 0
	}
	// Every problem at once: the settings', then the OTEL_* variables'.
	if _, terr := otlp.Check(getenv); err != nil || terr != nil {
		fmt.Fprintf(stderr, "worker: invalid configuration:\n%v\n", errors.Join(err, terr))
		return 2
	}
	stopTracing, err := otlp.Setup(ctx, "cancelworker-worker", getenv)
	if err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 1
	}
	log := config.NewLogger(cfg.Log, stderr)
	defer func() { _ = log.Sync() }()
	defer func() {
		if err := stopTracing(); err != nil {
			log.Warn("tracing stopped", zap.Error(err))
		}
	}()
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}

	if cfg.Demo {
		if err := demo.Run(ctx, cfg, log, stdout); err != nil {
			log.Error("demo failed", zap.Error(err))
			return 1
		}
		return 0
	}

	conn := worker.SizeRedis(cfg.Redis, cfg.Worker)
	rdb := conn.NewClient()
	defer rdb.Close()
	shown := cfg.Redis.Shown
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = rdb.Ping(pingCtx).Err()
	cancel()
	if err != nil {
		log.Error("cannot reach Redis", zap.String("redis_url", shown), zap.Error(err))
		fmt.Fprintf(stderr, "worker: cannot reach Redis at %s: %v\n", shown, err)
		return 1
	}

	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	for _, w := range worker.RedisWarnings(wctx, rdb) {
		log.Warn(w, zap.String("redis_url", shown))
	}
	cancel()

	m, err := metrics.New(metrics.Options{Redis: rdb, Logger: log, Queues: cfg.Shards.All()})
	if err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 1
	}
	w, err := newWorker(cfg, rdb, log, m)
	if err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 1
	}
	logProviders(log, cfg)
	if err := w.Start(); err != nil {
		log.Error("cannot start", zap.Error(err))
		return 1
	}
	bi := buildinfo.Read()
	log.Info("worker started", zap.String("version", bi.Version), zap.String("revision", bi.Short()), zap.String("redis_url", shown), zap.Int("concurrency", cfg.Worker.Concurrency), zap.Bool("tracing", tracing.Enabled()),
		zap.Int("prefetch", cfg.Worker.Prefetch), zap.Int("dequeuers", cfg.Worker.Dequeuers), zap.Duration("poll_interval", cfg.Worker.PollInterval), zap.Any("queues", w.Queues()))
	adm, err := startAdmin(cfg, conn, rdb, m, w, log)
	if err != nil {
		log.Error("cannot start the admin server; stopping", zap.Error(err))
		fmt.Fprintf(stderr, "worker: %v\n", err)
		w.Shutdown()
		return 1
	}
	<-ctx.Done()
	log.Info("shutting down: no new tasks; waiting for in-flight calls", zap.Duration("timeout", cfg.Worker.ShutdownTimeout))
	w.Shutdown()
	if adm != nil {
		// Kept up during the drain, so that metrics and health still answer.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := adm.Shutdown(sctx); err != nil {
			log.Warn("admin server shutdown", zap.Error(err))
		}
		cancel()
	}
	log.Info("stopped")
	return 0
}

// startAdmin starts the admin server, unless ADMIN_ADDR is off (nil
// server).
func startAdmin(cfg config.Config, conn config.RedisConn, rdb redis.UniversalClient, m *metrics.Metrics, w *worker.Worker, log *zap.Logger) (*admin.Server, error) {
	if cfg.Admin.Addr == "" {
		log.Info("admin server off (ADMIN_ADDR=off): no monitoring UI, metrics or health endpoints")
		return nil, nil
	}
	adm, err := admin.New(admin.Options{
		Config:   cfg.Admin,
		Redis:    conn,
		DLQ:      dlq.New(rdb),
		Enqueuer: tasks.NewEnqueuer(rdb, cfg.Shards),
		Shards:   cfg.Shards,
		Metrics:  m.Handler(),
		Checks:   []httpserve.Check{httpserve.RedisCheck(rdb), admin.WorkerCheck(w.Running)},
		Observer: m,
		Logger:   log,
	})
	if err != nil {
		return nil, err
	}
	if err := adm.Start(); err != nil {
		_ = adm.Shutdown(context.Background())
		return nil, err
	}
	return adm, nil
}

// logProviders says which providers are served and which are disabled.
func logProviders(log *zap.Logger, cfg config.Config) {
	for _, p := range []struct {
		name    string
		enabled bool
	}{{"meari", cfg.Meari != nil}, {"pandapon", cfg.PandaPon != nil}} {
		if p.enabled {
			log.Info("provider enabled", zap.String("provider", p.name))
		} else {
			log.Info("provider disabled: no settings given, its queue is not served", zap.String("provider", p.name))
		}
	}
}

// configReference is `worker config --markdown`: the configuration
// reference of every binary, docs/configuration.md.
func configReference(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("worker config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	markdown := fs.Bool("markdown", false, "print the reference as Markdown (docs/configuration.md)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if !*markdown || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: worker config --markdown")
		return 2
	}
	text, err := config.Reference()
	if err != nil {
		fmt.Fprintf(stderr, "worker config: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, text)
	return 0
}

// newWorker builds the worker of cfg: the worker and `worker check` both
// call it, so that check refuses whatever the worker would at start.
// obs may be nil.
func newWorker(cfg config.Config, rdb redis.UniversalClient, log *zap.Logger, obs worker.Observer) (*worker.Worker, error) {
	return worker.New(worker.Options{
		Meari: cfg.Meari, PandaPon: cfg.PandaPon, Retry: cfg.Retry, Run: cfg.Worker, LogLevel: cfg.Log.Level,
		Limits: cfg.Limits, Breaker: cfg.Breaker, RateMaxWait: cfg.RateMaxWait, Shards: cfg.Shards,
		Redis: rdb, Logger: log, Observer: obs, CompactAfter: compactAfter(cfg.Worker.CompactAfter),
	})
}

// compactAfter is TASK_COMPACT_AFTER as worker.Options takes it: there,
// zero means the default and a negative value at once.
func compactAfter(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
