package sandbox

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/cancelworker/cancelworker/providers/meari"
)

func FuzzDecodeMeari(f *testing.F) {
	valid := meari.Request{
		SourceApp: 72, UserAccount: "test@123.com", PartnerKey: "test", OrderType: 1, OrderNum: "01582572KS0209053",
		SignatureMethod: meari.SignatureMethod, SignatureVersion: meari.SignatureVersion,
		SignatureNonce: "704", Timestamp: "1667476374574", Signature: "JCiGi4F6vT/4O4cF4dfeGvtRYHQ=",
	}
	b, err := json.Marshal(valid)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"sourceApp":"72","orderType":1.0,"orderNum":7}`))
	f.Add([]byte(`{"sourceApp":99999999999999999999,"orderType":-1}`))
	f.Add([]byte(`{"orderNum":"\u00e9\ud800"}{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, problems := decodeMeari(body)
		if len(problems) > 0 {
			return
		}
		// An accepted body round-trips: encoding the request and reading it
		// again gives the same request, and every field is set.
		again, problems := decodeMeari(mustJSON(t, req))
		if len(problems) > 0 || again != req {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", body, again, problems, req)
		}
		if req.OrderType < 1 || req.OrderType > 3 || req.SourceApp < 0 || req.OrderNum == "" || req.Signature == "" {
			t.Fatalf("accepted %q as %+v", body, req)
		}
	})
}

func FuzzDecodePandaPon(f *testing.F) {
	f.Add(examplePandaPonBody(bigOrderID))
	f.Add(examplePandaPonBody(bigOrderID + ".0"))
	f.Add(examplePandaPonBody(`"` + bigOrderID + `"`))
	f.Add(examplePandaPonBody("2.542285634920880794e18"))
	f.Add(examplePandaPonBody("-1"))
	f.Add(examplePandaPonBody("92233720368547758070"))
	f.Add([]byte(`{"webSite":"1688","orderId":1,"orderId":2}`))
	f.Add([]byte(`{"webSite":"1688","orderId":1,"remark":[],"cancelReason":null}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		order, problems := decodePandaPon(body)
		if bytes.Equal(body, examplePandaPonBody(bigOrderID)) && (order != bigOrderID || len(problems) > 0) {
			t.Fatalf("vendor example read as %q, %v", order, problems)
		}
		if order == "" {
			return
		}
		// The order key is a bare integer token, byte for byte from the body.
		if !isDigits(order) || !bytes.Contains(body, []byte(order)) {
			t.Fatalf("order %q from %q is not digits copied from the body", order, body)
		}
		if _, err := jsonInteger(json.RawMessage(order)); err != nil {
			t.Fatalf("order %q: %v", order, err)
		}
	})
}
