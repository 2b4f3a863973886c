package providers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cancelworker/cancelworker/internal/text"
	"github.com/cancelworker/cancelworker/internal/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const (
	// TimeoutDefault bounds one upstream call, body read included, when no
	// timeout is configured. It does not bound the retries.
	TimeoutDefault = 10 * time.Second

	// MaxBodyDefault is the most bytes of a reply body read when Core.MaxBody
	// is zero: 64 KiB. A longer body is an error (code "body_too_large").
	MaxBodyDefault int64 = 64 << 10

	// dialTimeoutMax bounds connecting, so that a black-holed address fails
	// as "connect" (request never sent) rather than as an ambiguous timeout.
	dialTimeoutMax = 5 * time.Second
)

// Codes of failures that happened below the HTTP status line. HTTP-level
// failures use "http_<status>" and upstream codes are used as they are.
const (
	CodeCanceled          = "canceled"           // the caller's context was cancelled (worker shutdown)
	CodeTimeout           = "timeout"            // no complete reply in time
	CodeConnectionRefused = "connection_refused" // nothing listens: request never sent
	CodeDNS               = "dns"                // the host name did not resolve: request never sent
	CodeConnect           = "connect"            // any other failure to connect: request never sent
	CodeReset             = "reset"              // the connection was reset or closed after sending
	CodeTruncatedBody     = "truncated_body"     // the body ended before its declared length
	CodeBodyTooLarge      = "body_too_large"     // the body is longer than MaxBody
	CodeNetwork           = "network"            // any other transport failure
	CodeBadResponse       = "bad_response"       // a 2xx body that is not the expected JSON shape
	CodeInvalidRequest    = "invalid_request"    // refused before calling upstream
	CodeInternal          = "internal"           // a failure that is not a provider's typed outcome (a bug of ours)
)

// ErrBodyTooLarge is the cause (Error.Err) of a reply body longer than
// Core.MaxBody.
var ErrBodyTooLarge = errors.New("reply body too large")

// IdleConnsDefault is how many idle keep-alive connections per host the
// client built by NewHTTPClient keeps when not told otherwise.
const IdleConnsDefault = 32

// NewHTTPClient returns the http.Client a provider client reuses for all its
// calls: keep-alive connections with an idle pool of IdleConnsDefault per
// host, redirects not followed (a redirected POST would silently become a
// GET), and timeout bounding the whole call, reading the body included. A
// timeout of zero or less means TimeoutDefault. The client is safe for
// concurrent use.
func NewHTTPClient(timeout time.Duration) *http.Client {
	return NewHTTPClientFor(timeout, 0)
}

