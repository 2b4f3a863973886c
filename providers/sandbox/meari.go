package sandbox

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/cancelworker/cancelworker/tasks"
)

// Meari result codes the sandbox answers itself.
const (
	meariSuccess      = "1001"
	meariInvalidParam = "1003"
	meariInvalidAuth  = "1023"
)

// meariBody is the Meari request body as received. Every field is raw, so
// that a missing field is reported by name and an integer sent as a string
// or a float is told apart from a JSON integer.
type meariBody struct {
	SourceApp        json.RawMessage `json:"sourceApp"`
	UserAccount      json.RawMessage `json:"userAccount"`
	PartnerKey       json.RawMessage `json:"partnerKey"`
	OrderType        json.RawMessage `json:"orderType"`
	OrderNum         json.RawMessage `json:"orderNum"`
	SignatureMethod  json.RawMessage `json:"signatureMethod"`
	SignatureVersion json.RawMessage `json:"signatureVersion"`
	SignatureNonce   json.RawMessage `json:"signatureNonce"`
	Timestamp        json.RawMessage `json:"timestamp"`
	Signature        json.RawMessage `json:"signature"`
}

// decodeMeari reads a Meari request body the way the vendor would. It
// returns the request, with OrderNum set whenever it was readable even if
// other fields are not, and every problem found, each naming its field.
// Unknown fields are ignored.
func decodeMeari(body []byte) (meari.Request, []string) {
	var (
		raw      meariBody
		req      meari.Request
		problems []string
	)
	if err := decodeObject(body, &raw); err != nil {
		return req, []string{"body: " + err.Error()}
	}
	str := func(field string, v json.RawMessage, dst *string) {
		s, err := jsonString(v)
		if err != nil {
			problems = append(problems, field+": "+err.Error())
			return
		}
		*dst = s
	}
	str("orderNum", raw.OrderNum, &req.OrderNum)
	if n, err := jsonInteger(raw.SourceApp); err != nil {
		problems = append(problems, "sourceApp: "+err.Error())
	} else {
		req.SourceApp = n
	}
	str("userAccount", raw.UserAccount, &req.UserAccount)
	str("partnerKey", raw.PartnerKey, &req.PartnerKey)
	if n, err := jsonInteger(raw.OrderType); err != nil {
		problems = append(problems, "orderType: "+err.Error())
	} else if n < 1 || n > 3 {
		problems = append(problems, fmt.Sprintf("orderType: must be 1, 2 or 3, got %d", n))
	} else {
		req.OrderType = int(n)
	}
	str("signatureMethod", raw.SignatureMethod, &req.SignatureMethod)
	if req.SignatureMethod != "" && req.SignatureMethod != meari.SignatureMethod {
		problems = append(problems, "signatureMethod: must be "+meari.SignatureMethod)
	}
	str("signatureVersion", raw.SignatureVersion, &req.SignatureVersion)
	if req.SignatureVersion != "" && req.SignatureVersion != meari.SignatureVersion {
		problems = append(problems, "signatureVersion: must be "+meari.SignatureVersion)
	}
	str("signatureNonce", raw.SignatureNonce, &req.SignatureNonce)
	str("timestamp", raw.Timestamp, &req.Timestamp)
	str("signature", raw.Signature, &req.Signature)
	return req, problems
}

// verdict is the result of checking a request before its step is consumed.
type verdict struct {
	order       string
	signatureOK bool
	reject      string // "" when accepted
	answer      Step   // the error answered when rejected
}

