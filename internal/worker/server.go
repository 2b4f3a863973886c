package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/guard"
	"github.com/cancelworker/cancelworker/internal/taskstore"
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
	// Meari and PandaPon are the accounts of the providers served; nil
	// means not served. Their Transport is set by New: the upstream
	// timeout, a connection pool for the concurrency, NowFunc.
	Meari    *meari.Config
	PandaPon *pandapon.Config
	// Retry is the retry policy by provider (tasks.ProviderMeari,
	// tasks.ProviderPandaPon); fields left zero, or a provider left out,
	// take the defaults.
	Retry map[string]retry.Policy
	// Run is the concurrency, dequeuers, poll interval and timeouts.
	Run config.Worker
	// Shards is how each provider's tasks are spread over queues: the
	// worker serves every queue of each provider it serves
	// (tasks.Shards.Queues).
	Shards tasks.Shards
	// Limits is each provider's rate limit, shared by every worker process
	// through Redis; a provider left out has none.
	Limits map[string]guard.Limit
	// RateMaxWait is the longest a call waits for a token before its task
	// is put back; zero means guard.MaxWaitDefault.
	RateMaxWait time.Duration
	// Breaker is every provider's circuit breaker; zero fields take the
	// defaults.
	Breaker guard.Breaker
	// LogLevel is the logger's level, which asynq's own logs follow.
	LogLevel zapcore.Level
	// Redis is the client the worker uses; the caller closes it after
	// Shutdown. With Run.Pipeline, asynq's servers use its autopipeliner
	// (one per client, shared by every worker on it), which closing the
	// client stops.
	Redis  redis.UniversalClient
	Logger *zap.Logger
	// DelayedTaskCheckInterval is how often asynq moves due retries and
	// put-back tasks to their queue; zero means
	// DelayedTaskCheckIntervalDefault.
	DelayedTaskCheckInterval time.Duration
	// Observer receives metrics events; nil means none.
	Observer Observer
	// NowFunc returns the time; nil means time.Now.
	NowFunc func() time.Time
	// MaintenanceInterval is how often completed tasks are compacted and
	// the archive reconciled with the DLQ; zero means
	// MaintenanceIntervalDefault, negative turns both off.
	MaintenanceInterval time.Duration
	// CompactAfter is how long a completed task stays whole before it is
	// compacted; zero means CompactAfterDefault, negative compacts at once.
	CompactAfter time.Duration
	// RecoverInterval is how often the worker looks for active tasks
	// whose worker process died (see recover.go); zero means
	// RecoverIntervalDefault, negative leaves them to asynq's recoverer.
	RecoverInterval time.Duration
}

// errHolderStopped is the failure a task put back by the recoverer is
// retried for.
var errHolderStopped = errors.New("its worker stopped")

// DelayedTaskCheckIntervalDefault is how often each dequeuer moves the
// tasks whose retry or put-back time has come to their queue. asynq's own
// default, 5s, would add up to 5s to every retry and to every task a rate
// limit or the breaker put back for a second; at 1s it costs each dequeuer
// two scripts a second per queue.
const DelayedTaskCheckIntervalDefault = time.Second

// Worker is the asynq servers (Run.Dequeuers of them, sharing the
// concurrency) with the cancellation handler.
type Worker struct {
	srvs    []*asynq.Server
	mux     *asynq.ServeMux
	handler *Handler
	queues  map[string]int
	state   atomic.Int32 // stateNew, stateRunning or stateStopped
	maint   *maintainer  // nil when off
	resolve *resolver
	recov   *recoverer // nil when off
	// shutdownTimeout is asynq's: how long Shutdown lets calls run.
	shutdownTimeout time.Duration
	stop            context.CancelFunc
	done            chan struct{} // closed when the maintainer and the resolver return
	log             *zap.Logger
}

// Worker states, for Running.
const (
	stateNew int32 = iota
	stateRunning
	stateStopped
)

