// Package providers holds what the provider clients share: the typed outcome
// of an upstream call (Error and Class) and the HTTP core that sends a
// request and reads its reply.
package providers

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/text"
)

// Class says what the worker does with a failed call.
type Class int

const (
	// Transient failures are retried with exponential backoff.
	Transient Class = iota + 1
	// Permanent failures go to the dead-letter queue at once.
	Permanent
	// Auth failures mean our own credentials or signature are wrong: they are
	// retried with backoff, logged at error level, and never dead-lettered for
	// that reason alone.
	Auth
)

// String returns the lowercase class name used in logs, metrics and the DLQ.
func (c Class) String() string {
	switch c {
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	case Auth:
		return "auth"
	default:
		return fmt.Sprintf("class(%d)", int(c))
	}
}

// MessageLimit is the most bytes of upstream text kept in Error.Message.
const MessageLimit = 256

// Error is the outcome of every failed upstream call. Success is a nil error.
type Error struct {
	Provider string // "meari" or "pandapon"
	Class    Class
	// Code is the upstream result code (Meari resultCode, PandaPon code) or,
	// when the failure happened at the HTTP level, "http_<status>"; for
	// network failures it is a short word such as "timeout" or "network".
	Code string
	// Message is upstream text or a short description, truncated to
	// MessageLimit bytes. It never holds secrets or signatures.
	Message string
	// RetryAfter is the delay the upstream asked for (HTTP Retry-After); zero
	// if absent.
	RetryAfter time.Duration
	// Unknown reports that the request may have reached the upstream and been
	// acted on although no answer was read (a timeout or reset after sending,
	// a truncated or unexpected 2xx body). See docs/upstreams.md §4.
	Unknown bool
	// Err is the underlying cause, if any.
	Err error
	// Signed says what was signed, on an Auth failure the provider client
	// could sign for; nil otherwise. Error does not print it: the worker
	// logs it at debug level, for comparing with the vendor's own tool.
	Signed *Signed
}

// Signed is what a request's signature was computed over. It holds no
// secret and no signature.
type Signed struct {
	// Mode names the string-to-sign rule (Meari's sign mode, or
	// PandaPon's one rule).
	Mode string
	// TimestampFormat names the form of the signed timestamp.
	TimestampFormat string
	// StringToSign is the exact message that was signed.
	StringToSign string
}

// WithSigned returns err with s attached when err is an Auth *Error, and
// err unchanged otherwise.
func WithSigned(err error, s Signed) error {
	var pe *Error
	if errors.As(err, &pe) && pe.Class == Auth {
		pe.Signed = &s
	}
	return err
}

// Error returns "provider: class code: message: cause".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider)
	b.WriteString(": ")
	b.WriteString(e.Class.String())
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ClassOf returns the class of the first *Error in err's chain, or Transient
// when err is not nil and holds none (an unexpected failure is retried, within
// the retry budget). It returns 0 for a nil err.
func ClassOf(err error) Class {
	if err == nil {
		return 0
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Class
	}
	return Transient
}

// Truncate shortens s to at most n bytes without splitting a UTF-8 sequence,
// marking the cut with "…" (text.Truncate).
func Truncate(s string, n int) string { return text.Truncate(s, n) }
