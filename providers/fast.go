package providers

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// FastClient sends a provider's calls over HTTP/1.1 keep-alive connections
// with fasthttp, writing each request and reading its reply on the
// goroutine that makes the call. net/http's Transport runs two goroutines
// per connection and hands every call to them and back, which at a few
// thousand calls a second costs about twice the CPU per call
// (docs/performance.md). Transport.Build uses a FastClient unless the
// caller brings its own http.Client, asks for net/http, or the environment
// names a proxy for the provider's URL; it does not speak HTTP/2.
// Redirects are not followed and nothing is resent. A call whose context
// ends is cut off at once and its connection closed, as net/http does. A
// FastClient is safe for concurrent use.
type FastClient struct {
	timeout time.Duration
	maxBody int64
	calls   int
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	// idleCheck is how long a connection may sit idle before a call
	// checks that the upstream has not closed it: a busy pool's
	// connections are reused without a system call.
	idleCheck time.Duration
	tlsConfig *tls.Config // nil: the system's roots
	hosts     sync.Map    // scheme://host:port → *fasthttp.HostClient
}

// NewFastClient returns a FastClient for up to calls requests in flight at
// once (zero or less means IdleConnsDefault), each bounded by timeout (zero
// or less means TimeoutDefault), reading at most maxBody bytes of a reply
// body (zero or less means MaxBodyDefault; Core.MaxBody cannot raise it).
// It keeps at most 2 × calls connections to a host; a call beyond those
// waits for one, within its timeout.
func NewFastClient(timeout time.Duration, calls int, maxBody int64) *FastClient {
	return newFastClient(timeout, calls, maxBody, nil)
}

// newFastClient is NewFastClient with the dialer replaced, for tests.
func newFastClient(timeout time.Duration, calls int, maxBody int64, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *FastClient {
	if timeout <= 0 {
		timeout = TimeoutDefault
	}
	if calls <= 0 {
		calls = IdleConnsDefault
	}
	if maxBody <= 0 {
		maxBody = MaxBodyDefault
	}
	if dial == nil {
		d := &net.Dialer{Timeout: min(timeout, dialTimeoutMax), KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	return &FastClient{timeout: timeout, maxBody: maxBody, calls: calls, dial: dial, idleCheck: 500 * time.Millisecond}
}

// host returns the connection pool for u's scheme, host and port.
func (f *FastClient) host(u *fasthttp.URI) *fasthttp.HostClient {
	isTLS := string(u.Scheme()) == "https"
	addr := fasthttp.AddMissingPort(string(u.Host()), isTLS)
	key := string(u.Scheme()) + "://" + addr
	if hc, ok := f.hosts.Load(key); ok {
		return hc.(*fasthttp.HostClient)
	}
	hc, _ := f.hosts.LoadOrStore(key, &fasthttp.HostClient{
		Addr:      addr,
		IsTLS:     isTLS,
		TLSConfig: f.tlsConfig,
		// net's own errors (refused, DNS, "dial"), which transportError
		// tells apart: the request was never sent.
		DialTimeout: func(addr string, t time.Duration) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), min(cmp.Or(t, f.timeout), dialTimeoutMax))
			defer cancel()
			return f.dial(ctx, "tcp", addr)
		},
		MaxConns:           2 * f.calls,
		MaxConnWaitTimeout: f.timeout,
		// A TLS handshake is bounded too.
		WriteTimeout: f.timeout,
		// The URL goes out as the provider's contract spells it.
		DisablePathNormalizing: true,
	})
	return hc.(*fasthttp.HostClient)
}

// post sends one POST and returns its reply read in full, or the error.
func (f *FastClient) post(ctx context.Context, url string, header http.Header, body []byte) (*Response, error) {
	deadline := time.Now().Add(f.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	fillRequest(req, url, header, body)
	hc := f.host(req.URI())
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := f.roundTrip(ctx, hc, req, resp, deadline); err != nil {
		return nil, err
	}
	return response(resp), nil
}

// fillRequest makes req a POST of body to url with header. It and response
// are out of line so that post's stack frame, under the whole round trip,
// stays small.
//
//go:noinline
func fillRequest(req *fasthttp.Request, url string, header http.Header, body []byte) {
	req.SetRequestURI(url)
	req.Header.SetMethod(http.MethodPost)
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.SetBody(body)
}

// response copies resp, which goes back to fasthttp's pool.
//
//go:noinline
func response(resp *fasthttp.Response) *Response {
	h := make(http.Header, resp.Header.Len())
	for k, v := range resp.Header.All() {
		h.Add(string(k), string(v))
	}
	return &Response{Status: resp.StatusCode(), Header: h, Body: append([]byte(nil), resp.Body()...)}
}

// roundTrip writes req and reads resp on one of hc's connections, by
// deadline; when ctx ends first, the connection's deadline is moved to now,
// which ends the read or write under way, and the connection is closed.
// An idle connection the upstream has closed (or sent anything on) since
// its last call is skipped: on it the request would be lost with an
// unknown outcome.
func (f *FastClient) roundTrip(ctx context.Context, hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) error {
	cc, err := hc.AcquireConn(time.Until(deadline), false)
	for err == nil && time.Since(cc.LastUseTime()) >= f.idleCheck && closedByPeer(cc.Conn()) {
		hc.CloseConn(cc)
		cc, err = hc.AcquireConn(time.Until(deadline), false)
	}
	if err != nil {
		return noConnError{err}
	}
	conn := cc.Conn()
	if err := conn.SetDeadline(deadline); err != nil {
		hc.CloseConn(cc)
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err == nil {
		br := hc.AcquireReader(conn)
		err = resp.ReadLimitBody(br, int(f.maxBody))
		hc.ReleaseReader(br)
	}
	if !stop() {
		hc.CloseConn(cc)
		return ctx.Err()
	}
	if err != nil || resp.ConnectionClose() {
		hc.CloseConn(cc)
		return err
	}
	hc.ReleaseConn(cc)
	return nil
}

// noConnError is a failure to get a connection, dial errors included:
// the request was never sent.
type noConnError struct{ err error }

func (e noConnError) Error() string { return e.err.Error() }
func (e noConnError) Unwrap() error { return e.err }

// fastError says what a FastClient error means in transportError's terms,
// where net's own errors do not say it: no connection free in time (never
// sent), no reply in time (fasthttp's ErrTimeout from reading the status
// line), the body cut short (fasthttp's only io.ErrUnexpectedEOF is a body
// shorter than its declared length) or over the limit.
func fastError(err error) (code, message string, unknown, ok bool) {
	var noConn noConnError
	switch {
	case errors.As(err, &noConn) && (errors.Is(err, fasthttp.ErrNoFreeConns) || errors.Is(err, fasthttp.ErrTimeout)):
		return CodeConnect, "no connection free in time", false, true
	case errors.As(err, &noConn):
		return "", "", false, false // net's dial errors: classified as for net/http
	case errors.Is(err, fasthttp.ErrTimeout):
		return CodeTimeout, "no complete reply in time", true, true
	case errors.Is(err, io.ErrUnexpectedEOF):
		return CodeTruncatedBody, "reply body ended before its declared length", true, true
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return CodeBodyTooLarge, "reply body too large", true, true
	}
	return "", "", false, false
}

// proxied reports whether the environment (HTTPS_PROXY, HTTP_PROXY,
// NO_PROXY) sends calls to base through a proxy, which FastClient does
// not do.
func proxied(base string) bool {
	u, err := url.Parse(base)
	if err != nil {
		return false
	}
	p, err := http.ProxyFromEnvironment(&http.Request{URL: u})
	return err != nil || p != nil
}
