package intake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// FuzzWalker holds the walker to encoding/json: for any valid JSON object
// or array, it hands out the same keys and values, in order, as the
// decoder's tokens.
func FuzzWalker(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":"x\"}","c":{"d":[1,{"e":"]"}]},"f":null,"g":true}`,
		` [ {"provider":"meari"} , 2 , "s" , [ ] , { } , -1.5e3 ] `,
		`{"\u0061":"\\","b\"":"\ud83d\ude00"}`, `[]`, `{}`, `[[[]]]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		trimmed := bytes.TrimSpace(raw)
		if !json.Valid(raw) || len(trimmed) == 0 || (trimmed[0] != '{' && trimmed[0] != '[') {
			return
		}
		var want []string
		dec := json.NewDecoder(bytes.NewReader(raw))
		if _, err := dec.Token(); err != nil {
			t.Fatal(err)
		}
		for dec.More() {
			if trimmed[0] == '{' {
				tok, err := dec.Token()
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, "key "+tok.(string))
			}
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			want = append(want, "value "+string(v))
		}
		var got []string
		w := walker{b: raw}
		w.elements(func(k, v []byte) {
			if k != nil {
				got = append(got, "key "+keyString(k))
			}
			got = append(got, "value "+string(v))
		})
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("walker:\n%q\nencoding/json:\n%q", got, want)
		}
	})
}

// TestDecodeHostileItemIsBounded checks that an item of many unknown keys
// costs a bounded number of allocations and answers with at most
// MaxProblems problems and a count of the rest.
func TestDecodeHostileItemIsBounded(t *testing.T) {
	item := func(keys int) []byte {
		var b bytes.Buffer
		b.WriteString(`{"provider":"pandapon","orderId":1`)
		for i := range keys {
			fmt.Fprintf(&b, `,"k%07d":1`, i)
		}
		b.WriteString("}")
		return b.Bytes()
	}
	small, big := item(1_000), item(60_000) // big: about 900 KB
	_, errs := Decode(big, Defaults{})
	if len(errs) != MaxProblems+1 || errs[MaxProblems].Problem != fmt.Sprintf("and %d more unknown fields", 60_000-MaxProblems) {
		t.Fatalf("%d problems, the last %+v; want %d and a count", len(errs), errs[len(errs)-1], MaxProblems+1)
	}
	allocs := func(b []byte) float64 {
		return testing.AllocsPerRun(3, func() { Decode(b, Defaults{}) })
	}
	if a, b := allocs(small), allocs(big); b > a+10 {
		t.Errorf("allocations grow with the keys: %.0f for 1,000 unknown keys, %.0f for 60,000", a, b)
	}
	// Other shapes: long escaped keys, a known key repeated, and a body
	// whose syntax error comes at its very end.
	shape := func(keys int, key string, tail string) []byte {
		var b bytes.Buffer
		b.WriteString(`{"provider":"pandapon","orderId":1`)
		for range keys {
			b.WriteString("," + key + ":1")
		}
		b.WriteString(tail)
		return b.Bytes()
	}
	for _, tt := range []struct{ name, key, tail string }{
		{"escaped keys", `"aaaaaaaaaaaaaa"`, "}"},
		{"a known key repeated", `"remark"`, "}"},
		{"a syntax error at the end", `"k"`, "} x"},
	} {
		if a, b := allocs(shape(1_000, tt.key, tt.tail)), allocs(shape(20_000, tt.key, tt.tail)); b > a+10 {
			t.Errorf("%s: allocations grow with the keys: %.0f for 1,000, %.0f for 20,000", tt.name, a, b)
		}
	}
}
