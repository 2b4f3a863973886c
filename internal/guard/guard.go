// Package guard protects a provider from the workers: a rate limit shared
// by every worker process (GCRA in Redis, github.com/go-redis/redis_rate),
// the provider's own Retry-After pause shared the same way, and a circuit
// breaker in each process (github.com/sony/gobreaker).
//
// A call that may not go now is not an attempt: Acquire returns a
// *retry.Deferred, which the worker hands to asynq so the task comes back
// after it, uncounted and never dead-lettered for it.
package guard

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cancelworker/cancelworker/providers"
	"github.com/cancelworker/cancelworker/retry"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"
)

// Defaults of Config. Why these: docs/operations.md, "The circuit
// breaker".
const (
	MaxWaitDefault = time.Second
	// BreakerFailuresDefault failures in a row open the breaker: a
	// provider failing 30% of calls at random makes 50 in a row with a
	// chance of 0.3^50, never; a dead one makes them in well under a second
	// at any concurrency.
	BreakerFailuresDefault = 50
	// BreakerMinCallsDefault and BreakerFailureRatioDefault open it when
	// at least half of at least 100 calls in the window failed. A minimum
	// of 100 keeps a provider failing 30% of calls from opening it by a
	// run of bad luck (with 20 it would, at a process's start, about one
	// time in 17); a dead provider opens it through the failures in a row
	// anyway.
	BreakerMinCallsDefault     = 100
	BreakerFailureRatioDefault = 0.5
	BreakerWindowDefault       = 30 * time.Second
	BreakerOpenDefault         = 30 * time.Second
	// BreakerProbesDefault calls go through a half-open breaker; most of
	// them (3 of 5) succeeding closes it.
	BreakerProbesDefault = 5
)

// windowBuckets is how many buckets the closed breaker's window rolls by:
// calls leave the counts a tenth of the window at a time, not all at once.
const windowBuckets = 10

const (
	// pauseRefresh is how often a process reads the shared pause.
	pauseRefresh = 500 * time.Millisecond
	// deferralFloor is the shortest put-back.
	deferralFloor = 100 * time.Millisecond
	// busyDeferral puts a task back while the half-open breaker's probes
	// run, or while the limiter cannot be reached.
	busyDeferral = time.Second
)

// Why a call is deferred: retry.Deferred.Reason and Observer.Deferred's
// reason.
const (
	ReasonRateLimit   = "rate_limit"          // no token within MaxWait
	ReasonRetryAfter  = "retry_after"         // the provider's 429 Retry-After runs
	ReasonBreakerOpen = "breaker_open"        // the circuit breaker is open
	ReasonBreakerBusy = "breaker_half_open"   // its probes are in flight
	ReasonLimiterDown = "limiter_unavailable" // Redis did not answer the limiter
	// ReasonProbeFailed: a half-open breaker's probe failed; the task is
	// put back as if the breaker had held it (the report's Deferred).
	ReasonProbeFailed = "breaker_probe_failed"
)

// Reasons lists every deferral reason.
func Reasons() []string {
	return []string{ReasonRateLimit, ReasonRetryAfter, ReasonBreakerOpen, ReasonBreakerBusy, ReasonLimiterDown, ReasonProbeFailed}
}

// Breaker states, as Observer.BreakerState and the metric give them.
const (
	StateClosed   = 0
	StateHalfOpen = 1
	StateOpen     = 2
)

// Limit is a provider's rate: Rate calls per second on average, up to
// Burst at once. Rate 0 means no limit.
type Limit struct {
	Rate  float64
	Burst int
}

