package intake

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cancelworker/cancelworker/tasks"
)

func TestDecodeValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		item     string
		defaults Defaults
		provider string
		order    string
		taskID   string
		taskType string
		payload  []string // substrings of the task payload
	}{
		{
			name:     "meari, source app from the defaults",
			item:     `{"provider":"meari","userAccount":"a@b.c","orderType":1,"orderNum":"N1"}`,
			defaults: Defaults{SourceApp: 72},
			provider: tasks.ProviderMeari, order: "1:N1", taskID: "meari:72:1:N1", taskType: tasks.TypeMeariCancel,
			payload: []string{`"source_app":72`, `"user_account":"a@b.c"`, `"order_type":1`, `"order_num":"N1"`},
		},
		{
			name:     "meari, the item's source app wins",
			item:     `{"orderNum":"N1","orderType":3,"userAccount":"a@b.c","provider":"meari","sourceApp":73}`,
			defaults: Defaults{SourceApp: 72},
			provider: tasks.ProviderMeari, order: "3:N1", taskID: "meari:73:3:N1", taskType: tasks.TypeMeariCancel,
			payload: []string{`"source_app":73`, `"order_type":3`},
		},
		{
			name:     "pandapon, 19-digit order ID as a number",
			item:     `{"provider":"pandapon","orderId":2542285634920880794,"cancelReason":"customer asked","remark":"ticket 881"}`,
			provider: tasks.ProviderPandaPon, order: "2542285634920880794", taskID: "pandapon:2542285634920880794", taskType: tasks.TypePandaPonCancel,
			payload: []string{`"order_id":2542285634920880794`, `"cancel_reason":"customer asked"`, `"remark":"ticket 881"`},
		},
		{
			name:     "pandapon, 19-digit order ID as a string",
			item:     `{"provider":"pandapon","orderId":"2542285634920880794"}`,
			provider: tasks.ProviderPandaPon, order: "2542285634920880794", taskID: "pandapon:2542285634920880794", taskType: tasks.TypePandaPonCancel,
			payload: []string{`"order_id":2542285634920880794`},
		},
		{
			name:     "pandapon, largest int64, white space and nulls",
			item:     " {\n\"provider\" : \"pandapon\", \"orderId\": 9223372036854775807, \"remark\": null}\n",
			provider: tasks.ProviderPandaPon, order: "9223372036854775807", taskID: "pandapon:9223372036854775807", taskType: tasks.TypePandaPonCancel,
			payload: []string{`"order_id":9223372036854775807`},
		},
		{
			name:     "pandapon, a surrogate pair, escaped backslashes and text in UTF-8",
			item:     `{"provider":"pandapon","orderId":7,"remark":"\ud83d\ude00 \\ud800 ß","cancelReason":"Stornierung für Kunde"}`,
			provider: tasks.ProviderPandaPon, order: "7", taskID: "pandapon:7", taskType: tasks.TypePandaPonCancel,
			payload: []string{`"remark":"😀 \\ud800 ß"`, `"cancel_reason":"Stornierung für Kunde"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, errs := Decode([]byte(tt.item), tt.defaults)
			if len(errs) > 0 {
				t.Fatalf("want no problems, got %v", errs)
			}
			if c.Provider != tt.provider || c.Order != tt.order || c.TaskID != tt.taskID {
				t.Errorf("want %s order %s task %s, got %+v", tt.provider, tt.order, tt.taskID, c)
			}
			if c.Task.Type() != tt.taskType {
				t.Errorf("task type: want %s, got %s", tt.taskType, c.Task.Type())
			}
			for _, s := range tt.payload {
				if !bytes.Contains(c.Task.Payload(), []byte(s)) {
					t.Errorf("payload %s: want %s in it", c.Task.Payload(), s)
				}
			}
		})
	}
}

func TestDecodeInvalid(t *testing.T) {
	t.Parallel()
	const known = "unknown field: " + knownFields
	tests := []struct {
		name     string
		item     string
		defaults Defaults
		want     []string // "field: problem", in order
	}{
		{name: "not JSON", item: `not json`, want: []string{"is not valid JSON: invalid character 'o' in literal null (expecting 'u')"}},
		{name: "cut short", item: `{"provider":"meari"`, want: []string{"is not valid JSON: unexpected end of input"}},
		{name: "empty", item: ``, want: []string{"is not valid JSON: unexpected end of input"}},
		{name: "an array", item: `[{"provider":"meari"}]`, want: []string{"must be a JSON object, got an array"}},
		{name: "a number", item: `2542285634920880794`, want: []string{"must be a JSON object, got a number"}},
		{name: "null", item: `null`, want: []string{"must be a JSON object, got null"}},
		{name: "trailing data", item: `{"provider":"pandapon","orderId":1} {}`, want: []string{"is not valid JSON: trailing data after the object"}},
		{name: "no provider", item: `{"orderId":1}`, want: []string{"provider: is required: meari or pandapon"}},
		{name: "unknown provider", item: `{"provider":"acme","orderId":1}`, want: []string{`provider: must be meari or pandapon, got "acme"`}},
		{name: "provider not a string", item: `{"provider":1}`, want: []string{"provider: must be a string, got a number"}},
		{name: "keys match case exactly", item: `{"provider":"pandapon","OrderId":1}`, want: []string{
			"OrderId: " + known,
			"orderId: is required: the 1688 order ID, a JSON integer or a string of decimal digits",
		}},
		{name: "meari, bidi override in userAccount", item: `{"provider":"meari","sourceApp":72,"userAccount":"evil\u202egpj.exe@b.c","orderType":1,"orderNum":"N1"}`,
			want: []string{"userAccount: must not contain bidirectional or line-separator characters, got U+202E"}},
		{name: "pandapon, control character in remark", item: `{"provider":"pandapon","orderId":1,"remark":"a\u0007b"}`,
			want: []string{"remark: must not contain control characters, got U+0007"}},
		{name: "meari, bytes that are not UTF-8 in orderNum", item: "{\"provider\":\"meari\",\"sourceApp\":72,\"userAccount\":\"a@b.c\",\"orderType\":1,\"orderNum\":\"N\xff1\"}",
			want: []string{"orderNum: must be valid UTF-8: byte 0xFF at offset 1 of the string as sent is not"}},
		{name: "meari, lone high surrogate in userAccount", item: `{"provider":"meari","sourceApp":72,"userAccount":"a\ud800@b.c","orderType":1,"orderNum":"N1"}`,
			want: []string{`userAccount: must not contain a lone UTF-16 surrogate (\ud800): JSON text must be Unicode characters`}},
		{name: "meari, high surrogate then a letter", item: `{"provider":"meari","sourceApp":72,"userAccount":"a@b.c","orderType":1,"orderNum":"\uD83Dx"}`,
			want: []string{`orderNum: must not contain a lone UTF-16 surrogate (\ud83d): JSON text must be Unicode characters`}},
		{name: "pandapon, lone low surrogate in remark", item: `{"provider":"pandapon","orderId":1,"remark":"ok \\ \udc00"}`,
			want: []string{`remark: must not contain a lone UTF-16 surrogate (\udc00): JSON text must be Unicode characters`}},
		{name: "pandapon, two high surrogates", item: `{"provider":"pandapon","orderId":1,"cancelReason":"\ud83d\ud83d"}`,
			want: []string{`cancelReason: must not contain a lone UTF-16 surrogate (\ud83d): JSON text must be Unicode characters`}},
		{name: "meari, replacement character sent as it is", item: `{"provider":"meari","sourceApp":72,"userAccount":"a@b.c","orderType":1,"orderNum":"N\ufffd1"}`,
			want: []string{"orderNum: must not contain U+FFFD, the replacement character: the text was damaged (invalid UTF-8 or a lone surrogate) before it got here"}},
		{name: "pandapon, NUL in cancelReason", item: `{"provider":"pandapon","orderId":1,"cancelReason":"a\u0000"}`,
			want: []string{"cancelReason: must not contain control characters, got U+0000"}},
		{name: "key given twice", item: `{"provider":"pandapon","orderId":1,"orderId":2}`, want: []string{"orderId: is given more than once"}},
		{name: "meari, every field invalid at once", item: `{"provider":"meari","sourceApp":-3,"userAccount":" u","orderType":7,"orderNum":"A:1","orderId":5,"foo":1}`,
			want: []string{
				"foo: " + known,
				"orderId: only applies to pandapon",
				"orderType: must be 1 (cloud), 2 (ai) or 3 (flow4g), got 7",
				"sourceApp: must be a positive integer, got -3",
				"userAccount: must not start or end with white space",
				"orderNum: must not contain ':'",
			}},
		{name: "meari, nothing but the provider", item: `{"provider":"meari"}`, want: []string{
			"sourceApp: is required: no default source app is configured",
			"orderType: is required: 1 (cloud), 2 (ai) or 3 (flow4g)",
			"userAccount: is required",
			"orderNum: is required",
		}},
		{name: "meari, types wrong", item: `{"provider":"meari","sourceApp":"72","userAccount":1,"orderType":"1","orderNum":["N1"]}`, defaults: Defaults{SourceApp: 72}, want: []string{
			`sourceApp: must be a positive integer, got "72"`,
			"userAccount: must be a string, got a number",
			`orderType: must be 1 (cloud), 2 (ai) or 3 (flow4g), got "1"`,
			"orderNum: must be a string, got an array",
		}},
		{name: "meari, order type a fraction", item: `{"provider":"meari","userAccount":"u","orderType":1.0,"orderNum":"N1"}`, defaults: Defaults{SourceApp: 72}, want: []string{
			"orderType: must be 1 (cloud), 2 (ai) or 3 (flow4g), got 1.0",
		}},
		{name: "meari, order type over 64 bits", item: `{"provider":"meari","userAccount":"u","orderType":99999999999999999999,"orderNum":"N1"}`, defaults: Defaults{SourceApp: 72}, want: []string{
			"orderType: must be 1 (cloud), 2 (ai) or 3 (flow4g), got 99999999999999999999",
		}},
		{name: "meari, order number too long", item: `{"provider":"meari","userAccount":"u","orderType":2,"orderNum":"` + strings.Repeat("n", 65) + `"}`, defaults: Defaults{SourceApp: 72}, want: []string{
			"orderNum: must be at most 64 bytes, got 65",
		}},
		{name: "pandapon, meari fields", item: `{"provider":"pandapon","orderId":1,"sourceApp":72,"userAccount":"u","orderType":1,"orderNum":"N"}`, want: []string{
			"sourceApp: only applies to meari",
			"userAccount: only applies to meari",
			"orderType: only applies to meari",
			"orderNum: only applies to meari",
		}},
		{name: "pandapon, order ID in float notation", item: `{"provider":"pandapon","orderId":2.542285634920881e18}`, want: []string{
			`orderId: must be a positive integer of decimal digits, got "2.542285634920881e18"`,
		}},
		{name: "pandapon, order ID with a decimal point", item: `{"provider":"pandapon","orderId":2542285634920880794.0}`, want: []string{
			`orderId: must be a positive integer of decimal digits, got "2542285634920880794.0"`,
		}},
		{name: "pandapon, order ID over 64 bits", item: `{"provider":"pandapon","orderId":"9223372036854775808"}`, want: []string{
			`orderId: must fit in a signed 64-bit integer, got "9223372036854775808"`,
		}},
		{name: "pandapon, order ID negative", item: `{"provider":"pandapon","orderId":-5}`, want: []string{
			`orderId: must be a positive integer of decimal digits, got "-5"`,
		}},
		{name: "pandapon, order ID zero", item: `{"provider":"pandapon","orderId":"0"}`, want: []string{"orderId: must be a positive integer, got 0"}},
		{name: "pandapon, order ID a boolean", item: `{"provider":"pandapon","orderId":true}`, want: []string{
			"orderId: must be a JSON integer or a string of decimal digits, got a boolean",
		}},
		{name: "pandapon, every field invalid at once", item: `{"provider":"pandapon","orderId":"12ab","cancelReason":" r","remark":"` + strings.Repeat("r", 513) + `"}`, want: []string{
			`orderId: must be a positive integer of decimal digits, got "12ab"`,
			"cancelReason: must not start or end with white space",
			"remark: must be at most 512 bytes, got 513",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, errs := Decode([]byte(tt.item), tt.defaults)
			got := make([]string, len(errs))
			for i, e := range errs {
				got[i] = e.Error()
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\nwant %q\ngot  %q", tt.want, got)
			}
			if c.Task != nil {
				t.Errorf("want no task for an invalid item, got %s", c.Task.Type())
			}
		})
	}
}

// FuzzDecode checks that Decode never panics, that every item it accepts
// round-trips through the task payload, and that an order ID's digits
// survive byte for byte.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"provider":"meari","userAccount":"a@b.c","orderType":1,"orderNum":"N1"}`,
		`{"provider":"meari","userAccount":"a@b.c","orderType":2,"orderNum":"N1","sourceApp":73}`,
		`{"provider":"pandapon","orderId":2542285634920880794,"cancelReason":"r","remark":"m"}`,
		`{"provider":"pandapon","orderId":"2542285634920880794"}`,
		`{"provider":"pandapon","orderId":2.542285634920881e18}`,
		`[1]`, `{"provider":"pandapon","orderId":1,"orderId":2}`, `{"a":{"b":[1,2,{"c":null}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, errs := Decode(raw, Defaults{SourceApp: 72})
		if len(errs) > 0 {
			if c.Task != nil {
				t.Fatalf("a task despite problems %v", errs)
			}
			for _, e := range errs {
				if e.Problem == "" {
					t.Fatalf("a problem without text: %+v", e)
				}
			}
			return
		}
		switch c.Task.Type() {
		case tasks.TypeMeariCancel:
			m, err := tasks.ParseMeariCancel(c.Task.Payload())
			if err != nil || m.TaskID() != c.TaskID {
				t.Fatalf("payload does not round-trip: %v, %s vs %s", err, m.TaskID(), c.TaskID)
			}
		case tasks.TypePandaPonCancel:
			p, err := tasks.ParsePandaPonCancel(c.Task.Payload())
			if err != nil || p.TaskID() != c.TaskID {
				t.Fatalf("payload does not round-trip: %v, %s vs %s", err, p.TaskID(), c.TaskID)
			}
			var in struct {
				OrderID json.RawMessage `json:"orderId"`
			}
			if err := json.Unmarshal(raw, &in); err != nil {
				t.Fatalf("Decode took what encoding/json refuses: %v", err)
			}
			digits := string(in.OrderID)
			if strings.HasPrefix(digits, `"`) {
				if err := json.Unmarshal(in.OrderID, &digits); err != nil {
					t.Fatal(err)
				}
			}
			// Leading zeros are allowed, as by tasks.ParseOrderID.
			if digits = strings.TrimLeft(digits, "0"); digits != p.OrderID.String() {
				t.Fatalf("order ID %s became %s", in.OrderID, p.OrderID)
			}
			if !bytes.Contains(c.Task.Payload(), []byte(`"order_id":`+digits)) {
				t.Fatalf("payload %s lost the digits %s", c.Task.Payload(), digits)
			}
		default:
			t.Fatalf("unexpected task type %q", c.Task.Type())
		}
	})
}

// FuzzPlainString checks that plainString, where it takes a string,
// decodes it as encoding/json does, and that it leaves to encoding/json
// every string that needs decoding.
func FuzzPlainString(f *testing.F) {
	for _, s := range []string{`"N1"`, `"a@b.c"`, `""`, `"\n"`, `"a\"b"`, `"é"`, "\"\xff\"", "\"a\tb\"", `"\u00e9"`, `"a"b"`, `"`, `x`, "\"\x7f\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := plainString(raw)
		var want string
		err := json.Unmarshal(raw, &want)
		if !ok {
			if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && !bytes.ContainsAny(raw[1:len(raw)-1], "\"\\") && utf8.Valid(raw) && err == nil && !bytes.ContainsFunc(raw, func(r rune) bool { return r < 0x20 }) {
				t.Errorf("plainString(%q) declined a plain string", raw)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("plainString(%q) = %q; encoding/json: %q, %v", raw, got, want, err)
		}
	})
}
