package sandbox

import (
	"bytes"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/providers/pandapon"
)

func TestPandaPonAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		body      string
		wantOrder string
	}{
		{name: "vendor example", body: `{"webSite":"1688","orderId":2542285634920880794,"cancelReason":"不想要了"}`, wantOrder: bigOrderID},
		{name: "no optional fields", body: `{"webSite":"1688","orderId":2542285634920880794}`, wantOrder: bigOrderID},
		{name: "null optional fields", body: `{"webSite":"1688","orderId":2542285634920880794,"cancelReason":null,"remark":null}`, wantOrder: bigOrderID},
		{name: "unknown fields ignored", body: `{"webSite":"1688","orderId":2542285634920880794,"extra":{"x":[1.5]},"remark":"r"}`, wantOrder: bigOrderID},
		{name: "white space", body: " {\n \"orderId\" : 2542285634920880794 ,\n \"webSite\" : \"1688\" }\n", wantOrder: bigOrderID},
		{name: "largest int64", body: `{"webSite":"1688","orderId":9223372036854775807}`, wantOrder: "9223372036854775807"},
		{name: "small", body: `{"webSite":"1688","orderId":7}`, wantOrder: "7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			sb, srv := newTestServer(t, cfg)
			got := mustPost(t, srv, pandaPonPath, pandaPonHeaders(cfg), []byte(tc.body))
			if got.status != http.StatusOK {
				t.Fatalf("status = %d, want 200", got.status)
			}
			a := pandaPonAnswerOf(t, got)
			if a.Code != "200" || string(a.Data) != "true" || a.Msg != "success" || string(a.DevelopID) != `"`+DevelopID+`"` {
				t.Errorf("answer = %s, want code 200, data true, msg success, developId %q", got.body, DevelopID)
			}
			if _, err := hex.DecodeString(a.RequestID); err != nil || len(a.RequestID) != 32 {
				t.Errorf("requestId = %q, want 32 hex characters", a.RequestID)
			}
			calls := sb.Calls(provPandaPon, tc.wantOrder)
			if len(calls) != 1 {
				t.Fatalf("Calls(%q) = %d, want 1", tc.wantOrder, len(calls))
			}
			c := calls[0]
			if !bytes.Equal(c.Body, []byte(tc.body)) {
				t.Errorf("recorded body = %q, want the bytes sent %q", c.Body, tc.body)
			}
			if c.Reject != "" || !c.SignatureOK || c.Outcome != "ok" {
				t.Errorf("call = {Reject:%q SignatureOK:%v Outcome:%q}, want accepted", c.Reject, c.SignatureOK, c.Outcome)
			}
			if got := c.Header.Get("user-id"); got != ppUserID {
				t.Errorf("recorded user-id = %q, want %q", got, ppUserID)
			}
			if !sb.Cancelled(provPandaPon, tc.wantOrder) {
				t.Error("Cancelled = false after a success")
			}
		})
	}
}

