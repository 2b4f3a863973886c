package providers_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/providers"
)

// waitTimeout bounds every wait on a channel in these tests.
const waitTimeout = 5 * time.Second

// hijackServer returns a server that reads the request, then writes raw (may
// be empty) on the bare connection and closes it.
func hijackServer(t *testing.T, raw string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		if raw != "" {
			_, _ = rw.WriteString(raw)
			_ = rw.Flush()
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// blockingServer returns a server whose handler signals arrived and then
// waits until the client goes away (then it signals left) or the test
// ends.
func blockingServer(t *testing.T) (srv *httptest.Server, arrived, left <-chan struct{}) {
	t.Helper()
	ch, gone := make(chan struct{}, 16), make(chan struct{}, 16)
	release := make(chan struct{})
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server watches the connection
		ch <- struct{}{}
		select {
		case <-r.Context().Done():
			gone <- struct{}{}
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	return srv, ch, gone
}

func asError(t *testing.T, err error) *providers.Error {
	t.Helper()
	var pe *providers.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *providers.Error", err, err)
	}
	return pe
}

// clients are the two ways a Core sends: each test of PostJSON runs on both.
var clients = []struct {
	name string
	core func(timeout time.Duration, maxBody int64) *providers.Core
}{
	{"net/http", func(timeout time.Duration, maxBody int64) *providers.Core {
		return &providers.Core{Provider: "p", HTTP: providers.NewHTTPClient(timeout), MaxBody: maxBody}
	}},
	{"fasthttp", func(timeout time.Duration, maxBody int64) *providers.Core {
		return &providers.Core{Provider: "p", Fast: providers.NewFastClient(timeout, 0, 0), MaxBody: maxBody}
	}},
}

// TestPostJSONTransport covers the network rows of docs/upstreams.md §3.
func TestPostJSONTransport(t *testing.T) {
	t.Parallel()
	failDNS := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: "upstream.invalid", IsNotFound: true}}
	}
	tests := []struct {
		name        string
		url         func(t *testing.T) string
		timeout     time.Duration
		maxBody     int64
		dial        func(ctx context.Context, network, addr string) (net.Conn, error)
		wantCode    string
		wantUnknown bool
	}{
		{
			name:     "connection refused",
			url:      func(t *testing.T) string { return "http://" + workertest.ClosedAddr(t) + "/x" },
			wantCode: providers.CodeConnectionRefused, wantUnknown: false,
		},
		{
			name:     "dns failure",
			url:      func(t *testing.T) string { return "http://upstream.invalid/x" },
			dial:     failDNS,
			wantCode: providers.CodeDNS, wantUnknown: false,
		},
		{
			name: "timeout",
			url: func(t *testing.T) string {
				srv, _, _ := blockingServer(t)
				return srv.URL
			},
			timeout:  150 * time.Millisecond,
			wantCode: providers.CodeTimeout, wantUnknown: true,
		},
		{
			name:     "connection closed after send",
			url:      func(t *testing.T) string { return hijackServer(t, "").URL },
			wantCode: providers.CodeReset, wantUnknown: true,
		},
		{
			name: "truncated body",
			url: func(t *testing.T) string {
				return hijackServer(t, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"resultCode\":").URL
			},
			wantCode: providers.CodeTruncatedBody, wantUnknown: true,
		},
		{
			name: "oversized body",
			url: func(t *testing.T) string {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.WriteString(w, strings.Repeat("x", 1000))
				}))
				t.Cleanup(srv.Close)
				return srv.URL
			},
			maxBody:  100,
			wantCode: providers.CodeBodyTooLarge, wantUnknown: true,
		},
		{
			name: "oversized body at the default limit",
			url: func(t *testing.T) string {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.WriteString(w, strings.Repeat("x", int(providers.MaxBodyDefault)+1))
				}))
				t.Cleanup(srv.Close)
				return srv.URL
			},
			wantCode: providers.CodeBodyTooLarge, wantUnknown: true,
		},
	}
	for _, tt := range tests {
		for _, cl := range clients {
			t.Run(tt.name+"/"+cl.name, func(t *testing.T) {
				t.Parallel()
				timeout := cmp.Or(tt.timeout, time.Second)
				core := cl.core(timeout, tt.maxBody)
				if tt.dial != nil {
					if core.HTTP != nil {
						core.HTTP.Transport.(*http.Transport).DialContext = tt.dial
					} else {
						core.Fast = providers.NewFastClientDial(timeout, 0, 0, tt.dial)
					}
				}
				resp, err := core.PostJSON(t.Context(), tt.url(t), nil, []byte(`{}`))
				if err == nil {
					t.Fatalf("PostJSON succeeded with status %d, want code %s", resp.Status, tt.wantCode)
				}
				pe := asError(t, err)
				if pe.Class != providers.Transient || pe.Code != tt.wantCode || pe.Unknown != tt.wantUnknown || pe.Provider != "p" {
					t.Fatalf("got class=%s code=%s unknown=%t provider=%s (%v), want transient %s unknown=%t",
						pe.Class, pe.Code, pe.Unknown, pe.Provider, pe, tt.wantCode, tt.wantUnknown)
				}
				if pe.Err == nil {
					t.Errorf("Err is nil, want the cause")
				}
				if tt.wantCode == providers.CodeBodyTooLarge && !errors.Is(err, providers.ErrBodyTooLarge) {
					t.Errorf("error %v does not wrap ErrBodyTooLarge", err)
				}
			})
		}
	}
}

