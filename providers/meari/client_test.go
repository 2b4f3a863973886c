package meari_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/providers"
	"github.com/cancelworker/cancelworker/providers/meari"
)

const (
	testKey       = "pk-test"
	testSecret    = "s3cr3t-partner-secret"
	testSourceApp = 72
	waitTimeout   = 5 * time.Second
)

// testNow is 1667476374574 ms, the vendor example's timestamp.
var testNow = time.UnixMilli(1667476374574)

// received is what the fake upstream got in one call.
type received struct {
	Path    string
	Raw     []byte
	Fields  map[string]json.RawMessage
	Req     meari.Request
	SigOK   bool
	Content string
}

// upstream is a fake Meari that verifies the signature with meari.Sign and
// records every request. A bad signature is answered with resultCode 1023.
type upstream struct {
	srv   *httptest.Server
	mode  meari.SignMode
	reply http.HandlerFunc // writes the answer to a well-signed request

	mu  sync.Mutex
	got []received
}

func newUpstream(t *testing.T, mode meari.SignMode, reply http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{mode: mode, reply: reply}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

// replyJSON answers with status 200 and body.
func replyJSON(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	rec := received{Path: r.URL.Path, Raw: raw, Content: r.Header.Get("Content-Type")}
	_ = json.Unmarshal(raw, &rec.Fields)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec.Req); err == nil {
		unsigned := rec.Req
		unsigned.Signature = ""
		rec.SigOK = rec.Req.Signature != "" && meari.Sign(unsigned, testSecret, u.mode) == rec.Req.Signature
	}
	u.mu.Lock()
	u.got = append(u.got, rec)
	u.mu.Unlock()
	if !rec.SigOK {
		_, _ = io.WriteString(w, `{"resultCode":"1023"}`)
		return
	}
	u.reply(w, r)
}

func (u *upstream) calls() []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]received(nil), u.got...)
}