// Breaker is the circuit breaker's settings. Zero fields take the
// defaults.
//
// A closed breaker opens when, among the calls that ended in the last
// Window, at least MinCalls were made and at least FailureRatio of them
// failed; or on Failures failures in a row; or at once on an auth failure
// (every call would be rejected the same way). A failure is a transient
// or auth outcome: timeouts, resets, 5xx, 429, Meari 1005. A permanent
// answer (4001, data: false) counts as the provider working.
//
// After OpenFor it is half-open and lets Probes calls through. It closes
// as soon as most of them have succeeded (more than Probes × (1 −
// FailureRatio)), and opens again as soon as that can no longer happen, or
// on an auth failure.
type Breaker struct {
	// Failures in a row that open it.
	Failures int
	// MinCalls is the fewest calls in the window for FailureRatio to
	// apply.
	MinCalls int
	// FailureRatio is the share of failed calls, in (0, 1], that opens
	// it.
	FailureRatio float64
	// Window is how far back the closed breaker counts; it rolls in tenths.
	Window time.Duration
	// OpenFor is how long it stays open before probing.
	OpenFor time.Duration
	// Probes is how many calls the half-open breaker lets through.
	Probes int
}

// WithDefaults returns b with every zero field set to its default.
func (b Breaker) WithDefaults() Breaker {
	if b.Failures <= 0 {
		b.Failures = BreakerFailuresDefault
	}
	if b.MinCalls <= 0 {
		b.MinCalls = BreakerMinCallsDefault
	}
	if b.FailureRatio <= 0 || b.FailureRatio > 1 || math.IsNaN(b.FailureRatio) {
		b.FailureRatio = BreakerFailureRatioDefault
	}
	if b.Window <= 0 {
		b.Window = BreakerWindowDefault
	}
	if b.OpenFor <= 0 {
		b.OpenFor = BreakerOpenDefault
	}
	if b.Probes <= 0 {
		b.Probes = BreakerProbesDefault
	}
	return b
}

// probeLimits returns how many successful probes close the half-open
// breaker and how many failed ones open it again: a majority, by
// FailureRatio, of Probes.
func (b Breaker) probeLimits() (successes, failures int) {
	failures = max(int(math.Ceil(b.FailureRatio*float64(b.Probes)-1e-9)), 1)
	return b.Probes - failures + 1, failures
}

// trips reports whether the closed breaker's window opens it by its
// failure ratio. (Failures in a row are counted by the guard: gobreaker's
// own count rolls off with the window's buckets, so a provider that fails
// slowly, a timeout at a time, would never reach it.)
func (b Breaker) trips(c gobreaker.Counts) bool {
	ended := uint64(c.TotalSuccesses) + uint64(c.TotalFailures)
	return ended >= uint64(b.MinCalls) && float64(c.TotalFailures) >= b.FailureRatio*float64(ended)
}

// Observer receives the guard's events, for metrics.
type Observer interface {
	// RateLimited reports a call that found no token at once; waited is
	// how long it then waited, 0 when its task was put back at once.
	RateLimited(provider string, waited time.Duration)
	// Deferred reports a task put back without a call, for reason (one of
	// Reasons).
	Deferred(provider, reason string)
	// BreakerState reports the breaker's state: 0 closed, 1 half-open,
	// 2 open.
	BreakerState(provider string, state int)
}

// Config is one provider's guard.
type Config struct {
	Provider string
	Limit    Limit
	// MaxWait is the longest a call waits in the worker for a token; a
	// longer wait puts the task back instead. Zero means MaxWaitDefault.
	MaxWait time.Duration
	Breaker Breaker
	// Redis holds the limiter and the shared pause; required with a
	// Limit.
	Redis    redis.UniversalClient
	Logger   *zap.Logger
	Observer Observer // nil: none
	NowFunc  func() time.Time
}

// Guard is one provider's guard. It is safe for concurrent use.
type Guard struct {
	provider string
	limit    redis_rate.Limit
	limited  bool
	maxWait  time.Duration
	limiter  *redis_rate.Limiter
	rdb      redis.UniversalClient
	log      *zap.Logger
	obs      Observer
	now      func() time.Time

	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	openFor  time.Duration
	openedAt atomic.Int64 // Unix ns of the last move to open
	// reportMu makes each call's report, and the breaker's decision on
	// it, one step: authTrip and inARow are the reported call's.
	reportMu sync.Mutex
	authTrip atomic.Bool  // the failure being reported is an auth failure
	inARow   atomic.Int64 // failures in a row, whatever the window
	// probeFailures counts the failed probes of the current half-open
	// period; gobreaker would open again on the first, so the guard hands
	// it the failures short of probeFailLimit as exclusions.
	probeFailures  atomic.Int32
	probeFailLimit int32
	halfOpenSince  atomic.Int64 // a new value each half-open period

	pauseMu     sync.Mutex
	pausedUntil time.Time // the provider's Retry-After, as last seen
	pauseRead   time.Time // when the shared pause was last read
}