// TestPostJSONCanceled checks that a caller's cancellation (worker shutdown)
// mid-call is Transient, Unknown, code "canceled", and returns at once.
func TestPostJSONCanceled(t *testing.T) {
	t.Parallel()
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			t.Parallel()
			srv, arrived, left := blockingServer(t)
			core := cl.core(time.Minute, 0)
			ctx := workertest.CancelOnArrival(t, arrived, waitTimeout)
			start := time.Now()
			_, err := core.PostJSON(ctx, srv.URL, nil, []byte(`{}`))
			pe := asError(t, err)
			if pe.Class != providers.Transient || pe.Code != providers.CodeCanceled || !pe.Unknown {
				t.Fatalf("got %s %s unknown=%t (%v), want transient canceled unknown", pe.Class, pe.Code, pe.Unknown, pe)
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error %v does not wrap context.Canceled", err)
			}
			if d := time.Since(start); d > waitTimeout {
				t.Errorf("PostJSON returned %s after the call began, want at its cancellation", d)
			}
			// The connection is closed: the upstream sees the client gone.
			select {
			case <-left:
			case <-time.After(waitTimeout):
				t.Errorf("the upstream did not see the client go within %s", waitTimeout)
			}
		})
	}
}

// TestPostJSONSends checks what the upstream receives: method, content type,
// extra headers and the body byte for byte.
func TestPostJSONSends(t *testing.T) {
	t.Parallel()
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan *http.Request, 1)
			gotBody := make(chan string, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got <- r
				gotBody <- string(b)
				w.Header().Set("X-Reply", "yes")
				_, _ = io.WriteString(w, `{"ok":true}`)
			}))
			t.Cleanup(srv.Close)
			core := cl.core(time.Second, 0)
			h := http.Header{}
			h.Set("nonce-str", "abc")
			const body = `{"orderId":2542285634920880794}`
			resp, err := core.PostJSON(t.Context(), srv.URL+"/path", h, []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != 200 || string(resp.Body) != `{"ok":true}` || resp.Header.Get("X-Reply") != "yes" {
				t.Fatalf("response = %d %q %v", resp.Status, resp.Body, resp.Header)
			}
			r := <-got
			if r.Method != http.MethodPost || r.URL.Path != "/path" || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("nonce-str") != "abc" {
				t.Fatalf("upstream got %s %s content-type=%q nonce-str=%q", r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("nonce-str"))
			}
			// One of each: no header of the client's own next to ours.
			for _, name := range []string{"Content-Type", "Accept", "Nonce-Str"} {
				if n := len(r.Header.Values(name)); n > 1 {
					t.Errorf("upstream got %d %s headers, want one", n, name)
				}
			}
			if b := <-gotBody; b != body {
				t.Fatalf("upstream got body %s, want %s", b, body)
			}
		})
	}
}

