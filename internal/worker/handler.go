// Package worker turns cancellation tasks into upstream calls: it decodes
// the payload, calls the provider, and maps the typed outcome to asynq (done,
// retry later, or dead-letter), in one place.
package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/guard"
	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/cancelworker/cancelworker/internal/tracing"
	"github.com/cancelworker/cancelworker/providers"
	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/cancelworker/cancelworker/providers/pandapon"
	"github.com/cancelworker/cancelworker/retry"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

type meariCanceler interface {
	Cancel(ctx context.Context, o meari.Order) error
}

type pandaponCanceler interface {
	Cancel(ctx context.Context, o pandapon.Order) error
}

// Observer is told of every attempt and every dead-lettering, for metrics.
// Implementations must be safe for concurrent use.
type Observer interface {
	// Attempt reports one upstream call: class is "success", "transient",
	// "permanent" or "auth"; code is the upstream code ("" on success).
	Attempt(provider, class, code string, latency time.Duration)
	// DeadLettered reports a DLQ entry written for reason; outcomeUnknown
	// says an earlier attempt may already have cancelled the order.
	DeadLettered(provider, reason string, outcomeUnknown bool)
	// Reconciled reports a DLQ entry filed for a task found archived
	// without one.
	Reconciled(provider string)
	// Resolved reports a DLQ entry removed because its order's task, come
	// back without a requeue, succeeded.
	Resolved(provider string)
}

type nopObserver struct{}

func (nopObserver) Attempt(string, string, string, time.Duration) {}
func (nopObserver) DeadLettered(string, string, bool)             {}
func (nopObserver) Reconciled(string)                             {}
func (nopObserver) Resolved(string)                               {}

// HandlerOptions wires a Handler. Logger, Redis and DLQ are required; a nil
// provider client means that provider is not served.
type HandlerOptions struct {
	Logger   *zap.Logger
	Redis    redis.UniversalClient
	DLQ      *dlq.Store
	Meari    meariCanceler
	PandaPon pandaponCanceler
	// MeariSourceApp is the customer number Meari is configured for; a task
	// for another one cannot be signed and is dead-lettered.
	MeariSourceApp int64
	// Policies holds the retry policy by provider name; a missing one is the
	// default policy.
	Policies map[string]retry.Policy
	// Observer receives metrics events; nil means none.
	Observer Observer
	// Guards holds each provider's rate limit and circuit breaker, by
	// provider name; a provider without one is called unguarded.
	Guards map[string]*guard.Guard
	// NowFunc returns the time; nil means time.Now.
	NowFunc func() time.Time
	// ShuttingDown reports whether the worker is shutting down, so that a
	// call cut short then is known to go back to its queue uncounted; nil
	// means never.
	ShuttingDown func() bool
	// Succeeded is told of every task that succeeded, to settle its
	// dead-letter side (dlq.Store.Resolve) off the task's path; nil means
	// no one.
	Succeeded func(dlq.Done)
	// CallSlots bounds the upstream calls in flight when asynq runs more
	// tasks at once than that (WORKER_PREFETCH): a task beyond it waits
	// for a slot before its rate limit and breaker. 0 means no bound.
	CallSlots int
}

// Handler processes both cancellation task types. It is safe for concurrent
// use.
type Handler struct {
	log      *zap.Logger
	dlq      *dlq.Store
	meari    meariCanceler
	pandapon pandaponCanceler
	source   int64
	policies map[string]retry.Policy
	guards   map[string]*guard.Guard
	obs      Observer
	store    *taskstore.Store
	nowFunc  func() time.Time
	stopping func() bool
	done     func(dlq.Done)
	inflight sync.WaitGroup // ProcessTask calls running
	seen     *seenRing      // the tasks started or finished lately
	stages   *stageClock    // nil: the stages are not timed
	calls    chan struct{}  // the call slots (CallSlots); nil: unbounded

	mu      sync.Mutex
	running map[string]taskstore.Running // task ID → the call in progress
}

var _ asynq.Handler = (*Handler)(nil)

