package providers

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Transport is what every provider client shares: how it sends, and the
// clock and nonce source it signs with. Both clients' Config embed it; the
// zero value means the defaults.
type Transport struct {
	// Timeout bounds one upstream call, body read included. Zero means
	// TimeoutDefault. It does not bound the retries, and is not used when
	// HTTPClient is set.
	Timeout time.Duration
	// HTTPClient, if not nil, sends the requests. Nil means a FastClient
	// (NewFastClient(Timeout, Calls, 0)), or, when the environment names a
	// proxy for the provider's URL, NewHTTPClientFor(Timeout, Calls).
	HTTPClient *http.Client
	// NetHTTP, when HTTPClient is nil, sends with NewHTTPClientFor(Timeout,
	// Calls) even where no proxy is named.
	NetHTTP bool
	// Calls is how many calls may be in flight at once (the worker's
	// concurrency): the idle connection pool is sized to it. Zero means
	// IdleConnsDefault. It is not used when HTTPClient is set.
	Calls int
	// NowFunc returns the time the request timestamp is taken from. Nil
	// means time.Now. It must be safe for concurrent use.
	NowFunc func() time.Time
	// NonceFunc returns a fresh nonce for each call. Nil means the
	// provider's default random nonce. It must be safe for concurrent use
	// and never repeat.
	NonceFunc func() string
}

// Validate reports a bad Timeout or Calls, naming the field.
func (t Transport) Validate() error {
	var errs []error
	if t.Timeout < 0 {
		errs = append(errs, fmt.Errorf("Timeout: must not be negative, got %s", t.Timeout))
	}
	if t.Calls < 0 {
		errs = append(errs, fmt.Errorf("Calls: must not be negative, got %d", t.Calls))
	}
	return errors.Join(errs...)
}

// Build returns the HTTP core for provider, whose calls go to base, and the
// clock and nonce source to sign with, defaulting each unset field;
// defaultNonce is the provider's own nonce rule.
func (t Transport) Build(provider, base string, defaultNonce func() string) (core Core, now func() time.Time, nonce func() string) {
	core = Core{Provider: provider, HTTP: t.HTTPClient, NowFunc: t.NowFunc}
	switch {
	case t.HTTPClient != nil:
	case t.NetHTTP || proxied(base):
		core.HTTP = NewHTTPClientFor(t.Timeout, t.Calls)
	default:
		core.Fast = NewFastClient(t.Timeout, t.Calls, 0)
	}
	now, nonce = t.NowFunc, t.NonceFunc
	if now == nil {
		now = time.Now
	}
	if nonce == nil {
		nonce = defaultNonce
	}
	return core, now, nonce
}
