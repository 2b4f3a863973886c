package main

import (
	"strings"
	"testing"

	"github.com/cancelworker/cancelworker/internal/redistest"
)

// TestSentinel enqueues and looks up through a real Sentinel set, by the
// variables and by the flags.
func TestSentinel(t *testing.T) {
	t.Parallel()
	s := redistest.NewSentinel(t)
	addrs := strings.Join(s.Addrs, ",")
	env := map[string]string{"REDIS_SENTINEL_ADDRS": addrs, "REDIS_MASTER_NAME": redistest.MasterName}
	if r := execute(t, env, "pandapon", "--order-id", "77"); r.code != exitOK || !strings.Contains(r.stdout, "queued") {
		t.Fatalf("enqueue through Sentinel (environment): %s", r)
	}
	r := execute(t, nil, "--redis-sentinel-addrs", addrs, "--redis-master-name", redistest.MasterName, "status", "pandapon", "77")
	if r.code != exitOK || !strings.Contains(r.stdout, "pending") {
		t.Fatalf("status through Sentinel (flags): %s", r)
	}
	if r := execute(t, map[string]string{"REDIS_MASTER_NAME": "m"}, "dlq", "list"); r.code != exitUsage ||
		!strings.Contains(r.stderr, "REDIS_SENTINEL_ADDRS (--redis-sentinel-addrs): is required with REDIS_MASTER_NAME (--redis-master-name)") {
		t.Errorf("a master name alone: %s", r)
	}
}
