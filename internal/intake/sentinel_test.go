package intake

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/workertest"
)

// TestMainSentinel runs the intake through a real Sentinel set: it finds
// the master, accepts a cancellation and reports ready.
func TestMainSentinel(t *testing.T) {
	t.Parallel()
	s := redistest.NewSentinel(t)
	env := map[string]string{"REDIS_SENTINEL_ADDRS": strings.Join(s.Addrs, ","), "REDIS_MASTER_NAME": redistest.MasterName}
	ctx, cancel := context.WithCancel(t.Context())
	stderr := newLogWatcher()
	exited := make(chan int, 1)
	go func() {
		exited <- Main(ctx, []string{"--addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, stderr)
	}()
	defer func() { cancel(); <-exited }()
	var base string
	select {
	case a := <-stderr.listening:
		base = "http://" + a
	case code := <-exited:
		t.Fatalf("exited %d:\n%s", code, stderr)
	case <-time.After(20 * time.Second):
		t.Fatalf("did not listen:\n%s", stderr)
	}
	resp, err := http.Post(base+"/v1/cancellations", "application/json", strings.NewReader(`{"provider":"pandapon","orderId":42}`))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(b.String(), `"state":"queued"`) {
		t.Fatalf("POST through Sentinel: %d %s", resp.StatusCode, b.String())
	}
	workertest.Wait(t, "/readyz", func() (bool, string) {
		r, err := http.Get(base + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		_ = r.Body.Close()
		return r.StatusCode == 200, fmt.Sprint(r.StatusCode)
	})
	if !strings.Contains(stderr.String(), `"redis":"sentinel `+redistest.MasterName+`@`) {
		t.Errorf("the start-up line does not name the Sentinel connection:\n%s", stderr)
	}
}