func newClient(t *testing.T, baseURL string, mutate func(*meari.Config)) *meari.Client {
	t.Helper()
	cfg := meari.Config{
		BaseURL:       baseURL,
		PartnerKey:    testKey,
		PartnerSecret: testSecret,
		SourceApp:     testSourceApp,
		Transport:     providers.Transport{Timeout: 2 * time.Second, NowFunc: func() time.Time { return testNow }},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := meari.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

var testOrder = meari.Order{SourceApp: testSourceApp, UserAccount: "test@123.com", OrderType: 1, OrderNum: "01582572KS0209053"}

func asError(t *testing.T, err error) *providers.Error {
	t.Helper()
	var pe *providers.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *providers.Error", err, err)
	}
	return pe
}

// checkNoSecrets fails if err's text shows the secret or a signature sent.
func checkNoSecrets(t *testing.T, err error, calls []received) {
	t.Helper()
	text := err.Error()
	if strings.Contains(text, testSecret) {
		t.Errorf("error text %q contains the secret", text)
	}
	for _, c := range calls {
		if c.Req.Signature != "" && strings.Contains(text, c.Req.Signature) {
			t.Errorf("error text %q contains the signature", text)
		}
	}
}

// TestCancelResultCodes has one case per row of the docs/upstreams.md §1 table,
// with resultCode both as a string and as a number.
func TestCancelResultCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		body      string
		wantClass providers.Class // 0: success
		wantCode  string
	}{
		{name: "1001 success string", body: `{"resultCode":"1001"}`},
		{name: "1001 success number", body: `{"resultCode":1001}`},
		{name: "1001.0 success number", body: `{"resultCode":1001.0}`},
		{name: "4001.0 as string", body: `{"resultCode":"4001.0"}`, wantClass: providers.Permanent, wantCode: "4001"},
		{name: "1001 with unknown fields", body: `{"resultCode":"1001","resultData":{"x":[1,2]},"msg":"ok"}`},
		{name: "1005 system exception", body: `{"resultCode":"1005"}`, wantClass: providers.Transient, wantCode: "1005"},
		{name: "1005 as number", body: `{"resultCode":1005}`, wantClass: providers.Transient, wantCode: "1005"},
		{name: "4001 server not found", body: `{"resultCode":"4001"}`, wantClass: providers.Permanent, wantCode: "4001"},
		{name: "4001 as number", body: `{"resultCode":4001}`, wantClass: providers.Permanent, wantCode: "4001"},
		{name: "4002 used over 7 days", body: `{"resultCode":"4002"}`, wantClass: providers.Permanent, wantCode: "4002"},
		{name: "1003 parameter invalid", body: `{"resultCode":"1003"}`, wantClass: providers.Permanent, wantCode: "1003"},
		{name: "1023 signature invalid", body: `{"resultCode":"1023"}`, wantClass: providers.Auth, wantCode: "1023"},
		{name: "1023 as number", body: `{"resultCode":1023}`, wantClass: providers.Auth, wantCode: "1023"},
		{name: "unknown code", body: `{"resultCode":"9999"}`, wantClass: providers.Transient, wantCode: "9999"},
		{name: "unknown code as number", body: `{"resultCode":2542285634920880794}`, wantClass: providers.Transient, wantCode: "2542285634920880794"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := newUpstream(t, meari.SignSorted, replyJSON(tt.body))
			err := newClient(t, u.srv.URL, nil).Cancel(t.Context(), testOrder)
			calls := u.calls()
			if len(calls) != 1 || !calls[0].SigOK {
				t.Fatalf("upstream got %d calls (first signed correctly: %t), want 1 signed", len(calls), len(calls) > 0 && calls[0].SigOK)
			}
			if tt.wantClass == 0 {
				if err != nil {
					t.Fatalf("Cancel = %v, want nil", err)
				}
				return
			}
			pe := asError(t, err)
			if pe.Provider != meari.Provider || pe.Class != tt.wantClass || pe.Code != tt.wantCode || pe.Unknown || pe.RetryAfter != 0 {
				t.Fatalf("got %s %s %s unknown=%t retry=%s, want %s %s", pe.Provider, pe.Class, pe.Code, pe.Unknown, pe.RetryAfter, tt.wantClass, tt.wantCode)
			}
			if pe.Message == "" {
				t.Errorf("Message is empty, want the code's meaning")
			}
			if got := meari.Classify(tt.wantCode); got != tt.wantClass {
				t.Errorf("Classify(%s) = %s, want %s", tt.wantCode, got, tt.wantClass)
			}
			checkNoSecrets(t, err, calls)
		})
	}
}