// NewHandler returns a Handler for o.
func NewHandler(o HandlerOptions) (*Handler, error) {
	var errs []error
	if o.Logger == nil {
		errs = append(errs, errors.New("worker: Logger is required"))
	}
	if o.Redis == nil {
		errs = append(errs, errors.New("worker: Redis is required"))
	}
	if o.DLQ == nil {
		errs = append(errs, errors.New("worker: DLQ is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	h := &Handler{
		log:      o.Logger,
		dlq:      o.DLQ,
		meari:    o.Meari,
		pandapon: o.PandaPon,
		source:   o.MeariSourceApp,
		policies: o.Policies,
		guards:   o.Guards,
		obs:      o.Observer,
		store:    taskstore.New(o.Redis),
		nowFunc:  o.NowFunc,
		stopping: o.ShuttingDown,
		done:     o.Succeeded,
		seen:     newSeenRing(),
		running:  map[string]taskstore.Running{},
	}
	if o.CallSlots > 0 {
		h.calls = make(chan struct{}, o.CallSlots)
	}
	if h.obs == nil {
		h.obs = nopObserver{}
	}
	if h.nowFunc == nil {
		h.nowFunc = time.Now
	}
	if h.stopping == nil {
		h.stopping = func() bool { return false }
	}
	if h.done == nil {
		h.done = func(dlq.Done) {}
	}
	return h, nil
}

// Wait waits until every ProcessTask call has returned, or timeout passes,
// and reports whether they all returned. asynq's shutdown puts calls still
// running at its timeout back in their queue without waiting for them;
// waiting here lets each note in its attempt record that it was cut short.
func (h *Handler) Wait(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() {
		h.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// MarkRunningUnknown marks every call in progress as having an unknown
// outcome in its attempt record. The worker calls it just before asynq's
// shutdown cuts those calls off: asynq puts them back uncounted, and a
// call that succeeds in the moment between, or a worker killed right
// after, would otherwise leave no trace.
func (h *Handler) MarkRunningUnknown(ctx context.Context) error {
	h.mu.Lock()
	running := make([]taskstore.Running, 0, len(h.running))
	for _, r := range h.running {
		running = append(running, r)
	}
	h.mu.Unlock()
	return h.store.MarkUnknown(ctx, running)
}

// taskState reports whether this process holds task id (dequeued or
// running), and whether it holds it or finished it within the last 70s:
// asynq may then still hold a write of its outcome.
func (h *Handler) taskState(id string) (held, lately bool) { return h.seen.state(id, h.nowFunc()) }

// track notes a call in progress until the returned func is called.
func (h *Handler) track(r taskstore.Running) func() {
	h.mu.Lock()
	h.running[r.ID] = r
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		delete(h.running, r.ID)
		h.mu.Unlock()
	}
}

// recordTTL is how long provider's attempt records are kept
// (retry.Policy.RecordTTL), out of line: see attemptRun.
//
//go:noinline
func (h *Handler) recordTTL(provider string) time.Duration { return h.Policy(provider).RecordTTL() }

// Policy returns the retry policy of provider.
func (h *Handler) Policy(provider string) retry.Policy {
	return h.policies[provider].WithDefaults()
}

// job is one decoded task: who to call, and how to name it.
type job struct {
	provider    string
	order       string
	requestedAt time.Time
	call        func(ctx context.Context) error
}

// ProcessTask calls the provider once and maps the outcome to asynq:
// nil (done), an error (asynq retries it after retry.Delay), or an error
// wrapping asynq.SkipRetry after the DLQ entry is written.
//
// The first attempt's success path makes no Redis call of its own: the
// attempt record is written only when an attempt fails or is cut short,
// and an earlier attempt that never reported back (a crash, a lost
// acknowledgement, a lost lease, a shutdown cut-off) is found from asynq's
// retry count (taskstore.RecordFailure).
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	growStack()
	taskID, _ := asynq.GetTaskID(ctx)
	marks := h.stages.started(taskID)
	var span trace.Span
	if tracing.Enabled() {
		queue, _ := asynq.GetQueueName(ctx)
		retried, _ := asynq.GetRetryCount(ctx)
		ctx, span = startProcess(ctx, t, queue, taskID, retried)
	}
	err := h.process(ctx, t, taskID, marks)
	endProcess(span, err)
	h.stages.returned(taskID, marks, err == nil)
	return err
}

// process is ProcessTask; marks, if not nil, get the upstream call's
// start and end.
func (h *Handler) process(ctx context.Context, t *asynq.Task, taskID string, marks *stageMarks) error {
	h.inflight.Add(1)
	defer h.inflight.Done()
	// Noted as it starts and as it ends: until its lease runs out, asynq
	// may still write its outcome (taskState).
	h.seen.start(taskID)
	defer func() { h.seen.end(taskID, h.nowFunc()) }()
	r := attemptRun{t: t, taskID: taskID}
	r.queue, _ = asynq.GetQueueName(ctx)
	r.retried, _ = asynq.GetRetryCount(ctx)
	r.provider = tasks.ProviderOf(t.Type())
	// The fields of this attempt's log lines, encoded once per line: the
	// success path writes one line and derives no logger.
	r.fields = make([]zap.Field, 0, 8)
	r.fields = append(r.fields, zap.String("provider", r.provider), zap.String("task_id", taskID))

	var err error
	if r.job, err = h.decode(t); err != nil {
		return h.undecodable(ctx, &r, err)
	}
	r.fields = append(r.fields, zap.String("order", r.job.order), zap.Int("attempt", r.retried+1))

	// A prefetched task waits here for a call slot (WORKER_PREFETCH).
	if h.calls != nil {
		select {
		case h.calls <- struct{}{}:
			defer func() { <-h.calls }()
		case <-ctx.Done():
			return h.deferCall(r.fields, &retry.Deferred{After: time.Second, Reason: "interrupted while waiting for a call slot"}, false)
		}
		if h.stopping() {
			// Shutting down: no new call; back to the queue uncounted.
			return h.deferCall(r.fields, &retry.Deferred{After: time.Second, Reason: "shutting down"}, false)
		}
	}

	// The provider's rate limit and breaker: a call that may not go now is
	// put back without using an attempt.
	g := h.guards[r.provider]
	var reported func(error) *retry.Deferred
	if g != nil {
		if reported, err = g.Acquire(ctx); err != nil {
			var d *retry.Deferred
			if !errors.As(err, &d) {
				// ctx ended while waiting for a token: no call was made.
				d = &retry.Deferred{After: time.Second, Reason: "interrupted while waiting for the rate limit"}
			}
			return h.deferCall(r.fields, d, true)
		}
	}
	// Tracked until asynq has the answer, so that a shutdown cut-off
	// finds it (MarkRunningUnknown).
	defer h.track(taskstore.Running{Queue: r.queue, ID: taskID, TTL: h.recordTTL(r.provider)})()
	ctx, attempt := startAttempt(ctx, r.provider, r.job.order, r.retried+1)
	if attempt != nil {
		defer attempt.End()
	}
	callCtx, call := startCall(ctx, r.provider, r.job.order, r.retried+1)
	start := h.nowFunc()
	callErr := r.job.call(callCtx)
	latency := h.nowFunc().Sub(start)
	endCall(call, attempt, callErr)
	if marks != nil {
		marks.called, marks.answered = start, start.Add(latency)
	}
	var probeFailed *retry.Deferred
	if reported != nil {
		probeFailed = reported(callErr)
	}
	r.fields = append(r.fields, zap.Int64("latency_ms", latency.Milliseconds()))

	if callErr == nil {
		h.obs.Attempt(r.provider, "success", "", latency)
		h.log.Info("order cancelled", r.fields...)
		h.done(dlq.Done{ID: taskID, RequeuedFrom: tasks.RequeuedFrom(t), At: start.Add(latency)})
		return nil
	}
	return h.failed(ctx, &r, g, probeFailed, latency, callErr)
}

// attemptRun is one run of a task as process sees it, for the paths that
// are not a success: they live in functions of their own (undecodable,
// deferCall, failed) so that the success path's stack frame stays small
// and a task's goroutine fits in the stack growStack gives it.
type attemptRun struct {
	t                       *asynq.Task
	queue, taskID, provider string
	retried                 int
	job                     job
	// fields are the run's log fields so far.
	fields []zap.Field
}

// undecodable dead-letters a task whose payload cannot be served: retrying
// the same bytes on the same worker cannot help. An earlier run, on a
// worker configured otherwise, may have called the upstream: the record
// says.
//
//go:noinline
func (h *Handler) undecodable(ctx context.Context, r *attemptRun, err error) error {
	reason := dlq.ReasonBadPayload
	if errors.Is(err, errNotServable) {
		reason = dlq.ReasonMisconfigured
	}
	log := h.log.With(r.fields...)
	bg, cancel := bookkeeping(ctx)
	defer cancel()
	return h.deadLetter(ctx, run{log, r.t, r.queue, r.taskID, r.provider, r.job.order}, h.record(bg, log, r.queue, r.taskID, r.retried, false, false, h.Policy(r.provider)), reason, err)
}

// deferCall logs a call that may not go now, with d's wait if withAfter,
// and returns d: the task goes back to the queue without using an attempt.
//
//go:noinline
func (h *Handler) deferCall(fields []zap.Field, d *retry.Deferred, withAfter bool) error {
	fields = append(fields, zap.String("reason", d.Reason))
	if withAfter {
		fields = append(fields, zap.Duration("after", d.After))
	}
	h.log.Debug("call deferred: no attempt used", fields...)
	return d
}

// failed decides what becomes of a run whose call failed with callErr: a
// retry, or the dead-letter queue; g is the provider's guard (or nil), and
// probeFailed, if not nil, says the call was the breaker's probe.
//
//go:noinline
func (h *Handler) failed(ctx context.Context, r *attemptRun, g *guard.Guard, probeFailed *retry.Deferred, latency time.Duration, callErr error) error {
	queue, taskID, provider, retried, policy := r.queue, r.taskID, r.provider, r.retried, h.Policy(r.provider)
	log := h.log.With(r.fields...)
	bg, cancel := bookkeeping(ctx)
	defer cancel()

	var pe *providers.Error
	if !errors.As(callErr, &pe) {
		pe = &providers.Error{Provider: provider, Class: providers.Transient, Code: providers.CodeInternal, Message: callErr.Error(), Err: callErr}
	}
	h.obs.Attempt(provider, pe.Class.String(), pe.Code, latency)
	log = log.With(zap.String("class", pe.Class.String()), zap.String("upstream_code", pe.Code))
	if g != nil && pe.RetryAfter > 0 && isTooManyRequests(pe) {
		// Every worker holds this provider's calls, not only this task.
		g.Throttled(bg, pe.RetryAfter)
	}
	now := h.nowFunc()
	interrupted := ctx.Err() != nil
	if probeFailed != nil && !interrupted && pe.Class == providers.Transient {
		// The breaker's probe: no attempt used, back when the breaker
		// lets calls through again.
		h.record(bg, log, queue, taskID, retried, false, pe.Unknown, policy)
		log.Warn("the breaker's probe failed: the provider still fails; no attempt used", zap.Duration("after", probeFailed.After), zap.Error(callErr))
		return probeFailed
	}
	exhausted := pe.Class == providers.Transient && policy.Exhausted(retried+1)
	tooOld := pe.Class == providers.Transient && !exhausted && policy.TooOld(r.job.requestedAt, now)

	// asynq counts the run as a failure when it retries it with IsFailure
	// true: a transient failure we return for a retry. Not one we
	// dead-letter (asynq archives it uncounted), not an auth failure, not
	// at shutdown (asynq may already have put the task back, uncounted),
	// not a call cut short (uncounted at shutdown, counted on a deadline or
	// a lost lease): when unsure, say uncounted, which can only make the
	// next failure flag an unknown outcome, never miss one.
	counted := !interrupted && !h.stopping() && pe.Class == providers.Transient && !exhausted && !tooOld
	out := h.record(bg, log, queue, taskID, retried, counted, pe.Unknown, policy)
	out.unknown = pe.Unknown
	wrapped := fmt.Errorf("cancel %s %s: %w", provider, r.job.order, callErr)
	if interrupted {
		// Shutdown, the task deadline or a lost lease: asynq puts the task
		// back; do not decide its fate on a call we cut short.
		log.Warn("attempt interrupted", zap.Bool("shutting_down", h.stopping()), zap.Error(callErr))
		return wrapped
	}

	dead := run{log, r.t, queue, taskID, provider, r.job.order}
	switch {
	case pe.Class == providers.Permanent:
		return h.deadLetter(ctx, dead, out, dlq.ReasonPermanent, wrapped)
	case pe.Class == providers.Auth:
		if pe.Signed != nil {
			// To compare with the vendor's own tool (LOG_LEVEL=debug).
			log.Debug("what was signed (the secret is not shown)", zap.String("sign_mode", pe.Signed.Mode),
				zap.String("timestamp_format", pe.Signed.TimestampFormat), zap.String("string_to_sign", pe.Signed.StringToSign))
		}
		// At warn: the provider's breaker logs the error once, as it opens.
		log.Warn("upstream rejected our credentials or signature: check the configuration; retrying", zap.Error(callErr))
		return wrapped
	case exhausted:
		return h.deadLetter(ctx, dead, out, dlq.ReasonRetriesExhausted, wrapped)
	case tooOld:
		return h.deadLetter(ctx, dead, out, dlq.ReasonMaxAge, wrapped)
	}
	log.Warn("attempt failed; will retry", zap.Error(callErr))
	return wrapped
}

// record notes a failed run in the task's attempt record and returns what
// the record says. When Redis fails, it says that an earlier outcome is
// unknown: it cannot tell otherwise, and flagging an entry is the safe
// mistake.
func (h *Handler) record(ctx context.Context, log *zap.Logger, queue, taskID string, retried int, counted, unknown bool, policy retry.Policy) outcome {
	now := h.nowFunc()
	a, err := h.store.RecordFailure(ctx, queue, taskID, retried, counted, unknown, now, policy.RecordTTL())
	if err != nil {
		log.Warn("could not update the attempt record; an earlier attempt's outcome is taken as unknown", zap.Error(err))
		a = taskstore.Attempt{Number: retried + 1, FirstFailedAt: now, EarlierUnknown: true}
	}
	return outcome{attempt: a, earlierUnknown: a.EarlierUnknown}
}

// bookkeepingTimeout bounds the Redis writes made after an upstream call.
const bookkeepingTimeout = 5 * time.Second

// bookkeeping returns the context of the Redis writes after a failed
// attempt: they must survive the task's context ending at shutdown, but not
// hang on a Redis that does not answer.
func bookkeeping(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
}

// outcome is what a failed attempt leaves for its DLQ entry.
type outcome struct {
	attempt taskstore.Attempt
	// unknown: this attempt's own outcome is unknown (a timeout or reset
	// after the request was sent).
	unknown bool
	// earlierUnknown: an earlier attempt's outcome is unknown.
	earlierUnknown bool
}

// run is the task run being dead-lettered: the task, its ID, provider and
// order, and the logger with the run's fields.
type run struct {
	log                            *zap.Logger
	task                           *asynq.Task
	queue, taskID, provider, order string
}

// deadLetter writes the DLQ entry and only then tells asynq to stop: if the
// worker dies in between, asynq runs the task again and the entry is
// written again (same ID, replaced), never lost.
//
// The entry is marked outcome_unknown when an earlier attempt's outcome is
// unknown, or the task follows one (tasks.PriorOutcomeUnknown: requeued
// from such an entry), and, unless the upstream has just answered for good
// (reason permanent), when this attempt's is.
func (h *Handler) deadLetter(ctx context.Context, r run, out outcome, reason string, cause error) error {
	now := h.nowFunc().UTC()
	log, t := r.log, r.task
	e := dlq.Entry{
		ID:             r.taskID,
		Provider:       r.provider,
		Order:          r.order,
		TaskType:       t.Type(),
		Queue:          cmp.Or(r.queue, tasks.QueueFor(r.provider)),
		Payload:        append([]byte(nil), t.Payload()...),
		Headers:        t.Headers(),
		Reason:         reason,
		Message:        providers.Truncate(cause.Error(), 1024),
		OutcomeUnknown: out.earlierUnknown || (out.unknown && reason != dlq.ReasonPermanent) || tasks.PriorOutcomeUnknown(t),
		Attempts:       out.attempt.Number,
		FirstFailedAt:  out.attempt.FirstFailedAt.UTC(),
		LastFailedAt:   now,
	}
	if e.FirstFailedAt.IsZero() {
		e.FirstFailedAt = now
	}
	var pe *providers.Error
	if errors.As(cause, &pe) {
		e.UpstreamCode = pe.Code
	}
	pctx, cancel := bookkeeping(ctx)
	defer cancel()
	if _, err := h.dlq.Put(pctx, e); err != nil {
		// Not recorded: let asynq retry rather than archive without a record.
		log.Error("could not write the dead-letter entry; the task will be retried", zap.Error(err))
		return fmt.Errorf("dead-letter %s: %w", r.taskID, err)
	}
	h.obs.DeadLettered(r.provider, reason, e.OutcomeUnknown)
	fields := []zap.Field{zap.String("reason", reason), zap.Error(cause)}
	if e.OutcomeUnknown {
		fields = append(fields, zap.Bool("outcome_unknown", true))
		log.Error("dead-lettered; an earlier attempt's outcome was unknown, the order may already be cancelled", fields...)
	} else {
		log.Error("dead-lettered", fields...)
	}
	// asynq keeps this text as the archived task's last error, which the
	// monitoring UI shows: lead with the DLQ reason.
	return fmt.Errorf("dead-lettered (%s): %w: %w", reason, cause, asynq.SkipRetry)
}

// errNotServable marks a valid task this worker cannot send.
var errNotServable = errors.New("not servable by this worker")

// decode returns the task's job; on an errNotServable error the job still
// names the order.
func (h *Handler) decode(t *asynq.Task) (job, error) {
	switch t.Type() {
	case tasks.TypeMeariCancel:
		return h.decodeMeari(t.Payload())
	case tasks.TypePandaPonCancel:
		return h.decodePandaPon(t.Payload())
	}
	return job{}, fmt.Errorf("unknown task type %q", t.Type())
}

// decodeMeari is decode of a Meari task. It and decodePandaPon are out of
// line so that each one's locals take stack only while it runs.
//
//go:noinline
func (h *Handler) decodeMeari(payload []byte) (job, error) {
	m, err := tasks.ParseMeariCancel(payload)
	if err != nil {
		return job{}, err
	}
	j := job{provider: tasks.ProviderMeari, order: m.OrderRef(), requestedAt: m.RequestedAt}
	switch {
	case h.meari == nil:
		return j, fmt.Errorf("%w: meari is not configured", errNotServable)
	case m.SourceApp != h.source:
		return j, fmt.Errorf("%w: source_app: this worker signs for Meari customer %d, the task is for %d", errNotServable, h.source, m.SourceApp)
	}
	o := meari.Order{SourceApp: m.SourceApp, UserAccount: m.UserAccount, OrderType: m.OrderType, OrderNum: m.OrderNum}
	j.call = func(ctx context.Context) error { return h.meari.Cancel(ctx, o) }
	return j, nil
}

// decodePandaPon is decode of a PandaPon task.
//
//go:noinline
func (h *Handler) decodePandaPon(payload []byte) (job, error) {
	p, err := tasks.ParsePandaPonCancel(payload)
	if err != nil {
		return job{}, err
	}
	j := job{provider: tasks.ProviderPandaPon, order: p.OrderRef(), requestedAt: p.RequestedAt}
	if h.pandapon == nil {
		return j, fmt.Errorf("%w: pandapon is not configured", errNotServable)
	}
	o := pandapon.Order{OrderID: int64(p.OrderID), CancelReason: p.CancelReason, Remark: p.Remark}
	j.call = func(ctx context.Context) error { return h.pandapon.Cancel(ctx, o) }
	return j, nil
}

// isTooManyRequests reports a 429: in the HTTP status, or PandaPon's body
// code.
func isTooManyRequests(pe *providers.Error) bool {
	return pe.Code == "http_429" || pe.Code == "429"
}
