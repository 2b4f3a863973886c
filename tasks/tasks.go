// Package tasks is what producers import to ask for an order cancellation:
// the task types, their payloads, validating constructors and an Enqueuer
// that makes enqueueing idempotent per order.
//
// Build a task with NewMeariCancelTask or NewPandaPonCancelTask and enqueue it
// with (*Enqueuer).Enqueue. The task ID is derived from the order, so the same
// order enqueued twice gives one task ("already queued"), for as long as the
// finished task is retained (RetentionDefault).
package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/cancelworker/cancelworker/internal/text"
	"github.com/hibiken/asynq"
)

// Task types are wire identifiers: never rename them.
const (
	TypeMeariCancel    = "order:cancel:meari"
	TypePandaPonCancel = "order:cancel:pandapon"
)

// Provider names, used in task IDs, queue names, logs and metrics.
const (
	ProviderMeari    = "meari"
	ProviderPandaPon = "pandapon"
)

// Queues: one asynq queue per provider, so each can be paused, weighted and
// watched on its own.
const (
	QueueMeari    = "cancel:meari"
	QueuePandaPon = "cancel:pandapon"
)

// Providers returns the provider names in a fixed order, a new slice each
// call.
func Providers() []string { return []string{ProviderMeari, ProviderPandaPon} }

// QueueFor returns the queue of provider p, or "" for an unknown provider.
func QueueFor(p string) string {
	switch p {
	case ProviderMeari:
		return QueueMeari
	case ProviderPandaPon:
		return QueuePandaPon
	}
	return ""
}

// TypeFor returns the task type of provider p, or "" for an unknown provider.
func TypeFor(p string) string {
	switch p {
	case ProviderMeari:
		return TypeMeariCancel
	case ProviderPandaPon:
		return TypePandaPonCancel
	}
	return ""
}

// ProviderOf returns the provider of task type t, or "" for an unknown type.
func ProviderOf(t string) string {
	switch t {
	case TypeMeariCancel:
		return ProviderMeari
	case TypePandaPonCancel:
		return ProviderPandaPon
	}
	return ""
}

const (
	// RetentionDefault is how long a finished task is kept in Redis, so that
	// enqueueing the same order again within it reports "already queued" and
	// its status can be looked up.
	RetentionDefault = 7 * 24 * time.Hour

	// MaxRetry is the retry count given to asynq. The worker's retry policy
	// (package retry) decides when a task's budget is spent and dead-letters
	// it itself, well before this; the high ceiling only keeps asynq from
	// archiving a task on its own, for instance after auth failures, which do
	// not count against the budget.
	MaxRetry = 1000

	// TimeoutDefault bounds one processing of a task by the worker.
	TimeoutDefault = 2 * time.Minute

	// Field limits.
	maxUserAccount = 128
	maxOrderNum    = 64
	maxReason      = 512
)

