package sandbox

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/providers/pandapon"
	"github.com/cancelworker/cancelworker/tasks"
)

// PandaPon body codes the sandbox answers itself.
const (
	pandaPonSuccess      = 200
	pandaPonInvalidParam = 400
	pandaPonInvalidAuth  = 401

	pandaPonWebSite  = "1688"
	pandaPonNonceLen = 32
)

// pandaPonBody is the PandaPon request body as received. Every field is raw,
// so that orderId is checked as the exact token sent.
type pandaPonBody struct {
	WebSite      json.RawMessage `json:"webSite"`
	OrderID      json.RawMessage `json:"orderId"`
	CancelReason json.RawMessage `json:"cancelReason"`
	Remark       json.RawMessage `json:"remark"`
}

// pandaPonProblem is a body problem: the field and what is wrong with it.
type pandaPonProblem struct{ field, problem string }

// decodePandaPon reads a PandaPon request body the way the vendor would. It
// returns the orderId's digits exactly as they appear in body, or "" when
// orderId is not a bare positive 64-bit JSON integer, and every problem found.
// Unknown fields are ignored.
func decodePandaPon(body []byte) (string, []pandaPonProblem) {
	var raw pandaPonBody
	if err := decodeObject(body, &raw); err != nil {
		return "", []pandaPonProblem{{"body", err.Error()}}
	}
	var (
		order    string
		problems []pandaPonProblem
	)
	if n, err := jsonInteger(raw.OrderID); err != nil {
		problems = append(problems, pandaPonProblem{"orderId", err.Error()})
	} else if n <= 0 {
		problems = append(problems, pandaPonProblem{"orderId", "must be a positive integer"})
	} else {
		order = string(raw.OrderID)
	}
	if s, err := jsonString(raw.WebSite); err != nil {
		problems = append(problems, pandaPonProblem{"webSite", err.Error()})
	} else if s != pandaPonWebSite {
		problems = append(problems, pandaPonProblem{"webSite", "must be " + pandaPonWebSite})
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"cancelReason", raw.CancelReason}, {"remark", raw.Remark}} {
		if len(f.raw) > 0 && string(f.raw) != "null" && f.raw[0] != '"' {
			problems = append(problems, pandaPonProblem{f.name, "must be a JSON string"})
		}
	}
	return order, problems
}

// checkPandaPon checks a PandaPon request against the account: the signed
// headers and the nonce (401), then the body (400).
func (s *Sandbox) checkPandaPon(r *http.Request, body []byte, now time.Time) verdict {
	order, problems := decodePandaPon(body)
	v := verdict{order: order}
	acct := s.cfg.PandaPon
	auth := func(field, problem string) verdict {
		v.reject = field + ": " + problem
		v.answer = pandaPonError(pandaPonInvalidAuth, "invalid "+field)
		return v
	}
	h := r.Header
	ak, nonce, ts, uid, sig := h.Get("access-key"), h.Get("nonce-str"), h.Get("timestamp"), h.Get("user-id"), h.Get("signature")
	switch {
	case ak == "":
		return auth("access-key", "is required")
	case ak != acct.AccessKey:
		return auth("access-key", "does not match the account")
	case uid == "":
		return auth("user-id", "is required")
	case uid != acct.UserID:
		return auth("user-id", "does not match the account")
	case !validNonce(nonce):
		return auth("nonce-str", "must be 32 characters from A-Z, a-z, 0-9")
	}
	t, err := parseMillis(ts)
	if err != nil {
		return auth("timestamp", err.Error())
	}
	if err := checkSkew(t, now, s.cfg.MaxSkew); err != nil {
		return auth("timestamp", err.Error())
	}
	want := pandapon.Sign(ak, nonce, ts, acct.AccessSecret)
	if subtle.ConstantTimeCompare([]byte(sig), []byte(want)) != 1 {
		return auth("signature", "does not match")
	}
	v.signatureOK = true
	if !s.useNonce(tasks.ProviderPandaPon, ak, nonce) {
		return auth("nonce-str", "already used")
	}
	if err := checkJSONContentType(r); err != nil {
		problems = append([]pandaPonProblem{{"Content-Type", "must be application/json"}}, problems...)
	}
	if len(problems) > 0 {
		parts := make([]string, len(problems))
		for i, p := range problems {
			parts[i] = p.field + ": " + p.problem
		}
		v.reject = strings.Join(parts, "; ")
		v.answer = pandaPonError(pandaPonInvalidParam, "invalid "+problems[0].field)
	}
	return v
}

func validNonce(s string) bool {
	if len(s) != pandaPonNonceLen {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// pandaPonError is the step answering a body error code with msg.
func pandaPonError(code int, msg string) Step {
	st := PandaPonCode(code, nil)
	st.msg = msg
	return st
}

// pandaPonAnswer is the PandaPon response body.
type pandaPonAnswer struct {
	RequestID string `json:"requestId"`
	Code      int    `json:"code"`
	DevelopID string `json:"developId"`
	Msg       string `json:"msg"`
	Data      *bool  `json:"data,omitempty"`
}

func writePandaPon(w http.ResponseWriter, code int, hasData, data bool, msg string) {
	a := pandaPonAnswer{RequestID: randomHex(16), Code: code, DevelopID: DevelopID, Msg: msg}
	if a.Msg == "" {
		a.Msg = pandaPonMsg(code)
	}
	if hasData {
		a.Data = &data
	}
	writeJSON(w, a)
}

// pandaPonMsg is the default msg for a body code.
func pandaPonMsg(code int) string {
	switch {
	case code == pandaPonSuccess:
		return "success"
	case code == pandaPonInvalidParam:
		return "bad request"
	case code == pandaPonInvalidAuth:
		return "unauthorized"
	case code == http.StatusForbidden:
		return "forbidden"
	case code == http.StatusTooManyRequests:
		return "too many requests"
	case code >= 500 && code <= 599:
		return "system error"
	}
	return "error"
}
