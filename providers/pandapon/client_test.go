package pandapon_test

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
	"github.com/cancelworker/cancelworker/providers/pandapon"
)

const (
	testKey     = "58c0201dfdf148eca63cbf6bb5e7cf03"
	testSecret  = "s3cr3t-access-secret"
	testUserID  = "2100007341207"
	bigOrderID  = 2542285634920880794
	waitTimeout = 5 * time.Second
)

var testNow = time.UnixMilli(1715669977082)

// received is what the fake upstream got in one call.
type received struct {
	Path   string
	Header http.Header
	Raw    []byte
	SigOK  bool
}

// upstream is a fake PandaPon that verifies the signature headers with
// pandapon.Sign and records every request. A bad signature is answered with
// code 401.
type upstream struct {
	srv   *httptest.Server
	reply http.HandlerFunc

	mu  sync.Mutex
	got []received
}

func newUpstream(t *testing.T, reply http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{reply: reply}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func replyJSON(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	h := r.Header
	sig := h.Get("signature")
	rec := received{Path: r.URL.Path, Header: h.Clone(), Raw: raw,
		SigOK: sig != "" && sig == pandapon.Sign(h.Get("access-key"), h.Get("nonce-str"), h.Get("timestamp"), testSecret)}
	u.mu.Lock()
	u.got = append(u.got, rec)
	u.mu.Unlock()
	if !rec.SigOK {
		_, _ = io.WriteString(w, `{"requestId":"r1","code":401,"msg":"invalid signature","data":null}`)
		return
	}
	u.reply(w, r)
}

func (u *upstream) calls() []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]received(nil), u.got...)
}