// FieldError names a payload field and what is wrong with it.
type FieldError struct {
	Field   string // the payload's JSON name, e.g. "order_num"
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// ErrInvalid is matched (errors.Is) by every validation error.
var ErrInvalid = errors.New("invalid cancellation")

// ValidationError holds every problem found in one payload.
type ValidationError struct {
	Fields []*FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return "invalid cancellation: " + strings.Join(parts, "; ")
}

// Is reports whether target is ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

type problems struct {
	list []*FieldError
	// damagedOK lets free text hold U+FFFD: a task enqueued before the
	// constructors refused it is still run (see ParsePandaPonCancel).
	damagedOK bool
}

func (p *problems) add(field, format string, args ...any) {
	p.list = append(p.list, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

func (p problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &ValidationError{Fields: p.list}
}

func checkText(p *problems, field, v string, required bool, limit int) {
	switch {
	case v == "" && required:
		p.add(field, "is required")
	case !utf8.ValidString(v):
		i := firstInvalid(v)
		p.add(field, "must be valid UTF-8: byte 0x%02X at offset %d is not", v[i], i)
	case strings.ContainsRune(v, utf8.RuneError) && !p.damagedOK:
		// Valid, but what a decoder writes for bytes it could not read (or a
		// JSON lone surrogate): the order named is not the one meant.
		p.add(field, "must not contain U+FFFD, the replacement character: the text was damaged (invalid UTF-8 or a lone surrogate) before it got here")
	case len(v) > limit:
		p.add(field, "must be at most %d bytes, got %d", limit, len(v))
	case strings.TrimSpace(v) != v:
		p.add(field, "must not start or end with white space")
	default:
		if i := strings.IndexFunc(v, unicode.IsControl); i >= 0 {
			r, _ := utf8.DecodeRuneInString(v[i:])
			p.add(field, "must not contain control characters, got %U", r)
		} else if i := strings.IndexFunc(v, text.IsLayoutControl); i >= 0 {
			r, _ := utf8.DecodeRuneInString(v[i:])
			p.add(field, "must not contain bidirectional or line-separator characters, got %U", r)
		}
	}
}

// firstInvalid returns the offset of the first byte of v that does not
// start a valid UTF-8 sequence, or len(v).
func firstInvalid(v string) int {
	for i := 0; i < len(v); {
		r, n := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(v)
}

// MeariCancel asks to cancel a Meari SDKV4 order.
type MeariCancel struct {
	// SourceApp is the Meari customer number; the worker refuses a task
	// whose SourceApp is not the one it is configured for.
	SourceApp int64 `json:"source_app"`
	// UserAccount is the end user's account, e.g. "test@123.com".
	UserAccount string `json:"user_account"`
	// OrderType is 1 (cloud), 2 (ai) or 3 (flow4g).
	OrderType int `json:"order_type"`
	// OrderNum is the order number, e.g. "01582572KS0209053".
	OrderNum string `json:"order_num"`
	// RequestedAt is when the cancellation was first asked for; the retry
	// policy's maximum age counts from it. Zero means now.
	RequestedAt time.Time `json:"requested_at"`
}

// Validate reports every invalid field at once.
func (m MeariCancel) Validate() error {
	var p problems
	if m.SourceApp <= 0 {
		p.add("source_app", "must be a positive integer, got %d", m.SourceApp)
	}
	checkText(&p, "user_account", m.UserAccount, true, maxUserAccount)
	if m.OrderType < 1 || m.OrderType > 3 {
		p.add("order_type", "must be 1 (cloud), 2 (ai) or 3 (flow4g), got %d", m.OrderType)
	}
	checkText(&p, "order_num", m.OrderNum, true, maxOrderNum)
	if strings.Contains(m.OrderNum, ":") {
		p.add("order_num", "must not contain ':'")
	}
	return p.err()
}

// TaskID returns the task ID derived from the order:
// "meari:<source_app>:<order_type>:<order_num>".
func (m MeariCancel) TaskID() string {
	// By hand rather than with fmt: every enqueue and every task taken
	// builds it.
	b := make([]byte, 0, len(ProviderMeari)+len(m.OrderNum)+24)
	b = append(b, ProviderMeari...)
	b = append(b, ':')
	b = strconv.AppendInt(b, m.SourceApp, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(m.OrderType), 10)
	b = append(b, ':')
	b = append(b, m.OrderNum...)
	return string(b)
}

// ParseTaskID returns the provider and the order (as OrderRef gives it) of
// a task ID that MeariCancel.TaskID or PandaPonCancel.TaskID built, and
// false for any other string.
func ParseTaskID(id string) (provider, order string, ok bool) {
	provider, rest, _ := strings.Cut(id, ":")
	switch provider {
	case ProviderMeari:
		_, order, ok = strings.Cut(rest, ":") // after the source_app
		return provider, order, ok && order != ""
	case ProviderPandaPon:
		return provider, rest, rest != ""
	}
	return "", "", false
}

// OrderRef returns the order as operators name it: "<order_type>:<order_num>".
func (m MeariCancel) OrderRef() string { return fmt.Sprintf("%d:%s", m.OrderType, m.OrderNum) }

// OrderID is a PandaPon (1688) order ID: a 64-bit integer such as
// 2542285634920880794, larger than 2^53, so it never passes through a
// float64. In JSON it is written as a bare integer; it is read from a bare
// integer or from a string of decimal digits.
type OrderID int64

// ParseOrderID parses decimal digits into an OrderID.
func ParseOrderID(s string) (OrderID, error) {
	if s == "" {
		return 0, errors.New("is required")
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("must be a positive integer of decimal digits, got %q", text.Truncate(s, 40))
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("must fit in a signed 64-bit integer, got %q", text.Truncate(s, 40))
	}
	if n <= 0 {
		return 0, fmt.Errorf("must be a positive integer, got %d", n)
	}
	return OrderID(n), nil
}

// String returns the decimal digits.
func (id OrderID) String() string { return strconv.FormatInt(int64(id), 10) }

// MarshalJSON writes a bare JSON integer.
func (id OrderID) MarshalJSON() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalJSON reads a bare integer or a string of digits, exactly.
func (id *OrderID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("order_id: %w", err)
		}
	}
	v, err := ParseOrderID(s)
	if err != nil {
		return fmt.Errorf("order_id: %w", err)
	}
	*id = v
	return nil
}

// PandaPonCancel asks to cancel a PandaPon 1688 order before payment.
type PandaPonCancel struct {
	// OrderID is the 1688 order ID.
	OrderID OrderID `json:"order_id"`
	// CancelReason is optional free text sent as cancelReason.
	CancelReason string `json:"cancel_reason,omitempty"`
	// Remark is optional free text sent as remark.
	Remark string `json:"remark,omitempty"`
	// RequestedAt is when the cancellation was first asked for. Zero means now.
	RequestedAt time.Time `json:"requested_at"`
}

// Validate reports every invalid field at once.
func (p PandaPonCancel) Validate() error { return p.validate(false) }

// validate is Validate; damagedOK accepts U+FFFD in the free text
// (cancel_reason, remark), for the tasks enqueued before the constructors
// refused it: a damaged remark does not name another order.
func (p PandaPonCancel) validate(damagedOK bool) error {
	ps := problems{damagedOK: damagedOK}
	if p.OrderID <= 0 {
		ps.add("order_id", "must be a positive 64-bit integer, got %d", int64(p.OrderID))
	}
	checkText(&ps, "cancel_reason", p.CancelReason, false, maxReason)
	checkText(&ps, "remark", p.Remark, false, maxReason)
	return ps.err()
}

// TaskID returns "pandapon:<order_id>".
func (p PandaPonCancel) TaskID() string { return ProviderPandaPon + ":" + p.OrderID.String() }

// OrderRef returns the order ID's digits.
func (p PandaPonCancel) OrderRef() string { return p.OrderID.String() }

// Task headers. A task carries in its payload and these headers all it
// was built with, so that it can be rebuilt, and enqueued, from them
// alone; workers that do not know a header ignore it.
const (
	// HeaderRetention holds the retention in whole seconds, when it is not
	// RetentionDefault (WithRetention).
	HeaderRetention = "cancelworker-retention"
	// HeaderPriorOutcomeUnknown is "1" on a task that follows an attempt
	// whose outcome is unknown, for instance one requeued from the
	// dead-letter queue (WithPriorOutcomeUnknown).
	HeaderPriorOutcomeUnknown = "cancelworker-prior-outcome-unknown"
	// HeaderRequeuedFrom holds the Seq of the dead-letter entry the task
	// was requeued from (WithRequeuedFrom), so that its success can be
	// added to that entry's trail.
	HeaderRequeuedFrom = "cancelworker-requeued-from"
)

// Option changes how a task is built.
type Option func(*options)

type options struct {
	retention      time.Duration
	outcomeUnknown bool
	requeuedFrom   int64
}

// WithRetention keeps the finished task for d instead of RetentionDefault.
func WithRetention(d time.Duration) Option { return func(o *options) { o.retention = d } }

// WithPriorOutcomeUnknown marks the task as following an attempt whose
// outcome is unknown: the order may already be cancelled. A permanent
// answer for it is then dead-lettered marked outcome_unknown, as it would
// have been in the same task. dlq requeue sets it from the entry.
func WithPriorOutcomeUnknown() Option { return func(o *options) { o.outcomeUnknown = true } }

// WithRequeuedFrom marks the task as requeued from the dead-letter entry
// of Seq seq (dlq requeue sets it).
func WithRequeuedFrom(seq int64) Option { return func(o *options) { o.requeuedFrom = seq } }

// RequeuedFrom returns the Seq of the dead-letter entry t was requeued
// from, 0 for none.
func RequeuedFrom(t *asynq.Task) int64 {
	n, err := strconv.ParseInt(t.Headers()[HeaderRequeuedFrom], 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// PriorOutcomeUnknown reports whether t was built WithPriorOutcomeUnknown.
func PriorOutcomeUnknown(t *asynq.Task) bool { return t.Headers()[HeaderPriorOutcomeUnknown] == "1" }

// optionsOf returns the options t was built with, from its headers.
func optionsOf(t *asynq.Task) ([]Option, error) { return OptionsFrom(t.Headers()) }

// OptionsFrom returns the options a task with headers h was built with,
// for instance a dead-lettered task's, to build it anew.
func OptionsFrom(h map[string]string) ([]Option, error) {
	var opts []Option
	if v, ok := h[HeaderRetention]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("header %s: must be whole seconds, got %q", HeaderRetention, text.Truncate(v, 40))
		}
		opts = append(opts, WithRetention(time.Duration(n)*time.Second))
	}
	if h[HeaderPriorOutcomeUnknown] == "1" {
		opts = append(opts, WithPriorOutcomeUnknown())
	}
	if v, ok := h[HeaderRequeuedFrom]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("header %s: must be an entry's Seq, got %q", HeaderRequeuedFrom, text.Truncate(v, 40))
		}
		opts = append(opts, WithRequeuedFrom(n))
	}
	return opts, nil
}