// New builds a Worker for the providers of o.
func New(o Options) (*Worker, error) {
	c := o.Run
	if o.Meari == nil && o.PandaPon == nil {
		return nil, errors.New("no provider is enabled")
	}
	w := &Worker{log: o.Logger}
	store := dlq.New(o.Redis)
	w.resolve = &resolver{dlq: store, log: o.Logger.Named("dlq"), obs: cmp.Or[Observer](o.Observer, nopObserver{})}
	hc := HandlerOptions{
		Logger:       o.Logger,
		Redis:        o.Redis,
		DLQ:          store,
		Succeeded:    w.resolve.add,
		Policies:     map[string]retry.Policy{},
		Guards:       map[string]*guard.Guard{},
		Observer:     o.Observer,
		NowFunc:      o.NowFunc,
		ShuttingDown: func() bool { return w.state.Load() == stateStopped },
	}
	var served []string // providers
	mux := asynq.NewServeMux()
	byType := map[string]retry.Policy{}
	policy := func(provider string) (retry.Policy, error) {
		p := o.Retry[provider]
		if err := p.Validate(); err != nil {
			return p, fmt.Errorf("%s retry policy: %w", provider, err)
		}
		return p.WithDefaults(), nil
	}
	transport := providers.Transport{Timeout: c.UpstreamTimeout, Calls: c.Concurrency, NetHTTP: c.NetHTTP, NowFunc: o.NowFunc}
	if o.Meari != nil {
		mc := *o.Meari
		mc.Transport = transport
		cl, err := meari.New(mc)
		if err != nil {
			return nil, fmt.Errorf("meari: %w", err)
		}
		p, err := policy(tasks.ProviderMeari)
		if err != nil {
			return nil, err
		}
		hc.Meari, hc.MeariSourceApp = cl, mc.SourceApp
		hc.Policies[tasks.ProviderMeari] = p
		byType[tasks.TypeMeariCancel] = hc.Policies[tasks.ProviderMeari]
		served = append(served, tasks.ProviderMeari)
	}
	if o.PandaPon != nil {
		pc := *o.PandaPon
		pc.Transport = transport
		cl, err := pandapon.New(pc)
		if err != nil {
			return nil, fmt.Errorf("pandapon: %w", err)
		}
		p, err := policy(tasks.ProviderPandaPon)
		if err != nil {
			return nil, err
		}
		hc.PandaPon = cl
		hc.Policies[tasks.ProviderPandaPon] = p
		byType[tasks.TypePandaPonCancel] = hc.Policies[tasks.ProviderPandaPon]
		served = append(served, tasks.ProviderPandaPon)
	}
	queues := Weights(o.Shards, served)
	gobs, _ := o.Observer.(guard.Observer) // the metrics are one
	for provider := range hc.Policies {
		g, err := guard.New(guard.Config{
			Provider: provider, Limit: o.Limits[provider], MaxWait: o.RateMaxWait, Breaker: o.Breaker,
			Redis: o.Redis, Logger: o.Logger.Named("guard"), Observer: gobs, NowFunc: o.NowFunc,
		})
		if err != nil {
			return nil, err
		}
		hc.Guards[provider] = g
	}
	if c.Prefetch > 0 {
		// asynq's slots are Concurrency + Prefetch; the calls, Concurrency.
		hc.CallSlots = c.Concurrency
	}
	h, err := NewHandler(hc)
	if err != nil {
		return nil, err
	}
	for typ := range byType {
		mux.Handle(typ, h)
	}
	level := asynq.InfoLevel
	if o.LogLevel >= zapcore.WarnLevel {
		level = asynq.WarnLevel
	}
	// asynq's processor takes one task at a time from Redis, a round trip
	// each: more than one server (dequeuer) keeps the slots filled when
	// the round trips, not the upstream, are the limit.
	n := max(c.Dequeuers, 1)
	slots := c.Concurrency + max(c.Prefetch, 0)
	srvRedis, err := asynqClient(o.Redis, c.Pipeline)
	if err != nil {
		return nil, err
	}
	watch := scriptWatch{now: time.Now}
	if o.NowFunc != nil {
		watch.now = o.NowFunc
	}
	if o.RecoverInterval >= 0 {
		// What this process has dequeued, from the moment it has.
		watch.seen = h.seen
	}
	if so, ok := o.Observer.(StageObserver); ok {
		h.stages = newStageClock(so, watch.now)
		watch.stages = h.stages
	}
	if watch.seen != nil || watch.stages != nil {
		srvRedis = watchedClient{UniversalClient: srvRedis, watch: watch}
	}
	for i := range n {
		share := slots / n
		if i < slots%n {
			share++
		}
		w.srvs = append(w.srvs, asynq.NewServerFromRedisClient(srvRedis, asynq.Config{
			Concurrency:              share,
			Queues:                   queues,
			RetryDelayFunc:           retry.DelayFunc(byType, retry.Policy{}),
			IsFailure:                retry.IsFailure,
			ShutdownTimeout:          c.ShutdownTimeout,
			TaskCheckInterval:        c.PollInterval,
			DelayedTaskCheckInterval: cmp.Or(o.DelayedTaskCheckInterval, DelayedTaskCheckIntervalDefault),
			Logger:                   o.Logger.Named("asynq").Sugar(),
			LogLevel:                 level,
		}))
	}
	w.mux, w.handler, w.queues = mux, h, queues
	w.shutdownTimeout = c.ShutdownTimeout
	if w.shutdownTimeout <= 0 {
		w.shutdownTimeout = 8 * time.Second // asynq's default
	}
	if o.MaintenanceInterval >= 0 {
		obs := o.Observer
		if obs == nil {
			obs = nopObserver{}
		}
		w.maint = &maintainer{
			log:          o.Logger.Named("maintenance"),
			store:        taskstore.New(o.Redis),
			dlq:          hc.DLQ,
			insp:         asynq.NewInspectorFromRedisClient(o.Redis),
			obs:          obs,
			queues:       sortedQueues(queues),
			shards:       o.Shards,
			interval:     cmp.Or(o.MaintenanceInterval, MaintenanceIntervalDefault),
			compactAfter: max(cmp.Or(o.CompactAfter, CompactAfterDefault), 0),
			cursors:      map[string]cursor{},
		}
	}
	if o.RecoverInterval >= 0 {
		w.recov = &recoverer{
			store: taskstore.New(o.Redis), rdb: o.Redis, log: o.Logger.Named("recoverer"), queues: sortedQueues(queues),
			interval: cmp.Or(o.RecoverInterval, RecoverIntervalDefault), self: thisProc(), nowFunc: o.NowFunc,
			taskState: h.taskState, oldestDequeue: h.seen.oldestDequeue, idle: h.seen.idle,
			insp: asynq.NewInspectorFromRedisClient(o.Redis), dequeuers: len(w.srvs),
			backoff: func(typ string, retried int) time.Duration {
				return byType[typ].Delay(retried, errHolderStopped)
			},
		}
		if w.recov.nowFunc == nil {
			w.recov.nowFunc = time.Now
		}
	}
	return w, nil
}

