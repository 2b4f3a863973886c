package worker

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/providers"
	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/cancelworker/cancelworker/providers/pandapon"
	"github.com/cancelworker/cancelworker/retry"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Options wires a Worker.
type Options struct {
	Config config.Config
	// Redis is the client the worker uses; the caller closes it after
	// Shutdown.
	Redis  redis.UniversalClient
	Logger *zap.Logger
	// Policies overrides the retry policy per provider; fields left zero
	// take the configured or default values.
	Policies map[string]retry.Policy
	// DelayedTaskCheckInterval is how often asynq moves due retries back to
	// their queue; zero means asynq's default (5s).
	DelayedTaskCheckInterval time.Duration
	// Observer receives metrics events; nil means none.
	Observer Observer
	// NowFunc returns the time; nil means time.Now.
	NowFunc func() time.Time
}

// Worker is the asynq server with the cancellation handler.
type Worker struct {
	srv     *asynq.Server
	mux     *asynq.ServeMux
	handler *Handler
	queues  map[string]int
	state   atomic.Int32 // stateNew, stateRunning or stateStopped
}

// Worker states, for Running.
const (
	stateNew int32 = iota
	stateRunning
	stateStopped
)

// New builds a Worker for the enabled providers of o.Config.
func New(o Options) (*Worker, error) {
	c := o.Config
	if !c.Meari.Enabled && !c.PandaPon.Enabled {
		return nil, errors.New("no provider is enabled")
	}
	hc := HandlerConfig{
		Logger:   o.Logger,
		Redis:    o.Redis,
		DLQ:      dlq.New(o.Redis, ""),
		Policies: map[string]retry.Policy{},
		Observer: o.Observer,
		NowFunc:  o.NowFunc,
	}
	queues := map[string]int{}
	mux := asynq.NewServeMux()
	byType := map[string]retry.Policy{}
	policy := func(provider string, maxAttempts int) retry.Policy {
		p := o.Policies[provider]
		if p.MaxAttempts == 0 {
			p.MaxAttempts = maxAttempts
		}
		if p.MaxAge == 0 {
			p.MaxAge = c.MaxAge
		}
		return p.WithDefaults()
	}
	if c.Meari.Enabled {
		cl, err := meari.New(meari.Config{
			BaseURL: c.Meari.BaseURL, PartnerKey: c.Meari.PartnerKey, PartnerSecret: c.Meari.PartnerSecret,
			SourceApp: c.Meari.SourceApp, SignMode: c.Meari.SignMode, TimestampFormat: c.Meari.TimestampFormat,
			Transport: providers.Transport{Timeout: c.UpstreamTimeout, NowFunc: o.NowFunc},
		})
		if err != nil {
			return nil, fmt.Errorf("meari: %w", err)
		}
		hc.Meari, hc.MeariSourceApp = cl, c.Meari.SourceApp
		hc.Policies[tasks.ProviderMeari] = policy(tasks.ProviderMeari, c.Meari.MaxAttempts)
		byType[tasks.TypeMeariCancel] = hc.Policies[tasks.ProviderMeari]
		queues[tasks.QueueMeari] = 1
	}
	if c.PandaPon.Enabled {
		cl, err := pandapon.New(pandapon.Config{
			BaseURL: c.PandaPon.BaseURL, AccessKey: c.PandaPon.AccessKey, AccessSecret: c.PandaPon.AccessSecret,
			UserID: c.PandaPon.UserID, Transport: providers.Transport{Timeout: c.UpstreamTimeout, NowFunc: o.NowFunc},
		})
		if err != nil {
			return nil, fmt.Errorf("pandapon: %w", err)
		}
		hc.PandaPon = cl
		hc.Policies[tasks.ProviderPandaPon] = policy(tasks.ProviderPandaPon, c.PandaPon.MaxAttempts)
		byType[tasks.TypePandaPonCancel] = hc.Policies[tasks.ProviderPandaPon]
		queues[tasks.QueuePandaPon] = 1
	}
	h, err := NewHandler(hc)
	if err != nil {
		return nil, err
	}
	for typ := range byType {
		mux.Handle(typ, h)
	}
	level := asynq.InfoLevel
	if c.LogLevel >= zapcore.WarnLevel {
		level = asynq.WarnLevel
	}
	srv := asynq.NewServerFromRedisClient(o.Redis, asynq.Config{
		Concurrency:              c.Concurrency,
		Queues:                   queues,
		RetryDelayFunc:           retry.DelayFunc(byType, retry.Policy{}),
		IsFailure:                retry.IsFailure,
		ShutdownTimeout:          c.ShutdownTimeout,
		DelayedTaskCheckInterval: o.DelayedTaskCheckInterval,
		Logger:                   o.Logger.Named("asynq").Sugar(),
		LogLevel:                 level,
	})
	return &Worker{srv: srv, mux: mux, handler: h, queues: queues}, nil
}

// Queues returns the served queues and their weights.
func (w *Worker) Queues() map[string]int { return w.queues }

// Start starts fetching and processing tasks.
func (w *Worker) Start() error {
	if err := w.srv.Start(w.mux); err != nil {
		return err
	}
	w.state.CompareAndSwap(stateNew, stateRunning)
	return nil
}

// Shutdown stops fetching, waits up to the configured shutdown timeout for
// in-flight calls, and puts back any still running: they are retried by
// the next worker, nothing is lost.
func (w *Worker) Shutdown() {
	w.state.Store(stateStopped)
	w.srv.Shutdown()
}

// Running returns nil while the worker is started and not shut down, and
// otherwise an error saying which. It does not touch Redis. It is safe for
// concurrent use.
func (w *Worker) Running() error {
	switch w.state.Load() {
	case stateNew:
		return errors.New("the asynq server is not started")
	case stateStopped:
		return errors.New("the asynq server is shutting down")
	}
	return nil
}

// Ping reports whether the asynq server can reach Redis.
func (w *Worker) Ping() error { return w.srv.Ping() }