// TestCancelReply covers what Meari's client adds to the docs/upstreams.md
// §3 table: its reply body, the HTTP status read before the body's code,
// and that its timeout and the shared classification reach its errors. The
// transport and HTTP-status rows themselves are the providers package's,
// tested once there (TestPostJSONTransport, TestCheckStatus).
func TestCancelReply(t *testing.T) {
	t.Parallel()
	status := func(code int, header, value, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if header != "" {
				w.Header().Set(header, value)
			}
			w.WriteHeader(code)
			_, _ = io.WriteString(w, body)
		}
	}
	tests := []struct {
		name        string
		reply       http.HandlerFunc
		timeout     time.Duration
		wantClass   providers.Class
		wantCode    string
		wantUnknown bool
		wantRetry   time.Duration
		wantMsg     string
	}{
		{name: "timeout", timeout: 150 * time.Millisecond, reply: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(waitTimeout):
			}
		}, wantClass: providers.Transient, wantCode: providers.CodeTimeout, wantUnknown: true},
		{name: "HTTP 503 Retry-After seconds", reply: status(503, "Retry-After", "12", ""), wantClass: providers.Transient, wantCode: "http_503", wantRetry: 12 * time.Second},
		{name: "HTTP 400 with a resultCode body", reply: status(400, "", "", `{"resultCode":"1001"}`), wantClass: providers.Permanent, wantCode: "http_400"},
		{name: "2xx not JSON", reply: replyJSON("<html>gateway</html>"), wantClass: providers.Transient, wantCode: providers.CodeBadResponse, wantUnknown: true, wantMsg: "unexpected reply body: <html>gateway</html>"},
		{name: "2xx empty", reply: replyJSON(""), wantClass: providers.Transient, wantCode: providers.CodeBadResponse, wantUnknown: true},
		{name: "2xx without resultCode", reply: replyJSON(`{"code":1001}`), wantClass: providers.Transient, wantCode: providers.CodeBadResponse, wantUnknown: true},
		{name: "2xx resultCode null", reply: replyJSON(`{"resultCode":null}`), wantClass: providers.Transient, wantCode: providers.CodeBadResponse, wantUnknown: true},
		{name: "2xx resultCode boolean", reply: replyJSON(`{"resultCode":true}`), wantClass: providers.Transient, wantCode: providers.CodeBadResponse, wantUnknown: true},
		{name: "2xx array", reply: replyJSON(`[{"resultCode":"1001"}]`), wantClass: providers.Transient, wantCode: providers.CodeBadResponse, wantUnknown: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := newUpstream(t, meari.SignSorted, tt.reply)
			base := u.srv.URL
			c := newClient(t, base, func(cfg *meari.Config) {
				if tt.timeout != 0 {
					cfg.Timeout = tt.timeout
				}
			})
			err := c.Cancel(t.Context(), testOrder)
			pe := asError(t, err)
			if pe.Class != tt.wantClass || pe.Code != tt.wantCode || pe.Unknown != tt.wantUnknown || pe.RetryAfter != tt.wantRetry {
				t.Fatalf("got %s %s unknown=%t retry=%s (%v), want %s %s unknown=%t retry=%s",
					pe.Class, pe.Code, pe.Unknown, pe.RetryAfter, pe, tt.wantClass, tt.wantCode, tt.wantUnknown, tt.wantRetry)
			}
			if tt.wantMsg != "" && pe.Message != tt.wantMsg {
				t.Errorf("Message = %q, want %q", pe.Message, tt.wantMsg)
			}
			calls := u.calls()
			if len(calls) != 1 || !calls[0].SigOK {
				t.Fatalf("upstream got %d calls, want 1 well-signed", len(calls))
			}
			checkNoSecrets(t, err, calls)
		})
	}
}

// TestCancelWire asserts on what the upstream received, per sign mode and
// timestamp format.
func TestCancelWire(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		mode     meari.SignMode
		format   meari.TimestampFormat
		wantTime string
	}{
		{name: "defaults: sorted, millis", wantTime: "1667476374574"},
		{name: "sorted, rfc3339", mode: meari.SignSorted, format: meari.TimestampRFC3339, wantTime: "2022-11-03T11:52:54Z"},
		{name: "documented, millis", mode: meari.SignDocumented, format: meari.TimestampMillis, wantTime: "1667476374574"},
		{name: "documented, rfc3339", mode: meari.SignDocumented, format: meari.TimestampRFC3339, wantTime: "2022-11-03T11:52:54Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			verifyMode := tt.mode
			if verifyMode == "" {
				verifyMode = meari.SignModeDefault
			}
			u := newUpstream(t, verifyMode, replyJSON(`{"resultCode":"1001"}`))
			c := newClient(t, u.srv.URL, func(cfg *meari.Config) {
				cfg.SignMode, cfg.TimestampFormat = tt.mode, tt.format
			})
			for range 2 {
				if err := c.Cancel(t.Context(), testOrder); err != nil {
					t.Fatalf("Cancel: %v", err)
				}
			}
			calls := u.calls()
			if len(calls) != 2 {
				t.Fatalf("upstream got %d calls, want 2", len(calls))
			}
			for _, got := range calls {
				if !got.SigOK {
					t.Errorf("signature %q does not verify in mode %s", got.Req.Signature, verifyMode)
				}
				if got.Path != meari.CancelPath || got.Content != "application/json" {
					t.Errorf("upstream got path %s content-type %q", got.Path, got.Content)
				}
				want := meari.Request{
					SourceApp: testSourceApp, UserAccount: testOrder.UserAccount, PartnerKey: testKey,
					OrderType: testOrder.OrderType, OrderNum: testOrder.OrderNum,
					SignatureMethod: "HMAC-SHA1", SignatureVersion: "1.0",
					SignatureNonce: got.Req.SignatureNonce, Timestamp: tt.wantTime, Signature: got.Req.Signature,
				}
				if got.Req != want {
					t.Errorf("upstream got %+v\nwant %+v", got.Req, want)
				}
				if len(got.Fields) != 10 {
					t.Errorf("body has %d fields, want 10: %s", len(got.Fields), got.Raw)
				}
				if string(got.Fields["sourceApp"]) != "72" || string(got.Fields["orderType"]) != "1" {
					t.Errorf("sourceApp %s, orderType %s: want JSON numbers 72 and 1", got.Fields["sourceApp"], got.Fields["orderType"])
				}
				if bytes.Contains(got.Raw, []byte(testSecret)) {
					t.Errorf("body %s holds the secret", got.Raw)
				}
				if n := got.Req.SignatureNonce; len(n) != meari.NonceLength || strings.Trim(n, "0123456789") != "" {
					t.Errorf("nonce %q: want %d decimal digits", n, meari.NonceLength)
				}
			}
			if calls[0].Req.SignatureNonce == calls[1].Req.SignatureNonce {
				t.Errorf("two calls sent the same nonce %q", calls[0].Req.SignatureNonce)
			}
		})
	}
}

