package otlp

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/buildinfo"
	"github.com/cancelworker/cancelworker/internal/tracing"
	"github.com/cenkalti/backoff/v4"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"golang.org/x/net/http/httpguts"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// client sends spans to an OTLP/HTTP traces endpoint as protobuf, for
// otlptrace's exporter: what otlptracehttp does for the one protocol
// supported, read from the same OTEL_EXPORTER_OTLP_* variables.
//
// It replaces otlptracehttp because of what that one links: the
// collector's service package, whose gRPC gateway brings
// google.golang.org/grpc and with it golang.org/x/net/trace. That
// package's init registers handlers that execute html templates, and a
// binary that can execute a template keeps every exported method of every
// type it has, since the linker cannot tell which ones a template calls:
// docs/performance.md has what this costs in binary size and memory.
type client struct {
	url     string
	header  http.Header
	gzip    bool
	timeout time.Duration
	hc      *http.Client
	backoff func() backoff.BackOff
}

// Variables of the exporter, each read as OTEL_EXPORTER_OTLP_TRACES_<name>
// over OTEL_EXPORTER_OTLP_<name>.
const (
	envPrefix       = "OTEL_EXPORTER_OTLP_"
	envTracesPrefix = "OTEL_EXPORTER_OTLP_TRACES_"
)

// userAgent names the exporter to the endpoint.
var userAgent = "cancelworker/" + buildinfo.Read().Version + " (OTLP/HTTP trace exporter)"

// Defaults of the OpenTelemetry specification.
const (
	defaultTimeout = 10 * time.Second
	tracesPath     = "/v1/traces"
	// responseMax bounds what is read of a reply, as otlptracehttp's.
	responseMax = 4 << 20
)

