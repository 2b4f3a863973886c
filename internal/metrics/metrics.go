// Package metrics exposes the worker's Prometheus metrics on a registry of
// its own: upstream attempts and dead-letterings (it implements
// worker.Observer), upstream latency, the dead-letter queue's size, the asynq
// queues' sizes and latency, and process and Go metrics.
//
// Labels are bounded: providers, classes, reasons and upstream codes outside
// the known sets are reported as "other", and no order or task ID is ever a
// label.
package metrics

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/buildinfo"
	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/guard"
	"github.com/cancelworker/cancelworker/internal/worker"
	"github.com/cancelworker/cancelworker/providers"
	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Namespace prefixes the worker's own metric names.
const Namespace = "cancelworker"

// CollectTimeoutDefault bounds each read of Redis made during a scrape.
const CollectTimeoutDefault = 3 * time.Second

// Other is the label value that stands for any value outside a known set.
const Other = "other"

// LatencyBuckets are the upstream latency histogram's buckets, in seconds.
// The upstream timeout defaults to 10s.
var LatencyBuckets = []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// StageBuckets are the bounds of cancelworker_task_stage_seconds, in
// seconds: from 50µs up by half each time to about 10s, fine enough for a
// stage of a few hundred microseconds and for a slow call.
var StageBuckets = prometheus.ExponentialBucketsRange(50e-6, 10, 31)

// Options configures Metrics.
type Options struct {
	// Redis is read at scrape time for the dead-letter queue's size and the
	// asynq queues; nil leaves both out. The caller keeps ownership.
	Redis redis.UniversalClient
	// DLQ is the store counted for cancelworker_dlq_entries; nil means the
	// default store in Redis.
	DLQ *dlq.Store
	// Queues lists the asynq queues reported; nil means every provider's
	// queue, served by this worker or not.
	Queues []string
	// CollectTimeout bounds each scrape-time read of Redis; zero means
	// CollectTimeoutDefault. On timeout or error the metrics concerned are
	// left out of the scrape and the error is logged.
	CollectTimeout time.Duration
	// Logger receives scrape errors; nil means they are dropped.
	Logger *zap.Logger
}

// Metrics holds the worker's metrics. It is safe for concurrent use.
type Metrics struct {
	reg            *prometheus.Registry
	attempts       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	deadLettered   *prometheus.CounterVec
	outcomeUnknown *prometheus.CounterVec
	reconciled     *prometheus.CounterVec
	rateLimited    *prometheus.CounterVec
	deferred       *prometheus.CounterVec
	rateWait       *prometheus.HistogramVec
	breaker        *prometheus.GaugeVec
	breakerOpened  *prometheus.CounterVec
	resolved       *prometheus.CounterVec
	operator       *prometheus.CounterVec
	stages         *prometheus.HistogramVec
	handler        http.Handler
}

var (
	_ worker.Observer      = (*Metrics)(nil)
	_ guard.Observer       = (*Metrics)(nil)
	_ worker.StageObserver = (*Metrics)(nil)
)

