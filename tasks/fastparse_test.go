package tasks

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// FuzzParseMeariCanonical holds the canonical-form reader to the full
// decoder: whatever it accepts, the full decoder reads the same way.
func FuzzParseMeariCanonical(f *testing.F) {
	for _, m := range []MeariCancel{
		{SourceApp: 72, UserAccount: "test@123.com", OrderType: 1, OrderNum: "01582572KS0209053", RequestedAt: time.Date(2026, 12, 1, 9, 51, 34, 123456789, time.UTC)},
		{SourceApp: 1, UserAccount: "ü@例え.jp", OrderType: 3, OrderNum: "N1", RequestedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 5*3600))},
		{SourceApp: 9, UserAccount: `quote"back\slash<&>`, OrderType: 2, OrderNum: "x"},
	} {
		b, err := json.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"source_app":072,"user_account":"a","order_type":1,"order_num":"n","requested_at":"2026-12-01T09:51:34Z"}`))
	f.Add([]byte(`{"source_app":72,"user_account":"a\u0000","order_type":1,"order_num":"n","requested_at":"2026-12-01T09:51:34Z"}`))
	f.Add([]byte(`{"source_app":72,"user_account":"a","order_type":1,"order_num":"n","requested_at":"2026-12-01T09:51:34Z"} `))
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := parseMeariCanonical(b)
		if !ok {
			return
		}
		var full MeariCancel
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&full); err != nil || dec.More() {
			t.Fatalf("canonical reader accepted %q, the full decoder refuses it: %v", b, err)
		}
		if !reflect.DeepEqual(fast, full) {
			t.Fatalf("%q: canonical reader %+v, full decoder %+v", b, fast, full)
		}
	})
}

// TestParseMeariCancelTakesTheCanonicalPath checks that what the
// constructor writes is read by the canonical reader, and that a payload
// in another form still parses, the same.
func TestParseMeariCancelTakesTheCanonicalPath(t *testing.T) {
	want := MeariCancel{SourceApp: 72, UserAccount: "test@123.com", OrderType: 1, OrderNum: "N1", RequestedAt: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	task, err := NewMeariCancelTask(want)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := parseMeariCanonical(task.Payload()); !ok {
		t.Fatalf("the constructor's payload %s is not read by the canonical reader", task.Payload())
	}
	spaced := []byte(`{ "order_num": "N1", "order_type": 1, "user_account": "test@123.com", "source_app": 72, "requested_at": "2026-12-01T09:00:00Z" }`)
	if _, ok := parseMeariCanonical(spaced); ok {
		t.Fatal("the canonical reader accepted a reordered payload")
	}
	for _, b := range [][]byte{task.Payload(), spaced} {
		got, err := ParseMeariCancel(b)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseMeariCancel(%s) = %+v, %v; want %+v", b, got, err, want)
		}
	}
	if _, err := ParseMeariCancel([]byte(`{"source_app":72,"user_account":" padded","order_type":1,"order_num":"N1","requested_at":"2026-12-01T09:00:00Z"}`)); err == nil {
		t.Error("a canonical payload with an invalid field was accepted")
	}
}

// FuzzAppendMeariCanonical holds the hand-written writer to json.Marshal:
// when it writes a payload, the bytes are json.Marshal's.
func FuzzAppendMeariCanonical(f *testing.F) {
	f.Add(int64(72), "test@123.com", 1, "01582572KS0209053", int64(1796118694), int64(123456789), 0)
	f.Add(int64(1), "ü@例え.jp", 3, "N1", int64(0), int64(0), 5*3600)
	f.Add(int64(-9), `quote"back\slash`, 2, "x", int64(-62135596800), int64(0), -1)
	f.Add(int64(9), "a<b>", 2, "x", int64(1796118694), int64(5), 59)
	f.Add(int64(9), "a", 2, "x&y", int64(1796118694), int64(5), 59)
	f.Add(int64(9), "a", 2, "x", int64(253402300800), int64(5), 59)
	f.Add(int64(9), "a", 2, "\u2028", int64(1), int64(5), 0)
	f.Add(int64(9), "bad\xffutf8", 2, "tab\there", int64(1), int64(1), 1)
	f.Fuzz(func(t *testing.T, app int64, account string, typ int, num string, secs, nanos int64, offset int) {
		m := MeariCancel{SourceApp: app, UserAccount: account, OrderType: typ, OrderNum: num,
			RequestedAt: time.Unix(secs, nanos).In(time.FixedZone("", offset%(24*3600)))}
		if secs == 0 && nanos == 0 {
			m.RequestedAt = time.Time{}
		}
		fast, ok := appendMeariCanonical([]byte("prefix"), m)
		want, err := json.Marshal(m)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("%+v: written as %q, json.Marshal fails: %v", m, fast, err)
		}
		if got := string(fast); got != "prefix"+string(want) {
			t.Fatalf("%+v:\nwritten   %s\njson.Marshal %s", m, got, want)
		}
	})
}

// TestAppendMeariCanonicalDeclines checks that the writer leaves to
// json.Marshal what it must escape or cannot write.
func TestAppendMeariCanonicalDeclines(t *testing.T) {
	base := MeariCancel{SourceApp: 72, UserAccount: "a@b.c", OrderType: 1, OrderNum: "N1"}
	if _, ok := appendMeariCanonical(nil, base); !ok {
		t.Fatalf("%+v: declined, want written", base)
	}
	for _, s := range []string{`a"b`, `a\b`, "a\nb", "a<b", "a>b", "a&b", "a\u2028b", "a\u2029b", "a\xffb"} {
		m := base
		m.OrderNum = s
		if b, ok := appendMeariCanonical(nil, m); ok {
			t.Errorf("order_num %q: written as %s, want declined", s, b)
		}
	}
	m := base
	m.RequestedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	if b, ok := appendMeariCanonical(nil, m); ok {
		t.Errorf("year 10000: written as %s, want declined (json.Marshal fails)", b)
	}
}