// TestCancelSignModeMismatch checks that the fake really verifies: a client
// signing in the other mode is refused with 1023, which is Auth.
func TestCancelSignModeMismatch(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, meari.SignDocumented, replyJSON(`{"resultCode":"1001"}`))
	err := newClient(t, u.srv.URL, func(cfg *meari.Config) { cfg.SignMode = meari.SignSorted }).Cancel(t.Context(), testOrder)
	if pe := asError(t, err); pe.Class != providers.Auth || pe.Code != "1023" {
		t.Fatalf("got %s %s, want auth 1023", pe.Class, pe.Code)
	}
	checkNoSecrets(t, err, u.calls())
}

// TestCancelTimeAtSendTime checks that every call reads the clock and the
// nonce afresh.
func TestCancelTimeAtSendTime(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, meari.SignSorted, replyJSON(`{"resultCode":"1001"}`))
	var mu sync.Mutex
	now := testNow
	nonces := []string{"111", "222"}
	c := newClient(t, u.srv.URL, func(cfg *meari.Config) {
		cfg.NowFunc = func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			now = now.Add(time.Second)
			return now
		}
		cfg.NonceFunc = func() string {
			mu.Lock()
			defer mu.Unlock()
			n := nonces[0]
			nonces = nonces[1:]
			return n
		}
	})
	for range 2 {
		if err := c.Cancel(t.Context(), testOrder); err != nil {
			t.Fatal(err)
		}
	}
	calls := u.calls()
	if calls[0].Req.Timestamp != "1667476375574" || calls[1].Req.Timestamp != "1667476376574" {
		t.Errorf("timestamps %s, %s: want 1667476375574, 1667476376574", calls[0].Req.Timestamp, calls[1].Req.Timestamp)
	}
	if calls[0].Req.SignatureNonce != "111" || calls[1].Req.SignatureNonce != "222" {
		t.Errorf("nonces %s, %s: want 111, 222", calls[0].Req.SignatureNonce, calls[1].Req.SignatureNonce)
	}
}

