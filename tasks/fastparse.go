package tasks

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// parseMeariCanonical reads a Meari payload in the exact form
// NewMeariCancelTask writes (json.Marshal of MeariCancel: the fields in
// order, no spaces, strings without escapes) without the reflection of
// encoding/json: every task the worker takes and every task Enqueue wires
// is read once this way. It reports false for any other form, which the
// full decoder then reads; when it reports true, its result is the one the
// full decoder gives (FuzzParseMeariCanonical holds it to that).
func parseMeariCanonical(b []byte) (m MeariCancel, ok bool) {
	rest, ok := bytes.CutPrefix(b, []byte(`{"source_app":`))
	if !ok {
		return m, false
	}
	if m.SourceApp, rest, ok = canonicalInt(rest); !ok {
		return m, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"user_account":`)); !ok {
		return m, false
	}
	if m.UserAccount, rest, ok = canonicalString(rest); !ok {
		return m, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"order_type":`)); !ok {
		return m, false
	}
	var typ int64
	if typ, rest, ok = canonicalInt(rest); !ok || typ > 1<<31-1 {
		return m, false
	}
	m.OrderType = int(typ)
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"order_num":`)); !ok {
		return m, false
	}
	if m.OrderNum, rest, ok = canonicalString(rest); !ok {
		return m, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"requested_at":`)); !ok {
		return m, false
	}
	end := bytes.IndexByte(rest[min(1, len(rest)):], '"') + 1
	if len(rest) == 0 || rest[0] != '"' || end < 1 || !bytes.Equal(rest[end+1:], []byte("}")) {
		return m, false
	}
	// The very parser the full decoder uses for a time.Time.
	if err := m.RequestedAt.UnmarshalJSON(rest[:end+1]); err != nil {
		return m, false
	}
	return m, true
}

// appendMeariCanonical appends m as json.Marshal writes it, without the
// reflection of encoding/json, when its strings need no escaping (no '"',
// '\\', control characters, '<', '>', '&', U+2028 or U+2029, and valid
// UTF-8) and its time has a year json.Marshal accepts; otherwise it
// reports false and the caller uses json.Marshal. Every task
// NewMeariCancelTask builds is written this way; FuzzAppendMeariCanonical
// holds it to json.Marshal's bytes.
func appendMeariCanonical(dst []byte, m MeariCancel) ([]byte, bool) {
	if !plainJSONString(m.UserAccount) || !plainJSONString(m.OrderNum) {
		return dst, false
	}
	dst = append(dst, `{"source_app":`...)
	dst = strconv.AppendInt(dst, m.SourceApp, 10)
	dst = append(dst, `,"user_account":"`...)
	dst = append(dst, m.UserAccount...)
	dst = append(dst, `","order_type":`...)
	dst = strconv.AppendInt(dst, int64(m.OrderType), 10)
	dst = append(dst, `,"order_num":"`...)
	dst = append(dst, m.OrderNum...)
	dst = append(dst, `","requested_at":"`...)
	// What time.Time's MarshalJSON writes between its quotes (it fails
	// for the same years and offsets).
	dst, err := m.RequestedAt.AppendText(dst)
	if err != nil {
		return dst, false
	}
	return append(dst, `"}`...), true
}

// plainJSONString reports whether json.Marshal writes s as its bytes
// between quotes.
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
				return false
			}
			i += size - 1
		}
	}
	return true
}

// canonicalInt reads a non-negative JSON integer without leading zeros
// that fits an int64.
func canonicalInt(b []byte) (int64, []byte, bool) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 0 || i > 18 || (b[0] == '0' && i > 1) {
		return 0, b, false
	}
	n, err := strconv.ParseInt(string(b[:i]), 10, 64)
	return n, b[i:], err == nil
}

// canonicalString reads a JSON string of valid UTF-8 with no escapes and no
// control characters, whose decoded value is its bytes.
func canonicalString(b []byte) (string, []byte, bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", b, false
	}
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			s := b[1:i]
			if !utf8.Valid(s) {
				return "", b, false
			}
			return string(s), b[i+1:], true
		case c == '\\' || c < 0x20:
			return "", b, false
		}
	}
	return "", b, false
}