func build(typ, queue, id string, payload any, opts []Option) (*asynq.Task, error) {
	var b []byte
	if m, ok := payload.(MeariCancel); ok {
		b, ok = appendMeariCanonical(nil, m)
		if !ok {
			b = nil
		}
	}
	o := options{retention: RetentionDefault}
	for _, opt := range opts {
		opt(&o)
	}
	if o.retention < 0 {
		return nil, fmt.Errorf("retention: must not be negative, got %s", o.retention)
	}
	o.retention = o.retention.Truncate(time.Second) // asynq keeps whole seconds
	if b == nil {
		var err error
		if b, err = json.Marshal(payload); err != nil {
			return nil, fmt.Errorf("encode %s payload: %w", typ, err)
		}
	}
	var headers map[string]string
	set := func(k, v string) {
		if headers == nil {
			headers = map[string]string{}
		}
		headers[k] = v
	}
	if o.retention != RetentionDefault {
		set(HeaderRetention, strconv.FormatInt(int64(o.retention/time.Second), 10))
	}
	if o.outcomeUnknown {
		set(HeaderPriorOutcomeUnknown, "1")
	}
	if o.requeuedFrom > 0 {
		set(HeaderRequeuedFrom, strconv.FormatInt(o.requeuedFrom, 10))
	}
	return asynq.NewTaskWithHeaders(typ, b, headers,
		asynq.TaskID(id),
		asynq.Queue(queue),
		asynq.MaxRetry(MaxRetry),
		asynq.Timeout(TimeoutDefault),
		asynq.Retention(o.retention),
	), nil
}

