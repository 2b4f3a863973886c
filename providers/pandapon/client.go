// Package pandapon cancels PandaPon 1688 orders before payment: it signs the
// request headers (sign.go), sends the request and classifies the reply per
// docs/upstreams.md §2 and §3.
package pandapon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/providers"
)

const (
	// Provider is the provider name used in errors, logs and metrics.
	Provider = "pandapon"

	// CancelPath is the cancel endpoint, appended to Config.BaseURL.
	CancelPath = "/v2/alibaba/order/cancel"

	// WebSite is the fixed webSite body field: the 1688 site.
	WebSite = "1688"

	// NonceLength is the length of nonce-str: characters from A-Z, a-z, 0-9.
	NonceLength = 32
)

// Header names of the system parameters.
const (
	HeaderAccessKey = "access-key"
	HeaderNonce     = "nonce-str"
	HeaderTimestamp = "timestamp"
	HeaderUserID    = "user-id"
	HeaderSignature = "signature"
)

// Config configures a Client. New validates every field.
type Config struct {
	// BaseURL is the upstream's scheme and host, with an optional path
	// prefix. It must not hold credentials, a query or a fragment.
	BaseURL string
	// AccessKey is sent in the access-key header and signed.
	AccessKey string
	// AccessSecret is the signing secret. It is never sent, logged or echoed.
	AccessSecret string
	// UserID is sent in the user-id header; it is not signed.
	UserID string
	// Transport sets the timeout, HTTP client, clock and nonce source.
	// Its NonceFunc defaults to NonceLength random characters from A-Z,
	// a-z, 0-9 (crypto/rand).
	providers.Transport
}

// Client cancels PandaPon 1688 orders. It is safe for concurrent use and
// reuses one http.Client for all its calls.
type Client struct {
	core   providers.Core
	url    string
	key    string
	secret string
	userID string
	now    func() time.Time
	nonce  func() string
}

// Problems returns every invalid field of cfg, its Transport aside: the
// checks New makes, for a loader to run on its settings before any client
// is built. A key, secret or user ID is never echoed.
func (cfg Config) Problems() []providers.FieldProblem {
	var ps []providers.FieldProblem
	add := func(field string, err error) {
		if err != nil {
			ps = append(ps, providers.FieldProblem{Field: field, Err: err})
		}
	}
	_, err := providers.ParseBaseURL(cfg.BaseURL)
	add("BaseURL", err)
	add("AccessKey", checkHeaderValue(cfg.AccessKey))
	add("AccessSecret", checkHeaderValue(cfg.AccessSecret))
	add("UserID", checkHeaderValue(cfg.UserID))
	return ps
}

// New validates cfg, reporting every invalid field at once, and returns a
// Client.
func New(cfg Config) (*Client, error) {
	var errs []error
	for _, p := range cfg.Problems() {
		errs = append(errs, p)
	}
	if err := cfg.Transport.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("pandapon config: %w", err)
	}
	base, _ := providers.ParseBaseURL(cfg.BaseURL) // checked
	c := &Client{
		url:    base + CancelPath,
		key:    cfg.AccessKey,
		secret: cfg.AccessSecret,
		userID: cfg.UserID,
	}
	c.core, c.now, c.nonce = cfg.Transport.Build(Provider, base, func() string {
		return providers.RandomString(NonceLength, providers.Alphanumeric)
	})
	return c, nil
}

// checkHeaderValue checks a value that travels in (or signs) a header,
// without ever echoing it.
func checkHeaderValue(v string) error {
	switch {
	case v == "":
		return errors.New("is required")
	case strings.TrimSpace(v) != v:
		return errors.New("must not start or end with white space")
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r >= 0x7f }):
		return errors.New("must be printable ASCII")
	}
	return nil
}

// Order is the order to cancel.
type Order struct {
	// OrderID is the 1688 order ID, positive. It is sent as a bare JSON
	// integer, byte-exact.
	OrderID int64
	// CancelReason is optional; it is left out of the body when empty.
	CancelReason string
	// Remark is optional; it is left out of the body when empty.
	Remark string
}

// request is the body of POST /v2/alibaba/order/cancel.
type request struct {
	WebSite      string `json:"webSite"`
	OrderID      int64  `json:"orderId"`
	CancelReason string `json:"cancelReason,omitempty"`
	Remark       string `json:"remark,omitempty"`
}

// encodeRequest returns the JSON body for o. The order ID is written from
// the int64 as decimal digits, never through a float64.
func encodeRequest(o Order) ([]byte, error) {
	return providers.MarshalJSON(request{WebSite: WebSite, OrderID: o.OrderID, CancelReason: o.CancelReason, Remark: o.Remark})
}

// Cancel asks the upstream to cancel o. Each call is signed afresh at send
// time, with a new nonce and the current time, so a retry is never a replay
// and never stale. It returns nil when the upstream answers code 200 with
// data true, and a *providers.Error otherwise (see the table in outcome, and
// providers.Core for HTTP and network failures). An invalid order is
// Permanent with code "invalid_request", and the upstream is not called.
func (c *Client) Cancel(ctx context.Context, o Order) error {
	var st stamp
	h, body, err := c.encode(o, &st)
	if err != nil {
		return err
	}
	resp, err := c.core.PostJSON(ctx, c.url, h, body)
	if err != nil {
		return err
	}
	return c.judge(resp, &st)
}

