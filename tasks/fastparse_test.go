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
