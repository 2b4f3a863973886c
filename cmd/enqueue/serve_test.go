package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/workertest"
)

// TestServeAlias checks that "enqueue serve" still runs the intake for the
// release it is kept: the global flags before it pass through (--json is
// dropped), the intake's own flags after it, and so do the exit codes.
func TestServeAlias(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	pr, pw := io.Pipe()
	exited := make(chan int, 1)
	go func() {
		code := runIO(ctx, []string{"--json", "--redis-url", h.srv.URL, "--timeout", "5s", "serve", "--addr", "127.0.0.1:0"},
			strings.NewReader(""), io.Discard, pw, func(k string) string { return h.env[k] })
		_ = pw.Close()
		exited <- code
	}()
	addr, _ := workertest.LogAddr(pr, "listening")
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case code := <-exited:
		t.Fatalf("serve exited with %d before listening", code)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not listen within 10s")
	}
	resp, err := http.Post(base+"/v1/cancellations", "application/json", strings.NewReader(`{"provider":"pandapon","orderId":2542285634920880794}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("POST through the alias: %d, want 202", resp.StatusCode)
	}
	h.taskInfo("cancel:pandapon", "pandapon:2542285634920880794")
	stop()
	if code := <-exited; code != exitOK {
		t.Errorf("after SIGTERM: exit %d, want 0", code)
	}

	// A bad setting is the intake's usage error.
	r := h.run("serve", "--addr", "x")
	if r.code != exitUsage || !strings.Contains(r.stderr, "--addr: must be host:port") {
		t.Errorf("bad --addr through the alias: want exit 2 naming it, got %s", r)
	}
}