// TestCheckStatus covers the HTTP status rows of docs/upstreams.md §3, through a
// real server and client.
func TestCheckStatus(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 5, 14, 6, 59, 37, 0, time.UTC)
	tests := []struct {
		name        string
		status      int
		header      map[string]string
		body        string
		wantClass   providers.Class // 0: success
		wantCode    string
		wantRetry   time.Duration
		wantUnknown bool
		wantMsg     string
	}{
		{name: "200", status: 200, body: `{}`},
		{name: "204", status: 204},
		{name: "500", status: 500, body: "boom", wantClass: providers.Transient, wantCode: "http_500", wantMsg: "boom"},
		{name: "502 may have been passed on", status: 502, wantClass: providers.Transient, wantCode: "http_502", wantUnknown: true, wantMsg: "Bad Gateway"},
		{name: "503 with Retry-After seconds", status: 503, header: map[string]string{"Retry-After": "7"}, body: "busy",
			wantClass: providers.Transient, wantCode: "http_503", wantRetry: 7 * time.Second, wantMsg: "busy"},
		{name: "504", status: 504, wantClass: providers.Transient, wantCode: "http_504", wantUnknown: true},
		{name: "429 with Retry-After seconds", status: 429, header: map[string]string{"Retry-After": "30"},
			wantClass: providers.Transient, wantCode: "http_429", wantRetry: 30 * time.Second, wantMsg: "Too Many Requests"},
		{name: "429 with Retry-After date", status: 429, header: map[string]string{"Retry-After": now.Add(2 * time.Minute).Format(http.TimeFormat)},
			wantClass: providers.Transient, wantCode: "http_429", wantRetry: 2 * time.Minute},
		{name: "429 with Retry-After date in the past", status: 429, header: map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)},
			wantClass: providers.Transient, wantCode: "http_429"},
		{name: "429 with malformed Retry-After", status: 429, header: map[string]string{"Retry-After": "soon"},
			wantClass: providers.Transient, wantCode: "http_429"},
		{name: "401", status: 401, body: "bad sig", wantClass: providers.Auth, wantCode: "http_401", wantMsg: "bad sig"},
		{name: "403", status: 403, wantClass: providers.Auth, wantCode: "http_403", wantMsg: "Forbidden"},
		{name: "400", status: 400, body: "{\"msg\":\"bad\nrequest\"}", wantClass: providers.Permanent, wantCode: "http_400", wantMsg: `{"msg":"bad request"}`},
		{name: "404", status: 404, wantClass: providers.Permanent, wantCode: "http_404"},
		{name: "422", status: 422, wantClass: providers.Permanent, wantCode: "http_422"},
		{name: "302 is not followed", status: 302, header: map[string]string{"Location": "/elsewhere"}, wantClass: providers.Transient, wantCode: "http_302"},
	}
	for _, tt := range tests {
		for _, cl := range clients {
			t.Run(tt.name+"/"+cl.name, func(t *testing.T) {
				t.Parallel()
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method != http.MethodPost {
						t.Errorf("upstream got %s %s: a redirect was followed", r.Method, r.URL.Path)
					}
					for k, v := range tt.header {
						w.Header().Set(k, v)
					}
					w.Header().Set("X-Secret-Header", "do-not-show")
					w.WriteHeader(tt.status)
					_, _ = io.WriteString(w, tt.body)
				}))
				t.Cleanup(srv.Close)
				core := cl.core(time.Second, 0)
				core.NowFunc = func() time.Time { return now }
				resp, err := core.PostJSON(t.Context(), srv.URL, nil, []byte(`{}`))
				if err != nil {
					t.Fatal(err)
				}
				err = core.CheckStatus(resp)
				if tt.wantClass == 0 {
					if err != nil {
						t.Fatalf("CheckStatus = %v, want nil", err)
					}
					return
				}
				pe := asError(t, err)
				if pe.Class != tt.wantClass || pe.Code != tt.wantCode || pe.RetryAfter != tt.wantRetry || pe.Unknown != tt.wantUnknown {
					t.Fatalf("got class=%s code=%s retry=%s unknown=%t, want %s %s %s %t",
						pe.Class, pe.Code, pe.RetryAfter, pe.Unknown, tt.wantClass, tt.wantCode, tt.wantRetry, tt.wantUnknown)
				}
				if tt.wantMsg != "" && pe.Message != tt.wantMsg {
					t.Errorf("Message = %q, want %q", pe.Message, tt.wantMsg)
				}
				if strings.Contains(pe.Error(), "do-not-show") {
					t.Errorf("error text %q shows a header", pe.Error())
				}
			})
		}
	}
}