// TestCancelInvalidOrder checks that an invalid order is Permanent
// invalid_request and never reaches the upstream.
func TestCancelInvalidOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		order     meari.Order
		nonceFunc func() string
		wantField string
	}{
		{name: "no user account", order: meari.Order{UserAccount: "", OrderType: 1, OrderNum: "1"}, wantField: "userAccount"},
		{name: "no order number", order: meari.Order{UserAccount: "a", OrderType: 1}, wantField: "orderNum"},
		{name: "order type 0", order: meari.Order{UserAccount: "a", OrderType: 0, OrderNum: "1"}, wantField: "orderType"},
		{name: "order type 4", order: meari.Order{UserAccount: "a", OrderType: 4, OrderNum: "1"}, wantField: "orderType"},
		{name: "negative source app", order: meari.Order{SourceApp: -1, UserAccount: "a", OrderType: 1, OrderNum: "1"}, wantField: "sourceApp"},
		{name: "other customer", order: meari.Order{SourceApp: 73, UserAccount: "a", OrderType: 1, OrderNum: "1"}, wantField: "sourceApp"},
		{name: "empty nonce", order: testOrder, nonceFunc: func() string { return "" }, wantField: "signatureNonce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := newUpstream(t, meari.SignSorted, replyJSON(`{"resultCode":"1001"}`))
			c := newClient(t, u.srv.URL, func(cfg *meari.Config) { cfg.NonceFunc = tt.nonceFunc })
			err := c.Cancel(t.Context(), tt.order)
			pe := asError(t, err)
			if pe.Class != providers.Permanent || pe.Code != providers.CodeInvalidRequest || pe.Unknown {
				t.Fatalf("got %s %s unknown=%t, want permanent invalid_request", pe.Class, pe.Code, pe.Unknown)
			}
			if !strings.Contains(pe.Message, tt.wantField+":") {
				t.Errorf("Message %q does not name %s", pe.Message, tt.wantField)
			}
			if n := len(u.calls()); n != 0 {
				t.Errorf("upstream called %d times, want 0", n)
			}
		})
	}
}

// TestCancelSourceAppDefault checks that a zero Order.SourceApp means the
// configured one.
func TestCancelSourceAppDefault(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, meari.SignSorted, replyJSON(`{"resultCode":"1001"}`))
	o := testOrder
	o.SourceApp = 0
	if err := newClient(t, u.srv.URL, nil).Cancel(t.Context(), o); err != nil {
		t.Fatal(err)
	}
	if got := u.calls()[0].Req.SourceApp; got != testSourceApp {
		t.Fatalf("sourceApp sent %d, want %d", got, testSourceApp)
	}
}

// TestCancelConcurrent runs calls in parallel on one Client (run with -race):
// every call is signed correctly with its own nonce.
func TestCancelConcurrent(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, meari.SignSorted, replyJSON(`{"resultCode":"1001"}`))
	c := newClient(t, u.srv.URL, nil)
	const n = 16
	errs := make(chan error, n)
	for range n {
		go func() { errs <- c.Cancel(t.Context(), testOrder) }()
	}
	for range n {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("Cancel did not return")
		}
	}
	seen := map[string]bool{}
	for _, got := range u.calls() {
		if !got.SigOK || seen[got.Req.SignatureNonce] {
			t.Fatalf("call signed %t, nonce %q seen before %t", got.SigOK, got.Req.SignatureNonce, seen[got.Req.SignatureNonce])
		}
		seen[got.Req.SignatureNonce] = true
	}
	if len(seen) != n {
		t.Fatalf("upstream saw %d distinct calls, want %d", len(seen), n)
	}
}