// stamp is what a request is signed with besides the keys.
type stamp struct{ nonce, ts string }

// encode returns the headers and the body of o's request, signed with a
// fresh st. It and judge are out of line so that Cancel's stack frame,
// under the whole round trip, stays small.
//
//go:noinline
func (c *Client) encode(o Order, st *stamp) (http.Header, []byte, error) {
	if o.OrderID <= 0 {
		return nil, nil, c.core.Invalid(fmt.Errorf("orderId: must be a positive 64-bit integer, got %d", o.OrderID))
	}
	body, err := encodeRequest(o)
	if err != nil {
		return nil, nil, c.core.Invalid(fmt.Errorf("encode request: %w", err))
	}
	st.nonce = c.nonce()
	if st.nonce == "" {
		return nil, nil, c.core.Invalid(errors.New("nonce-str: NonceFunc returned an empty nonce"))
	}
	st.ts = strconv.FormatInt(c.now().UnixMilli(), 10)
	h := http.Header{}
	h.Set(HeaderAccessKey, c.key)
	h.Set(HeaderNonce, st.nonce)
	h.Set(HeaderTimestamp, st.ts)
	h.Set(HeaderUserID, c.userID)
	h.Set(HeaderSignature, Sign(c.key, st.nonce, st.ts, c.secret))
	return h, body, nil
}

// judge maps the reply to a request signed with st to nil (done) or a
// *providers.Error that carries what was signed.
//
//go:noinline
func (c *Client) judge(resp *providers.Response, st *stamp) error {
	if err := c.core.CheckStatus(resp); err != nil {
		return c.withSigned(err, st)
	}
	r, err := decodeReply(resp.Body)
	if err != nil {
		return c.core.BadResponse(resp, err)
	}
	if err := c.outcome(resp, r); err != nil {
		return c.withSigned(err, st)
	}
	return nil
}

// withSigned is providers.WithSigned with what was signed with st (the
// secret is not in it), for an error to show at debug level.
//
//go:noinline
func (c *Client) withSigned(err error, st *stamp) error {
	return providers.WithSigned(err, providers.Signed{Mode: SignRule, TimestampFormat: "millis", StringToSign: StringToSign(c.key, st.nonce, st.ts)})
}

// reply is the upstream's answer, decoded leniently: developId (a number in
// the vendor's table, a string in its example) and unknown fields are
// ignored; requestId, code and msg may be strings or numbers.
type reply struct {
	RequestID providers.Scalar `json:"requestId"`
	Code      providers.Scalar `json:"code"`
	Msg       providers.Scalar `json:"msg"`
	Data      json.RawMessage  `json:"data"`
}

// decodeReply decodes a reply body. It fails when the body is not a JSON
// object or has no code.
func decodeReply(b []byte) (reply, error) {
	var r reply
	if err := json.Unmarshal(b, &r); err != nil {
		return reply{}, fmt.Errorf("decode reply: %w", err)
	}
	if r.Code == "" {
		return reply{}, errors.New("decode reply: code is missing or empty")
	}
	return r, nil
}

// data returns the reply's data as a boolean, or nil when it is absent or not
// a JSON boolean.
func (r reply) data() *bool {
	var v bool
	switch string(bytes.TrimSpace(r.Data)) {
	case "true":
		v = true
	case "false":
		v = false
	default:
		return nil
	}
	return &v
}

// Classify returns the class of a reply per docs/upstreams.md §2, or 0 for
// success. code is the reply's code as text; data is its boolean data, nil
// when absent or not a boolean. Code 200 without a boolean data is not the
// expected shape: Transient (the caller reports it as bad_response).
func Classify(code string, data *bool) providers.Class {
	n, err := strconv.Atoi(code)
	switch {
	case err != nil:
		return providers.Permanent
	case n == 200 && data == nil:
		return providers.Transient
	case n == 200 && *data:
		return 0
	case n == 200:
		return providers.Permanent
	case n == 429 || (n >= 500 && n <= 599):
		return providers.Transient
	case n == 401 || n == 403:
		return providers.Auth
	}
	return providers.Permanent
}

// outcome turns a decoded 2xx reply into the Cancel result.
func (c *Client) outcome(resp *providers.Response, r reply) error {
	code, data := r.Code.Code(), r.data() // "0200" and 200.0 are 200
	class := Classify(code, data)
	switch {
	case class == 0:
		return nil
	case code == "200" && data == nil:
		return c.core.BadResponse(resp, errors.New("code 200 without a boolean data"))
	}
	msg := string(r.Msg)
	if code == "200" {
		msg = strings.TrimSuffix("upstream refused the cancel: "+msg, ": ")
	}
	if r.RequestID != "" {
		msg += " (requestId " + providers.Truncate(string(r.RequestID), 64) + ")"
	}
	return &providers.Error{
		Provider: Provider,
		Class:    class,
		Code:     providers.Truncate(code, 32),
		Message:  providers.Snippet([]byte(msg)),
	}
}

// URL returns the cancel endpoint's URL, for logs. It holds no credentials.
func (c *Client) URL() string { return c.url }
