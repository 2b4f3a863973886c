package sandbox

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/providers/meari"
)

func TestMeariAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mode   meari.SignMode
		format meari.TimestampFormat
		edit   func(*meari.Request) // before signing
		after  func(*meari.Request) // after signing
	}{
		{name: "default config", mode: "", format: ""},
		{name: "sorted millis", mode: meari.SignSorted, format: meari.TimestampMillis},
		{name: "sorted rfc3339", mode: meari.SignSorted, format: meari.TimestampRFC3339},
		{name: "documented millis", mode: meari.SignDocumented, format: meari.TimestampMillis},
		{name: "documented rfc3339", mode: meari.SignDocumented, format: meari.TimestampRFC3339},
		{
			name: "timestamp 599s old", mode: meari.SignSorted, format: meari.TimestampMillis,
			edit: func(r *meari.Request) { r.Timestamp = strconv.FormatInt(testNow.Add(-599*time.Second).UnixMilli(), 10) },
		},
		{
			name: "timestamp 599s ahead", mode: meari.SignSorted, format: meari.TimestampRFC3339,
			edit: func(r *meari.Request) {
				r.Timestamp = testNow.Add(599 * time.Second).UTC().Format(meari.TimestampLayoutRFC3339)
			},
		},
		{
			name: "orderType 3", mode: meari.SignSorted,
			edit: func(r *meari.Request) { r.OrderType = 3 },
		},
		{
			// The documented mode does not sign userAccount.
			name: "documented mode leaves userAccount unsigned", mode: meari.SignDocumented,
			after: func(r *meari.Request) { r.UserAccount = "other@example.com" },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.Meari.SignMode, cfg.Meari.TimestampFormat = tc.mode, tc.format
			sb, srv := newTestServer(t, cfg)
			const order = "01582572KS0209053"
			r := meariRequest(cfg, order)
			if tc.edit != nil {
				tc.edit(&r)
			}
			r.Signature = meari.Sign(r, meariSecret, signMode(cfg))
			if tc.after != nil {
				tc.after(&r)
			}
			body := mustJSON(t, r)

			got := mustPost(t, srv, meariPath, nil, body)
			if got.status != http.StatusOK || meariCode(t, got) != "1001" {
				t.Fatalf("answer = %d %s, want 200 resultCode 1001", got.status, got.body)
			}
			calls := sb.Calls(provMeari, order)
			if len(calls) != 1 {
				t.Fatalf("Calls = %d, want 1", len(calls))
			}
			c := calls[0]
			if c.Reject != "" || !c.SignatureOK || c.Outcome != "ok" || !bytes.Equal(c.Body, body) || !c.At.Equal(testNow) {
				t.Errorf("call = {Reject:%q SignatureOK:%v Outcome:%q At:%v Body:%s}, want accepted ok with the body sent",
					c.Reject, c.SignatureOK, c.Outcome, c.At, c.Body)
			}
			if !sb.Cancelled(provMeari, order) {
				t.Error("Cancelled = false after a success")
			}
		})
	}
}

