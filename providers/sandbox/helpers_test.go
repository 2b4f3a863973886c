package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/cancelworker/cancelworker/providers/pandapon"
)

const (
	provMeari    = "meari"
	provPandaPon = "pandapon"

	meariKey       = "pk-test"
	meariSecret    = "meari-s3cr3t-value"
	meariSourceApp = 72

	ppAccessKey = "58c0201dfdf148eca63cbf6bb5e7cf03"
	ppSecret    = "panda-s3cr3t-value"
	ppUserID    = "2100007341207"

	bigOrderID = "2542285634920880794" // larger than 2^53
)

// testNow is the sandbox clock in tests.
var testNow = time.Date(2025, 5, 14, 6, 59, 37, 82_000_000, time.UTC)

func testConfig() Config {
	return Config{
		Meari:    MeariAccount{PartnerKey: meariKey, PartnerSecret: meariSecret, SourceApp: meariSourceApp},
		PandaPon: PandaPonAccount{AccessKey: ppAccessKey, AccessSecret: ppSecret, UserID: ppUserID},
		NowFunc:  func() time.Time { return testNow },
	}
}

// newTestServer serves a new Sandbox for cfg over real HTTP until the test ends.
func newTestServer(t *testing.T, cfg Config) (*Sandbox, *httptest.Server) {
	t.Helper()
	sb := New(cfg)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return sb, srv
}

// reply is what a client received.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// post sends body to srv's path with header (Content-Type application/json
// unless header sets it).
func post(ctx context.Context, srv *httptest.Server, path string, header http.Header, body []byte) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+path, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func mustPost(t *testing.T, srv *httptest.Server, path string, header http.Header, body []byte) reply {
	t.Helper()
	r, err := post(t.Context(), srv, path, header, body)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return r
}

// meariTimestamp formats at in the account's timestamp format.
func meariTimestamp(cfg Config, at time.Time) string {
	if cfg.Meari.TimestampFormat == meari.TimestampRFC3339 {
		return at.UTC().Format(meari.TimestampLayoutRFC3339)
	}
	return strconv.FormatInt(at.UnixMilli(), 10)
}

// meariRequest returns an unsigned, valid Meari request for order.
func meariRequest(cfg Config, order string) meari.Request {
	return meari.Request{
		SourceApp: cfg.Meari.SourceApp, UserAccount: "test@123.com", PartnerKey: cfg.Meari.PartnerKey,
		OrderType: 1, OrderNum: order,
		SignatureMethod: meari.SignatureMethod, SignatureVersion: meari.SignatureVersion,
		SignatureNonce: randomHex(8), Timestamp: meariTimestamp(cfg, testNow),
	}
}

func signMode(cfg Config) meari.SignMode {
	if cfg.Meari.SignMode == "" {
		return meari.SignModeDefault
	}
	return cfg.Meari.SignMode
}

// validMeariBody returns the JSON body of a valid, signed Meari request for order.
func validMeariBody(t *testing.T, cfg Config, order string) []byte {
	t.Helper()
	r := meariRequest(cfg, order)
	r.Signature = meari.Sign(r, cfg.Meari.PartnerSecret, signMode(cfg))
	return mustJSON(t, r)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// meariCode returns the resultCode of a Meari answer.
func meariCode(t *testing.T, r reply) string {
	t.Helper()
	var a struct {
		ResultCode string `json:"resultCode"`
	}
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("Meari answer %q: %v", r.body, err)
	}
	return a.ResultCode
}

// setField replaces (or adds) a top-level field of a JSON object with raw.
func setField(t *testing.T, body []byte, key, raw string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	m[key] = json.RawMessage(raw)
	return mustJSON(t, m)
}

// delField removes a top-level field of a JSON object.
func delField(t *testing.T, body []byte, key string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, key)
	return mustJSON(t, m)
}

// pandaPonHeaders returns freshly signed PandaPon headers for cfg at testNow.
func pandaPonHeaders(cfg Config) http.Header {
	nonce := randomHex(16)
	ts := strconv.FormatInt(testNow.UnixMilli(), 10)
	a := cfg.PandaPon
	h := http.Header{}
	h.Set("access-key", a.AccessKey)
	h.Set("nonce-str", nonce)
	h.Set("timestamp", ts)
	h.Set("user-id", a.UserID)
	h.Set("signature", pandapon.Sign(a.AccessKey, nonce, ts, a.AccessSecret))
	return h
}

// examplePandaPonBody returns a request body with orderId written as the raw token.
func examplePandaPonBody(orderToken string) []byte {
	return fmt.Appendf(nil, `{"webSite":"1688","orderId":%s,"cancelReason":"不想要了"}`, orderToken)
}

// ppAnswer is a decoded PandaPon answer; data is "", "true" or "false".
type ppAnswer struct {
	RequestID string          `json:"requestId"`
	Code      json.Number     `json:"code"`
	DevelopID json.RawMessage `json:"developId"`
	Msg       string          `json:"msg"`
	Data      json.RawMessage `json:"data"`
}

func pandaPonAnswerOf(t *testing.T, r reply) ppAnswer {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	var a ppAnswer
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("PandaPon answer %q: %v", r.body, err)
	}
	return a
}

// noSecrets fails when text holds a secret or a signature the sandbox
// computed.
func noSecrets(t *testing.T, what, text string, forbidden ...string) {
	t.Helper()
	for _, f := range append(forbidden, meariSecret, ppSecret) {
		if f != "" && strings.Contains(text, f) {
			t.Errorf("%s leaks %q: %s", what, f, text)
		}
	}
}

// waitOrFail waits for ch with a deadline.
func waitOrFail(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}