func newClient(t *testing.T, baseURL string, mutate func(*pandapon.Config)) *pandapon.Client {
	t.Helper()
	cfg := pandapon.Config{
		BaseURL:      baseURL,
		AccessKey:    testKey,
		AccessSecret: testSecret,
		UserID:       testUserID,
		Transport:    providers.Transport{Timeout: 2 * time.Second, NowFunc: func() time.Time { return testNow }},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := pandapon.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

var testOrder = pandapon.Order{OrderID: bigOrderID}

func asError(t *testing.T, err error) *providers.Error {
	t.Helper()
	var pe *providers.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *providers.Error", err, err)
	}
	return pe
}

func checkNoSecrets(t *testing.T, err error, calls []received) {
	t.Helper()
	text := err.Error()
	if strings.Contains(text, testSecret) {
		t.Errorf("error text %q contains the secret", text)
	}
	for _, c := range calls {
		if s := c.Header.Get("signature"); s != "" && strings.Contains(text, s) {
			t.Errorf("error text %q contains the signature", text)
		}
	}
}

// TestCancelReplyCodes has one case per row of the docs/upstreams.md §2 table, and
// the lenient decoding of the reply.
func TestCancelReplyCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		body        string
		wantClass   providers.Class // 0: success
		wantCode    string
		wantUnknown bool
		wantMsg     string // substring
	}{
		{name: "200 data true", body: `{"requestId":"0d1d","code":200,"developId":"1110890638347337996","msg":"成功","data":true}`},
		{name: "200 data true, developId a number", body: `{"requestId":"0d1d","code":200,"developId":1110890638347337996,"msg":"ok","data":true}`},
		{name: "200 data true, code a string", body: `{"code":"200","data":true}`},
		{name: "200 data true, unknown fields", body: `{"code":200,"data":true,"extra":{"a":[1]}}`},
		{name: "200 data false", body: `{"requestId":"rq9","code":200,"msg":"订单状态不允许取消","data":false}`,
			wantClass: providers.Permanent, wantCode: "200", wantMsg: "upstream refused the cancel: 订单状态不允许取消 (requestId rq9)"},
		{name: "200 data false, no msg", body: `{"code":200,"data":false}`, wantClass: providers.Permanent, wantCode: "200", wantMsg: "upstream refused the cancel"},
		{name: "200 without data", body: `{"code":200,"msg":"ok"}`, wantClass: providers.Transient, wantCode: providers.CodeBadResponse, wantUnknown: true},
		{name: "200 data null", body: `{"code":200,"data":null}`, wantClass: providers.Transient, wantCode: providers.CodeBadResponse, wantUnknown: true},
		{name: "200 data a string", body: `{"code":200,"data":"true"}`, wantClass: providers.Transient, wantCode: providers.CodeBadResponse, wantUnknown: true},
		{name: "200 data an object", body: `{"code":200,"data":{"ok":true}}`, wantClass: providers.Transient, wantCode: providers.CodeBadResponse, wantUnknown: true},
		{name: "200.0 data true", body: `{"code":200.0,"data":true}`},
		{name: "\"200.0\" data true", body: `{"code":"200.0","data":true}`},
		{name: "\"429.0\"", body: `{"code":"429.0"}`, wantClass: providers.Transient, wantCode: "429"},
		{name: "code 429", body: `{"code":429,"msg":"slow down"}`, wantClass: providers.Transient, wantCode: "429", wantMsg: "slow down"},
		{name: "code 500", body: `{"code":500,"msg":"error","data":null}`, wantClass: providers.Transient, wantCode: "500"},
		{name: "code 503 string", body: `{"code":"503"}`, wantClass: providers.Transient, wantCode: "503"},
		{name: "code 599", body: `{"code":599}`, wantClass: providers.Transient, wantCode: "599"},
		{name: "code 401", body: `{"code":401,"msg":"bad key"}`, wantClass: providers.Auth, wantCode: "401", wantMsg: "bad key"},
		{name: "code 403", body: `{"code":403}`, wantClass: providers.Auth, wantCode: "403"},
		{name: "code 400", body: `{"code":400,"msg":"orderId invalid"}`, wantClass: providers.Permanent, wantCode: "400"},
		{name: "code 404", body: `{"code":404}`, wantClass: providers.Permanent, wantCode: "404"},
		{name: "code 600", body: `{"code":600}`, wantClass: providers.Permanent, wantCode: "600"},
		{name: "code 10086", body: `{"code":10086,"data":false}`, wantClass: providers.Permanent, wantCode: "10086"},
		{name: "code not numeric", body: `{"code":"FAIL"}`, wantClass: providers.Permanent, wantCode: "FAIL"},
		{name: "no code", body: `{"msg":"ok","data":true}`, wantClass: providers.Transient, wantCode: providers.CodeBadResponse, wantUnknown: true},
		{name: "not JSON", body: `<html>502</html>`, wantClass: providers.Transient, wantCode: providers.CodeBadResponse, wantUnknown: true, wantMsg: "<html>502</html>"},
		{name: "code a boolean", body: `{"code":true,"data":true}`, wantClass: providers.Transient, wantCode: providers.CodeBadResponse, wantUnknown: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := newUpstream(t, replyJSON(tt.body))
			err := newClient(t, u.srv.URL, nil).Cancel(t.Context(), testOrder)
			calls := u.calls()
			if len(calls) != 1 || !calls[0].SigOK {
				t.Fatalf("upstream got %d calls, want 1 well-signed", len(calls))
			}
			if tt.wantClass == 0 {
				if err != nil {
					t.Fatalf("Cancel = %v, want nil", err)
				}
				return
			}
			pe := asError(t, err)
			if pe.Provider != pandapon.Provider || pe.Class != tt.wantClass || pe.Code != tt.wantCode || pe.Unknown != tt.wantUnknown {
				t.Fatalf("got %s %s %s unknown=%t (%v), want %s %s unknown=%t", pe.Provider, pe.Class, pe.Code, pe.Unknown, pe, tt.wantClass, tt.wantCode, tt.wantUnknown)
			}
			if !strings.Contains(pe.Message, tt.wantMsg) {
				t.Errorf("Message %q does not contain %q", pe.Message, tt.wantMsg)
			}
			checkNoSecrets(t, err, calls)
		})
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	tests := []struct {
		name string
		code string
		data *bool
		want providers.Class
	}{
		{name: "success", code: "200", data: &yes, want: 0},
		{name: "refused", code: "200", data: &no, want: providers.Permanent},
		{name: "no data", code: "200", data: nil, want: providers.Transient},
		{name: "429", code: "429", want: providers.Transient},
		{name: "500", code: "500", want: providers.Transient},
		{name: "599", code: "599", want: providers.Transient},
		{name: "401", code: "401", data: &yes, want: providers.Auth},
		{name: "403", code: "403", want: providers.Auth},
		{name: "499", code: "499", want: providers.Permanent},
		{name: "600", code: "600", want: providers.Permanent},
		{name: "text", code: "x", data: &yes, want: providers.Permanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := pandapon.Classify(tt.code, tt.data); got != tt.want {
				t.Fatalf("Classify(%s) = %s, want %s", tt.code, got, tt.want)
			}
		})
	}
}

