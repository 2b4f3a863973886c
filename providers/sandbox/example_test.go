package sandbox_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/cancelworker/cancelworker/providers/sandbox"
)

// A test scripts one transient failure for an order, then looks at what the
// fake upstream received.
func Example() {
	sb := sandbox.New(sandbox.Config{
		Meari: sandbox.MeariAccount{PartnerKey: "pk", PartnerSecret: "example-secret", SourceApp: 72},
	})
	srv := httptest.NewServer(sb)
	defer srv.Close()
	sb.Script("meari", "01582572KS0209053", sandbox.MeariCode("1005"), sandbox.OK())

	for i := range 2 {
		r := meari.Request{
			SourceApp: 72, UserAccount: "test@123.com", PartnerKey: "pk", OrderType: 1, OrderNum: "01582572KS0209053",
			SignatureMethod: meari.SignatureMethod, SignatureVersion: meari.SignatureVersion,
			SignatureNonce: "nonce-" + strconv.Itoa(i), Timestamp: strconv.FormatInt(time.Now().UnixMilli(), 10),
		}
		r.Signature = meari.Sign(r, "example-secret", meari.SignSorted)
		body, _ := json.Marshal(r)
		resp, err := http.Post(srv.URL+"/v3/third/sdk/order/cancel", "application/json", bytes.NewReader(body))
		if err != nil {
			fmt.Println(err)
			return
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(string(answer))
	}
	for _, c := range sb.Calls("meari", "01582572KS0209053") {
		fmt.Println(c.Outcome, c.SignatureOK)
	}
	fmt.Println(sb.Cancelled("meari", "01582572KS0209053"))
	// Output:
	// {"resultCode":"1005"}
	// {"resultCode":"1001"}
	// resultCode 1005 true
	// ok true
	// true
}
