package meari_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/cancelworker/cancelworker/providers"
	"github.com/cancelworker/cancelworker/providers/meari"
)

func Example() {
	// A stand-in upstream that answers "server not found" (4001).
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"resultCode":4001}`)
	}))
	defer srv.Close()

	c, err := meari.New(meari.Config{
		BaseURL:       srv.URL,
		PartnerKey:    "partner-key",
		PartnerSecret: "partner-secret",
		SourceApp:     72,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	err = c.Cancel(context.Background(), meari.Order{UserAccount: "test@123.com", OrderType: 1, OrderNum: "01582572KS0209053"})
	var pe *providers.Error
	if errors.As(err, &pe) {
		fmt.Println(pe.Class, pe.Code, pe.Unknown)
	}
	// Output: permanent 4001 false
}