// Rebuild returns t built anew from its payload and headers, with opts
// added: for instance WithPriorOutcomeUnknown, or WithRetention. RequestedAt
// is kept.
func Rebuild(t *asynq.Task, opts ...Option) (*asynq.Task, error) {
	have, err := optionsOf(t)
	if err != nil {
		return nil, err
	}
	opts = append(have, opts...)
	switch t.Type() {
	case TypeMeariCancel:
		m, err := ParseMeariCancel(t.Payload())
		if err != nil {
			return nil, err
		}
		return NewMeariCancelTask(m, opts...)
	case TypePandaPonCancel:
		p, err := ParsePandaPonCancel(t.Payload())
		if err != nil {
			return nil, err
		}
		return NewPandaPonCancelTask(p, opts...)
	}
	return nil, fmt.Errorf("unknown task type %q", t.Type())
}

// wire returns the task message of t, built by NewMeariCancelTask or
// NewPandaPonCancelTask, as asynq's client would write it, on its queue
// among shards.
func wire(t *asynq.Task, shards Shards) (taskstore.Message, error) {
	opts, err := optionsOf(t)
	if err != nil {
		return taskstore.Message{}, err
	}
	o := options{retention: RetentionDefault}
	for _, opt := range opts {
		opt(&o)
	}
	id, provider, err := Identify(t)
	if err != nil {
		return taskstore.Message{}, err
	}
	return taskstore.Message{
		Type: t.Type(), Payload: t.Payload(), Headers: t.Headers(), ID: id, Queue: shards.Queue(provider, id),
		Retry: MaxRetry, Timeout: TimeoutDefault, Retention: o.retention,
	}, nil
}

