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
