package tasks

import (
	"slices"
	"strconv"
	"testing"

	"github.com/cancelworker/cancelworker/internal/redistest"
)

func TestShards(t *testing.T) {
	t.Parallel()
	if q := (Shards{}).Queue(ProviderMeari, "meari:1:1:A"); q != QueueMeari {
		t.Errorf("one shard: queue %q, want %q", q, QueueMeari)
	}
	if qs := (Shards{Meari: 1}).Queues(ProviderMeari); !slices.Equal(qs, []string{QueueMeari}) {
		t.Errorf("one shard: queues %v", qs)
	}
	s := Shards{Meari: 3}
	if qs := s.Queues(ProviderMeari); !slices.Equal(qs, []string{"cancel:meari:0", "cancel:meari:1", "cancel:meari:2", QueueMeari}) {
		t.Errorf("three shards: queues %v", qs)
	}
	if qs := s.Queues(ProviderPandaPon); !slices.Equal(qs, []string{QueuePandaPon}) {
		t.Errorf("pandapon unsharded: queues %v", qs)
	}
	if qs := s.All(); len(qs) != 5 {
		t.Errorf("All = %v", qs)
	}
	if s.Queues("nope") != nil || s.Queue("nope", "x") != "" {
		t.Error("an unknown provider has queues")
	}
	// The hash is part of the contract (other producers may compute it):
	// FNV-1a 32 of the task ID, modulo the count.
	if got := Shard("pandapon:2542285634920880794", 3); got != 1 {
		t.Errorf("Shard(pandapon:2542285634920880794, 3) = %d, want 1 (FNV-1a 1545873052 %% 3)", got)
	}
	if got := (Shards{Meari: 3}).Queue(ProviderMeari, "meari:1:1:ORDER-1"); got != "cancel:meari:2" {
		t.Errorf("queue of meari:1:1:ORDER-1 = %q, want cancel:meari:2", got)
	}
	used := map[string]int{}
	for i := range 300 {
		id := "meari:1:1:" + strconv.Itoa(i)
		q := s.Queue(ProviderMeari, id)
		if q != s.Queue(ProviderMeari, id) {
			t.Fatalf("queue of %s changes", id)
		}
		used[q]++
	}
	for i := range 3 {
		if q := "cancel:meari:" + strconv.Itoa(i); used[q] < 60 {
			t.Errorf("shard %s got %d of 300 orders", q, used[q])
		}
	}
	if s.Of(ProviderMeari) != 3 || s.Of(ProviderPandaPon) != 1 || (Shards{Meari: -2}).Of(ProviderMeari) != 1 {
		t.Error("Of")
	}
}

func TestProviderOfQueue(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		q        string
		provider string
		shard    int
		ok       bool
	}{
		{"cancel:meari", ProviderMeari, -1, true},
		{"cancel:meari:0", ProviderMeari, 0, true},
		{"cancel:pandapon:12", ProviderPandaPon, 12, true},
		{"cancel:meari:02", "", 0, false},
		{"cancel:meari:-1", "", 0, false},
		{"cancel:meari:", "", 0, false},
		{"cancel:mearix", "", 0, false},
		{"default", "", 0, false},
	} {
		p, n, ok := ProviderOfQueue(tt.q)
		if p != tt.provider || n != tt.shard || ok != tt.ok {
			t.Errorf("ProviderOfQueue(%q) = %q, %d, %v; want %q, %d, %v", tt.q, p, n, ok, tt.provider, tt.shard, tt.ok)
		}
	}
}

// TestEnqueueSharded: a sharded Enqueuer puts the order on its shard, and
// the same order again is refused there.
func TestEnqueueSharded(t *testing.T) {
	t.Parallel()
	rdb := redistest.New(t).Client(t)
	enq := NewEnqueuer(rdb, Shards{PandaPon: 4})
	id, _ := ParseOrderID(bigID)
	task, err := NewPandaPonCancelTask(PandaPonCancel{OrderID: id})
	if err != nil {
		t.Fatal(err)
	}
	res, err := enq.Enqueue(t.Context(), task, false)
	if err != nil || res.Queue != "cancel:pandapon:"+strconv.Itoa(Shard(res.TaskID, 4)) || res.AlreadyQueued {
		t.Fatalf("Enqueue = %+v, %v", res, err)
	}
	again, err := enq.Enqueue(t.Context(), task, false)
	if err != nil || !again.AlreadyQueued || again.Queue != res.Queue || again.State != StatePending {
		t.Fatalf("second Enqueue = %+v, %v", again, err)
	}
	if n, _ := rdb.LLen(t.Context(), "asynq:{"+res.Queue+"}:pending").Result(); n != 1 {
		t.Errorf("%s pending = %d, want 1", res.Queue, n)
	}
	if ok, _ := rdb.SIsMember(t.Context(), "asynq:queues", res.Queue).Result(); !ok {
		t.Errorf("%s is not in asynq's queue set", res.Queue)
	}
}