// NewHTTPClientFor is NewHTTPClient for a caller with up to calls requests
// in flight at once: its idle pool keeps that many connections per host,
// so that no call opens a new connection (a TCP and TLS handshake) while
// another one's sits unused. calls of zero or less means IdleConnsDefault.
func NewHTTPClientFor(timeout time.Duration, calls int) *http.Client {
	if timeout <= 0 {
		timeout = TimeoutDefault
	}
	if calls <= 0 {
		calls = IdleConnsDefault
	}
	dial := &net.Dialer{Timeout: min(timeout, dialTimeoutMax), KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dial.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          max(100, 2*calls),
			MaxIdleConnsPerHost:   calls,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   min(timeout, 10*time.Second),
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Response is an upstream reply whose body has been read in full and closed.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Core sends requests to one provider and classifies what goes wrong, per
// docs/upstreams.md §3. Both provider clients use it. A Core is safe for
// concurrent use once its fields are set; do not change them afterwards.
type Core struct {
	// Provider names the provider in every Error ("meari", "pandapon").
	Provider string
	// Fast, if not nil, sends the requests; HTTP is then not used.
	Fast *FastClient
	// HTTP sends the requests when Fast is nil. Nil means a client from
	// NewHTTPClient(0), built on every call: set it.
	HTTP *http.Client
	// MaxBody is the most bytes of a reply body read. Zero means
	// MaxBodyDefault. With Fast, Fast's own limit is the most it can be.
	MaxBody int64
	// NowFunc returns the current time, used to turn a Retry-After date into
	// a delay. Nil means time.Now.
	NowFunc func() time.Time
}

// PostJSON POSTs body as application/json to url with the extra header, and
// reads the reply body through the MaxBody limit and closes it. It does not
// look at the status: see CheckStatus. On failure it returns a *Error
// classified per docs/upstreams.md §3:
//   - connection refused, DNS failure or any failure to connect: Transient,
//     Unknown false (the request was never sent);
//   - timeout, reset or close after sending, truncated or oversized body:
//     Transient, Unknown true (the upstream may have acted on it);
//   - ctx cancelled by the caller: Transient, Unknown true, code "canceled".
//
// url must not hold credentials: it may appear in the error's cause.
func (c *Core) PostJSON(ctx context.Context, url string, header http.Header, body []byte) (*Response, error) {
	h := jsonHeader(ctx, header)
	limit := c.MaxBody
	if limit <= 0 {
		limit = MaxBodyDefault
	}
	var resp *Response
	if c.Fast != nil {
		var err error
		if resp, err = c.Fast.post(ctx, url, h, body); err != nil {
			return nil, c.transportError(ctx, err, false, true)
		}
	} else {
		var err error
		if resp, err = c.postNetHTTP(ctx, url, h, body, limit); err != nil {
			return nil, err
		}
	}
	if tracing.Enabled() {
		trace.SpanFromContext(ctx).SetAttributes(attribute.Int("http.response.status_code", resp.Status))
	}
	if int64(len(resp.Body)) > limit {
		return nil, c.tooLarge(resp, limit)
	}
	return resp, nil
}

// jsonHeader is header with a JSON request's Content-Type and Accept, and
// the caller's span (the worker's upstream call), if tracing is on. Out of
// line: see postNetHTTP.
//
//go:noinline
func jsonHeader(ctx context.Context, header http.Header) http.Header {
	h := make(http.Header, len(header)+3)
	for k, vs := range header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	tracing.InjectHTTP(ctx, propagation.HeaderCarrier(h))
	return h
}

// postNetHTTP is PostJSON's call through net/http (c.HTTP), out of line so
// that PostJSON's stack frame, under the whole round trip, stays small.
//
//go:noinline
func (c *Core) postNetHTTP(ctx context.Context, url string, h http.Header, body []byte, limit int64) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, &Error{Provider: c.Provider, Class: Permanent, Code: CodeInvalidRequest, Message: "cannot build the request", Err: err}
	}
	req.Header = h
	hc := c.HTTP
	if hc == nil {
		hc = NewHTTPClient(0)
	}
	r, err := hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, err, false, false)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, c.transportError(ctx, err, true, false)
	}
	return &Response{Status: r.StatusCode, Header: r.Header, Body: b}, nil
}

// tooLarge is the error of a reply body longer than limit.
func (c *Core) tooLarge(resp *Response, limit int64) *Error {
	return &Error{
		Provider: c.Provider, Class: Transient, Code: CodeBodyTooLarge, Unknown: true,
		Message: Truncate(fmt.Sprintf("HTTP %d reply body longer than %d bytes: %s", resp.Status, limit, Snippet(resp.Body)), MessageLimit),
		Err:     ErrBodyTooLarge,
	}
}

// transportError classifies a failure of sending the request or reading the
// reply. reading is true once the status line has been received; viaFast,
// when the error is FastClient's.
func (c *Core) transportError(ctx context.Context, err error, reading, viaFast bool) *Error {
	e := &Error{Provider: c.Provider, Class: Transient, Unknown: true, Err: err}
	var (
		dnsErr *net.DNSError
		opErr  *net.OpError
		netErr net.Error
	)
	var (
		code, msg     string
		unknown, fast bool
	)
	if viaFast {
		code, msg, unknown, fast = fastError(err)
	}
	switch {
	case fast && !unknown:
		// FastClient knows the request never went out, even if the
		// caller's context ended while it waited.
		e.Code, e.Message, e.Unknown = code, msg, unknown
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled):
		e.Code, e.Message = CodeCanceled, "call cancelled before the reply was read"
	case ctx.Err() != nil:
		e.Code, e.Message = CodeTimeout, "caller's deadline passed before the reply was read"
	case fast:
		e.Code, e.Message, e.Unknown = code, msg, unknown
		if code == CodeBodyTooLarge {
			e.Err = ErrBodyTooLarge
		}
	case errors.Is(err, syscall.ECONNREFUSED):
		e.Code, e.Message, e.Unknown = CodeConnectionRefused, "connection refused", false
	case errors.As(err, &dnsErr):
		e.Code, e.Message, e.Unknown = CodeDNS, "host name lookup failed", false
	case errors.As(err, &opErr) && opErr.Op == "dial":
		e.Code, e.Message, e.Unknown = CodeConnect, "cannot connect", false
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &netErr) && netErr.Timeout()):
		e.Code, e.Message = CodeTimeout, "no complete reply in time"
	case reading && errors.Is(err, io.ErrUnexpectedEOF):
		e.Code, e.Message = CodeTruncatedBody, "reply body ended before its declared length"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.EPIPE):
		e.Code, e.Message = CodeReset, "connection reset or closed after the request was sent"
	default:
		e.Code, e.Message = CodeNetwork, "transport failure"
	}
	return e
}

