// Package intake takes order cancellations from outside Go programs. It
// decodes the JSON item format shared by `enqueue file` (one item per line)
// and the HTTP intake (one item or an array of them), enqueues many items
// with several Redis round trips in flight at once (Pool), and serves the
// HTTP API described in api/openapi.yaml (Handler).
//
// An item is one of
//
//	{"provider":"meari","userAccount":"a@b.c","orderType":1,"orderNum":"N1","sourceApp":72}
//	{"provider":"pandapon","orderId":2542285634920880794,"cancelReason":"...","remark":"..."}
//
// sourceApp is optional (Defaults.SourceApp), as are cancelReason and
// remark. orderId is a JSON integer or a string of decimal digits, and is
// kept exact: it never passes through a float64.
package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cancelworker/cancelworker/internal/text"

	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
)

// Field names of an item, as its JSON spells them.
const (
	FieldProvider     = "provider"
	FieldSourceApp    = "sourceApp"
	FieldUserAccount  = "userAccount"
	FieldOrderType    = "orderType"
	FieldOrderNum     = "orderNum"
	FieldOrderID      = "orderId"
	FieldCancelReason = "cancelReason"
	FieldRemark       = "remark"
	FieldForce        = "force"
)

// fieldOf maps the tasks package's payload field names to the item's.
var fieldOf = map[string]string{
	"source_app":    FieldSourceApp,
	"user_account":  FieldUserAccount,
	"order_type":    FieldOrderType,
	"order_num":     FieldOrderNum,
	"order_id":      FieldOrderID,
	"cancel_reason": FieldCancelReason,
	"remark":        FieldRemark,
}

// knownFields is said in the problem of an unknown field.
const knownFields = "an item takes provider, force, and either sourceApp, userAccount, orderType, orderNum (meari) or orderId, cancelReason, remark (pandapon)"

// orderTypes is what a valid orderType is, in words.
const orderTypes = "1 (cloud), 2 (ai) or 3 (flow4g)"

// shownMax is the most bytes of a bad value quoted in a problem.
const shownMax = 40

// FieldError is one problem with one field of an item.
type FieldError struct {
	// Field is the item's JSON name for the field, e.g. "orderType", or ""
	// when the problem is with the item as a whole (not JSON, not an
	// object).
	Field   string `json:"field"`
	Problem string `json:"problem"`
	// omitted is, for the problem that ends a long list ("and N more
	// ..."), how many problems it stands for.
	omitted int
}

// Error returns "field: problem", or the problem alone for the whole item.
func (e FieldError) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	return e.Field + ": " + e.Problem
}

// fieldErrors collects the problems of one item, at most one per field.
type fieldErrors []FieldError

