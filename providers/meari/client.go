// Package meari cancels Meari "SDKV4" orders: it signs the request
// (sign.go), sends it and classifies the reply per docs/upstreams.md §1 and §3.
package meari

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/providers"
)

const (
	// Provider is the provider name used in errors, logs and metrics.
	Provider = "meari"

	// CancelPath is the cancel endpoint, appended to Config.BaseURL.
	CancelPath = "/v3/third/sdk/order/cancel"

	// NonceLength is the number of random decimal digits in signatureNonce
	// (about 80 bits). The vendor calls it a "unique random number", so
	// digits only.
	NonceLength = 24
)

// TimestampFormat selects how the timestamp field is written. See
// docs/upstreams.md §1.
type TimestampFormat string

const (
	// TimestampMillis writes epoch milliseconds ("1667476374574"), as the
	// vendor's example and reference client do.
	TimestampMillis TimestampFormat = "millis"
	// TimestampRFC3339 writes UTC seconds as "2006-01-02T15:04:05Z", as the
	// vendor's parameter table says.
	TimestampRFC3339 TimestampFormat = "rfc3339"

	// TimestampFormatDefault is the format used when none is configured.
	TimestampFormatDefault = TimestampMillis

	// TimestampLayoutRFC3339 is the time layout of TimestampRFC3339.
	TimestampLayoutRFC3339 = "2006-01-02T15:04:05Z"
)

// ParseTimestampFormat returns the format named s, or an error listing the
// valid ones.
func ParseTimestampFormat(s string) (TimestampFormat, error) {
	switch f := TimestampFormat(s); f {
	case TimestampMillis, TimestampRFC3339:
		return f, nil
	}
	return "", fmt.Errorf("must be %q or %q, got %q", TimestampMillis, TimestampRFC3339, s)
}