// SizeRedis returns conn sized for the worker run as c, where conn leaves
// a size at zero (per node, on a Cluster):
//   - the pool: one connection per task in flight (each finishes with a
//     round trip of its own), a few per dequeuer (its fetch loop,
//     heartbeat, forwarder, janitor, recoverer and cancellation
//     subscription), and some for the maintainer, the admin server and
//     /metrics. go-redis's default, 10 per CPU, is smaller than a
//     concurrency of 200 on a small machine;
//   - the buffers: 4 KiB each way per connection. A task message is a few
//     hundred bytes; go-redis's default of 32 KiB each way would make 200
//     connections cost 12 MiB;
//   - the pipeline pool's buffers (WORKER_PIPELINE): 32 KiB each way, about
//     a batch of 100 of asynq's calls or their replies, where go-redis's
//     default is 128 KiB.
func SizeRedis(conn config.RedisConn, c config.Worker) config.RedisConn {
	return conn.SizePool(config.Pool{
		Size:       c.Concurrency + max(c.Prefetch, 0) + 8*max(c.Dequeuers, 1) + 10,
		ReadBuffer: redisBufferSize, WriteBuffer: redisBufferSize, PipelineBuffer: pipelineBufferSize,
	})
}

const (
	redisBufferSize    = 4 << 10
	pipelineBufferSize = 32 << 10
)