func TestBadResponse(t *testing.T) {
	t.Parallel()
	core := &providers.Core{Provider: "p"}
	cause := errors.New("decode reply: invalid character")
	pe := core.BadResponse(&providers.Response{Status: 200, Body: []byte("<html>" + strings.Repeat("z", 1000))}, cause)
	if pe.Class != providers.Transient || pe.Code != providers.CodeBadResponse || !pe.Unknown || !errors.Is(pe, cause) {
		t.Fatalf("got %s %s unknown=%t err=%v", pe.Class, pe.Code, pe.Unknown, pe.Err)
	}
	if !strings.Contains(pe.Message, "<html>zzz") || len(pe.Message) > providers.MessageLimit+len("…") {
		t.Fatalf("Message = %q (%d bytes), want the body's first bytes, truncated", pe.Message, len(pe.Message))
	}
	if got := core.BadResponse(&providers.Response{Status: 200}, nil).Message; !strings.Contains(got, "empty") {
		t.Errorf("empty body message = %q", got)
	}
}

func TestInvalid(t *testing.T) {
	t.Parallel()
	core := &providers.Core{Provider: "p"}
	cause := errors.New("orderNum: is required")
	pe := core.Invalid(cause)
	if pe.Class != providers.Permanent || pe.Code != providers.CodeInvalidRequest || pe.Unknown || pe.Message != cause.Error() || !errors.Is(pe, cause) {
		t.Fatalf("Invalid = %+v", pe)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 5, 14, 6, 59, 37, 0, time.UTC)
	tests := []struct {
		name string
		v    string
		want time.Duration
	}{
		{name: "empty", v: "", want: 0},
		{name: "seconds", v: "120", want: 2 * time.Minute},
		{name: "seconds with spaces", v: " 5 ", want: 5 * time.Second},
		{name: "zero", v: "0", want: 0},
		{name: "negative", v: "-3", want: 0},
		{name: "huge seconds do not overflow", v: "99999999999999999", want: time.Duration(1<<62/time.Second) * time.Second},
		{name: "IMF date", v: "Tue, 14 May 2024 07:00:07 GMT", want: 30 * time.Second},
		{name: "RFC 850 date", v: "Tuesday, 14-May-24 07:00:37 GMT", want: time.Minute},
		{name: "past date", v: "Tue, 14 May 2024 06:00:00 GMT", want: 0},
		{name: "garbage", v: "later", want: 0},
		{name: "fraction", v: "1.5", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := providers.ParseRetryAfter(tt.v, now); got != tt.want {
				t.Fatalf("ParseRetryAfter(%q) = %s, want %s", tt.v, got, tt.want)
			}
		})
	}
}

func TestSnippet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "empty", in: "", want: ""},
		{name: "plain", in: `{"code":500}`, want: `{"code":500}`},
		{name: "white space and controls collapse", in: "  a\r\n\tb\x00\x1bc  ", want: "a b c"},
		{name: "invalid UTF-8", in: "a\xffb", want: "a\uFFFDb"},
		{name: "long", in: strings.Repeat("é", 1000), want: strings.Repeat("é", providers.MessageLimit/2) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := providers.Snippet([]byte(tt.in))
			if got != tt.want {
				t.Fatalf("Snippet(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Fatalf("Snippet(%q) = %q is not valid UTF-8", tt.in, got)
			}
		})
	}
}