// checkMeari checks a Meari request against the account: parameters (1003),
// then partner, timestamp, signature and nonce (1023).
func (s *Sandbox) checkMeari(r *http.Request, body []byte, now time.Time) verdict {
	req, problems := decodeMeari(body)
	v := verdict{order: req.OrderNum}
	if err := checkJSONContentType(r); err != nil {
		problems = append([]string{err.Error()}, problems...)
	}
	if len(problems) > 0 {
		v.reject, v.answer = strings.Join(problems, "; "), MeariCode(meariInvalidParam)
		return v
	}
	acct := s.cfg.Meari
	auth := func(reason string) verdict {
		v.reject, v.answer = reason, MeariCode(meariInvalidAuth)
		return v
	}
	if req.PartnerKey != acct.PartnerKey {
		return auth("partnerKey: does not match the account")
	}
	if req.SourceApp != acct.SourceApp {
		return auth("sourceApp: does not match the account")
	}
	ts, err := parseMeariTimestamp(req.Timestamp, acct.TimestampFormat)
	if err != nil {
		return auth("timestamp: " + err.Error())
	}
	if err := checkSkew(ts, now, s.cfg.MaxSkew); err != nil {
		return auth("timestamp: " + err.Error())
	}
	want := meari.Sign(req, acct.PartnerSecret, acct.SignMode)
	if !hmac.Equal([]byte(req.Signature), []byte(want)) {
		return auth("signature: does not match (" + string(acct.SignMode) + " mode)")
	}
	v.signatureOK = true
	if !s.useNonce(tasks.ProviderMeari, acct.PartnerKey, req.SignatureNonce) {
		return auth("signatureNonce: already used")
	}
	return v
}

// meariAnswer is the Meari response body.
type meariAnswer struct {
	ResultCode string `json:"resultCode"`
}

func writeMeari(w http.ResponseWriter, code string) {
	writeJSON(w, meariAnswer{ResultCode: code})
}

// parseMeariTimestamp parses ts in format (meari.TimestampMillis or
// meari.TimestampRFC3339).
func parseMeariTimestamp(ts string, format meari.TimestampFormat) (time.Time, error) {
	if format == meari.TimestampRFC3339 {
		t, err := time.Parse(meari.TimestampLayoutRFC3339, ts)
		if err != nil {
			return time.Time{}, errors.New("must be UTC as YYYY-MM-DDThh:mm:ssZ")
		}
		return t, nil
	}
	return parseMillis(ts)
}

// parseMillis parses epoch milliseconds: decimal digits only.
func parseMillis(ts string) (time.Time, error) {
	if !isDigits(ts) || len(ts) > 18 {
		return time.Time{}, errors.New("must be epoch milliseconds")
	}
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, errors.New("must be epoch milliseconds")
	}
	return time.UnixMilli(ms), nil
}

// checkSkew reports an error when ts is more than maxSkew away from now.
func checkSkew(ts, now time.Time, maxSkew time.Duration) error {
	d := now.Sub(ts)
	if d < -maxSkew || d > maxSkew {
		return fmt.Errorf("%s away from the sandbox clock, more than %s", d.Abs().Round(time.Millisecond), maxSkew)
	}
	return nil
}

// decodeObject decodes one JSON object from body into v, with UseNumber so
// that no number ever passes through a float64, and refuses trailing data.
func decodeObject(body []byte, v any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return errors.New("must be one valid JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return errors.New("must be one valid JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// jsonString returns the string raw holds; null, absent and "" are missing.
func jsonString(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", errors.New("is required")
	}
	if raw[0] != '"' {
		return "", errors.New("must be a JSON string")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errors.New("must be a JSON string")
	}
	if s == "" {
		return "", errors.New("must not be empty")
	}
	return s, nil
}

// jsonInteger returns the non-negative integer raw holds as a bare JSON
// integer: decimal digits only, no string, sign, fraction or exponent.
func jsonInteger(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, errors.New("is required")
	}
	if !isDigits(string(raw)) {
		return 0, errors.New("must be a JSON integer")
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, errors.New("must fit in a signed 64-bit integer")
	}
	return n, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkJSONContentType requires Content-Type application/json (any
// parameters).
func checkJSONContentType(r *http.Request) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return errors.New("Content-Type: must be application/json")
	}
	return nil
}

// readBody reads the whole request body, at most maxBody bytes. On failure
// it returns the HTTP status to answer.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return b, http.StatusRequestEntityTooLarge, fmt.Errorf("body: larger than %d bytes", maxBody)
		}
		return b, http.StatusBadRequest, fmt.Errorf("body: %w", err)
	}
	return b, 0, nil
}

// rejectHTTP records c as rejected for err and answers the HTTP status.
func (s *Sandbox) rejectHTTP(w http.ResponseWriter, r *http.Request, c Call, status int, err error) {
	st := HTTPStatus(status)
	c.Reject, c.Outcome = err.Error(), st.String()
	s.reject(c)
	s.serve(w, r, orderKey{c.Provider, c.Order}, st)
}