// CheckStatus classifies resp's HTTP status per docs/upstreams.md §3: nil for
// 2xx (the provider then decodes the body); Transient for 429 and 5xx, with
// Retry-After honoured; Auth for 401 and 403; Permanent for any other 4xx.
// Any other status (1xx, 3xx: a misconfigured base URL) is Transient, bounded
// by the retry budget. 502 and 504 come from a gateway that may have passed
// the request on, so they are marked Unknown. The code is "http_<status>" and
// the message the body's first bytes.
func (c *Core) CheckStatus(resp *Response) error {
	s := resp.Status
	if s >= 200 && s <= 299 {
		return nil
	}
	e := &Error{Provider: c.Provider, Code: "http_" + strconv.Itoa(s), Message: statusMessage(resp)}
	switch {
	case s == http.StatusTooManyRequests || (s >= 500 && s <= 599):
		e.Class = Transient
		e.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), c.now())
		e.Unknown = s == http.StatusBadGateway || s == http.StatusGatewayTimeout
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		e.Class = Auth
	case s >= 400 && s <= 499:
		e.Class = Permanent
	default:
		e.Class = Transient
	}
	return e
}

// BadResponse returns the error for a 2xx reply whose body is not the
// expected JSON shape: Transient, Unknown (the upstream may have acted), code
// "bad_response", the body's first bytes as the message, and cause (may be
// nil) as Err.
func (c *Core) BadResponse(resp *Response, cause error) *Error {
	msg := "unexpected reply body"
	if s := Snippet(resp.Body); s != "" {
		msg += ": " + s
	} else {
		msg += ": empty"
	}
	return &Error{
		Provider: c.Provider, Class: Transient, Code: CodeBadResponse, Unknown: true,
		Message: Truncate(msg, MessageLimit), Err: cause,
	}
}

// Invalid returns the error for a request refused before calling upstream:
// Permanent, code "invalid_request", with cause's text as the message.
func (c *Core) Invalid(cause error) *Error {
	return &Error{
		Provider: c.Provider, Class: Permanent, Code: CodeInvalidRequest,
		Message: Truncate(cause.Error(), MessageLimit), Err: cause,
	}
}

func (c *Core) now() time.Time {
	if c.NowFunc != nil {
		return c.NowFunc()
	}
	return time.Now()
}

func statusMessage(resp *Response) string {
	if s := Snippet(resp.Body); s != "" {
		return s
	}
	if t := http.StatusText(resp.Status); t != "" {
		return t
	}
	return "HTTP " + strconv.Itoa(resp.Status)
}

// ParseRetryAfter returns the delay asked for by a Retry-After header value,
// given as seconds or as an HTTP date (then relative to now). It returns zero
// when v is empty, malformed or in the past.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(1<<62/time.Second) {
			n = int64(1 << 62 / time.Second)
		}
		return time.Duration(n) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return max(t.Sub(now), 0)
}

// Snippet returns the first bytes of a body as one line of valid UTF-8 fit
// for an error message: control characters and runs of white space become one
// space, invalid bytes become U+FFFD, and the result is truncated to
// MessageLimit bytes.
func Snippet(b []byte) string {
	if len(b) > 4*MessageLimit {
		b = b[:4*MessageLimit]
	}
	var sb strings.Builder
	space := false
	for len(b) > 0 && sb.Len() <= MessageLimit {
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = true
			continue
		}
		if space && sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		space = false
		sb.WriteRune(r)
	}
	return Truncate(sb.String(), MessageLimit)
}

