package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/cancelworker/cancelworker/tasks"
)

type stepKind int

const (
	kindOK stepKind = iota + 1
	kindMeariCode
	kindPandaPonCode
	kindHTTPStatus
	kindSlow
	kindReset
	kindBadBody
)

// Step is one scripted outcome for an order. Build it with OK, MeariCode,
// PandaPonCode, HTTPStatus, RetryAfter, Slow, Reset or BadBody; the zero Step
// is invalid.
type Step struct {
	kind          stepKind
	meariCode     string // kindMeariCode
	pandaPonCode  int    // kindPandaPonCode
	hasData, data bool   // kindPandaPonCode
	msg           string // kindPandaPonCode: "" means the code's default
	status        int    // kindHTTPStatus
	hasRetryAfter bool   // kindHTTPStatus
	retryAfter    int    // kindHTTPStatus: whole seconds
	delay         time.Duration
	then          *Step // kindSlow
	body          string
}

// OK answers success: Meari {"resultCode":"1001"}, PandaPon code 200 with
// data true.
func OK() Step { return Step{kind: kindOK} }

// MeariCode answers HTTP 200 with {"resultCode":code}, e.g. "1005", "4001",
// "4002", "1003", "1023" or an unknown "9999". "1001" is a success.
func MeariCode(code string) Step { return Step{kind: kindMeariCode, meariCode: code} }

// PandaPonCode answers HTTP 200 with the given body code and data, which is
// left out when nil: PandaPonCode(200, &no) is a refused cancel,
// PandaPonCode(429, nil) a rate limit, PandaPonCode(401, nil) an auth error.
// Code 200 with data true is a success.
func PandaPonCode(code int, data *bool) Step {
	st := Step{kind: kindPandaPonCode, pandaPonCode: code}
	if data != nil {
		st.hasData, st.data = true, *data
	}
	return st
}

// HTTPStatus answers the HTTP status with a short text body. It panics when
// status is not in 200..599.
func HTTPStatus(status int) Step {
	if status < 200 || status > 599 {
		panic(fmt.Sprintf("sandbox: HTTPStatus(%d): status must be in 200..599", status))
	}
	return Step{kind: kindHTTPStatus, status: status}
}

// RetryAfter answers the HTTP status (typically 429 or 503) with a
// Retry-After header of d in whole seconds, rounded up. It panics when status
// is not in 200..599 or d is negative.
func RetryAfter(status int, d time.Duration) Step {
	if d < 0 {
		panic(fmt.Sprintf("sandbox: RetryAfter(%d, %s): delay must not be negative", status, d))
	}
	st := HTTPStatus(status)
	st.hasRetryAfter = true
	st.retryAfter = int((d + time.Second - 1) / time.Second)
	return st
}

// Slow waits d, or until the client goes away, then serves then. A success
// is served, and counts for Cancelled, even when the client has gone.
func Slow(d time.Duration, then Step) Step {
	return Step{kind: kindSlow, delay: d, then: &then}
}

// Reset closes the connection without answering, once the request has been
// read: the client sees a connection reset or an unexpected EOF.
func Reset() Step { return Step{kind: kindReset} }

// BadBody answers HTTP 200, Content-Type application/json, with body as is:
// for non-JSON or wrong-shape answers.
func BadBody(body string) Step { return Step{kind: kindBadBody, body: body} }

// Times returns n copies of st, for Script:
//
//	s.Script("meari", order, append(Times(2, MeariCode("1005")), OK())...)
func Times(n int, st Step) []Step {
	out := make([]Step, max(n, 0))
	for i := range out {
		out[i] = st
	}
	return out
}

// String describes the answer, as in Call.Outcome.
func (st Step) String() string {
	switch st.kind {
	case kindOK:
		return "ok"
	case kindMeariCode:
		return "resultCode " + st.meariCode
	case kindPandaPonCode:
		s := "code " + strconv.Itoa(st.pandaPonCode)
		if st.hasData {
			s += " data " + strconv.FormatBool(st.data)
		}
		return s
	case kindHTTPStatus:
		s := "http " + strconv.Itoa(st.status)
		if st.hasRetryAfter {
			s += " retry-after " + (time.Duration(st.retryAfter) * time.Second).String()
		}
		return s
	case kindSlow:
		return "slow " + st.delay.String() + ", then " + st.then.String()
	case kindReset:
		return "reset"
	case kindBadBody:
		return "bad body"
	}
	return "invalid step"
}

// succeeds reports whether st, answered at once, is a success.
func (st Step) succeeds() bool {
	switch st.kind {
	case kindOK:
		return true
	case kindMeariCode:
		return st.meariCode == meariSuccess
	case kindPandaPonCode:
		return st.pandaPonCode == pandaPonSuccess && st.hasData && st.data
	}
	return false
}

// validFor reports whether st can be served for provider.
func (st Step) validFor(provider string) error {
	if !knownProvider(provider) {
		return fmt.Errorf("unknown provider %q", provider)
	}
	switch st.kind {
	case kindMeariCode:
		if provider != tasks.ProviderMeari {
			return errors.New("MeariCode is for provider meari")
		}
	case kindPandaPonCode:
		if provider != tasks.ProviderPandaPon {
			return errors.New("PandaPonCode is for provider pandapon")
		}
	case kindSlow:
		if st.then == nil {
			return errors.New("Slow without a step")
		}
		return st.then.validFor(provider)
	case kindOK, kindHTTPStatus, kindReset, kindBadBody:
	default:
		return errors.New("zero Step: build steps with OK, MeariCode, ...")
	}
	return nil
}

// serve answers st for the order key.
func (s *Sandbox) serve(w http.ResponseWriter, r *http.Request, key orderKey, st Step) {
	switch st.kind {
	case kindSlow:
		t := time.NewTimer(st.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
		if st.then.succeeds() {
			s.markCancelled(key)
		}
		s.serve(w, r, key, *st.then)
	case kindOK:
		if key.provider == tasks.ProviderMeari {
			writeMeari(w, meariSuccess)
		} else {
			writePandaPon(w, pandaPonSuccess, true, true, "")
		}
	case kindMeariCode:
		writeMeari(w, st.meariCode)
	case kindPandaPonCode:
		writePandaPon(w, st.pandaPonCode, st.hasData, st.data, st.msg)
	case kindHTTPStatus:
		if st.hasRetryAfter {
			w.Header().Set("Retry-After", strconv.Itoa(st.retryAfter))
		}
		writeText(w, st.status)
	case kindReset:
		reset(w)
	case kindBadBody:
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, st.body)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("sandbox: encode answer: %v", err)) // only fixed shapes are encoded
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_, _ = w.Write(b)
}

func writeText(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, strconv.Itoa(status)+" "+http.StatusText(status)+"\n")
}

// reset closes the client's connection without an answer. On a TCP
// connection, a zero linger makes the close send RST. A server that cannot
// hijack (HTTP/2) aborts the stream instead.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// randomHex returns n random bytes in lower-case hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
