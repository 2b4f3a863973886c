// Package sandbox fakes both upstream cancel-order APIs, Meari and PandaPon,
// as docs/upstreams.md describes them. A *Sandbox is a real http.Handler: it checks
// every request as the vendor would (body shape, timestamp, signature,
// replayed nonce), answers the outcomes scripted for the order, and records
// what it received. The integration tests serve it with httptest; the demo
// serves it with Start.
//
// Unscripted orders succeed. A request the sandbox rejects is answered with
// the vendor's parameter or auth error, recorded with Call.Reject set, and
// does not consume the order's script.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/cancelworker/cancelworker/tasks"
)

// MaxSkewDefault is how far a request's timestamp may be from the sandbox
// clock when Config.MaxSkew is zero: the 600 seconds of the PandaPon manual,
// applied to both providers.
const MaxSkewDefault = 600 * time.Second

// DevelopID is the developId the sandbox puts in every PandaPon answer, as a
// 19-digit string like the vendor's example.
const DevelopID = "1110890638347337996"

// Paths served.
const (
	meariPath    = "/v3/third/sdk/order/cancel"
	pandaPonPath = "/v2/alibaba/order/cancel"

	// maxBody is the largest request body read; a larger one is answered
	// HTTP 413.
	maxBody = 1 << 20
)

// MeariAccount is the Meari partner the sandbox accepts requests from.
type MeariAccount struct {
	PartnerKey    string
	PartnerSecret string
	SourceApp     int64
	// SignMode is the string-to-sign rule the sandbox checks. Empty means
	// meari.SignModeDefault.
	SignMode meari.SignMode
	// TimestampFormat is the format the client sends timestamps in. Empty
	// means meari.TimestampFormatDefault.
	TimestampFormat meari.TimestampFormat
}

// PandaPonAccount is the PandaPon developer the sandbox accepts requests from.
type PandaPonAccount struct {
	AccessKey    string
	AccessSecret string
	UserID       string
}

// Config configures a Sandbox.
type Config struct {
	Meari    MeariAccount
	PandaPon PandaPonAccount
	// NowFunc is the sandbox clock, against which request timestamps are
	// checked and calls are stamped. Nil means time.Now.
	NowFunc func() time.Time
	// MaxSkew is how far a request's timestamp may be from NowFunc, either
	// way. Zero or negative means MaxSkewDefault.
	MaxSkew time.Duration
}