func TestPandaPonRejects(t *testing.T) {
	t.Parallel()
	now := strconv.FormatInt(testNow.UnixMilli(), 10)
	resign := func(h http.Header, ts string) {
		h.Set("timestamp", ts)
		h.Set("signature", pandapon.Sign(ppAccessKey, h.Get("nonce-str"), ts, ppSecret))
	}
	withNonce := func(nonce string) func(http.Header) {
		return func(h http.Header) {
			h.Set("nonce-str", nonce)
			resign(h, now)
		}
	}
	tests := []struct {
		name        string
		cfg         func(*Config)
		header      func(http.Header)
		body        string // default: the vendor example
		contentType string
		wantCode    int
		wantMsg     string
		wantReject  string
		wantOrder   string // recorded order; "-" means none
		wantSigOK   bool
	}{
		{name: "orderId with fraction", body: `{"webSite":"1688","orderId":2542285634920880794.0}`,
			wantCode: 400, wantMsg: "invalid orderId", wantReject: "orderId: must be a JSON integer", wantOrder: "-", wantSigOK: true},
		{name: "orderId as string", body: `{"webSite":"1688","orderId":"2542285634920880794"}`,
			wantCode: 400, wantMsg: "invalid orderId", wantReject: "orderId: must be a JSON integer", wantOrder: "-", wantSigOK: true},
		{name: "orderId with exponent", body: `{"webSite":"1688","orderId":2.542285634920880794e18}`,
			wantCode: 400, wantMsg: "invalid orderId", wantReject: "orderId: must be a JSON integer", wantOrder: "-", wantSigOK: true},
		{name: "orderId negative", body: `{"webSite":"1688","orderId":-2542285634920880794}`,
			wantCode: 400, wantMsg: "invalid orderId", wantReject: "orderId: must be a JSON integer", wantOrder: "-", wantSigOK: true},
		{name: "orderId zero", body: `{"webSite":"1688","orderId":0}`,
			wantCode: 400, wantMsg: "invalid orderId", wantReject: "orderId: must be a positive integer", wantOrder: "-", wantSigOK: true},
		{name: "orderId beyond int64", body: `{"webSite":"1688","orderId":9223372036854775808}`,
			wantCode: 400, wantMsg: "invalid orderId", wantReject: "orderId: must fit in a signed 64-bit integer", wantOrder: "-", wantSigOK: true},
		{name: "orderId missing", body: `{"webSite":"1688"}`,
			wantCode: 400, wantMsg: "invalid orderId", wantReject: "orderId: is required", wantOrder: "-", wantSigOK: true},
		{name: "orderId null", body: `{"webSite":"1688","orderId":null}`,
			wantCode: 400, wantMsg: "invalid orderId", wantReject: "orderId: is required", wantOrder: "-", wantSigOK: true},
		{name: "webSite alibaba", body: `{"webSite":"alibaba","orderId":2542285634920880794}`,
			wantCode: 400, wantMsg: "invalid webSite", wantReject: "webSite: must be 1688", wantSigOK: true},
		{name: "webSite number", body: `{"webSite":1688,"orderId":2542285634920880794}`,
			wantCode: 400, wantMsg: "invalid webSite", wantReject: "webSite: must be a JSON string", wantSigOK: true},
		{name: "webSite missing", body: `{"orderId":2542285634920880794}`,
			wantCode: 400, wantMsg: "invalid webSite", wantReject: "webSite: is required", wantSigOK: true},
		{name: "cancelReason number", body: `{"webSite":"1688","orderId":2542285634920880794,"cancelReason":3}`,
			wantCode: 400, wantMsg: "invalid cancelReason", wantReject: "cancelReason: must be a JSON string", wantSigOK: true},
		{name: "remark object", body: `{"webSite":"1688","orderId":2542285634920880794,"remark":{}}`,
			wantCode: 400, wantMsg: "invalid remark", wantReject: "remark: must be a JSON string", wantSigOK: true},
		{name: "not JSON", body: `webSite=1688&orderId=2542285634920880794`,
			wantCode: 400, wantMsg: "invalid body", wantReject: "body: must be one valid JSON object", wantOrder: "-", wantSigOK: true},
		{name: "trailing data", body: `{"webSite":"1688","orderId":2542285634920880794}{}`,
			wantCode: 400, wantMsg: "invalid body", wantReject: "body: trailing data", wantOrder: "-", wantSigOK: true},
		{name: "content type", contentType: "text/plain",
			wantCode: 400, wantMsg: "invalid Content-Type", wantReject: "Content-Type: must be application/json", wantSigOK: true},
		{name: "access-key missing", header: func(h http.Header) { h.Del("access-key") },
			wantCode: 401, wantMsg: "invalid access-key", wantReject: "access-key: is required"},
		{name: "access-key of another developer", header: func(h http.Header) { h.Set("access-key", "ffff0201dfdf148eca63cbf6bb5e7cf03") },
			wantCode: 401, wantMsg: "invalid access-key", wantReject: "access-key: does not match the account"},
		{name: "user-id missing", header: func(h http.Header) { h.Del("user-id") },
			wantCode: 401, wantMsg: "invalid user-id", wantReject: "user-id: is required"},
		{name: "user-id of another user", header: func(h http.Header) { h.Set("user-id", "2100007341208") },
			wantCode: 401, wantMsg: "invalid user-id", wantReject: "user-id: does not match the account"},
		{name: "nonce-str short", header: withNonce("Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4"),
			wantCode: 401, wantMsg: "invalid nonce-str", wantReject: "nonce-str: must be 32 characters"},
		{name: "nonce-str long", header: withNonce("Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zz"),
			wantCode: 401, wantMsg: "invalid nonce-str", wantReject: "nonce-str: must be 32 characters"},
		{name: "nonce-str with a dash", header: withNonce("Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4-"),
			wantCode: 401, wantMsg: "invalid nonce-str", wantReject: "nonce-str: must be 32 characters"},
		{name: "timestamp stale", header: func(h http.Header) { resign(h, strconv.FormatInt(testNow.Add(-601*time.Second).UnixMilli(), 10)) },
			wantCode: 401, wantMsg: "invalid timestamp", wantReject: "timestamp: 10m1s away from the sandbox clock"},
		{name: "timestamp ahead", header: func(h http.Header) { resign(h, strconv.FormatInt(testNow.Add(601*time.Second).UnixMilli(), 10)) },
			wantCode: 401, wantMsg: "invalid timestamp", wantReject: "timestamp: 10m1s away"},
		{name: "timestamp in seconds", header: func(h http.Header) { resign(h, strconv.FormatInt(testNow.Unix(), 10)) },
			wantCode: 401, wantMsg: "invalid timestamp", wantReject: "timestamp: "},
		{name: "timestamp not digits", header: func(h http.Header) { resign(h, testNow.Format(time.RFC3339)) },
			wantCode: 401, wantMsg: "invalid timestamp", wantReject: "timestamp: must be epoch milliseconds"},
		{name: "signature lower case", header: func(h http.Header) { h.Set("signature", strings.ToLower(h.Get("signature"))) },
			wantCode: 401, wantMsg: "invalid signature", wantReject: "signature: does not match"},
		{name: "signature missing", header: func(h http.Header) { h.Del("signature") },
			wantCode: 401, wantMsg: "invalid signature", wantReject: "signature: does not match"},
		{name: "signature with another secret", header: func(h http.Header) {
			h.Set("signature", pandapon.Sign(ppAccessKey, h.Get("nonce-str"), h.Get("timestamp"), "not-the-secret"))
		}, wantCode: 401, wantMsg: "invalid signature", wantReject: "signature: does not match"},
		{name: "timestamp changed after signing", header: func(h http.Header) {
			h.Set("timestamp", strconv.FormatInt(testNow.UnixMilli()+1, 10))
		}, wantCode: 401, wantMsg: "invalid signature", wantReject: "signature: does not match"},
		{name: "auth is checked before the body", header: func(h http.Header) { h.Set("user-id", "x") },
			body:     `{"webSite":"1688","orderId":"2542285634920880794"}`,
			wantCode: 401, wantMsg: "invalid user-id", wantReject: "user-id: does not match", wantOrder: "-"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			sb, srv := newTestServer(t, cfg)
			no := false
			sb.Script(provPandaPon, bigOrderID, PandaPonCode(200, &no))

			h := pandaPonHeaders(cfg)
			if tc.header != nil {
				tc.header(h)
			}
			if tc.contentType != "" {
				h.Set("Content-Type", tc.contentType)
			}
			expected := pandapon.Sign(h.Get("access-key"), h.Get("nonce-str"), h.Get("timestamp"), ppSecret)
			body := string(examplePandaPonBody(bigOrderID))
			if tc.body != "" {
				body = tc.body
			}

			got := mustPost(t, srv, pandaPonPath, h, []byte(body))
			if got.status != http.StatusOK {
				t.Fatalf("status = %d, want 200 (errors travel in the body)", got.status)
			}
			a := pandaPonAnswerOf(t, got)
			if a.Code.String() != strconv.Itoa(tc.wantCode) || a.Msg != tc.wantMsg || len(a.Data) != 0 {
				t.Errorf("answer = %s, want code %d, msg %q and no data", got.body, tc.wantCode, tc.wantMsg)
			}
			wantOrder := bigOrderID
			if tc.wantOrder == "-" {
				wantOrder = ""
			}
			calls := sb.Calls(provPandaPon, wantOrder)
			if len(calls) != 1 {
				t.Fatalf("Calls(%q) = %d, want 1", wantOrder, len(calls))
			}
			c := calls[0]
			if !strings.Contains(c.Reject, tc.wantReject) {
				t.Errorf("Reject = %q, want it to contain %q", c.Reject, tc.wantReject)
			}
			if c.SignatureOK != tc.wantSigOK {
				t.Errorf("SignatureOK = %v, want %v", c.SignatureOK, tc.wantSigOK)
			}
			if want := "code " + strconv.Itoa(tc.wantCode); c.Outcome != want {
				t.Errorf("Outcome = %q, want %q", c.Outcome, want)
			}
			if !bytes.Equal(c.Body, []byte(body)) {
				t.Errorf("recorded body = %q, want %q", c.Body, body)
			}
			noSecrets(t, "answer", string(got.body), expected)
			noSecrets(t, "Reject", c.Reject, expected)

			// The rejected call did not consume the script.
			next := pandaPonAnswerOf(t, mustPost(t, srv, pandaPonPath, pandaPonHeaders(cfg), examplePandaPonBody(bigOrderID)))
			if next.Code != "200" || string(next.Data) != "false" {
				t.Errorf("valid request after the rejected one: code %s data %s, want the scripted code 200 data false", next.Code, next.Data)
			}
			if sb.Cancelled(provPandaPon, bigOrderID) {
				t.Error("Cancelled = true, want false")
			}
		})
	}
}

func TestPandaPonReplayedNonce(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	sb, srv := newTestServer(t, cfg)
	h := pandaPonHeaders(cfg)
	body := examplePandaPonBody(bigOrderID)

	first := pandaPonAnswerOf(t, mustPost(t, srv, pandaPonPath, h, body))
	again := pandaPonAnswerOf(t, mustPost(t, srv, pandaPonPath, h, body))
	if first.Code != "200" || again.Code != "401" || again.Msg != "invalid nonce-str" {
		t.Fatalf("codes = %s then %s (%q), want 200 then 401 invalid nonce-str", first.Code, again.Code, again.Msg)
	}
	calls := sb.Calls(provPandaPon, bigOrderID)
	if len(calls) != 2 || calls[1].Reject != "nonce-str: already used" || !calls[1].SignatureOK {
		t.Fatalf("calls = %+v, want the second rejected as a replay after a good signature", calls)
	}
}
