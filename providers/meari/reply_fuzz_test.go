package meari

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/cancelworker/cancelworker/providers"
)

// FuzzDecodeMeariReply checks that decoding any reply never panics, that a
// decoded code is never empty and always classifies, and that a code sent as
// a JSON number or string comes back with every digit.
func FuzzDecodeMeariReply(f *testing.F) {
	for _, s := range []string{
		`{"resultCode":"1001"}`, `{"resultCode":1001}`, `{"resultCode":"4001","x":1}`,
		`{"resultCode":2542285634920880794}`, `{"resultCode":"2542285634920880794"}`,
		`{"resultCode":1e400}`, `{"resultCode":null}`, `{"resultCode":true}`, `{}`, `[]`, `null`,
		`<html>`, ``, `{"resultCode":"1001"} trailing`, `{"resultCode":"\u0031001"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		code, err := decodeReply(b)
		if err != nil {
			if code != "" {
				t.Fatalf("decodeReply(%q) = %q with error %v", b, code, err)
			}
			return
		}
		if code == "" {
			t.Fatalf("decodeReply(%q) returned an empty code without error", b)
		}
		switch c := Classify(code); c {
		case 0, providers.Transient, providers.Permanent, providers.Auth:
		default:
			t.Fatalf("Classify(%q) = %v", code, c)
		}
		// A code given as a bare JSON number keeps its exact text.
		var raw struct {
			ResultCode json.RawMessage `json:"resultCode"`
		}
		if json.Unmarshal(b, &raw) == nil {
			lit := bytes.TrimSpace(raw.ResultCode)
			if len(lit) > 0 && lit[0] != '"' && string(lit) != code {
				t.Fatalf("number %s decoded as %q", lit, code)
			}
		}
		// And a code re-encoded as a string decodes to itself.
		enc, err := json.Marshal(map[string]string{"resultCode": code})
		if err != nil {
			t.Fatal(err)
		}
		if again, err := decodeReply(enc); err != nil || again != code {
			t.Fatalf("round trip of %q gave %q, %v", code, again, err)
		}
	})
}
