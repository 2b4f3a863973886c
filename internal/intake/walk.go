package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// walker steps through JSON text that json.Valid accepted, handing out
// each value as a slice of the text: no copies, no allocations, however
// many keys or items a hostile body holds. Its methods assume valid JSON
// and may panic on anything else.
type walker struct {
	b []byte
	i int
}

// space skips white space.
func (w *walker) space() {
	for w.i < len(w.b) {
		switch w.b[w.i] {
		case ' ', '\t', '\n', '\r':
			w.i++
		default:
			return
		}
	}
}

// next returns the next byte that is not white space, without taking it.
func (w *walker) next() byte {
	w.space()
	return w.b[w.i]
}

// value returns the next value and moves past it.
func (w *walker) value() []byte {
	w.space()
	start := w.i
	switch w.b[w.i] {
	case '"':
		w.str()
	case '{', '[':
		depth := 0
		for {
			switch w.b[w.i] {
			case '"':
				w.str()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			w.i++
			if depth == 0 {
				break
			}
		}
	default: // a number, true, false or null
		for w.i < len(w.b) && !endsScalar(w.b[w.i]) {
			w.i++
		}
	}
	return w.b[start:w.i]
}

// endsScalar reports a byte that cannot be part of a number or literal.
func endsScalar(c byte) bool {
	switch c {
	case ',', ']', '}', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

// str moves past the string that starts at w.i.
func (w *walker) str() {
	w.i++
	for {
		switch w.b[w.i] {
		case '\\':
			w.i += 2
		case '"':
			w.i++
			return
		default:
			w.i++
		}
	}
}

// elements calls fn with each value of the array or each key and value of
// the object that starts at w.i (key is nil for an array), in order.
func (w *walker) elements(fn func(key, value []byte)) {
	object := w.next() == '{'
	w.i++
	for {
		switch w.next() {
		case ']', '}':
			w.i++
			return
		case ',':
			w.i++
			continue
		}
		var key []byte
		if object {
			key = w.value()
			w.next()
			w.i++ // ':'
		}
		fn(key, w.value())
	}
}

// keyString returns an object key as a Go string. A key without escapes,
// the usual case, is converted without decoding.
func keyString(key []byte) string {
	if bytes.IndexByte(key, '\\') < 0 {
		return string(key[1 : len(key)-1])
	}
	var s string
	_ = json.Unmarshal(key, &s) // valid JSON: cannot fail
	return s
}

// syntaxProblem describes what makes raw, which json.Valid refused, not
// one JSON object: the same words encoding/json's decoder gives. It reads
// the value whole (one copy of it, not one per key or item).
func syntaxProblem(raw []byte) FieldError {
	dec := json.NewDecoder(bytes.NewReader(raw))
	w := walker{b: raw}
	if w.space(); w.i < len(raw) && raw[w.i] != '{' {
		tok, err := dec.Token()
		if err != nil {
			return notJSON(err)
		}
		return FieldError{Problem: "must be a JSON object, got " + kindOfToken(tok)}
	}
	if fe, bad := wholeValue(dec); bad {
		return fe
	}
	return FieldError{Problem: "is not valid JSON: trailing data after the object"}
}

// wholeValue reads dec's next value whole and reports its syntax error, if
// it has one; false means the value was sound (what follows it is not).
func wholeValue(dec *json.Decoder) (FieldError, bool) {
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return notJSON(err), true
	}
	if _, err := dec.Token(); errors.Is(err, io.EOF) {
		return notJSON(io.ErrUnexpectedEOF), true // json.Valid refused it: cannot happen
	}
	return FieldError{}, false
}
