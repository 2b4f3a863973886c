package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
)

// TestCluster: on a real Redis Cluster with PandaPon's queue in three
// shards, the CLI enqueues to the order's shard, refuses a repeat, finds
// the order's status there, and lists, requeues and purges dead-letter
// entries.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := redistest.NewCluster(t)
	cc := c.Client(t)
	shards := tasks.Shards{PandaPon: 3}
	env := map[string]string{"REDIS_CLUSTER_ADDRS": c.URL(), "PANDAPON_QUEUE_SHARDS": "3"}
	r := execute(t, env, "--json", "pandapon", "--order-id", "77")
	var out enqueueOutput
	if err := json.Unmarshal([]byte(r.stdout), &out); r.code != exitOK || err != nil {
		t.Fatalf("enqueue on the Cluster: %s (%v)", r, err)
	}
	if want := shards.Queue(tasks.ProviderPandaPon, "pandapon:77"); out.Queue != want || out.AlreadyQueued {
		t.Errorf("enqueued to %q (already %v), want its shard %q", out.Queue, out.AlreadyQueued, want)
	}
	if r := execute(t, env, "pandapon", "--order-id", "77"); r.code != exitOK || !strings.Contains(r.stdout, "already queued") {
		t.Errorf("repeat: %s", r)
	}
	if r := execute(t, nil, "--redis-cluster-addrs", c.URL(), "--pandapon-queue-shards", "3", "status", "pandapon", "77"); r.code != exitOK || !strings.Contains(r.stdout, "pending") {
		t.Errorf("status (flags): %s", r)
	}

	// Two dead-lettered orders, as the worker files them from their shard.
	store := dlq.New(cc)
	var ids []string
	for _, order := range []string{"78", "79"} {
		id, _ := tasks.ParseOrderID(order)
		task, err := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: id})
		if err != nil {
			t.Fatal(err)
		}
		taskID := "pandapon:" + order
		if _, err := store.Put(t.Context(), dlq.Entry{ID: taskID, Provider: tasks.ProviderPandaPon, Order: order, TaskType: task.Type(),
			Queue: shards.Queue(tasks.ProviderPandaPon, taskID), Payload: task.Payload(), Reason: dlq.ReasonPermanent, Message: "refused", Attempts: 1}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, taskID)
	}
	if r := execute(t, env, "dlq", "list"); r.code != exitOK || !strings.Contains(r.stdout, ids[0]) || !strings.Contains(r.stdout, ids[1]) {
		t.Fatalf("dlq list: %s", r)
	}
	if r := execute(t, env, "dlq", "requeue", ids[0]); r.code != exitOK {
		t.Fatalf("dlq requeue: %s", r)
	}
	insp := asynq.NewInspectorFromRedisClient(cc)
	if info, err := insp.GetTaskInfo(shards.Queue(tasks.ProviderPandaPon, ids[0]), ids[0]); err != nil || info.State != asynq.TaskStatePending {
		t.Errorf("requeued task on its shard: %+v, %v", info, err)
	}
	if r := execute(t, env, "dlq", "purge", "--yes", ids[1]); r.code != exitOK || r.stdout != "purged 1 entry\n" {
		t.Errorf("dlq purge: %s", r)
	}
	if n, err := store.Count(t.Context(), ""); err != nil || n != 0 {
		t.Errorf("entries left: %d, %v", n, err)
	}

	for _, bad := range []struct{ env, want string }{
		{"0", "PANDAPON_QUEUE_SHARDS (--pandapon-queue-shards): must be at least 1, got 0"},
		{"65", "PANDAPON_QUEUE_SHARDS (--pandapon-queue-shards): must be at most 64, got 65"},
		{"three", "PANDAPON_QUEUE_SHARDS (--pandapon-queue-shards): "},
	} {
		r := execute(t, map[string]string{"REDIS_CLUSTER_ADDRS": c.URL(), "PANDAPON_QUEUE_SHARDS": bad.env}, "status", "pandapon", "77")
		if r.code != exitUsage || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("PANDAPON_QUEUE_SHARDS=%s: %s, want %q", bad.env, r, bad.want)
		}
	}
}

// TestClusterTLS: with REDIS_TLS and REDIS_TLS_CA_FILE the CLI talks TLS to
// every node of a Cluster that serves only certificates of its own CA;
// without the CA it refuses the certificate, and without TLS it gets no
// answer it can use.
func TestClusterTLS(t *testing.T) {
	t.Parallel()
	c := redistest.NewCluster(t, redistest.WithTLS(t))
	env := map[string]string{"REDIS_CLUSTER_ADDRS": c.URL(), "REDIS_TLS": "true", "REDIS_TLS_CA_FILE": c.TLS.CA, "PANDAPON_QUEUE_SHARDS": "3"}
	for _, order := range []string{"81", "82", "83", "84"} { // over more than one node
		if r := execute(t, env, "pandapon", "--order-id", order); r.code != exitOK || !strings.Contains(r.stdout, "queued") {
			t.Fatalf("enqueue over TLS: %s", r)
		}
	}
	if r := execute(t, env, "status", "pandapon", "83"); r.code != exitOK || !strings.Contains(r.stdout, "pending") {
		t.Errorf("status over TLS: %s", r)
	}
	delete(env, "REDIS_TLS_CA_FILE")
	if r := execute(t, env, "status", "pandapon", "83"); r.code != exitFailure || !strings.Contains(r.stderr, "unreachable") || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("without the CA: %s", r)
	}
	if r := execute(t, map[string]string{"REDIS_CLUSTER_ADDRS": c.URL()}, "status", "pandapon", "83"); r.code != exitFailure || !strings.Contains(r.stderr, "unreachable") {
		t.Errorf("without TLS: %s", r)
	}
}