// RateWaitBuckets are the buckets of the rate limit wait, in seconds: up
// to the longest wait in the worker (guard.MaxWaitDefault is 1s).
var RateWaitBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// New returns Metrics with every collector registered.
func New(o Options) (*Metrics, error) {
	if o.CollectTimeout <= 0 {
		o.CollectTimeout = CollectTimeoutDefault
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Queues == nil {
		for _, p := range tasks.Providers() {
			o.Queues = append(o.Queues, tasks.QueueFor(p))
		}
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "attempts_total",
			Help:      `Upstream cancel calls, by provider, outcome class (success, transient, permanent, auth) and upstream code ("" on success; codes outside the known set are "other").`,
		}, []string{"provider", "class", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "upstream_latency_seconds",
			Help:      "Duration of upstream cancel calls, whatever their outcome, by provider.",
			Buckets:   LatencyBuckets,
		}, []string{"provider"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "dead_lettered_total",
			Help:      "Tasks written to the dead-letter queue, by provider and reason.",
		}, []string{"provider", "reason"}),
		outcomeUnknown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "dead_lettered_outcome_unknown_total",
			Help:      "Dead-lettered tasks whose earlier attempt may already have cancelled the order, by provider.",
		}, []string{"provider"}),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "dlq_reconciled_total",
			Help:      "Dead-letter entries filed by the reconciler for tasks found archived without one (the monitoring UI's archive buttons, asynq's retry limit, a handler panic), by provider.",
		}, []string{"provider"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "rate_limited_total",
			Help:      "Calls that found no token of the provider's shared rate limit at once (they waited, or their task was put back), by provider.",
		}, []string{"provider"}),
		deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "deferred_total",
			Help:      "Tasks put back without a call and without using an attempt, by provider and reason (rate_limit, retry_after, breaker_open, breaker_half_open, limiter_unavailable).",
		}, []string{"provider", "reason"}),
		rateWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "rate_limit_wait_seconds",
			Help:      "Time calls waited in the worker for a token of the provider's rate limit, by provider.",
			Buckets:   RateWaitBuckets,
		}, []string{"provider"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "breaker_state",
			Help:      "The provider's circuit breaker in this process: 0 closed, 1 half-open, 2 open.",
		}, []string{"provider"}),
		breakerOpened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "breaker_opened_total",
			Help:      "Times the provider's circuit breaker in this process opened (from closed or half-open).",
		}, []string{"provider"}),
		resolved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "dlq_resolved_total",
			Help:      "Dead-letter entries removed because their order's task, come back without a requeue (the monitoring UI's Run, a forced enqueue), succeeded, by provider.",
		}, []string{"provider"}),
		operator: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "operator_actions_total",
			Help:      "Operator actions on tasks through this worker's admin server (the monitoring UI and its API, the dead-letter page), by action and result (done, refused, failed).",
		}, []string{"action", "result"}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "task_stage_seconds",
			Help:      "Where the time of each task this worker completed went, by stage: fetch (asynq's dequeue round trip), dispatch (to the handler's start), prepare (decode, the wait of a task taken ahead for a call slot, rate limit, breaker), upstream (the call), finish (to the handler's return), complete (asynq's completion round trip).",
			Buckets:   StageBuckets,
		}, []string{"stage"}),
	}
	// Known series start at zero, so that rate() and alerts see them before
	// the first event.
	for _, p := range tasks.Providers() {
		m.attempts.WithLabelValues(p, "success", "")
		m.latency.WithLabelValues(p)
		m.outcomeUnknown.WithLabelValues(p)
		m.reconciled.WithLabelValues(p)
		m.rateLimited.WithLabelValues(p)
		for _, r := range guard.Reasons() {
			m.deferred.WithLabelValues(p, r)
		}
		m.rateWait.WithLabelValues(p)
		m.breaker.WithLabelValues(p).Set(guard.StateClosed)
		m.breakerOpened.WithLabelValues(p)
		m.resolved.WithLabelValues(p)
		for _, r := range reasons {
			m.deadLettered.WithLabelValues(p, r)
		}
	}
	for _, st := range worker.Stages() {
		m.stages.WithLabelValues(st)
	}
	for _, a := range operatorActions {
		for _, r := range operatorResults {
			m.operator.WithLabelValues(a, r)
		}
	}
	bi := buildinfo.Read()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace:   Namespace,
		Name:        "build_info",
		Help:        "Always 1; its labels say which build this worker is: module version, VCS revision (12 characters, +dirty for a modified tree) and Go version.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "revision": bi.Short(), "goversion": bi.GoVersion},
	})
	build.Set(1)
	cs := []prometheus.Collector{
		build,
		m.attempts, m.latency, m.deadLettered, m.outcomeUnknown, m.reconciled, m.rateLimited, m.deferred, m.rateWait, m.breaker, m.breakerOpened, m.resolved, m.operator, m.stages,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	if o.Redis != nil {
		store := o.DLQ
		if store == nil {
			store = dlq.New(o.Redis)
		}
		cs = append(cs,
			newDLQCollector(store, tasks.Providers(), o.CollectTimeout),
			newQueueCollector(asynq.NewInspectorFromRedisClient(o.Redis), o.Queues, o.CollectTimeout),
		)
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      printLogger{o.Logger},
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg,
	})
	return m, nil
}

// Registry returns the registry every metric is registered with.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler returns the /metrics handler, in the Prometheus text format.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Attempt counts one upstream call and observes its latency.
func (m *Metrics) Attempt(provider, class, code string, latency time.Duration) {
	p := providerLabel(provider)
	m.attempts.WithLabelValues(p, classLabel(class), codeLabel(p, code)).Inc()
	m.latency.WithLabelValues(p).Observe(latency.Seconds())
}

// Stage observes the duration of one stage of one completed task.
func (m *Metrics) Stage(stage string, d time.Duration) {
	m.stages.WithLabelValues(stage).Observe(d.Seconds())
}

// DeadLettered counts one dead-letter entry written.
func (m *Metrics) DeadLettered(provider, reason string, outcomeUnknown bool) {
	p := providerLabel(provider)
	m.deadLettered.WithLabelValues(p, reasonLabel(reason)).Inc()
	if outcomeUnknown {
		m.outcomeUnknown.WithLabelValues(p).Inc()
	}
}