func TestCancelCanceled(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	u := newUpstream(t, meari.SignSorted, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	})
	ctx := workertest.CancelOnArrival(t, arrived, waitTimeout)
	err := newClient(t, u.srv.URL, nil).Cancel(ctx, testOrder)
	if pe := asError(t, err); pe.Class != providers.Transient || pe.Code != providers.CodeCanceled || !pe.Unknown {
		t.Fatalf("got %s %s unknown=%t, want transient canceled unknown", pe.Class, pe.Code, pe.Unknown)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	valid := meari.Config{BaseURL: "http://127.0.0.1:1", PartnerKey: "k", PartnerSecret: "topsecret", SourceApp: 1}
	tests := []struct {
		name   string
		mutate func(*meari.Config)
		want   []string // every substring must appear
	}{
		{name: "valid", mutate: func(*meari.Config) {}},
		{name: "all missing", mutate: func(c *meari.Config) { *c = meari.Config{} },
			want: []string{"BaseURL: is required", "PartnerKey: is required", "PartnerSecret: is required", "SourceApp: must be a positive integer, got 0"}},
		{name: "bad base URL", mutate: func(c *meari.Config) { c.BaseURL = "127.0.0.1:8080" }, want: []string{"BaseURL:"}},
		{name: "secret with a space", mutate: func(c *meari.Config) { c.PartnerSecret = "topsecret " }, want: []string{"PartnerSecret: must not start or end with white space"}},
		{name: "secret with a newline", mutate: func(c *meari.Config) { c.PartnerSecret = "top\nsecret" }, want: []string{"PartnerSecret: must not contain control characters"}},
		{name: "bad sign mode", mutate: func(c *meari.Config) { c.SignMode = "alphabetical" }, want: []string{`SignMode: must be "sorted" or "documented", got "alphabetical"`}},
		{name: "bad timestamp format", mutate: func(c *meari.Config) { c.TimestampFormat = "iso" }, want: []string{`TimestampFormat: must be "millis" or "rfc3339", got "iso"`}},
		{name: "negative timeout", mutate: func(c *meari.Config) { c.Timeout = -time.Second }, want: []string{"Timeout: must not be negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			tt.mutate(&cfg)
			c, err := meari.New(cfg)
			if len(tt.want) == 0 {
				if err != nil || c == nil {
					t.Fatalf("New = %v, %v; want a client", c, err)
				}
				if got := c.URL(); got != "http://127.0.0.1:1"+meari.CancelPath {
					t.Errorf("URL() = %s", got)
				}
				return
			}
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "topsecret") || strings.Contains(err.Error(), "top\nsecret") {
				t.Errorf("error %q echoes the secret", err)
			}
		})
	}
}

func TestParseTimestampFormat(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"millis", "rfc3339"} {
		if f, err := meari.ParseTimestampFormat(s); err != nil || string(f) != s {
			t.Errorf("ParseTimestampFormat(%q) = %q, %v", s, f, err)
		}
	}
	if _, err := meari.ParseTimestampFormat("RFC3339"); err == nil {
		t.Error("ParseTimestampFormat(RFC3339) succeeded, want an error")
	}
	if got := meari.TimestampRFC3339.Format(time.Date(2024, 1, 2, 3, 4, 5, 6e8, time.FixedZone("X", 3600))); got != "2024-01-02T02:04:05Z" {
		t.Errorf("rfc3339 Format = %s, want UTC seconds", got)
	}
}

func TestDocumented(t *testing.T) {
	for _, code := range []string{"1001", "1003", "1005", "1023", "4001", "4002"} {
		if !meari.Documented(code) {
			t.Errorf("Documented(%q) = false, want true", code)
		}
	}
	for _, code := range []string{"9999", "", "01001", "http_503"} {
		if meari.Documented(code) {
			t.Errorf("Documented(%q) = true, want false", code)
		}
	}
}

// TestAuthFailureSaysWhatWasSigned checks that an auth failure (1023, HTTP
// 401) carries the exact string that was signed, the mode and the
// timestamp format, and no other failure does.
func TestAuthFailureSaysWhatWasSigned(t *testing.T) {
	for _, tt := range []struct {
		name   string
		reply  http.HandlerFunc
		signed bool
	}{
		{"1023", replyJSON(`{"resultCode":"1023"}`), true},
		{"HTTP 401", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnauthorized) }, true},
		{"1005", replyJSON(`{"resultCode":"1005"}`), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, meari.SignSorted, tt.reply)
			pe := asError(t, newClient(t, u.srv.URL, nil).Cancel(t.Context(), testOrder))
			if !tt.signed {
				if pe.Signed != nil {
					t.Fatalf("a %s failure carries %+v", tt.name, pe.Signed)
				}
				return
			}
			req := u.calls()[0].Req
			if pe.Signed == nil || pe.Signed.StringToSign != meari.StringToSign(req, meari.SignSorted) ||
				pe.Signed.Mode != string(meari.SignSorted) || pe.Signed.TimestampFormat != string(meari.TimestampMillis) {
				t.Fatalf("Signed = %+v, want the request's string to sign %q", pe.Signed, meari.StringToSign(req, meari.SignSorted))
			}
			if strings.Contains(pe.Signed.StringToSign, testSecret) || strings.Contains(pe.Error(), pe.Signed.StringToSign) {
				t.Error("the secret is in what was signed, or the error text shows the string to sign")
			}
		})
	}
}