// validate reports every invalid field at once, naming each.
func (c Config) validate() error {
	var errs []error
	if c.Meari.SignMode != "" {
		if _, err := meari.ParseSignMode(string(c.Meari.SignMode)); err != nil {
			errs = append(errs, fmt.Errorf("sandbox: Meari.SignMode: %w", err))
		}
	}
	switch c.Meari.TimestampFormat {
	case "", meari.TimestampMillis, meari.TimestampRFC3339:
	default:
		errs = append(errs, fmt.Errorf("sandbox: Meari.TimestampFormat: must be %q or %q, got %q",
			meari.TimestampMillis, meari.TimestampRFC3339, c.Meari.TimestampFormat))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.Meari.SignMode == "" {
		c.Meari.SignMode = meari.SignModeDefault
	}
	if c.Meari.TimestampFormat == "" {
		c.Meari.TimestampFormat = meari.TimestampFormatDefault
	}
	if c.NowFunc == nil {
		c.NowFunc = time.Now
	}
	if c.MaxSkew <= 0 {
		c.MaxSkew = MaxSkewDefault
	}
	return c
}

// Call is one request the sandbox received on a provider path.
type Call struct {
	Provider string // "meari" or "pandapon"
	// Order is the Meari orderNum, or the PandaPon orderId's digits exactly as
	// they appear in the body. It is "" when the body held no readable order
	// (for instance an orderId sent as a string or a float).
	Order  string
	Header http.Header
	Body   []byte // raw bytes as received
	// Outcome describes the answer: "ok", "resultCode 1005",
	// "code 200 data false", "http 503", "http 429 retry-after 2s",
	// "slow 1s, then ok", "reset", "bad body". A rejected request has the
	// error it was answered with, e.g. "resultCode 1023" or "code 401".
	Outcome string
	// SignatureOK reports that the request's signature was checked and
	// matched. It is false when an earlier check failed first.
	SignatureOK bool
	// Reject says why the sandbox rejected the request, naming the field;
	// it is "" when the request was accepted. It never holds a secret or an
	// expected signature.
	Reject string
	At     time.Time // arrival, on the sandbox clock
}

// Sandbox fakes both providers. Build it with New; it is safe for
// concurrent use.
type Sandbox struct {
	cfg Config
	mux *http.ServeMux

	mu      sync.Mutex
	orders  map[orderKey]*orderState
	nonces  map[string]struct{} // provider, account and nonce, joined by NUL
	total   int
	changed chan struct{} // closed and replaced whenever a call is recorded
	// outage, when set, answers every accepted call of its provider ("" for
	// both) in place of the orders' scripts: see SetOutage.
	outage *outage
}

var _ http.Handler = (*Sandbox)(nil)

type orderKey struct{ provider, order string }

type orderState struct {
	script    []Step
	next      int // index of the next script step; the last one repeats
	calls     []Call
	called    chan struct{} // closed on the first call
	cancelled bool
}

// New returns a Sandbox for cfg. It panics when cfg names an unknown sign
// mode or timestamp format: that is a wiring bug (Start returns the error
// instead).
func New(cfg Config) *Sandbox {
	if err := cfg.validate(); err != nil {
		panic(err)
	}
	s := &Sandbox{
		cfg:     cfg.withDefaults(),
		mux:     http.NewServeMux(),
		orders:  make(map[orderKey]*orderState),
		nonces:  make(map[string]struct{}),
		changed: make(chan struct{}),
	}
	// Method-qualified patterns: the mux answers 405 (with Allow) for a
	// known path and a wrong method, and 404 for an unknown path.
	s.mux.HandleFunc("POST "+meariPath, s.provider(tasks.ProviderMeari, s.checkMeari))
	s.mux.HandleFunc("POST "+pandaPonPath, s.provider(tasks.ProviderPandaPon, s.checkPandaPon))
	return s
}

// ServeHTTP serves POST /v3/third/sdk/order/cancel (Meari) and
// POST /v2/alibaba/order/cancel (PandaPon). Other paths get 404, other
// methods 405; those requests are not recorded.
func (s *Sandbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Script sets the outcomes of the next calls for an order of provider
// ("meari" with the orderNum, or "pandapon" with the orderId's digits),
// replacing any earlier script. Steps are consumed one per accepted call, in
// order; once they are used up the last one repeats. Script with no steps
// removes the script, so the order succeeds again. It panics on an unknown
// provider or a step that belongs to the other provider: a wiring bug.
func (s *Sandbox) Script(provider, order string, steps ...Step) {
	for i, st := range steps {
		if err := st.validFor(provider); err != nil {
			panic(fmt.Sprintf("sandbox: Script(%q, %q): step %d: %v", provider, order, i, err))
		}
	}
	if len(steps) == 0 && !knownProvider(provider) {
		panic(fmt.Sprintf("sandbox: Script: unknown provider %q", provider))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stateLocked(orderKey{provider, order})
	st.script = slices.Clone(steps)
	st.next = 0
}

// Calls returns the calls received for an order, rejected ones included, in
// arrival order. The result is a copy.
func (s *Sandbox) Calls(provider, order string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.callsLocked(orderKey{provider, order})
}

// Called returns a channel that is closed on the first call for an order,
// rejected or not.
func (s *Sandbox) Called(provider, order string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stateLocked(orderKey{provider, order}).called
}

// WaitCalls blocks until at least n calls for an order were received,
// rejected ones included, and returns them. When ctx is done first it returns
// the calls so far and an error naming the order and the count.
func (s *Sandbox) WaitCalls(ctx context.Context, provider, order string, n int) ([]Call, error) {
	key := orderKey{provider, order}
	for {
		s.mu.Lock()
		count := len(s.stateLocked(key).calls)
		changed := s.changed
		s.mu.Unlock()
		if count >= n {
			return s.Calls(provider, order), nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return s.Calls(provider, order), fmt.Errorf("sandbox: %s order %q: got %d of %d calls: %w",
				provider, order, count, n, context.Cause(ctx))
		}
	}
}

// Cancelled reports whether the sandbox served a success for an order at
// least once. A Slow success counts once its delay ends, even when the client
// had already gone: the upstream cancelled the order although nobody read the
// answer (docs/upstreams.md §4).
func (s *Sandbox) Cancelled(provider, order string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.orders[orderKey{provider, order}]; ok {
		return st.cancelled
	}
	return false
}

// TotalCalls returns how many calls both providers received, rejected ones
// included.
func (s *Sandbox) TotalCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

func (s *Sandbox) now() time.Time { return s.cfg.NowFunc() }

func (s *Sandbox) stateLocked(key orderKey) *orderState {
	st, ok := s.orders[key]
	if !ok {
		st = &orderState{called: make(chan struct{})}
		s.orders[key] = st
	}
	return st
}

func (s *Sandbox) callsLocked(key orderKey) []Call {
	st, ok := s.orders[key]
	if !ok {
		return nil
	}
	out := make([]Call, len(st.calls))
	for i, c := range st.calls {
		c.Header = c.Header.Clone()
		c.Body = slices.Clone(c.Body)
		out[i] = c
	}
	return out
}

// recordLocked stores c and wakes the waiters. The caller holds s.mu.
func (s *Sandbox) recordLocked(c Call) {
	st := s.stateLocked(orderKey{c.Provider, c.Order})
	st.calls = append(st.calls, c)
	if len(st.calls) == 1 {
		close(st.called)
	}
	s.total++
	close(s.changed)
	s.changed = make(chan struct{})
}

// reject records a rejected call; the script is left alone.
func (s *Sandbox) reject(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recordLocked(c)
}

type outage struct {
	provider string
	step     Step
}

// SetOutage answers every accepted call to provider ("" for both) with
// step, whatever the orders' scripts say, which are left where they
// stand: a provider that is down (sandbox.HTTPStatus(503)) or throttling.
// ClearOutage ends it.
func (s *Sandbox) SetOutage(provider string, step Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outage = &outage{provider: provider, step: step}
}

// ClearOutage ends SetOutage's answers: the scripts answer again.
func (s *Sandbox) ClearOutage() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outage = nil
}

// accept records an accepted call and consumes the order's next step, which
// it returns. An immediate success marks the order cancelled at once, so
// that Cancelled agrees with Called.
func (s *Sandbox) accept(c Call) Step {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stateLocked(orderKey{c.Provider, c.Order})
	if o := s.outage; o != nil && (o.provider == "" || o.provider == c.Provider) {
		c.Outcome = "outage: " + o.step.String()
		if o.step.succeeds() {
			st.cancelled = true
		}
		s.recordLocked(c)
		return o.step
	}
	step := OK()
	if n := len(st.script); n > 0 {
		step = st.script[min(st.next, n-1)]
		if st.next < n {
			st.next++
		}
	}
	c.Outcome = step.String()
	if step.succeeds() {
		st.cancelled = true
	}
	s.recordLocked(c)
	return step
}

func (s *Sandbox) markCancelled(key orderKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stateLocked(key).cancelled = true
}

// useNonce records nonce for the account and reports whether it was new.
func (s *Sandbox) useNonce(provider, account, nonce string) bool {
	k := provider + "\x00" + account + "\x00" + nonce
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, seen := s.nonces[k]; seen {
		return false
	}
	s.nonces[k] = struct{}{}
	return true
}

// newCall starts the record of a request.
func (s *Sandbox) newCall(provider string, r *http.Request, body []byte) Call {
	h := r.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	return Call{Provider: provider, Header: h, Body: body, At: s.now()}
}

func knownProvider(p string) bool {
	return p == tasks.ProviderMeari || p == tasks.ProviderPandaPon
}

// provider returns the handler of one provider's cancel endpoint: read the
// body, verify it with check, then answer the rejection or the order's next
// scripted step.
func (s *Sandbox) provider(name string, check func(r *http.Request, body []byte, now time.Time) verdict) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, status, err := readBody(w, r)
		c := s.newCall(name, r, body)
		if err != nil {
			s.rejectHTTP(w, r, c, status, err)
			return
		}
		v := check(r, body, c.At)
		c.Order, c.SignatureOK = v.order, v.signatureOK
		key := orderKey{c.Provider, c.Order}
		if v.reject != "" {
			c.Reject, c.Outcome = v.reject, v.answer.String()
			s.reject(c)
			s.serve(w, r, key, v.answer)
			return
		}
		s.serve(w, r, key, s.accept(c))
	}
}