// MarshalJSON encodes v as compact JSON without escaping <, > and &, so that
// values reach the upstream exactly as they are signed.
func MarshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Alphabets for RandomString.
const (
	Alphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	Digits       = "0123456789"
)

// RandomString returns n characters drawn uniformly from alphabet (at most
// 256 characters) with crypto/rand. It is safe for concurrent use.
func RandomString(n int, alphabet string) string {
	if len(alphabet) == 0 || len(alphabet) > 256 {
		panic("providers: RandomString alphabet must have 1 to 256 characters")
	}
	// Reject bytes at or above the largest multiple of len(alphabet), so
	// that every character is equally likely.
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4+8)
	for len(out) < n {
		_, _ = rand.Read(buf) // never fails: crypto/rand crashes the program instead
		for _, x := range buf {
			if int(x) < limit {
				out = append(out, alphabet[int(x)%len(alphabet)])
				if len(out) == n {
					break
				}
			}
		}
	}
	return string(out)
}

// Scalar is a JSON string or number kept as its text: "1001" and 1001 both
// decode to "1001", and a 19-digit number keeps every digit. null leaves it
// empty. It is how the clients read result codes that vendors send either way.
type Scalar string

// UnmarshalJSON reads a JSON string, number or null.
func (s *Scalar) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return errors.New("empty value")
	case b[0] == '"' && bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b) && json.Valid(b):
		// Without an escape, and valid UTF-8 (encoding/json replaces
		// invalid bytes with U+FFFD), a string means its bytes: taken as
		// they are, without a second pass of encoding/json, whose frames
		// would double the stack the reply's decoding takes.
		*s = Scalar(b[1 : len(b)-1])
	case b[0] == '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = Scalar(v)
	case string(b) == "null":
		*s = ""
	case (b[0] == '-' || '0' <= b[0] && b[0] <= '9') && json.Valid(b):
		// A number, the one JSON value that starts so: kept as written,
		// as json.Number keeps it.
		*s = Scalar(b)
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("want a string or a number, got %s", Truncate(string(b), 32))
		}
		*s = Scalar(n)
	}
	return nil
}

// Code returns s as a result code: a numeric-looking value by its value, so
// that "200", 200, "0200", 200.0 and " 200 " all read "200"; anything else,
// a fraction or an exponent included, unchanged. Vendors send codes as
// strings or numbers, and a number may come with a zero fraction.
func (s Scalar) Code() string {
	t := strings.TrimSpace(string(s))
	whole, frac, dot := strings.Cut(t, ".")
	if dot && (frac == "" || strings.Trim(frac, "0") != "") {
		return string(s)
	}
	if whole == "" || strings.ContainsFunc(whole[1:], func(r rune) bool { return r < '0' || r > '9' }) {
		return string(s)
	}
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return string(s)
	}
	return strconv.FormatInt(n, 10)
}

// FieldProblem is one invalid field of a provider's Config, named as the
// Config spells it ("PartnerKey"), so that a configuration loader can name
// its own setting for it.
type FieldProblem struct {
	Field string
	Err   error
}

func (p FieldProblem) Error() string { return p.Field + ": " + p.Err.Error() }

// ParseBaseURL checks a provider's base URL, an absolute http or https URL
// with a host and an optional path prefix, and returns it without a trailing
// slash. It refuses credentials, a query or a fragment, and never echoes
// credentials in its error.
func ParseBaseURL(s string) (string, error) {
	if s == "" {
		return "", errors.New("is required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", errors.New("must be an absolute http or https URL")
	}
	switch {
	case u.User != nil:
		return "", fmt.Errorf("must not hold credentials, got %q", text.RedactedURL(u))
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("must be an absolute http or https URL, got %q", text.RedactedURL(u))
	case u.Host == "":
		return "", fmt.Errorf("must name a host, got %q", text.RedactedURL(u))
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", fmt.Errorf("must not have a query or fragment, got %q", text.RedactedURL(u))
	}
	return strings.TrimRight(u.String(), "/"), nil
}