func (fe *fieldErrors) add(field, format string, args ...any) {
	if fe.has(field) {
		return
	}
	*fe = append(*fe, FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

func (fe fieldErrors) has(field string) bool {
	for _, e := range fe {
		if e.Field == field {
			return true
		}
	}
	return false
}

// Defaults fills fields an item may leave out.
type Defaults struct {
	// SourceApp is the Meari customer number used when a meari item has no
	// sourceApp. Zero means none: such items are invalid.
	SourceApp int64
}

// Cancellation is a decoded, valid item and the task it enqueues.
type Cancellation struct {
	// Provider is tasks.ProviderMeari or tasks.ProviderPandaPon.
	Provider string
	// Order names the order as operators do (tasks' OrderRef), e.g.
	// "1:01582572KS0209053" or "2542285634920880794".
	Order string
	// TaskID is the task ID derived from the order.
	TaskID string
	// Task is ready for (*tasks.Enqueuer).Enqueue.
	Task *asynq.Task
	// Force asks to replace the order's existing task: one dead-lettered,
	// archived, completed or waiting (never one running).
	Force bool
}

// rawItem holds an item's fields, undecoded; nil means absent.
type rawItem struct {
	provider, sourceApp, userAccount, orderType, orderNum json.RawMessage
	orderID, cancelReason, remark, force                  json.RawMessage
}

// field returns where the value of key, a JSON string with its quotes,
// goes, and the field's name, or nil for an unknown key. Keys match
// exactly, case included.
func (r *rawItem) field(key []byte) (*json.RawMessage, string) {
	name := key[1 : len(key)-1]
	if bytes.IndexByte(key, '\\') >= 0 {
		if len(key) > maxEscapedKey {
			return nil, "" // too long to be a field's name, however escaped
		}
		name = []byte(keyString(key))
	}
	// A map index with a converted slice does not allocate.
	switch fieldSlots[string(name)] {
	case 1:
		return &r.provider, FieldProvider
	case 2:
		return &r.sourceApp, FieldSourceApp
	case 3:
		return &r.userAccount, FieldUserAccount
	case 4:
		return &r.orderType, FieldOrderType
	case 5:
		return &r.orderNum, FieldOrderNum
	case 6:
		return &r.orderID, FieldOrderID
	case 7:
		return &r.cancelReason, FieldCancelReason
	case 8:
		return &r.remark, FieldRemark
	case 9:
		return &r.force, FieldForce
	}
	return nil, ""
}

// maxEscapedKey is the longest key, quotes included, that may still be a
// field's name written with escapes: "cancelReason" as 12 \uXXXX.
const maxEscapedKey = 2 + 12*6

// fieldSlots numbers the item's fields for rawItem.field.
var fieldSlots = map[string]int{
	FieldProvider: 1, FieldSourceApp: 2, FieldUserAccount: 3, FieldOrderType: 4, FieldOrderNum: 5,
	FieldOrderID: 6, FieldCancelReason: 7, FieldRemark: 8, FieldForce: 9,
}

// Decode decodes one item from raw, which holds exactly one JSON object,
// and builds its task. It reports every invalid field at once, each under
// its JSON name; the Cancellation is valid only when no FieldError is
// returned.
//
// Keys are matched exactly (encoding/json's DisallowUnknownFields would
// match them regardless of case and stop at the first unknown one), a key
// given twice is an error, and null is taken as absent.
func Decode(raw []byte, d Defaults) (Cancellation, []FieldError) {
	var in rawItem
	errs, ok := scanObject(raw, &in)
	if !ok {
		return Cancellation{}, errs
	}
	force := decodeBool(&errs, FieldForce, in.force)
	provider, ok := decodeString(&errs, FieldProvider, in.provider)
	var c Cancellation
	var fes []FieldError
	switch {
	case !ok:
		return Cancellation{}, errs
	case in.provider == nil:
		errs.add(FieldProvider, "is required: %s", strings.Join(tasks.Providers(), " or "))
		return Cancellation{}, errs
	case provider == tasks.ProviderMeari:
		c, fes = decodeMeari(&in, d, errs)
	case provider == tasks.ProviderPandaPon:
		c, fes = decodePandaPon(&in, errs)
	default:
		errs.add(FieldProvider, "must be %s, got %s", strings.Join(tasks.Providers(), " or "), strconv.Quote(text.Truncate(provider, shownMax)))
		return Cancellation{}, errs
	}
	c.Force = force && len(fes) == 0
	return c, fes
}

// decodeBool decodes a JSON boolean; absent is false.
func decodeBool(errs *fieldErrors, field string, raw json.RawMessage) bool {
	switch string(raw) {
	case "":
		return false
	case "true":
		return true
	case "false":
		return false
	}
	errs.add(field, "must be true or false, got %s", shown(raw))
	return false
}

func decodeMeari(in *rawItem, d Defaults, errs fieldErrors) (Cancellation, []FieldError) {
	onlyFor(&errs, tasks.ProviderPandaPon, map[string]json.RawMessage{
		FieldOrderID: in.orderID, FieldCancelReason: in.cancelReason, FieldRemark: in.remark,
	})
	m := tasks.MeariCancel{SourceApp: d.SourceApp}
	if in.sourceApp != nil {
		m.SourceApp, _ = decodeInt(&errs, FieldSourceApp, in.sourceApp, "must be a positive integer, got %s")
	} else if d.SourceApp == 0 {
		errs.add(FieldSourceApp, "is required: no default source app is configured")
	}
	m.UserAccount, _ = decodeString(&errs, FieldUserAccount, in.userAccount)
	if in.orderType == nil {
		errs.add(FieldOrderType, "is required: %s", orderTypes)
	} else if n, ok := decodeInt(&errs, FieldOrderType, in.orderType, "must be "+orderTypes+", got %s"); ok {
		if n < 1 || n > 3 {
			errs.add(FieldOrderType, "must be %s, got %d", orderTypes, n)
		}
		m.OrderType = int(n) // 1 to 3, or reported above
	}
	m.OrderNum, _ = decodeString(&errs, FieldOrderNum, in.orderNum)
	t, err := tasks.NewMeariCancelTask(m)
	if fes := merge(errs, err); len(fes) > 0 {
		return Cancellation{}, fes
	}
	return Cancellation{Provider: tasks.ProviderMeari, Order: m.OrderRef(), TaskID: m.TaskID(), Task: t}, nil
}

func decodePandaPon(in *rawItem, errs fieldErrors) (Cancellation, []FieldError) {
	onlyFor(&errs, tasks.ProviderMeari, map[string]json.RawMessage{
		FieldSourceApp: in.sourceApp, FieldUserAccount: in.userAccount, FieldOrderType: in.orderType, FieldOrderNum: in.orderNum,
	})
	var p tasks.PandaPonCancel
	p.OrderID, _ = decodeOrderID(&errs, in.orderID)
	p.CancelReason, _ = decodeString(&errs, FieldCancelReason, in.cancelReason)
	p.Remark, _ = decodeString(&errs, FieldRemark, in.remark)
	t, err := tasks.NewPandaPonCancelTask(p)
	if fes := merge(errs, err); len(fes) > 0 {
		return Cancellation{}, fes
	}
	return Cancellation{Provider: tasks.ProviderPandaPon, Order: p.OrderRef(), TaskID: p.TaskID(), Task: t}, nil
}

// merge adds the problems of the task's validation, err, to those found
// while decoding, each field reported once, the decoding problem first.
func merge(errs fieldErrors, err error) []FieldError {
	var ve *tasks.ValidationError
	switch {
	case err == nil:
	case errors.As(err, &ve):
		for _, f := range ve.Fields {
			name, ok := fieldOf[f.Field]
			if !ok {
				name = f.Field
			}
			errs.add(name, "%s", f.Problem)
		}
	default:
		errs.add("", "%v", err)
	}
	return errs
}

// onlyFor reports each present field in fields as belonging to provider.
func onlyFor(errs *fieldErrors, provider string, fields map[string]json.RawMessage) {
	// In the order of the item format, so the problems come out stably.
	for _, name := range []string{FieldSourceApp, FieldUserAccount, FieldOrderType, FieldOrderNum, FieldOrderID, FieldCancelReason, FieldRemark} {
		if v, ok := fields[name]; ok && v != nil {
			errs.add(name, "only applies to %s", provider)
		}
	}
}

// MaxProblems is the most problems an answer lists one by one; the rest
// are counted in one last problem ("and N more ..."), so that a body of a
// million unknown keys gets a short answer.
const MaxProblems = 100

// scanObject reads raw's single JSON object into in, the values being
// slices of raw. It reports every unknown key (up to MaxProblems of them,
// then how many more) and every repeated one, and returns false, with the
// one problem, for a syntax error or a value that is not an object.
func scanObject(raw []byte, in *rawItem) (fieldErrors, bool) {
	if !json.Valid(raw) {
		return fieldErrors{syntaxProblem(raw)}, false
	}
	w := walker{b: raw}
	if c := w.next(); c != '{' {
		return fieldErrors{{Problem: "must be a JSON object, got " + kindOf(raw[w.i:])}}, false
	}
	var errs fieldErrors
	unknown := 0
	w.elements(func(k, v []byte) {
		dst, name := in.field(k)
		switch {
		case dst == nil:
			if unknown++; unknown <= MaxProblems {
				errs = append(errs, FieldError{Field: shownKey(keyString(k)), Problem: "unknown field: " + knownFields})
			}
		case *dst != nil:
			errs.add(name, "is given more than once")
		case !bytes.Equal(v, []byte("null")):
			*dst = v
		}
	})
	if n := unknown - MaxProblems; n > 0 {
		errs = append(errs, FieldError{Problem: fmt.Sprintf("and %d more unknown %s", n, plural(n, "field")), omitted: n})
	}
	return errs, true
}

// notJSON describes a syntax error in the item.
func notJSON(err error) FieldError {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return FieldError{Problem: "is not valid JSON: unexpected end of input"}
	}
	return FieldError{Problem: "is not valid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
}

// shownKey makes an unknown key safe to show: valid UTF-8, no control
// characters, truncated.
func shownKey(k string) string {
	k = strings.ToValidUTF8(k, "\uFFFD")
	k = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, k)
	return text.Truncate(k, shownMax)
}

// kindOfToken names the JSON kind of a top-level token.
func kindOfToken(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return "an object"
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "null"
}

// kindOf names the JSON kind of a raw value.
func kindOf(raw json.RawMessage) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// shown returns a scalar raw value as its JSON text, truncated, or the
// kind of an object or array.
func shown(raw json.RawMessage) string {
	if raw[0] == '{' || raw[0] == '[' {
		return kindOf(raw)
	}
	return text.Truncate(string(raw), shownMax)
}

// decodeString decodes a JSON string; absent is "". It reports a value of
// another kind and returns false.
func decodeString(errs *fieldErrors, field string, raw json.RawMessage) (string, bool) {
	if raw == nil {
		return "", true
	}
	if s, ok := plainString(raw); ok {
		return s, true
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		errs.add(field, "must be a string, got %s", kindOf(raw))
		return "", false
	}
	// encoding/json turns both into U+FFFD without a word: the provider
	// would be asked about an order that does not exist.
	if problem := textProblem(raw); problem != "" {
		errs.add(field, "%s", problem)
		return "", false
	}
	return s, true
}

// plainString returns the text of raw, a JSON string with its quotes,
// when it needs no decoding: no escapes, no control characters, valid
// UTF-8. It is what encoding/json would decode it to, without its cost;
// any other string takes the full path.
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	body := raw[1 : len(raw)-1]
	for _, b := range body {
		if b < 0x20 || b == '"' || b == '\\' {
			return "", false
		}
	}
	if !utf8.Valid(body) {
		return "", false
	}
	return string(body), true
}