// New returns the guard of c.
func New(c Config) (*Guard, error) {
	if c.Logger == nil {
		return nil, errors.New("guard: Logger is required")
	}
	if c.Limit.Rate < 0 || math.IsNaN(c.Limit.Rate) || math.IsInf(c.Limit.Rate, 0) {
		return nil, fmt.Errorf("guard: %s rate must be a positive number, got %v", c.Provider, c.Limit.Rate)
	}
	g := &Guard{
		provider: c.Provider,
		maxWait:  c.MaxWait,
		rdb:      c.Redis,
		log:      c.Logger.With(zap.String("provider", c.Provider)),
		obs:      c.Observer,
		now:      c.NowFunc,
	}
	if g.maxWait <= 0 {
		g.maxWait = MaxWaitDefault
	}
	if g.now == nil {
		g.now = time.Now
	}
	if c.Limit.Rate > 0 {
		if c.Redis == nil {
			return nil, errors.New("guard: Redis is required with a rate limit")
		}
		burst := c.Limit.Burst
		if burst <= 0 {
			burst = int(math.Ceil(c.Limit.Rate))
		}
		// GCRA depends only on the emission interval (Period / Rate) and
		// the burst: one call per 1/rate seconds takes any rate.
		g.limit = redis_rate.Limit{Rate: 1, Period: time.Duration(float64(time.Second) / c.Limit.Rate), Burst: burst}
		g.limiter = redis_rate.NewLimiter(c.Redis)
		g.limited = true
	}
	b := c.Breaker.WithDefaults()
	g.openFor = b.OpenFor
	need, fail := b.probeLimits()
	g.probeFailLimit = int32(fail)
	g.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name: c.Provider,
		// In half-open: the successes that close it. Each tolerated
		// failure, reported as an exclusion, lets one more probe through.
		MaxRequests:  uint32(need),
		Interval:     b.Window,
		BucketPeriod: b.Window / windowBuckets,
		Timeout:      b.OpenFor,
		ReadyToTrip: func(counts gobreaker.Counts) bool {
			return g.authTrip.Load() || g.inARow.Load() >= int64(b.Failures) || b.trips(counts)
		},
		IsSuccessful:  isSuccessful,
		IsExcluded:    isExcluded,
		OnStateChange: g.stateChanged,
	})
	return g, nil
}

// RateKey is the Redis key of provider's limiter, as redis_rate names it
// (its "rate:" prefix and ours). The hash tag keeps it in one Cluster
// slot with the provider's pause key.
func RateKey(provider string) string { return "rate:" + rateKey(provider) }

func rateKey(provider string) string { return "cancelworker:{" + provider + "}:rate" }

// PauseKey is the Redis key of provider's shared Retry-After pause: the
// Unix ms until which no call goes.
func PauseKey(provider string) string { return "cancelworker:{" + provider + "}:paused" }