// Weights returns the queues of providers under shards, each weighted so
// that every provider has the same share of the fetches however many
// queues it has: asynq picks a queue with probability its weight over
// the sum.
func Weights(shards tasks.Shards, providers []string) map[string]int {
	l := 1
	for _, p := range providers {
		l = lcm(l, len(shards.Queues(p)))
	}
	w := map[string]int{}
	for _, p := range providers {
		qs := shards.Queues(p)
		for _, q := range qs {
			w[q] = l / len(qs)
		}
	}
	return w
}

func lcm(a, b int) int {
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	return a / x * b
}

// Queues returns the served queues and their weights.
func (w *Worker) Queues() map[string]int { return w.queues }

// Start starts fetching and processing tasks. If one of the dequeuers
// cannot start, those started are shut down again.
func (w *Worker) Start() error {
	if w.recov != nil {
		// Before any task is taken: a worker that outlives this process
		// needs the record to prove it dead.
		ctx, cancel := context.WithTimeout(context.Background(), bookkeepingTimeout)
		err := w.recov.register(ctx)
		cancel()
		if err != nil {
			w.log.Warn("a worker started after this one will not be able to prove it dead: its tasks would wait for asynq's lease after a crash", zap.Error(err))
		}
	}
	for i, srv := range w.srvs {
		if err := srv.Start(w.mux); err != nil {
			shutdownAll(w.srvs[:i])
			return err
		}
	}
	if w.state.CompareAndSwap(stateNew, stateRunning) {
		ctx, cancel := context.WithCancel(context.Background())
		w.stop, w.done = cancel, make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.resolve.run(ctx)
		}()
		if w.maint != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.maint.run(ctx)
			}()
		}
		if w.recov != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.recov.run(ctx)
			}()
		}
		go func() {
			wg.Wait()
			close(w.done)
		}()
	}
	return nil
}

// handlerWaitTimeout bounds how long Shutdown waits, after asynq's own
// shutdown, for calls it cut short to note that in their attempt records.
const handlerWaitTimeout = 5 * time.Second

// markAheadMax is how long before asynq cuts off the calls still running
// at shutdown that they are marked as having an unknown outcome: a quarter
// of the shutdown timeout, at most this.
const markAheadMax = time.Second

// Shutdown stops fetching, waits up to the configured shutdown timeout for
// in-flight calls, and puts back any still running: they are retried by
// the next worker, nothing is lost. Each call cut short then notes in its
// attempt record that its outcome is unknown, so that a later permanent
// answer is flagged; Shutdown waits for that, within handlerWaitTimeout.
func (w *Worker) Shutdown() {
	w.state.Store(stateStopped)
	// Just before asynq cuts the calls still running off, mark them: if
	// one succeeds in the moment between, or the worker is killed before
	// the calls note the cut themselves, the mark still tells.
	ahead := min(w.shutdownTimeout/4, markAheadMax)
	mark := time.AfterFunc(w.shutdownTimeout-ahead, func() {
		ctx, cancel := context.WithTimeout(context.Background(), ahead+bookkeepingTimeout)
		defer cancel()
		if err := w.handler.MarkRunningUnknown(ctx); err != nil {
			w.log.Warn("could not mark the calls about to be cut off", zap.Error(err))
		}
	})
	shutdownAll(w.srvs)
	mark.Stop()
	if !w.handler.Wait(handlerWaitTimeout) {
		w.log.Warn("calls cut short at shutdown did not finish their bookkeeping in time", zap.Duration("waited", handlerWaitTimeout))
	}
	if w.stop != nil {
		w.stop()
		<-w.done
	}
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

// shutdownAll shuts the servers down at once, each within its timeout.
func shutdownAll(srvs []*asynq.Server) {
	var wg sync.WaitGroup
	for _, srv := range srvs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv.Shutdown()
		}()
	}
	wg.Wait()
}

// Ping reports whether the asynq servers can reach Redis (they share one
// client).
func (w *Worker) Ping() error { return w.srvs[0].Ping() }