// textProblem reports what a JSON string, raw with its quotes, holds that
// is not text: bytes that are not UTF-8, or an escaped UTF-16 surrogate
// without its pair ("\ud800"). It returns "" for a sound string.
func textProblem(raw []byte) string {
	if !utf8.Valid(raw) {
		for i := 0; i < len(raw); {
			r, n := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && n == 1 {
				return fmt.Sprintf("must be valid UTF-8: byte 0x%02X at offset %d of the string as sent is not", raw[i], i-1)
			}
			i += n
		}
	}
	for i := 0; i < len(raw)-1; i++ {
		if raw[i] != '\\' {
			continue
		}
		i++ // the escaped character
		if raw[i] != 'u' {
			continue
		}
		hi, ok := hex4(raw[i+1:])
		if !ok || hi < 0xD800 || hi > 0xDFFF {
			continue
		}
		if lo, ok := hex4(raw[min(i+7, len(raw)):]); hi <= 0xDBFF && ok && i+6 < len(raw) && raw[i+5] == '\\' && raw[i+6] == 'u' && lo >= 0xDC00 && lo <= 0xDFFF {
			i += 10 // a pair: one character
			continue
		}
		return fmt.Sprintf("must not contain a lone UTF-16 surrogate (\\u%04x): JSON text must be Unicode characters", hi)
	}
	return ""
}

// hex4 parses the four hex digits that b starts with.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[:4]), 16, 16)
	return rune(n), err == nil
}

// decodeInt decodes a JSON integer. Anything else, fractions and
// exponents included, is reported with format, whose one verb is the value
// as given.
func decodeInt(errs *fieldErrors, field string, raw json.RawMessage, format string) (int64, bool) {
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		errs.add(field, format, shown(raw))
		return 0, false
	}
	return n, true
}

// decodeOrderID decodes orderId through tasks.OrderID: a JSON integer or a
// string of digits, exactly.
func decodeOrderID(errs *fieldErrors, raw json.RawMessage) (tasks.OrderID, bool) {
	if raw == nil {
		errs.add(FieldOrderID, "is required: the 1688 order ID, a JSON integer or a string of decimal digits")
		return 0, false
	}
	if raw[0] != '"' && raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		errs.add(FieldOrderID, "must be a JSON integer or a string of decimal digits, got %s", kindOf(raw))
		return 0, false
	}
	var id tasks.OrderID
	if err := id.UnmarshalJSON(raw); err != nil {
		// OrderID's errors lead with the payload's name for the field.
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		errs.add(FieldOrderID, "%s", err.Error())
		return 0, false
	}
	return id, true
}