// Acquire returns when a call to the provider may go, with done to report
// its outcome. It returns a *retry.Deferred, and no done, when the call
// must not go now: the breaker is open (or half-open with its probes in
// flight), the provider's Retry-After pause runs, or no token comes within
// MaxWait. A wait for a token holds no Redis connection. It returns ctx's
// error if ctx ends while waiting.
//
// done returns a *retry.Deferred when the call was a half-open breaker's
// probe that failed (a transient failure): a call the breaker made to test
// the provider, which its task should not pay for with an attempt and a
// longer backoff any more than for the calls the breaker holds. The task
// goes back for the rest of the open time, or a second if the breaker is
// still probing. Otherwise done returns nil.
func (g *Guard) Acquire(ctx context.Context) (done func(error) *retry.Deferred, err error) {
	if d := g.pause(ctx); d > 0 {
		return nil, g.deferred(d, ReasonRetryAfter)
	}
	// An open breaker first, so that held calls take no token. (Allow
	// below reserves a half-open probe, so it comes after the token: a
	// probe reserved and then put back would never report.)
	if g.cb.State() == gobreaker.StateOpen {
		return nil, g.deferred(g.openRemaining(), ReasonBreakerOpen)
	}
	if g.limited {
		if err := g.take(ctx); err != nil {
			return nil, err
		}
	}
	cbDone, err := g.cb.Allow()
	switch {
	case errors.Is(err, gobreaker.ErrOpenState):
		return nil, g.deferred(g.openRemaining(), ReasonBreakerOpen)
	case errors.Is(err, gobreaker.ErrTooManyRequests):
		return nil, g.deferred(busyDeferral, ReasonBreakerBusy)
	case err != nil:
		return nil, err
	}
	// A probe, if the breaker is half-open now: Allow has moved it there
	// if its open time was up. (Should it move on before the call ends,
	// gobreaker drops the outcome, whatever is passed below.)
	probe, period := g.cb.State() == gobreaker.StateHalfOpen, g.halfOpenSince.Load()
	return func(callErr error) *retry.Deferred {
		auth := providers.ClassOf(callErr) == providers.Auth
		g.reportMu.Lock()
		defer g.reportMu.Unlock()
		failedProbe := probe && providers.ClassOf(callErr) == providers.Transient && !isExcluded(callErr)
		switch {
		case isExcluded(callErr):
		case isSuccessful(callErr):
			g.inARow.Store(0)
		default:
			g.inARow.Add(1)
		}
		g.authTrip.Store(auth)
		if probe && !auth && !isSuccessful(callErr) && !isExcluded(callErr) && g.halfOpenSince.Load() == period &&
			g.probeFailures.Add(1) < g.probeFailLimit {
			// A failed probe short of the limit: not (yet) a reason to
			// open again, and its slot goes to another probe.
			callErr = errProbeTolerated
		}
		cbDone(callErr)
		if !failedProbe {
			return nil
		}
		if g.cb.State() == gobreaker.StateOpen {
			return g.deferred(g.openRemaining(), ReasonProbeFailed)
		}
		return g.deferred(busyDeferral, ReasonProbeFailed)
	}, nil
}

// errProbeTolerated stands, for gobreaker, for a failed half-open probe
// that does not open the breaker again by itself.
var errProbeTolerated = errors.New("guard: failed probe, tolerated")

// take waits for a token of the shared limiter, up to MaxWait.
func (g *Guard) take(ctx context.Context) error {
	var waited time.Duration
	for {
		res, err := g.limiter.Allow(ctx, rateKey(g.provider), g.limit)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			g.log.Warn("rate limiter unavailable (Redis); the task is put back", zap.Error(err))
			return g.deferred(busyDeferral, ReasonLimiterDown)
		}
		if res.Allowed > 0 {
			if waited > 0 && g.obs != nil {
				g.obs.RateLimited(g.provider, waited)
			}
			return nil
		}
		wait := res.RetryAfter
		if waited+wait > g.maxWait {
			if g.obs != nil {
				g.obs.RateLimited(g.provider, waited)
			}
			return g.deferred(wait, ReasonRateLimit)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		waited += wait
	}
}

// Throttled notes that the provider answered 429 with a Retry-After of d:
// every process's guard holds its calls for that long. Without a rate
// limit the pause stays in this process.
func (g *Guard) Throttled(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	d = min(d, retry.MaxRetryAfter)
	until := g.now().Add(d)
	g.pauseMu.Lock()
	if until.After(g.pausedUntil) {
		g.pausedUntil = until
	}
	g.pauseMu.Unlock()
	if !g.limited {
		return
	}
	// The later of what is stored and ours wins; the key expires with it.
	err := throttleScript.Run(ctx, g.rdb, []string{PauseKey(g.provider)}, until.UnixMilli(), (d + time.Second).Milliseconds()).Err()
	if err != nil {
		g.log.Warn("could not share the provider's Retry-After with the other workers", zap.Error(err))
	}
	g.log.Info("provider asked to slow down: calls held", zap.Duration("retry_after", d))
}