func TestMeariRejects(t *testing.T) {
	t.Parallel()
	const order = "ORDER-1"
	oldMillis := strconv.FormatInt(testNow.Add(-601*time.Second).UnixMilli(), 10)
	tests := []struct {
		name        string
		cfg         func(*Config)
		edit        func(*meari.Request) // before signing
		secret      string               // signing secret; "" means the account's
		mode        meari.SignMode       // signing mode; "" means the account's
		after       func(*meari.Request) // after signing
		raw         func(t *testing.T, body []byte) []byte
		contentType string
		wantCode    string
		wantReject  string
		wantOrder   string // recorded order; "-" means none
		wantSigOK   bool
	}{
		{name: "content type", contentType: "text/plain", wantCode: "1003", wantReject: "Content-Type"},
		{name: "sourceApp string", raw: func(t *testing.T, b []byte) []byte { return setField(t, b, "sourceApp", `"72"`) },
			wantCode: "1003", wantReject: "sourceApp: must be a JSON integer"},
		{name: "sourceApp float", raw: func(t *testing.T, b []byte) []byte { return setField(t, b, "sourceApp", `72.0`) },
			wantCode: "1003", wantReject: "sourceApp: must be a JSON integer"},
		{name: "sourceApp negative", raw: func(t *testing.T, b []byte) []byte { return setField(t, b, "sourceApp", `-72`) },
			wantCode: "1003", wantReject: "sourceApp: must be a JSON integer"},
		{name: "orderType string", raw: func(t *testing.T, b []byte) []byte { return setField(t, b, "orderType", `"1"`) },
			wantCode: "1003", wantReject: "orderType: must be a JSON integer"},
		{name: "orderType exponent", raw: func(t *testing.T, b []byte) []byte { return setField(t, b, "orderType", `1e0`) },
			wantCode: "1003", wantReject: "orderType: must be a JSON integer"},
		{name: "orderType out of range", edit: func(r *meari.Request) { r.OrderType = 4 },
			wantCode: "1003", wantReject: "orderType: must be 1, 2 or 3, got 4"},
		{name: "orderType zero", edit: func(r *meari.Request) { r.OrderType = 0 },
			wantCode: "1003", wantReject: "orderType: must be 1, 2 or 3, got 0"},
		{name: "userAccount missing", raw: func(t *testing.T, b []byte) []byte { return delField(t, b, "userAccount") },
			wantCode: "1003", wantReject: "userAccount: is required"},
		{name: "userAccount null", raw: func(t *testing.T, b []byte) []byte { return setField(t, b, "userAccount", `null`) },
			wantCode: "1003", wantReject: "userAccount: is required"},
		{name: "partnerKey number", raw: func(t *testing.T, b []byte) []byte { return setField(t, b, "partnerKey", `7`) },
			wantCode: "1003", wantReject: "partnerKey: must be a JSON string"},
		{name: "signatureNonce empty", edit: func(r *meari.Request) { r.SignatureNonce = "" },
			wantCode: "1003", wantReject: "signatureNonce: must not be empty"},
		{name: "signature missing", raw: func(t *testing.T, b []byte) []byte { return delField(t, b, "signature") },
			wantCode: "1003", wantReject: "signature: is required"},
		{name: "signatureMethod", edit: func(r *meari.Request) { r.SignatureMethod = "HMAC-SHA256" },
			wantCode: "1003", wantReject: "signatureMethod: must be HMAC-SHA1"},
		{name: "signatureVersion", edit: func(r *meari.Request) { r.SignatureVersion = "2.0" },
			wantCode: "1003", wantReject: "signatureVersion: must be 1.0"},
		{name: "orderNum missing", raw: func(t *testing.T, b []byte) []byte { return delField(t, b, "orderNum") },
			wantCode: "1003", wantReject: "orderNum: is required", wantOrder: "-"},
		{name: "not JSON", raw: func(*testing.T, []byte) []byte { return []byte("sourceApp=72&orderNum=" + order) },
			wantCode: "1003", wantReject: "body: must be one valid JSON object", wantOrder: "-"},
		{name: "JSON array", raw: func(*testing.T, []byte) []byte { return []byte(`[1,2]`) },
			wantCode: "1003", wantReject: "body: must be one valid JSON object", wantOrder: "-"},
		{name: "trailing data", raw: func(_ *testing.T, b []byte) []byte { return append(b, "{}"...) },
			wantCode: "1003", wantReject: "body: trailing data", wantOrder: "-"},
		{name: "partnerKey of another partner", edit: func(r *meari.Request) { r.PartnerKey = "someone-else" },
			wantCode: "1023", wantReject: "partnerKey: does not match the account"},
		{name: "sourceApp of another customer", edit: func(r *meari.Request) { r.SourceApp = 73 },
			wantCode: "1023", wantReject: "sourceApp: does not match the account"},
		{name: "timestamp stale", edit: func(r *meari.Request) { r.Timestamp = oldMillis },
			wantCode: "1023", wantReject: "timestamp: 10m1s away from the sandbox clock, more than 10m0s"},
		{name: "timestamp ahead", edit: func(r *meari.Request) {
			r.Timestamp = strconv.FormatInt(testNow.Add(601*time.Second).UnixMilli(), 10)
		}, wantCode: "1023", wantReject: "timestamp: 10m1s away"},
		{name: "timestamp beyond a configured MaxSkew", cfg: func(c *Config) { c.MaxSkew = 30 * time.Second },
			edit:     func(r *meari.Request) { r.Timestamp = strconv.FormatInt(testNow.Add(-31*time.Second).UnixMilli(), 10) },
			wantCode: "1023", wantReject: "more than 30s"},
		{name: "rfc3339 timestamp when millis configured",
			edit:     func(r *meari.Request) { r.Timestamp = testNow.Format(meari.TimestampLayoutRFC3339) },
			wantCode: "1023", wantReject: "timestamp: must be epoch milliseconds"},
		{name: "millis timestamp when rfc3339 configured", cfg: func(c *Config) { c.Meari.TimestampFormat = meari.TimestampRFC3339 },
			edit:     func(r *meari.Request) { r.Timestamp = strconv.FormatInt(testNow.UnixMilli(), 10) },
			wantCode: "1023", wantReject: "timestamp: must be UTC as YYYY-MM-DDThh:mm:ssZ"},
		{name: "rfc3339 with offset", cfg: func(c *Config) { c.Meari.TimestampFormat = meari.TimestampRFC3339 },
			edit:     func(r *meari.Request) { r.Timestamp = testNow.Format("2006-01-02T15:04:05+00:00") },
			wantCode: "1023", wantReject: "timestamp: must be UTC"},
		{name: "wrong secret", secret: "not-the-secret",
			wantCode: "1023", wantReject: "signature: does not match (sorted mode)"},
		{name: "documented signature when sorted configured", mode: meari.SignDocumented,
			wantCode: "1023", wantReject: "signature: does not match (sorted mode)"},
		{name: "sorted signature when documented configured", cfg: func(c *Config) { c.Meari.SignMode = meari.SignDocumented },
			mode: meari.SignSorted, wantCode: "1023", wantReject: "signature: does not match (documented mode)"},
		{name: "userAccount changed after signing", after: func(r *meari.Request) { r.UserAccount = "other@example.com" },
			wantCode: "1023", wantReject: "signature: does not match"},
		{name: "orderType changed after signing", after: func(r *meari.Request) { r.OrderType = 2 },
			wantCode: "1023", wantReject: "signature: does not match"},
		{name: "signature lower-cased", after: func(r *meari.Request) { r.Signature = strings.ToLower(r.Signature) },
			wantCode: "1023", wantReject: "signature: does not match"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			sb, srv := newTestServer(t, cfg)
			sb.Script(provMeari, order, MeariCode("4001"))

			r := meariRequest(cfg, order)
			if tc.edit != nil {
				tc.edit(&r)
			}
			secret, mode := meariSecret, signMode(cfg)
			if tc.secret != "" {
				secret = tc.secret
			}
			if tc.mode != "" {
				mode = tc.mode
			}
			r.Signature = meari.Sign(r, secret, mode)
			if tc.after != nil {
				tc.after(&r)
			}
			// The signature the sandbox computes must never be shown.
			expected := meari.Sign(r, meariSecret, signMode(cfg))
			body := mustJSON(t, r)
			if tc.raw != nil {
				body = tc.raw(t, body)
			}
			h := http.Header{}
			if tc.contentType != "" {
				h.Set("Content-Type", tc.contentType)
			}

			got := mustPost(t, srv, meariPath, h, body)
			if got.status != http.StatusOK || meariCode(t, got) != tc.wantCode {
				t.Fatalf("answer = %d %s, want 200 resultCode %s", got.status, got.body, tc.wantCode)
			}
			wantOrder := order
			if tc.wantOrder == "-" {
				wantOrder = ""
			}
			calls := sb.Calls(provMeari, wantOrder)
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
			if c.Outcome != "resultCode "+tc.wantCode {
				t.Errorf("Outcome = %q, want %q", c.Outcome, "resultCode "+tc.wantCode)
			}
			noSecrets(t, "answer", string(got.body), expected)
			noSecrets(t, "Reject", c.Reject, expected)

			// The rejected call did not consume the script.
			next := mustPost(t, srv, meariPath, nil, validMeariBody(t, cfg, order))
			if code := meariCode(t, next); code != "4001" {
				t.Errorf("valid request after the rejected one: resultCode %s, want the scripted 4001", code)
			}
			if sb.Cancelled(provMeari, order) {
				t.Error("Cancelled = true, want false")
			}
		})
	}
}

func TestMeariReplayedNonce(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	sb, srv := newTestServer(t, cfg)
	const order = "REPLAY-1"
	sb.Script(provMeari, order, MeariCode("1005"), OK())

	body := validMeariBody(t, cfg, order)
	codes := []string{
		meariCode(t, mustPost(t, srv, meariPath, nil, body)),
		meariCode(t, mustPost(t, srv, meariPath, nil, body)), // the same bytes again
		meariCode(t, mustPost(t, srv, meariPath, nil, validMeariBody(t, cfg, order))),
	}
	if want := []string{"1005", "1023", "1001"}; strings.Join(codes, ",") != strings.Join(want, ",") {
		t.Fatalf("resultCodes = %v, want %v (the replay neither accepted nor consuming the script)", codes, want)
	}
	calls := sb.Calls(provMeari, order)
	if len(calls) != 3 {
		t.Fatalf("Calls = %d, want 3", len(calls))
	}
	if c := calls[1]; c.Reject != "signatureNonce: already used" || !c.SignatureOK {
		t.Errorf("replayed call = {Reject:%q SignatureOK:%v}, want the nonce rejected after a good signature", c.Reject, c.SignatureOK)
	}
}
