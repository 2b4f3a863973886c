// Package retry is the retry policy, as pure functions: how long to wait
// before attempt n, which failures count against the budget, and when the
// budget is spent.
//
// Retries are durable: the worker returns the error to asynq, which stores the
// task in Redis with the delay given by DelayFunc; nothing sleeps in a
// handler.
package retry

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cancelworker/cancelworker/providers"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/cenkalti/backoff/v4"
	"github.com/hibiken/asynq"
)

// Defaults, explained in the README's retry table.
const (
	// InitialIntervalDefault is the base delay before the first retry.
	InitialIntervalDefault = 10 * time.Second
	// MultiplierDefault grows the base delay after each counted failure.
	MultiplierDefault = 2.0
	// MaxIntervalDefault caps the base delay.
	MaxIntervalDefault = 15 * time.Minute
	// RandomizationFactorDefault spreads each delay over
	// [d·(1−f), d·(1+f)] so that retries of a burst do not arrive together.
	RandomizationFactorDefault = 0.5
	// MaxAttemptsDefault is the number of attempts, the first included,
	// after which a transient failure is dead-lettered with reason
	// "retries exhausted". With the defaults above the tenth attempt comes
	// roughly 50 minutes after the first.
	MaxAttemptsDefault = 10
	// MaxAgeDefault dead-letters a still-failing cancellation this long after
	// it was first requested, whatever attempts are left.
	MaxAgeDefault = 24 * time.Hour
	// AuthIntervalDefault is the delay between attempts while the upstream
	// rejects our credentials. Those attempts do not count against the
	// budget: they go on until an operator fixes the configuration.
	AuthIntervalDefault = 5 * time.Minute
	// MaxRetryAfter caps how long an upstream's Retry-After can hold a task.
	MaxRetryAfter = time.Hour
)

// Policy is one provider's retry policy. The zero value of a field means its
// default; a Policy is safe for concurrent use.
type Policy struct {
	InitialInterval     time.Duration
	Multiplier          float64
	MaxInterval         time.Duration
	RandomizationFactor float64
	MaxAttempts         int
	MaxAge              time.Duration
	AuthInterval        time.Duration
	// RandFunc returns a number in [0, 1) for the jitter; nil means
	// math/rand/v2's Float64. Tests inject a fixed source.
	RandFunc func() float64
}

// WithDefaults returns p with every zero field set to its default.
func (p Policy) WithDefaults() Policy {
	if p.InitialInterval == 0 {
		p.InitialInterval = InitialIntervalDefault
	}
	if p.Multiplier == 0 {
		p.Multiplier = MultiplierDefault
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = MaxIntervalDefault
	}
	if p.RandomizationFactor == 0 {
		p.RandomizationFactor = RandomizationFactorDefault
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = MaxAttemptsDefault
	}
	if p.MaxAge == 0 {
		p.MaxAge = MaxAgeDefault
	}
	if p.AuthInterval == 0 {
		p.AuthInterval = AuthIntervalDefault
	}
	if p.RandFunc == nil {
		p.RandFunc = rand.Float64
	}
	return p
}

// Validate reports every out-of-range field, after defaults are applied.
func (p Policy) Validate() error {
	p = p.WithDefaults()
	var errs []error
	if p.InitialInterval < 0 {
		errs = append(errs, fmt.Errorf("initial interval: must be positive, got %s", p.InitialInterval))
	}
	if p.Multiplier < 1 {
		errs = append(errs, fmt.Errorf("multiplier: must be at least 1, got %g", p.Multiplier))
	}
	if p.MaxInterval < p.InitialInterval {
		errs = append(errs, fmt.Errorf("max interval: must be at least the initial interval %s, got %s", p.InitialInterval, p.MaxInterval))
	}
	if p.RandomizationFactor < 0 || p.RandomizationFactor >= 1 {
		errs = append(errs, fmt.Errorf("randomization factor: must be in [0, 1), got %g", p.RandomizationFactor))
	}
	if p.MaxAttempts < 1 || p.MaxAttempts > MaxAttemptsCeiling {
		errs = append(errs, fmt.Errorf("max attempts: must be between 1 and %d, got %d", MaxAttemptsCeiling, p.MaxAttempts))
	}
	if p.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("max age: must be positive, got %s", p.MaxAge))
	}
	if p.AuthInterval < 0 {
		errs = append(errs, fmt.Errorf("auth interval: must be positive, got %s", p.AuthInterval))
	}
	return errors.Join(errs...)
}

// RecordTTL is how long a task's attempt record must outlive the task's
// last failure: the longest the next attempt can be waited for (a backoff
// delay, the auth interval or a capped Retry-After) plus MaxAge, so that
// the record lives as long as the configured maximum age lets a task go on.
func (p Policy) RecordTTL() time.Duration {
	p = p.WithDefaults()
	return p.MaxAge + max(p.MaxInterval, p.AuthInterval, MaxRetryAfter)
}

