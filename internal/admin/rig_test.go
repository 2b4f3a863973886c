package admin_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/admin"
	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/httpserve"
	"github.com/cancelworker/cancelworker/internal/metrics"
	"github.com/cancelworker/cancelworker/internal/workertest"
)

// rig is a running worker with metrics and the admin server, against a
// real Redis and the sandbox upstream, wired as cmd/worker wires them.
type rig struct {
	*workertest.Rig
	m    *metrics.Metrics
	adm  *admin.Server
	base string // the admin server's URL
}

func newRig(t *testing.T, ac config.Admin) *rig {
	t.Helper()
	r := &rig{}
	r.Rig = workertest.Start(t, workertest.WithConcurrency(4), func(wr *workertest.Rig) {
		m, err := metrics.New(metrics.Options{Redis: wr.RDB, Logger: wr.Options.Logger})
		if err != nil {
			t.Fatalf("metrics.New: %v", err)
		}
		r.m, wr.Options.Observer = m, m
	})
	if ac.Addr == "" {
		ac.Addr = "127.0.0.1:0"
	}
	adm, err := admin.New(admin.Options{
		Config:   ac,
		Redis:    workertest.Conn(r.Redis),
		DLQ:      r.DLQ,
		Enqueuer: r.Enqueuer,
		Metrics:  r.m.Handler(),
		Checks:   []httpserve.Check{httpserve.RedisCheck(r.RDB), admin.WorkerCheck(r.Worker.Running)},
		Observer: r.m,
		Logger:   r.Options.Logger,
	})
	if err != nil {
		t.Fatalf("admin.New: %v", err)
	}
	if err := adm.Start(); err != nil {
		t.Fatalf("admin Start: %v", err)
	}
	t.Cleanup(func() {
		// t.Context() is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := adm.Shutdown(ctx); err != nil {
			t.Errorf("admin Shutdown: %v", err)
		}
	})
	r.adm, r.base = adm, adm.URL()
	return r
}

// get fetches base+path over real HTTP, with basic auth when user is set,
// and returns the status and body.
func get(t *testing.T, base, path, user, password string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// contains fails t unless s holds every one of want.
func contains(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}
