package main

import (
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/workertest"
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

// TestSentinelTLS: with REDIS_TLS and REDIS_TLS_CA_FILE the CLI asks TLS
// Sentinels for the master and talks TLS to it, before and after a
// failover (the replica it elects serves TLS too); without the CA it
// refuses the certificate.
func TestSentinelTLS(t *testing.T) {
	t.Parallel()
	s := redistest.NewSentinel(t, redistest.WithTLS(t))
	env := map[string]string{"REDIS_SENTINEL_ADDRS": strings.Join(s.Addrs, ","), "REDIS_MASTER_NAME": redistest.MasterName,
		"REDIS_TLS": "true", "REDIS_TLS_CA_FILE": s.TLS.CA}
	if r := execute(t, env, "pandapon", "--order-id", "91"); r.code != exitOK || !strings.Contains(r.stdout, "queued") {
		t.Fatalf("enqueue through TLS Sentinels: %s", r)
	}
	s.KillMaster()
	var r result
	workertest.WaitUpTo(t, time.Minute, "an enqueue through the new master", func() (bool, string) {
		r = execute(t, env, "pandapon", "--order-id", "92")
		return r.code == exitOK, r.String()
	})
	if r := execute(t, env, "status", "pandapon", "92"); r.code != exitOK || !strings.Contains(r.stdout, "pending") {
		t.Errorf("status after the failover: %s", r)
	}
	delete(env, "REDIS_TLS_CA_FILE")
	if r := execute(t, env, "status", "pandapon", "92"); r.code != exitFailure || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("without the CA: %s", r)
	}
}
