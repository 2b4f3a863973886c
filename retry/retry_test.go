package retry

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/providers"
	"github.com/hibiken/asynq"
)

func fixed(r float64) func() float64 { return func() float64 { return r } }

func TestBase(t *testing.T) {
	t.Parallel()
	p := Policy{InitialInterval: time.Second, Multiplier: 2, MaxInterval: 10 * time.Second}
	want := []time.Duration{1, 2, 4, 8, 10, 10, 10}
	for n, w := range want {
		if got := p.Base(n); got != w*time.Second {
			t.Errorf("Base(%d) = %s, want %s", n, got, w*time.Second)
		}
	}
	if got := p.Base(400); got != 10*time.Second {
		t.Errorf("Base(400) = %s, want the cap 10s", got)
	}
}

func TestDelay(t *testing.T) {
	t.Parallel()
	base := Policy{InitialInterval: 4 * time.Second, Multiplier: 2, MaxInterval: time.Minute, RandomizationFactor: 0.5, AuthInterval: 40 * time.Second}
	transient := &providers.Error{Provider: "meari", Class: providers.Transient, Code: "1005"}
	tests := []struct {
		name string
		n    int
		err  error
		r    float64
		want time.Duration
	}{
		{name: "lowest jitter", n: 0, err: transient, r: 0, want: 2 * time.Second},
		{name: "middle jitter", n: 0, err: transient, r: 0.5, want: 4 * time.Second},
		{name: "highest jitter", n: 1, err: transient, r: 0.999999999, want: 12 * time.Second},
		{name: "plain error", n: 2, err: errors.New("boom"), r: 0.5, want: 16 * time.Second},
		{name: "retry-after longer wins", n: 0, err: &providers.Error{Class: providers.Transient, RetryAfter: 30 * time.Second}, r: 0.5, want: 31 * time.Second},
		{name: "retry-after shorter ignored", n: 3, err: &providers.Error{Class: providers.Transient, RetryAfter: time.Second}, r: 0.5, want: 32 * time.Second},
		{name: "retry-after capped", n: 0, err: &providers.Error{Class: providers.Transient, RetryAfter: 48 * time.Hour}, r: 0.5, want: MaxRetryAfter + time.Second},
		{name: "wrapped retry-after", n: 0, err: fmt.Errorf("cancel x: %w", &providers.Error{Class: providers.Transient, RetryAfter: 50 * time.Second}), r: 0.5, want: 51 * time.Second},
		{name: "auth waits auth interval", n: 7, err: &providers.Error{Class: providers.Auth, Code: "1023"}, r: 0.5, want: 40 * time.Second},
		{name: "auth jitter", n: 0, err: &providers.Error{Class: providers.Auth}, r: 0, want: 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := base
			p.RandFunc = fixed(tt.r)
			got := p.Delay(tt.n, tt.err)
			// Float rounding in the jitter formula moves it by nanoseconds.
			if d := (got - tt.want).Abs(); d > 10*time.Nanosecond {
				t.Errorf("Delay(%d, %v) = %s, want %s", tt.n, tt.err, got, tt.want)
			}
		})
	}
}

func TestDelayFuncPerType(t *testing.T) {
	t.Parallel()
	fast := Policy{InitialInterval: time.Second, MaxInterval: time.Second, RandFunc: fixed(0.5)}
	slow := Policy{InitialInterval: time.Minute, MaxInterval: time.Minute, RandFunc: fixed(0.5)}
	f := DelayFunc(map[string]Policy{"a": fast}, slow)
	if got := f(0, errors.New("x"), asynq.NewTask("a", nil)); got != time.Second {
		t.Errorf("type a: %s, want 1s", got)
	}
	if got := f(0, errors.New("x"), asynq.NewTask("other", nil)); got != time.Minute {
		t.Errorf("fallback: %s, want 1m", got)
	}
}

func TestExhaustedAndTooOld(t *testing.T) {
	t.Parallel()
	p := Policy{MaxAttempts: 3, MaxAge: time.Hour}
	for attempt, want := range map[int]bool{1: false, 2: false, 3: true, 4: true} {
		if got := p.Exhausted(attempt); got != want {
			t.Errorf("Exhausted(%d) = %v, want %v", attempt, got, want)
		}
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		at   time.Time
		want bool
	}{
		{name: "zero", at: time.Time{}, want: false},
		{name: "fresh", at: now.Add(-time.Minute), want: false},
		{name: "at the limit", at: now.Add(-time.Hour), want: false},
		{name: "past the limit", at: now.Add(-time.Hour - time.Second), want: true},
	}
	for _, tt := range tests {
		if got := p.TooOld(tt.at, now); got != tt.want {
			t.Errorf("%s: TooOld = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestIsFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "transient", err: &providers.Error{Class: providers.Transient}, want: true},
		{name: "permanent", err: &providers.Error{Class: providers.Permanent}, want: true},
		{name: "auth", err: &providers.Error{Class: providers.Auth}, want: false},
		{name: "wrapped auth", err: fmt.Errorf("x: %w", &providers.Error{Class: providers.Auth}), want: false},
		{name: "plain", err: errors.New("x"), want: true},
	}
	for _, tt := range tests {
		if got := IsFailure(tt.err); got != tt.want {
			t.Errorf("%s: IsFailure = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	if err := (Policy{}).Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	err := Policy{Multiplier: 0.5, MaxAttempts: -1, InitialInterval: time.Minute, MaxInterval: time.Second}.Validate()
	for _, want := range []string{"multiplier", "max attempts", "max interval"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want a problem naming %q", err, want)
		}
	}
}