// Format writes t in format f. An unknown format is treated as
// TimestampFormatDefault.
func (f TimestampFormat) Format(t time.Time) string {
	if f == TimestampRFC3339 {
		return t.UTC().Format(TimestampLayoutRFC3339)
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// Config configures a Client. New validates every field.
type Config struct {
	// BaseURL is the upstream's scheme and host, with an optional path
	// prefix, e.g. "https://api.example.com". It must not hold credentials,
	// a query or a fragment.
	BaseURL string
	// PartnerKey is sent as partnerKey.
	PartnerKey string
	// PartnerSecret is the HMAC key. It is never sent, logged or echoed.
	PartnerSecret string
	// SourceApp is our Meari customer number (sourceApp), positive.
	SourceApp int64
	// SignMode selects the string to sign. Empty means SignModeDefault.
	SignMode SignMode
	// TimestampFormat selects the timestamp form. Empty means
	// TimestampFormatDefault.
	TimestampFormat TimestampFormat
	// Transport sets the timeout, HTTP client, clock and nonce source.
	// Its NonceFunc defaults to NonceLength random decimal digits from
	// crypto/rand.
	providers.Transport
}

// Client cancels Meari orders. It is safe for concurrent use and reuses one
// http.Client for all its calls.
type Client struct {
	core      providers.Core
	url       string
	key       string
	secret    string
	sourceApp int64
	mode      SignMode
	tsFormat  TimestampFormat
	now       func() time.Time
	nonce     func() string
}

// Problems returns every invalid field of cfg, its Transport aside: the
// checks New makes, for a loader to run on its settings before any client
// is built. A key or secret is never echoed.
func (cfg Config) Problems() []providers.FieldProblem {
	var ps []providers.FieldProblem
	add := func(field string, err error) {
		if err != nil {
			ps = append(ps, providers.FieldProblem{Field: field, Err: err})
		}
	}
	_, err := providers.ParseBaseURL(cfg.BaseURL)
	add("BaseURL", err)
	add("PartnerKey", checkCredential(cfg.PartnerKey))
	add("PartnerSecret", checkCredential(cfg.PartnerSecret))
	if cfg.SourceApp <= 0 {
		add("SourceApp", fmt.Errorf("must be a positive integer, got %d", cfg.SourceApp))
	}
	if cfg.SignMode != "" {
		_, err := ParseSignMode(string(cfg.SignMode))
		add("SignMode", err)
	}
	if cfg.TimestampFormat != "" {
		_, err := ParseTimestampFormat(string(cfg.TimestampFormat))
		add("TimestampFormat", err)
	}
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
		return nil, fmt.Errorf("meari config: %w", err)
	}
	base, _ := providers.ParseBaseURL(cfg.BaseURL) // checked
	mode := cmp.Or(cfg.SignMode, SignModeDefault)
	tsFormat := cmp.Or(cfg.TimestampFormat, TimestampFormatDefault)
	c := &Client{
		url:       base + CancelPath,
		key:       cfg.PartnerKey,
		secret:    cfg.PartnerSecret,
		sourceApp: cfg.SourceApp,
		mode:      mode,
		tsFormat:  tsFormat,
	}
	c.core, c.now, c.nonce = cfg.Transport.Build(Provider, base, func() string {
		return providers.RandomString(NonceLength, providers.Digits)
	})
	return c, nil
}

// checkCredential checks a key or secret without ever echoing its value.
func checkCredential(v string) error {
	switch {
	case v == "":
		return errors.New("is required")
	case strings.TrimSpace(v) != v:
		return errors.New("must not start or end with white space")
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return errors.New("must not contain control characters")
	}
	return nil
}

// Order is the order to cancel.
type Order struct {
	// SourceApp is the customer number the order belongs to. Zero means the
	// configured one; any other value must equal it.
	SourceApp int64
	// UserAccount is the end user's account, e.g. "test@123.com".
	UserAccount string
	// OrderType is 1 (cloud), 2 (ai) or 3 (flow4g).
	OrderType int
	// OrderNum is the order number, e.g. "01582572KS0209053".
	OrderNum string
}

// Cancel asks the upstream to cancel o. Each call is signed afresh, with a
// new nonce and the current time, so a retry is never a replay. It returns
// nil when the upstream answers 1001 and a *providers.Error otherwise: see
// Classify for result codes, providers.Core for HTTP and network failures.
// An invalid order is Permanent with code "invalid_request", and the upstream
// is not called.
func (c *Client) Cancel(ctx context.Context, o Order) error {
	var req Request
	body, err := c.encode(o, &req)
	if err != nil {
		return err
	}
	resp, err := c.core.PostJSON(ctx, c.url, nil, body)
	if err != nil {
		return err
	}
	return c.judge(resp, &req)
}

// encode fills req for o, signed, and returns its JSON body. Out of line:
// see judge.
//
//go:noinline
func (c *Client) encode(o Order, req *Request) ([]byte, error) {
	*req = Request{
		SourceApp:        o.SourceApp,
		UserAccount:      o.UserAccount,
		PartnerKey:       c.key,
		OrderType:        o.OrderType,
		OrderNum:         o.OrderNum,
		SignatureMethod:  SignatureMethod,
		SignatureVersion: SignatureVersion,
		SignatureNonce:   c.nonce(),
		Timestamp:        c.tsFormat.Format(c.now()),
	}
	if req.SourceApp == 0 {
		req.SourceApp = c.sourceApp
	}
	if err := c.validate(*req); err != nil {
		return nil, c.core.Invalid(err)
	}
	req.Signature = Sign(*req, c.secret, c.mode)
	body, err := providers.MarshalJSON(*req)
	if err != nil {
		return nil, c.core.Invalid(fmt.Errorf("encode request: %w", err))
	}
	return body, nil
}

// judge maps Meari's reply to a cancellation signed as req to nil (done)
// or a *providers.Error that carries what was signed. Out of line, so that
// Cancel's stack frame, under the whole round trip, stays small.
//
//go:noinline
func (c *Client) judge(resp *providers.Response, req *Request) error {
	if err := c.core.CheckStatus(resp); err != nil {
		return c.withSigned(err, req)
	}
	code, err := decodeReply(resp.Body)
	if err != nil {
		return c.core.BadResponse(resp, err)
	}
	class, meaning := lookup(code)
	if class == 0 {
		return nil
	}
	return c.withSigned(&providers.Error{
		Provider: Provider,
		Class:    class,
		Code:     providers.Truncate(code, 32),
		Message:  meaning,
	}, req)
}

// withSigned is providers.WithSigned with what was signed for req (the
// secret is not in it), for an error to show at debug level.
//
//go:noinline
func (c *Client) withSigned(err error, req *Request) error {
	return providers.WithSigned(err, providers.Signed{Mode: string(c.mode), TimestampFormat: string(c.tsFormat), StringToSign: StringToSign(*req, c.mode)})
}

// validate checks the ten body fields (docs/upstreams.md §1), reporting every
// problem at once. The signature is not set yet, so it is not checked.
func (c *Client) validate(r Request) error {
	var errs []error
	if r.SourceApp <= 0 {
		errs = append(errs, fmt.Errorf("sourceApp: must be a positive integer, got %d", r.SourceApp))
	} else if r.SourceApp != c.sourceApp {
		errs = append(errs, fmt.Errorf("sourceApp: order is for customer %d, this client is configured for %d", r.SourceApp, c.sourceApp))
	}
	if r.UserAccount == "" {
		errs = append(errs, errors.New("userAccount: is required"))
	}
	if r.OrderType < 1 || r.OrderType > 3 {
		errs = append(errs, fmt.Errorf("orderType: must be 1 (cloud), 2 (ai) or 3 (flow4g), got %d", r.OrderType))
	}
	if r.OrderNum == "" {
		errs = append(errs, errors.New("orderNum: is required"))
	}
	if r.SignatureNonce == "" {
		errs = append(errs, errors.New("signatureNonce: NonceFunc returned an empty nonce"))
	}
	if r.Timestamp == "" {
		errs = append(errs, errors.New("timestamp: is empty"))
	}
	return errors.Join(errs...)
}

// Classify returns the class of a resultCode per docs/upstreams.md §1, or 0 for
// success (1001). Unknown codes are Transient, bounded by the retry budget.
func Classify(code string) providers.Class {
	class, _ := lookup(code)
	return class
}

// lookup is the one table of Meari result codes: class (0 for success) and
// meaning.
func lookup(code string) (providers.Class, string) {
	switch code {
	case "1001":
		return 0, "request successful"
	case "1005":
		return providers.Transient, "system exception"
	case "4001":
		return providers.Permanent, "server not found, cancel failed"
	case "4002":
		return providers.Permanent, "service used and over 7 days, cancel failed"
	case "1003":
		return providers.Permanent, "parameter invalid"
	case "1023":
		return providers.Auth, "login, user token or signature invalid"
	}
	return providers.Transient, unknownMeaning
}

// unknownMeaning is lookup's meaning of a code not in the table.
const unknownMeaning = "unknown result code"

// Documented reports whether code is one of the result codes of
// docs/upstreams.md §1 (success included), as the metrics label them.
func Documented(code string) bool {
	_, meaning := lookup(code)
	return meaning != unknownMeaning
}

// reply is the upstream's answer. Unknown fields are ignored.
type reply struct {
	ResultCode providers.Scalar `json:"resultCode"`
}

// decodeReply returns the resultCode of a reply body, given as a JSON
// string or number, or an error when the body is not that shape.
func decodeReply(b []byte) (string, error) {
	var r reply
	if err := json.Unmarshal(b, &r); err != nil {
		return "", fmt.Errorf("decode reply: %w", err)
	}
	if r.ResultCode == "" {
		return "", errors.New("decode reply: resultCode is missing or empty")
	}
	return r.ResultCode.Code(), nil // "01001" and 1001.0 are 1001
}

// URL returns the cancel endpoint's URL, for logs. It holds no credentials.
func (c *Client) URL() string { return c.url }
