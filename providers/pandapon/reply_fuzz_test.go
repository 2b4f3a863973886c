package pandapon

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/cancelworker/cancelworker/providers"
)

// FuzzDecodePandaPonReply checks that decoding and classifying any 2xx reply
// never panics, that success needs code 200 and data true, and that every
// failure is a well-formed *providers.Error.
func FuzzDecodePandaPonReply(f *testing.F) {
	for _, s := range []string{
		`{"requestId":"0d1de79d9f4540308d14c558f86cb3da","code":200,"developId":"1110890638347337996","msg":"成功","data":true}`,
		`{"code":200,"developId":1110890638347337996,"data":false}`,
		`{"code":"200","data":true}`, `{"code":200}`, `{"code":200,"data":null}`, `{"code":200,"data":"true"}`,
		`{"code":429}`, `{"code":503,"msg":"busy"}`, `{"code":401}`, `{"code":2542285634920880794}`,
		`{"code":1e400}`, `{"code":-0}`, `{"code":"0200","data":true}`, `{"requestId":123,"code":400,"msg":42}`,
		`{}`, `[]`, `null`, ``, `<html>`, `{"code":200,"data":true}x`,
	} {
		f.Add([]byte(s))
	}
	c, err := New(Config{BaseURL: "http://127.0.0.1:1", AccessKey: "k", AccessSecret: "secret", UserID: "u"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		resp := &providers.Response{Status: 200, Body: b}
		r, err := decodeReply(b)
		if err != nil {
			if r.Code != "" {
				t.Fatalf("decodeReply(%q) kept code %q with error %v", b, r.Code, err)
			}
			return
		}
		if r.Code == "" {
			t.Fatalf("decodeReply(%q) returned no code without error", b)
		}
		out := c.outcome(resp, r)
		if out == nil {
			if d := r.data(); d == nil || !*d {
				t.Fatalf("success for %q without data true", b)
			}
			if n, err := strconv.Atoi(string(r.Code)); err != nil || n != 200 {
				t.Fatalf("success for %q with code %q", b, r.Code)
			}
			return
		}
		var pe *providers.Error
		if !errors.As(out, &pe) {
			t.Fatalf("outcome(%q) = %T, want *providers.Error", b, out)
		}
		switch pe.Class {
		case providers.Transient, providers.Permanent, providers.Auth:
		default:
			t.Fatalf("outcome(%q) class %v", b, pe.Class)
		}
		if pe.Provider != Provider || pe.Code == "" || len(pe.Message) > providers.MessageLimit+len("…") || !utf8.ValidString(pe.Message) {
			t.Fatalf("outcome(%q) = %+v", b, pe)
		}
		if !bytes.Contains(b, []byte("secret")) && bytes.Contains([]byte(pe.Error()), []byte("secret")) {
			t.Fatalf("error text %q holds the secret", pe.Error())
		}
	})
}

// FuzzEncodeRequest checks that any order ID reaches the body as its exact
// decimal digits, that empty optional fields are left out, and that the body
// decodes back to the order.
func FuzzEncodeRequest(f *testing.F) {
	f.Add(int64(2542285634920880794), "不想要了", "")
	f.Add(int64(1), "", "remark")
	f.Add(int64(9223372036854775807), "a&b<c>", `"quoted"`)
	f.Fuzz(func(t *testing.T, id int64, reason, remark string) {
		b, err := encodeRequest(Order{OrderID: id, CancelReason: reason, Remark: remark})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`"orderId":`+strconv.FormatInt(id, 10)+",")) &&
			!bytes.HasSuffix(b, []byte(`"orderId":`+strconv.FormatInt(id, 10)+"}")) {
			t.Fatalf("body %s does not hold orderId %d byte-exact", b, id)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var got map[string]any
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("body %s does not decode: %v", b, err)
		}
		if got["orderId"] != json.Number(strconv.FormatInt(id, 10)) || got["webSite"] != "1688" {
			t.Fatalf("decoded %v from %s", got, b)
		}
		for key, v := range map[string]string{"cancelReason": reason, "remark": remark} {
			sv, present := got[key]
			if present != (v != "") {
				t.Fatalf("%s present=%t for %q in %s", key, present, v, b)
			}
			if present && utf8.ValidString(v) && sv != v {
				t.Fatalf("%s decoded as %q, want %q", key, sv, v)
			}
		}
	})
}