// newClient returns the client the variables describe, or every problem
// with them, each naming its variable; a header's value and a file's
// contents are never echoed. getenv is os.Getenv or a test's, readFile
// os.ReadFile or a test's.
func newClient(getenv func(string) string, readFile func(string) ([]byte, error)) (*client, error) {
	// setting returns the variable that sets name and its value, the
	// per-signal one first, or "" and "" where neither is set.
	setting := func(name string) (string, string) {
		for _, v := range []string{envTracesPrefix + name, envPrefix + name} {
			if s := getenv(v); s != "" {
				return v, s
			}
		}
		return "", ""
	}
	c := &client{header: http.Header{}, timeout: defaultTimeout, backoff: exportBackoff}
	var errs []error
	fail := func(v, format string, args ...any) { errs = append(errs, fmt.Errorf(v+": "+format, args...)) }

	c.url = "http://localhost:4318" + tracesPath
	if v := getenv(tracing.EnvTracesEndpoint); v != "" {
		// A per-signal endpoint is used as it is, / where it has no path.
		if u, err := tracing.EndpointURL(v); err != nil {
			fail(tracing.EnvTracesEndpoint, "%v", err)
		} else {
			if u.Path == "" {
				u.Path = "/"
			}
			c.url = u.String()
		}
	} else if v := getenv(tracing.EnvEndpoint); v != "" {
		// The base endpoint: spans go to its /v1/traces.
		if u, err := tracing.EndpointURL(v); err != nil {
			fail(tracing.EnvEndpoint, "%v", err)
		} else {
			u.Path = path.Join("/", u.Path, tracesPath)
			u.RawPath = ""
			c.url = u.String()
		}
	}

	if v, s := setting("HEADERS"); v != "" {
		for i, kv := range strings.Split(s, ",") {
			k, val, ok := strings.Cut(kv, "=")
			k = strings.TrimSpace(k)
			switch dec, err := url.PathUnescape(val); {
			case !ok:
				fail(v, "entry %d has no '=' (key=value,...)", i+1)
			case !httpguts.ValidHeaderFieldName(k):
				// Not echoed: "Authorization: Bearer x=" would show its key.
				fail(v, "entry %d: the name before '=' is not a valid header name (key=value,...)", i+1)
			case err != nil:
				fail(v, "entry %d (%s): the value is not validly percent-encoded", i+1, k)
			default:
				c.header.Set(k, strings.TrimSpace(dec))
			}
		}
	}
	if v, s := setting("TIMEOUT"); v != "" {
		if ms, err := strconv.Atoi(s); err != nil || ms <= 0 {
			fail(v, "must be a positive whole number of milliseconds, got %q", s)
		} else {
			c.timeout = time.Duration(ms) * time.Millisecond
		}
	}
	if v, s := setting("COMPRESSION"); v != "" {
		switch s {
		case "gzip":
			c.gzip = true
		case "none":
		default:
			fail(v, "must be gzip or none, got %q", s)
		}
	}

	var tc *tls.Config
	if v, s := setting("CERTIFICATE"); v != "" {
		pool := x509.NewCertPool()
		if pem, err := readFile(s); err != nil {
			fail(v, "%v", err)
		} else if !pool.AppendCertsFromPEM(pem) {
			fail(v, "%s holds no PEM certificate", s)
		} else {
			tc = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
	}
	// The certificate and its key come in a pair from one level: the
	// traces' own if either is set, else the general one.
	prefix := envPrefix
	if getenv(envTracesPrefix+"CLIENT_CERTIFICATE") != "" || getenv(envTracesPrefix+"CLIENT_KEY") != "" {
		prefix = envTracesPrefix
	}
	certVar, keyVar := prefix+"CLIENT_CERTIFICATE", prefix+"CLIENT_KEY"
	cert, key := getenv(certVar), getenv(keyVar)
	switch {
	case cert == "" && key == "":
	case cert == "":
		fail(keyVar, "needs %s too", certVar)
	case key == "":
		fail(certVar, "needs %s too", keyVar)
	default:
		certPEM, err1 := readFile(cert)
		keyPEM, err2 := readFile(key)
		if err := errors.Join(err1, err2); err != nil {
			fail(certVar+", "+keyVar, "%v", err)
			break
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			// The error may quote the key's PEM block type, never the key.
			fail(certVar+", "+keyVar, "not a certificate and its key: %v", err)
			break
		}
		if tc == nil {
			tc = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tc != nil {
		tr.TLSClientConfig = tc
	}
	// The timeout bounds each attempt, as otlptracehttp's does; the
	// retries end with the backoff or the caller's context (the batch
	// processor's export timeout).
	c.hc = &http.Client{Transport: tr, Timeout: c.timeout}
	return c, nil
}

// exportBackoff is the wait between two attempts of one export, as
// otlptracehttp waits: from 5 s, at most 30 s apart, for at most a minute
// (and within the caller's context).
func exportBackoff() backoff.BackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(5*time.Second),
		backoff.WithMaxInterval(30*time.Second),
		backoff.WithMaxElapsedTime(time.Minute),
	)
}

// Start does nothing: connections are made as exports need them.
func (c *client) Start(context.Context) error { return nil }

// Stop closes the idle connections.
func (c *client) Stop(context.Context) error {
	c.hc.CloseIdleConnections()
	return nil
}

// UploadTraces sends spans as one export request, retried where the
// endpoint asks for it (429, 502, 503, 504, with its Retry-After) or could
// not be reached, until the backoff or ctx ends.
func (c *client) UploadTraces(ctx context.Context, spans []*tracepb.ResourceSpans) error {
	body, err := exportRequest(spans)
	if err != nil {
		return fmt.Errorf("OTLP export: encoding the spans: %w", err)
	}
	if c.gzip {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		if _, err := zw.Write(body); err != nil {
			return fmt.Errorf("OTLP export: compressing: %w", err)
		}
		if err := zw.Close(); err != nil {
			return fmt.Errorf("OTLP export: compressing: %w", err)
		}
		body = b.Bytes()
	}
	b := c.backoff()
	for {
		after, err := c.send(ctx, body)
		var re retryable
		if !errors.As(err, &re) {
			return err
		}
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			return err
		}
		wait = max(wait, after)
		if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// retryable is an attempt's failure that another attempt may not meet.
type retryable struct{ error }

func (r retryable) Unwrap() error { return r.error }

// send makes one attempt: nil where the endpoint took the spans (all of
// them, or it says which it rejected and why), a retryable error and the
// wait the endpoint asked for where another attempt may do, or the error.
func (c *client) send(ctx context.Context, body []byte) (after time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("OTLP export: %w", err)
	}
	req.Header = c.header.Clone()
	req.Header.Set("Content-Type", "application/x-protobuf")
	if c.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		err = fmt.Errorf("OTLP export: %w", err)
		var cert *tls.CertificateVerificationError
		var dns *net.DNSError
		if ctx.Err() != nil || errors.As(err, &cert) || (errors.As(err, &dns) && dns.IsNotFound) {
			return 0, err // another attempt would meet the same
		}
		return 0, retryable{err}
	}
	defer func() { _ = resp.Body.Close() }()
	code := resp.StatusCode
	ok := code >= 200 && code <= 299
	reply, err := io.ReadAll(io.LimitReader(resp.Body, responseMax+1))
	switch {
	case err != nil && ok:
		// The endpoint has taken the spans: another attempt would
		// send them twice.
		return 0, fmt.Errorf("OTLP export: the spans were taken; reading the reply: %w", err)
	case len(reply) > responseMax && ok:
		return 0, fmt.Errorf("OTLP export: the spans were taken; the reply is longer than %d bytes", responseMax)
	case len(reply) > responseMax:
		reply = reply[:responseMax]
	}
	// A failure is told by its status; what could be read of its reply
	// only goes into the error.
	switch {
	case ok:
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-protobuf") {
			return 0, nil
		}
		rejected, msg, err := partialSuccess(reply)
		switch {
		case err != nil:
			return 0, fmt.Errorf("OTLP export: the reply: %w", err)
		case rejected != 0 || msg != "":
			return 0, fmt.Errorf("OTLP export: the endpoint rejected %d spans: %q", rejected, msg)
		}
		return 0, nil
	case code == http.StatusTooManyRequests, code == http.StatusBadGateway,
		code == http.StatusServiceUnavailable, code == http.StatusGatewayTimeout:
		// Retry-After: seconds, or an HTTP date.
		ra := resp.Header.Get("Retry-After")
		if s, err := strconv.Atoi(ra); err == nil && s > 0 {
			after = time.Duration(s) * time.Second
		} else if t, err := http.ParseTime(ra); err == nil {
			after = time.Until(t)
		}
		return after, retryable{fmt.Errorf("OTLP export: %s: %s", resp.Status, replyText(reply))}
	default:
		return 0, fmt.Errorf("OTLP export: %s: %s", resp.Status, replyText(reply))
	}
}