func TestRandomString(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	counts := map[rune]int{}
	for range 200 {
		s := providers.RandomString(32, providers.Alphanumeric)
		if len(s) != 32 {
			t.Fatalf("len(%q) = %d, want 32", s, len(s))
		}
		for _, r := range s {
			if !strings.ContainsRune(providers.Alphanumeric, r) {
				t.Fatalf("%q has %q, not in the alphabet", s, r)
			}
			counts[r]++
		}
		if seen[s] {
			t.Fatalf("RandomString repeated %q", s)
		}
		seen[s] = true
	}
	// 6400 draws over 62 characters: every one shows up.
	if len(counts) != len(providers.Alphanumeric) {
		t.Errorf("only %d of %d characters drawn", len(counts), len(providers.Alphanumeric))
	}
	if d := providers.RandomString(24, providers.Digits); len(d) != 24 || strings.Trim(d, providers.Digits) != "" {
		t.Errorf("RandomString(24, Digits) = %q", d)
	}
}

func TestScalar(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{name: "string", in: `"1001"`, want: "1001"},
		{name: "number", in: `1001`, want: "1001"},
		{name: "big number keeps every digit", in: `2542285634920880794`, want: "2542285634920880794"},
		{name: "negative exponent number", in: `-1.5e3`, want: "-1.5e3"},
		{name: "null", in: `null`, want: ""},
		{name: "escaped string", in: `"a\u0026b"`, want: "a&b"},
		{name: "string of UTF-8", in: `"été"`, want: "été"},
		{name: "string of invalid UTF-8", in: "\"a\xffb\"", want: "a\ufffdb"},
		{name: "string with a control character", in: "\"a\tb\"", wantErr: true},
		{name: "empty string", in: `""`, want: ""},
		{name: "unterminated string", in: `"1001`, wantErr: true},
		{name: "bool", in: `true`, wantErr: true},
		{name: "object", in: `{}`, wantErr: true},
		{name: "array", in: `[1]`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s providers.Scalar
			err := s.UnmarshalJSON([]byte(tt.in))
			if (err != nil) != tt.wantErr || string(s) != tt.want {
				t.Fatalf("UnmarshalJSON(%s) = %q, %v; want %q, error %t", tt.in, s, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestScalarCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{name: "digits", in: "200", want: "200"},
		{name: "leading zero", in: "0200", want: "200"},
		{name: "zero fraction", in: "200.0", want: "200"},
		{name: "zero fractions", in: "200.000", want: "200"},
		{name: "spaces", in: " 200 ", want: "200"},
		{name: "plus sign", in: "+200", want: "200"},
		{name: "negative", in: "-1", want: "-1"},
		{name: "fraction kept", in: "200.5", want: "200.5"},
		{name: "bare dot kept", in: "200.", want: "200."},
		{name: "exponent kept", in: "2e2", want: "2e2"},
		{name: "text kept", in: "FAIL", want: "FAIL"},
		{name: "sign alone kept", in: "-", want: "-"},
		{name: "too big kept", in: "99999999999999999999", want: "99999999999999999999"},
		{name: "empty", in: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := providers.Scalar(tt.in).Code(); got != tt.want {
				t.Errorf("Scalar(%q).Code() = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseBaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string
	}{
		{name: "plain", in: "https://api.example.com", want: "https://api.example.com"},
		{name: "trailing slash", in: "http://127.0.0.1:8080/", want: "http://127.0.0.1:8080"},
		{name: "path prefix", in: "https://gw.example.com/meari/", want: "https://gw.example.com/meari"},
		{name: "empty", in: "", wantErr: "is required"},
		{name: "relative", in: "/v3", wantErr: "http or https"},
		{name: "ftp", in: "ftp://x", wantErr: "http or https"},
		{name: "no host", in: "http://", wantErr: "host"},
		{name: "query", in: "https://x/?a=1", wantErr: "query"},
		{name: "credentials", in: "https://user:hunter2@x", wantErr: "credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := providers.ParseBaseURL(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseBaseURL(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error %q echoes a password", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseBaseURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestMarshalJSON(t *testing.T) {
	t.Parallel()
	b, err := providers.MarshalJSON(struct {
		A string `json:"a"`
		N int64  `json:"n"`
	}{A: "x&y<z>", N: 2542285634920880794})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":"x&y<z>","n":2542285634920880794}`; string(b) != want {
		t.Fatalf("MarshalJSON = %s, want %s", b, want)
	}
}

func TestNewHTTPClient(t *testing.T) {
	t.Parallel()
	if got := providers.NewHTTPClient(0).Timeout; got != providers.TimeoutDefault {
		t.Errorf("NewHTTPClient(0).Timeout = %s, want %s", got, providers.TimeoutDefault)
	}
	if got := providers.NewHTTPClient(3 * time.Second).Timeout; got != 3*time.Second {
		t.Errorf("NewHTTPClient(3s).Timeout = %s", got)
	}
	// Keep-alive: two calls share one connection.
	conns := make(chan struct{}, 4)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "{}")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns <- struct{}{}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	for _, cl := range clients {
		core := cl.core(time.Second, 0)
		for range 2 {
			if _, err := core.PostJSON(t.Context(), srv.URL, nil, []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := len(conns); n != len(clients) {
		t.Fatalf("two calls by each of %d clients opened %d connections, want one each", len(clients), n)
	}
}

// TestHTTPClientForKeepsOneConnectionPerCall checks that a client sized for
// n calls in flight keeps n connections for the next n calls, where one
// with the default pool opens new ones.
func TestHTTPClientForKeepsOneConnectionPerCall(t *testing.T) {
	const calls = 50
	for _, tt := range []struct {
		name    string
		core    *providers.Core
		wantNew int64 // connections opened by the second wave
	}{
		{"sized to the calls", &providers.Core{Provider: "p", HTTP: providers.NewHTTPClientFor(5*time.Second, calls)}, 0},
		{"default pool", &providers.Core{Provider: "p", HTTP: providers.NewHTTPClient(5 * time.Second)}, calls - providers.IdleConnsDefault},
		{"fasthttp sized to the calls", &providers.Core{Provider: "p", Fast: providers.NewFastClient(5*time.Second, calls, 0)}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var (
				opened  atomic.Int64
				arrived sync.WaitGroup
				mu      sync.Mutex
				release chan struct{} // closed to answer the wave's calls
			)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				ch := release
				mu.Unlock()
				arrived.Done()
				<-ch
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					opened.Add(1)
				}
			}
			srv.Start()
			t.Cleanup(srv.Close)
			core := tt.core
			// wave has every call in flight at once, then answers them all.
			wave := func() {
				mu.Lock()
				release = make(chan struct{})
				ch := release
				mu.Unlock()
				arrived.Add(calls)
				var done sync.WaitGroup
				for range calls {
					done.Add(1)
					go func() {
						defer done.Done()
						if _, err := core.PostJSON(context.Background(), srv.URL, nil, []byte(`{}`)); err != nil {
							t.Error(err)
						}
					}()
				}
				arrived.Wait()
				close(ch)
				done.Wait()
			}
			wave()
			first := opened.Load()
			wave()
			if first != calls {
				t.Fatalf("first wave opened %d connections, want %d", first, calls)
			}
			if got := opened.Load() - first; got != tt.wantNew {
				t.Errorf("second wave opened %d new connections, want %d", got, tt.wantNew)
			}
		})
	}
}

// TestFastClientSkipsClosedIdleConnection checks that a call does not go
// out on an idle connection the upstream has closed since (a keep-alive
// timeout shorter than the client's), where it would be lost with an
// unknown outcome: it takes a new connection instead.
func TestFastClientSkipsClosedIdleConnection(t *testing.T) {
	t.Parallel()
	closed := make(chan struct{}, 4)
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "{}")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed:
			closed <- struct{}{}
		}
	}
	srv.Config.IdleTimeout = 50 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	fc := providers.NewFastClient(time.Second, 1, 0)
	providers.SetIdleCheck(fc, 0)
	core := &providers.Core{Provider: "p", Fast: fc}
	if _, err := core.PostJSON(t.Context(), srv.URL, nil, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(waitTimeout):
		t.Fatalf("the server did not close the idle connection within %s", waitTimeout)
	}
	resp, err := core.PostJSON(t.Context(), srv.URL, nil, []byte(`{}`))
	if err != nil {
		t.Fatalf("call after the upstream closed the idle connection: %v", err)
	}
	if resp.Status != 200 || opened.Load() != 2 {
		t.Fatalf("status %d over %d connections, want 200 over 2", resp.Status, opened.Load())
	}
}

// TestFastClientTLS checks a call over HTTPS, and that an idle TLS
// connection is checked and reused.
func TestFastClientTLS(t *testing.T) {
	t.Parallel()
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	fc := providers.NewFastClient(time.Second, 1, 0)
	providers.SetTLSConfig(fc, srv.Client().Transport.(*http.Transport).TLSClientConfig)
	providers.SetIdleCheck(fc, 0)
	core := &providers.Core{Provider: "p", Fast: fc}
	for i := range 2 {
		resp, err := core.PostJSON(t.Context(), srv.URL, nil, []byte(`{"n":1}`))
		if err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
		if resp.Status != 200 || string(resp.Body) != `{"n":1}` {
			t.Fatalf("call %d: %d %q", i+1, resp.Status, resp.Body)
		}
	}
	if n := opened.Load(); n != 1 {
		t.Fatalf("two calls opened %d TLS connections, want 1", n)
	}
}

// TestFastClientNoFreeConnection checks that a call which finds every
// connection busy until its deadline fails as never sent: code "connect",
// outcome known.
func TestFastClientNoFreeConnection(t *testing.T) {
	t.Parallel()
	srv, arrived, _ := blockingServer(t)
	core := &providers.Core{Provider: "p", Fast: providers.NewFastClient(time.Minute, 1, 0)} // 2 connections
	for range 2 {
		go func() { _, _ = core.PostJSON(t.Context(), srv.URL, nil, []byte(`{}`)) }()
	}
	for range 2 {
		select {
		case <-arrived:
		case <-time.After(waitTimeout):
			t.Fatal("the two calls that hold the connections did not arrive")
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := core.PostJSON(ctx, srv.URL, nil, []byte(`{}`))
	pe := asError(t, err)
	if pe.Class != providers.Transient || pe.Code != providers.CodeConnect || pe.Unknown {
		t.Fatalf("got %s %s unknown=%t (%v), want transient connect, outcome known", pe.Class, pe.Code, pe.Unknown, pe)
	}
}

// FuzzScalar checks Scalar's own reading of plain strings and numbers
// against encoding/json's, which it skips for them: the same value, or an
// error both ways.
func FuzzScalar(f *testing.F) {
	for _, s := range []string{`"1001"`, `1001`, `-0.5e+3`, `01`, `1.`, `.5`, `-`, `1e`, `"é"`, "\"\xff\"", `"a\"b"`, `"\u0041"`, "\"\t\"", `""`, `"`, `null`, `true`, ` 7 `, `1E5`, `-0`, `2542285634920880794`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got providers.Scalar
		gotErr := got.UnmarshalJSON(b)
		var want string
		var wantErr error
		switch tb := bytes.TrimSpace(b); {
		case len(tb) == 0:
			wantErr = errors.New("empty")
		case tb[0] == '"':
			wantErr = json.Unmarshal(tb, &want)
		case string(tb) == "null":
		default:
			var n json.Number
			wantErr = json.Unmarshal(tb, &n)
			want = string(n)
		}
		if (gotErr != nil) != (wantErr != nil) || (gotErr == nil && string(got) != want) {
			t.Fatalf("UnmarshalJSON(%q) = %q, %v; encoding/json reads %q, %v", b, got, gotErr, want, wantErr)
		}
	})
}