// Identify returns the task ID and provider of t, built by
// NewMeariCancelTask or NewPandaPonCancelTask, from its payload.
func Identify(t *asynq.Task) (id, provider string, err error) {
	switch t.Type() {
	case TypeMeariCancel:
		m, err := ParseMeariCancel(t.Payload())
		return m.TaskID(), ProviderMeari, err
	case TypePandaPonCancel:
		p, err := ParsePandaPonCancel(t.Payload())
		return p.TaskID(), ProviderPandaPon, err
	}
	return "", "", fmt.Errorf("unknown task type %q", t.Type())
}

// NewMeariCancelTask validates m and returns its task, with the order's task
// ID, the Meari queue and the retention set.
func NewMeariCancelTask(m MeariCancel, opts ...Option) (*asynq.Task, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if m.RequestedAt.IsZero() {
		m.RequestedAt = time.Now().UTC()
	}
	return build(TypeMeariCancel, QueueMeari, m.TaskID(), m, opts)
}

// NewPandaPonCancelTask validates p and returns its task.
func NewPandaPonCancelTask(p PandaPonCancel, opts ...Option) (*asynq.Task, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if p.RequestedAt.IsZero() {
		p.RequestedAt = time.Now().UTC()
	}
	return build(TypePandaPonCancel, QueuePandaPon, p.TaskID(), p, opts)
}

// OrderOf returns the provider and order reference (OrderRef) of a task of
// type typ with payload, or "" for either when the type is unknown or the
// payload does not parse.
func OrderOf(typ string, payload []byte) (provider, order string) {
	switch typ {
	case TypeMeariCancel:
		if m, err := ParseMeariCancel(payload); err == nil {
			return ProviderMeari, m.OrderRef()
		}
		return ProviderMeari, ""
	case TypePandaPonCancel:
		if p, err := ParsePandaPonCancel(payload); err == nil {
			return ProviderPandaPon, p.OrderRef()
		}
		return ProviderPandaPon, ""
	}
	return "", ""
}

// ErrPayload is matched (errors.Is) by every payload decoding error.
var ErrPayload = errors.New("undecodable payload")

func decode(b []byte, v any, validate func() error) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrPayload, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after the JSON object", ErrPayload)
	}
	if err := validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrPayload, err)
	}
	return nil
}

// ParseMeariCancel decodes and validates a Meari task payload.
func ParseMeariCancel(b []byte) (MeariCancel, error) {
	if m, ok := parseMeariCanonical(b); ok {
		if err := m.Validate(); err != nil {
			return m, fmt.Errorf("%w: %w", ErrPayload, err)
		}
		return m, nil
	}
	var m MeariCancel
	err := decode(b, &m, func() error { return m.Validate() })
	return m, err
}

// ParsePandaPonCancel decodes and validates a PandaPon task payload. It
// accepts U+FFFD in cancel_reason and remark, which the constructors
// refuse: a task enqueued before they did still runs.
func ParsePandaPonCancel(b []byte) (PandaPonCancel, error) {
	var p PandaPonCancel
	err := decode(b, &p, func() error { return p.validate(true) })
	return p, err
}