// replyText is the start of an error reply, for the error.
func replyText(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 256 {
		s = s[:256] + "…"
	}
	return cmp.Or(s, "(no body)")
}

// exportRequest encodes an ExportTraceServiceRequest: its one field, 1,
// repeated, each a ResourceSpans.
func exportRequest(spans []*tracepb.ResourceSpans) ([]byte, error) {
	var b []byte
	for _, rs := range spans {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(proto.Size(rs)))
		var err error
		if b, err = (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(b, rs); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// partialSuccess decodes an ExportTraceServiceResponse: its field 1, the
// partial success, holds the number of spans rejected (1) and why (2).
func partialSuccess(b []byte) (rejected int64, msg string, err error) {
	var ps []byte
	if err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) {
		if num == 1 && typ == protowire.BytesType {
			ps = v
		}
	}); err != nil {
		return 0, "", err
	}
	err = eachField(ps, func(num protowire.Number, typ protowire.Type, v []byte) {
		switch {
		case num == 1 && typ == protowire.VarintType:
			n, _ := protowire.ConsumeVarint(v)
			rejected = int64(n)
		case num == 2 && typ == protowire.BytesType:
			msg = string(v)
		}
	})
	return rejected, msg, err
}

// eachField calls f with each field of the message b: its number, type and
// value (a varint's bytes; a length-delimited field's contents).
func eachField(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		v := b[:n]
		if typ == protowire.BytesType {
			v, _ = protowire.ConsumeBytes(v)
		}
		f(num, typ, v)
		b = b[n:]
	}
	return nil
}