// TestCancelReply covers what PandaPon's client adds to the
// docs/upstreams.md §3 table: the HTTP status read before the body's code,
// a reply that is not JSON, and that its timeout and the shared
// classification reach its errors. The transport and HTTP-status rows
// themselves are the providers package's, tested once there
// (TestPostJSONTransport, TestCheckStatus).
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
	}{
		{name: "timeout", timeout: 150 * time.Millisecond, reply: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(waitTimeout):
			}
		}, wantClass: providers.Transient, wantCode: providers.CodeTimeout, wantUnknown: true},
		{name: "HTTP 500 with a success body", reply: status(500, "", "", `{"code":200,"data":true}`), wantClass: providers.Transient, wantCode: "http_500"},
		{name: "HTTP 503 Retry-After seconds", reply: status(503, "Retry-After", "4", ""), wantClass: providers.Transient, wantCode: "http_503", wantRetry: 4 * time.Second},
		{name: "2xx not JSON", reply: replyJSON("OK"), wantClass: providers.Transient, wantCode: providers.CodeBadResponse, wantUnknown: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := newUpstream(t, tt.reply)
			base := u.srv.URL
			c := newClient(t, base, func(cfg *pandapon.Config) {
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
			calls := u.calls()
			if len(calls) != 1 || !calls[0].SigOK {
				t.Fatalf("upstream got %d calls, want 1 well-signed", len(calls))
			}
			checkNoSecrets(t, err, calls)
		})
	}
}