var throttleScript = redis.NewScript(`
local cur = tonumber(redis.call("GET", KEYS[1]) or "0")
if tonumber(ARGV[1]) > cur then
	redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
end
return 1`)

// pause returns how long the provider's Retry-After pause still runs, 0
// for none. With a rate limit the shared pause is read at most every
// pauseRefresh.
func (g *Guard) pause(ctx context.Context) time.Duration {
	now := g.now()
	g.pauseMu.Lock()
	refresh := g.limited && now.Sub(g.pauseRead) >= pauseRefresh
	if refresh {
		g.pauseRead = now
	}
	until := g.pausedUntil
	g.pauseMu.Unlock()
	if refresh {
		if v, err := g.rdb.Get(ctx, PauseKey(g.provider)).Result(); err == nil {
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
				shared := time.UnixMilli(ms)
				g.pauseMu.Lock()
				if shared.After(g.pausedUntil) {
					g.pausedUntil = shared
				}
				until = g.pausedUntil
				g.pauseMu.Unlock()
			}
		}
	}
	return max(until.Sub(now), 0)
}

// openRemaining is how long the open breaker stays open.
func (g *Guard) openRemaining() time.Duration {
	opened := time.Unix(0, g.openedAt.Load())
	return g.openFor - g.now().Sub(opened)
}

// State returns the breaker's state: 0 closed, 1 half-open, 2 open.
func (g *Guard) State() int { return stateNumber(g.cb.State()) }

func (g *Guard) stateChanged(_ string, from, to gobreaker.State) {
	switch to {
	case gobreaker.StateOpen:
		g.openedAt.Store(g.now().UnixNano())
		g.inARow.Store(0)
	case gobreaker.StateHalfOpen:
		g.probeFailures.Store(0)
		g.halfOpenSince.Add(1)
	}
	fields := []zap.Field{zap.String("from", from.String()), zap.String("to", to.String())}
	switch {
	case to == gobreaker.StateOpen && g.authTrip.Load():
		g.log.Error("circuit breaker open: the provider rejects our credentials or signature; check the configuration", append(fields, zap.Duration("open_for", g.openFor))...)
	case to == gobreaker.StateOpen:
		g.log.Warn("circuit breaker open: the provider keeps failing; calls wait until it recovers", append(fields, zap.Duration("open_for", g.openFor))...)
	case to == gobreaker.StateHalfOpen:
		g.log.Info("circuit breaker half-open: probing the provider", fields...)
	default:
		g.log.Info("circuit breaker closed: the provider answers again", fields...)
	}
	if g.obs != nil {
		g.obs.BreakerState(g.provider, stateNumber(to))
	}
}

// deferred returns the Deferred of a call put back for reason, after d
// (at least deferralFloor), and reports it.
func (g *Guard) deferred(d time.Duration, reason string) *retry.Deferred {
	if g.obs != nil {
		g.obs.Deferred(g.provider, reason)
	}
	return &retry.Deferred{After: max(d, deferralFloor), Reason: reason}
}

func stateNumber(s gobreaker.State) int {
	switch s {
	case gobreaker.StateHalfOpen:
		return StateHalfOpen
	case gobreaker.StateOpen:
		return StateOpen
	}
	return StateClosed
}

// isSuccessful says the provider works: it answered, even "no" (a
// permanent answer). Transient and auth failures count against it.
func isSuccessful(err error) bool {
	if err == nil {
		return true
	}
	var pe *providers.Error
	return errors.As(err, &pe) && pe.Class == providers.Permanent
}

// isExcluded leaves out calls that say nothing of the provider: cut short
// by our own context (shutdown, the task deadline).
func isExcluded(err error) bool {
	return err == errProbeTolerated || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) && !isTimeout(err)
}

// isTimeout reports an upstream timeout, which does say something.
func isTimeout(err error) bool {
	var pe *providers.Error
	return errors.As(err, &pe) && pe.Code == providers.CodeTimeout
}