// Reconciled counts one dead-letter entry filed by the reconciler.
func (m *Metrics) Reconciled(provider string) {
	m.reconciled.WithLabelValues(providerLabel(provider)).Inc()
}

// Resolved counts one dead-letter entry removed by its order's success.
func (m *Metrics) Resolved(provider string) {
	m.resolved.WithLabelValues(providerLabel(provider)).Inc()
}

// OperatorAction counts one operator action (admin.Actions) and its
// result: done, refused or failed.
func (m *Metrics) OperatorAction(action, result string) {
	if !slices.Contains(operatorActions, action) {
		action = Other
	}
	if !slices.Contains(operatorResults, result) {
		result = Other
	}
	m.operator.WithLabelValues(action, result).Inc()
}

// operatorActions are the action label's values (admin's actions).
var operatorActions = []string{
	"delete", "archive", "run", "cancel", "pause_queue", "resume_queue", "delete_queue", "requeue", "purge",
}

// operatorResults are the result label's values (admin's results).
var operatorResults = []string{"done", "refused", "failed"}

// RateLimited counts a call that found no token at once and observes how
// long it then waited.
func (m *Metrics) RateLimited(provider string, waited time.Duration) {
	p := providerLabel(provider)
	m.rateLimited.WithLabelValues(p).Inc()
	if waited > 0 {
		m.rateWait.WithLabelValues(p).Observe(waited.Seconds())
	}
}

// Deferred counts a task put back without a call.
func (m *Metrics) Deferred(provider, reason string) {
	if !slices.Contains(guard.Reasons(), reason) {
		reason = Other
	}
	m.deferred.WithLabelValues(providerLabel(provider), reason).Inc()
}

// BreakerState sets the provider's breaker state: 0 closed, 1 half-open,
// 2 open.
func (m *Metrics) BreakerState(provider string, state int) {
	p := providerLabel(provider)
	m.breaker.WithLabelValues(p).Set(float64(state))
	if state == guard.StateOpen {
		m.breakerOpened.WithLabelValues(p).Inc()
	}
}

// reasons are the dlq reasons kept as labels.
var reasons = []string{dlq.ReasonPermanent, dlq.ReasonRetriesExhausted, dlq.ReasonMaxAge, dlq.ReasonBadPayload, dlq.ReasonMisconfigured}

func providerLabel(p string) string {
	if tasks.QueueFor(p) == "" {
		return Other
	}
	return p
}

func classLabel(c string) string {
	switch c {
	case "success", providers.Transient.String(), providers.Permanent.String(), providers.Auth.String():
		return c
	}
	return Other
}

func reasonLabel(r string) string {
	for _, known := range reasons {
		if r == known {
			return r
		}
	}
	return Other
}

// transportCodes are the codes the shared HTTP core and the handler give
// failures that are not an upstream answer.
var transportCodes = map[string]bool{
	providers.CodeCanceled: true, providers.CodeTimeout: true, providers.CodeConnectionRefused: true,
	providers.CodeDNS: true, providers.CodeConnect: true, providers.CodeReset: true,
	providers.CodeTruncatedBody: true, providers.CodeBodyTooLarge: true, providers.CodeNetwork: true,
	providers.CodeBadResponse: true, providers.CodeInvalidRequest: true, providers.CodeInternal: true,
}

// codeLabel bounds the code label: "" (success), the transport codes,
// "http_<status>" for a status from 100 to 599, Meari's documented codes
// (meari.Documented), PandaPon's codes from 100 to 599 (its codes mirror
// HTTP statuses), and "other" for anything else.
func codeLabel(provider, code string) string {
	switch {
	case code == "" || transportCodes[code]:
		return code
	case strings.HasPrefix(code, "http_") && statusLike(strings.TrimPrefix(code, "http_")):
		return code
	case provider == tasks.ProviderMeari && meari.Documented(code):
		return code
	case provider == tasks.ProviderPandaPon && statusLike(code):
		return code
	}
	return Other
}

// statusLike reports whether s is three digits from 100 to 599.
func statusLike(s string) bool {
	digit := func(b byte) bool { return b >= '0' && b <= '9' }
	return len(s) == 3 && s[0] >= '1' && s[0] <= '5' && digit(s[1]) && digit(s[2])
}

// printLogger hands promhttp's errors to zap.
type printLogger struct{ log *zap.Logger }

func (l printLogger) Println(v ...any) {
	l.log.Warn("metrics scrape incomplete", zap.String("error", strings.TrimSpace(fmt.Sprintln(v...))))
}