// TestCancelWire asserts on what the upstream received: headers, signature,
// a fresh nonce per call, and the body byte for byte.
func TestCancelWire(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		order   pandapon.Order
		wantRaw string
	}{
		{name: "optional fields omitted", order: pandapon.Order{OrderID: bigOrderID},
			wantRaw: `{"webSite":"1688","orderId":2542285634920880794}`},
		{name: "reason", order: pandapon.Order{OrderID: bigOrderID, CancelReason: "不想要了"},
			wantRaw: `{"webSite":"1688","orderId":2542285634920880794,"cancelReason":"不想要了"}`},
		{name: "reason and remark", order: pandapon.Order{OrderID: 1, CancelReason: "a&b", Remark: `say "hi"`},
			wantRaw: `{"webSite":"1688","orderId":1,"cancelReason":"a&b","remark":"say \"hi\""}`},
		{name: "remark only", order: pandapon.Order{OrderID: 9223372036854775807, Remark: "r"},
			wantRaw: `{"webSite":"1688","orderId":9223372036854775807,"remark":"r"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := newUpstream(t, replyJSON(`{"code":200,"data":true}`))
			c := newClient(t, u.srv.URL, nil)
			for range 2 {
				if err := c.Cancel(t.Context(), tt.order); err != nil {
					t.Fatalf("Cancel: %v", err)
				}
			}
			calls := u.calls()
			if len(calls) != 2 {
				t.Fatalf("upstream got %d calls, want 2", len(calls))
			}
			for _, got := range calls {
				if !got.SigOK {
					t.Errorf("signature %q does not verify", got.Header.Get("signature"))
				}
				if string(got.Raw) != tt.wantRaw {
					t.Errorf("body\n got %s\nwant %s", got.Raw, tt.wantRaw)
				}
				if got.Path != pandapon.CancelPath {
					t.Errorf("path %s, want %s", got.Path, pandapon.CancelPath)
				}
				h := got.Header
				if h.Get("access-key") != testKey || h.Get("user-id") != testUserID || h.Get("timestamp") != "1715669977082" ||
					h.Get("Content-Type") != "application/json" {
					t.Errorf("headers access-key=%q user-id=%q timestamp=%q content-type=%q",
						h.Get("access-key"), h.Get("user-id"), h.Get("timestamp"), h.Get("Content-Type"))
				}
				if s := h.Get("signature"); len(s) != 32 || strings.ToUpper(s) != s {
					t.Errorf("signature %q: want 32 upper-case hex characters", s)
				}
				if n := h.Get("nonce-str"); len(n) != 32 || strings.Trim(n, providers.Alphanumeric) != "" {
					t.Errorf("nonce-str %q: want 32 characters from A-Z, a-z, 0-9", n)
				}
				for k, vs := range h {
					for _, v := range vs {
						if strings.Contains(v, testSecret) {
							t.Errorf("header %s holds the secret", k)
						}
					}
				}
				if bytes.Contains(got.Raw, []byte(testSecret)) {
					t.Errorf("body holds the secret")
				}
			}
			if calls[0].Header.Get("nonce-str") == calls[1].Header.Get("nonce-str") {
				t.Errorf("two calls sent the same nonce %q", calls[0].Header.Get("nonce-str"))
			}
		})
	}
}

// TestCancelBigOrderID checks that the seed's order ID reaches the upstream
// byte-exact, and decodes there exactly.
func TestCancelBigOrderID(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, replyJSON(`{"code":200,"data":true}`))
	if err := newClient(t, u.srv.URL, nil).Cancel(t.Context(), pandapon.Order{OrderID: bigOrderID, CancelReason: "不想要了"}); err != nil {
		t.Fatal(err)
	}
	raw := u.calls()[0].Raw
	if !bytes.Contains(raw, []byte(`"orderId":2542285634920880794`)) {
		t.Fatalf("body %s does not hold the order ID byte-exact", raw)
	}
	var body struct {
		OrderID json.Number `json:"orderId"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.OrderID != "2542285634920880794" {
		t.Fatalf("orderId decoded as %q, %v", body.OrderID, err)
	}
}

// TestCancelSignedAtSendTime checks that each attempt reads the clock and the
// nonce afresh.
func TestCancelSignedAtSendTime(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, replyJSON(`{"code":200,"data":true}`))
	var mu sync.Mutex
	now := testNow
	c := newClient(t, u.srv.URL, func(cfg *pandapon.Config) {
		cfg.NowFunc = func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			now = now.Add(10 * time.Minute)
			return now
		}
	})
	for range 2 {
		if err := c.Cancel(t.Context(), testOrder); err != nil {
			t.Fatal(err)
		}
	}
	calls := u.calls()
	if a, b := calls[0].Header.Get("timestamp"), calls[1].Header.Get("timestamp"); a != "1715670577082" || b != "1715671177082" {
		t.Fatalf("timestamps %s, %s: want 1715670577082, 1715671177082", a, b)
	}
}

func TestCancelBadSignatureIsAuth(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, replyJSON(`{"code":200,"data":true}`))
	err := newClient(t, u.srv.URL, func(cfg *pandapon.Config) { cfg.AccessSecret = "wrong-secret" }).Cancel(t.Context(), testOrder)
	if pe := asError(t, err); pe.Class != providers.Auth || pe.Code != "401" {
		t.Fatalf("got %s %s, want auth 401", pe.Class, pe.Code)
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("error %q holds the secret", err)
	}
}

func TestCancelInvalidOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		order     pandapon.Order
		nonceFunc func() string
		wantField string
	}{
		{name: "zero order ID", order: pandapon.Order{}, wantField: "orderId"},
		{name: "negative order ID", order: pandapon.Order{OrderID: -5}, wantField: "orderId"},
		{name: "empty nonce", order: testOrder, nonceFunc: func() string { return "" }, wantField: "nonce-str"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := newUpstream(t, replyJSON(`{"code":200,"data":true}`))
			err := newClient(t, u.srv.URL, func(cfg *pandapon.Config) { cfg.NonceFunc = tt.nonceFunc }).Cancel(t.Context(), tt.order)
			pe := asError(t, err)
			if pe.Class != providers.Permanent || pe.Code != providers.CodeInvalidRequest || pe.Unknown {
				t.Fatalf("got %s %s unknown=%t, want permanent invalid_request", pe.Class, pe.Code, pe.Unknown)
			}
			if !strings.HasPrefix(pe.Message, tt.wantField+":") {
				t.Errorf("Message %q does not name %s", pe.Message, tt.wantField)
			}
			if n := len(u.calls()); n != 0 {
				t.Errorf("upstream called %d times, want 0", n)
			}
		})
	}
}

func TestCancelConcurrent(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, replyJSON(`{"code":200,"data":true}`))
	c := newClient(t, u.srv.URL, nil)
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- c.Cancel(t.Context(), pandapon.Order{OrderID: int64(i + 1)}) }()
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
		nonce := got.Header.Get("nonce-str")
		if !got.SigOK || seen[nonce] {
			t.Fatalf("call signed %t, nonce %q seen before %t", got.SigOK, nonce, seen[nonce])
		}
		seen[nonce] = true
	}
	if len(seen) != n {
		t.Fatalf("upstream saw %d distinct calls, want %d", len(seen), n)
	}
}

func TestCancelCanceled(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
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
	valid := pandapon.Config{BaseURL: "https://api.example.com/", AccessKey: "k", AccessSecret: "topsecret", UserID: "1"}
	tests := []struct {
		name   string
		mutate func(*pandapon.Config)
		want   []string
	}{
		{name: "valid", mutate: func(*pandapon.Config) {}},
		{name: "all missing", mutate: func(c *pandapon.Config) { *c = pandapon.Config{} },
			want: []string{"BaseURL: is required", "AccessKey: is required", "AccessSecret: is required", "UserID: is required"}},
		{name: "credentials in base URL", mutate: func(c *pandapon.Config) { c.BaseURL = "https://u:topsecret@api.example.com" }, want: []string{"BaseURL: must not hold credentials"}},
		{name: "secret with a space", mutate: func(c *pandapon.Config) { c.AccessSecret = " topsecret" }, want: []string{"AccessSecret: must not start or end with white space"}},
		{name: "secret not ASCII", mutate: func(c *pandapon.Config) { c.AccessSecret = "topsecret\u00e9" }, want: []string{"AccessSecret: must be printable ASCII"}},
		{name: "user ID with a newline", mutate: func(c *pandapon.Config) { c.UserID = "1\n2" }, want: []string{"UserID: must be printable ASCII"}},
		{name: "negative timeout", mutate: func(c *pandapon.Config) { c.Timeout = -1 }, want: []string{"Timeout: must not be negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			tt.mutate(&cfg)
			c, err := pandapon.New(cfg)
			if len(tt.want) == 0 {
				if err != nil || c == nil {
					t.Fatalf("New = %v, %v; want a client", c, err)
				}
				if got := c.URL(); got != "https://api.example.com"+pandapon.CancelPath {
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
			if strings.Contains(err.Error(), "topsecret") {
				t.Errorf("error %q echoes the secret", err)
			}
		})
	}
}