// MaxAttemptsCeiling is the largest budget a Policy takes: half the retry
// count that tasks gives asynq (tasks.MaxRetry), so that the policy, not
// asynq, decides, with room for the attempts that do not count (auth
// failures, interruptions).
const MaxAttemptsCeiling = tasks.MaxRetry / 2

// Base returns the delay before retry n+1 without jitter: n is the number of
// failures counted so far minus one (asynq's retry count), so Base(0) is the
// initial interval. The curve is cenkalti/backoff's ExponentialBackOff.
func (p Policy) Base(n int) time.Duration {
	p = p.WithDefaults()
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.InitialInterval,
		RandomizationFactor: 0, // jitter is applied by Delay, from RandFunc
		Multiplier:          p.Multiplier,
		MaxInterval:         p.MaxInterval,
		MaxElapsedTime:      0,
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.Reset()
	d := b.NextBackOff()
	for i := 0; i < n && d < p.MaxInterval; i++ {
		d = b.NextBackOff()
	}
	return d
}

// jitter spreads d over [d·(1−f), d·(1+f)] with r in [0, 1): the same formula
// as backoff's ExponentialBackOff, with the random source injectable.
func jitter(d time.Duration, f, r float64) time.Duration {
	delta := f * float64(d)
	lo := float64(d) - delta
	return time.Duration(lo + r*(2*delta+1))
}

// Delay returns how long to wait before retrying after err, which followed n
// counted failures (asynq's retry count). Auth failures wait AuthInterval;
// otherwise the exponential curve with jitter, raised to the upstream's
// Retry-After (capped at MaxRetryAfter, plus a second) when that is longer.
func (p Policy) Delay(n int, err error) time.Duration {
	var def *Deferred
	if errors.As(err, &def) {
		return deferredDelay(def.After)
	}
	p = p.WithDefaults()
	var pe *providers.Error
	isPE := errors.As(err, &pe)
	if isPE && pe.Class == providers.Auth {
		return jitter(p.AuthInterval, p.RandomizationFactor, p.RandFunc())
	}
	d := jitter(p.Base(n), p.RandomizationFactor, p.RandFunc())
	if isPE && pe.RetryAfter > 0 {
		// asynq schedules retries in whole Unix seconds (the retry set's
		// score), so a delay can come due up to a second early; the slack
		// keeps the upstream's Retry-After a lower bound.
		if ra := min(pe.RetryAfter, MaxRetryAfter) + retryAfterSlack; ra > d {
			d = ra
		}
	}
	return d
}

// retryAfterSlack is added to an upstream's Retry-After; see Delay.
const retryAfterSlack = time.Second

// Exhausted reports whether a transient failure on attempt number attempt
// (1 for the first) spends the budget, so the task goes to the dead-letter
// queue instead of being retried.
func (p Policy) Exhausted(attempt int) bool {
	return attempt >= p.WithDefaults().MaxAttempts
}

// TooOld reports whether a cancellation first requested at requestedAt is
// past the maximum age at now. A zero requestedAt is never too old.
func (p Policy) TooOld(requestedAt, now time.Time) bool {
	return !requestedAt.IsZero() && now.Sub(requestedAt) > p.WithDefaults().MaxAge
}

// Deferred is a task put back without calling the provider: its rate
// limit had no token in time, its circuit breaker is open, or it asked to
// slow down. It is not an attempt: asynq does not count it (IsFailure), it
// never dead-letters the task, and the task comes back after After
// (Delay, rounded up to asynq's whole seconds).
type Deferred struct {
	After  time.Duration
	Reason string
}

func (d *Deferred) Error() string {
	return fmt.Sprintf("deferred for %s: %s", d.After.Round(time.Millisecond), d.Reason)
}

// deferredDelay is how long asynq holds a Deferred task: After, rounded up
// to the next whole second, since asynq schedules in whole Unix seconds and
// could otherwise bring the task back early.
func deferredDelay(d time.Duration) time.Duration {
	return max(d.Truncate(time.Second)+time.Second, time.Second)
}

// IsFailure reports whether err counts against the retry budget. Auth
// failures do not: they are our configuration's fault, not the order's;
// nor does a Deferred task, which made no call.
// It is asynq.Config.IsFailure.
func IsFailure(err error) bool {
	var d *Deferred
	return providers.ClassOf(err) != providers.Auth && !errors.As(err, &d)
}

// DelayFunc returns asynq's RetryDelayFunc for per-task-type policies;
// fallback is used for a type not in byType.
func DelayFunc(byType map[string]Policy, fallback Policy) asynq.RetryDelayFunc {
	return func(n int, err error, t *asynq.Task) time.Duration {
		p, ok := byType[t.Type()]
		if !ok {
			p = fallback
		}
		return p.Delay(n, err)
	}
}
