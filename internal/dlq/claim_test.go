package dlq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// pandaTask returns the cancellation task of PandaPon order n.
func pandaTask(t *testing.T, n int64) *asynq.Task {
	t.Helper()
	task, err := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: tasks.OrderID(n)})
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// TestRequeueConcurrent runs two requeues of the same 300 entries at once,
// as two operators would: each entry is requeued exactly once, the other
// requeue says "already requeued", every order has one pending task, and
// nothing is left in the DLQ or its claims.
func TestRequeueConcurrent(t *testing.T) {
	t.Parallel()
	rdb := redistest.New(t).Client(t)
	s := New(rdb)
	const n = 300
	ids := make([]string, n)
	for i := range ids {
		ids[i] = deadLetter(t, rdb, s, pandaTask(t, int64(1000+i))).ID
	}
	enq := tasks.NewEnqueuer(rdb, tasks.Shards{})
	type tally struct{ requeued, already int }
	results := make([]tally, 2)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, id := range ids {
				_, err := Requeue(t.Context(), s, enq, id, RequeueOptions{By: fmt.Sprintf("operator %d", w)})
				switch {
				case err == nil:
					results[w].requeued++
				case errors.Is(err, ErrAlreadyRequeued):
					results[w].already++
				default:
					t.Errorf("requeue %s: %v", id, err)
				}
			}
		}()
	}
	wg.Wait()
	if got := results[0].requeued + results[1].requeued; got != n {
		t.Errorf("requeued %d in all (%+v), want each of %d exactly once", got, results, n)
	}
	if got := results[0].already + results[1].already; got != n {
		t.Errorf("already requeued %d in all (%+v), want %d: the loser of each entry says so", got, results, n)
	}
	pending, err := rdb.LRange(t.Context(), "asynq:{"+tasks.QueuePandaPon+"}:pending", 0, -1).Result()
	if err != nil || len(pending) != n {
		t.Errorf("%d pending tasks (%v), want %d, one per order", len(pending), err, n)
	}
	if c, _ := s.Count(t.Context(), ""); c != 0 {
		t.Errorf("DLQ %d entries after the requeues, want 0", c)
	}
	if c := rdb.HLen(t.Context(), s.claimsKey()).Val() + rdb.ZCard(t.Context(), s.claimedAtKey()).Val(); c != 0 {
		t.Errorf("%d claims left, want none", c)
	}
	tr, ok, err := s.Trail(t.Context(), ids[0])
	if err != nil || !ok || tr.Action != TrailRequeued || !strings.HasPrefix(tr.By, "operator ") {
		t.Errorf("trail %+v, %v, %v; want requeued by an operator", tr, ok, err)
	}
	t.Logf("operator 0: %+v, operator 1: %+v", results[0], results[1])
}

// TestRequeueLiveTask requeues entries whose orders' tasks came back
// another way (the monitoring UI's Run): a task waiting or completed is
// never replaced, the stale entry is dropped with a trail saying what was
// found; --force replaces a completed one but never an active one.
func TestRequeueLiveTask(t *testing.T) {
	t.Parallel()
	rdb := redistest.New(t).Client(t)
	s := New(rdb)
	enq := tasks.NewEnqueuer(rdb, tasks.Shards{})
	insp := asynq.NewInspectorFromRedisClient(rdb)
	q := tasks.QueuePandaPon

	// Run from the archive: pending again.
	pending := deadLetter(t, rdb, s, pandaTask(t, 1))
	if err := insp.RunTask(q, pending.ID); err != nil {
		t.Fatal(err)
	}
	res, err := Requeue(t.Context(), s, enq, pending.ID, RequeueOptions{By: "test"})
	if err != nil || res.Trail != TrailAlreadyQueued || res.State != tasks.StatePending || !res.AlreadyQueued {
		t.Errorf("requeue with the task pending: %+v, %v; want already queued, nothing enqueued", res, err)
	}
	if n := rdb.LLen(t.Context(), "asynq:{"+q+"}:pending").Val(); n != 1 {
		t.Errorf("%d pending tasks, want the one that was there", n)
	}

	// Run and completed: the order is cancelled.
	done := deadLetter(t, rdb, s, pandaTask(t, 2))
	completeTask(t, rdb, q, done.ID)
	res, err = Requeue(t.Context(), s, enq, done.ID, RequeueOptions{By: "test"})
	if err != nil || res.Trail != TrailAlreadyCancelled || res.CompletedAt.IsZero() {
		t.Errorf("requeue with the task completed: %+v, %v; want already cancelled, with its time", res, err)
	}
	if info, err := insp.GetTaskInfo(q, done.ID); err != nil || info.State != asynq.TaskStateCompleted {
		t.Errorf("the completed task after the requeue: %+v, %v; want it untouched", info, err)
	}
	tr, _, _ := s.Trail(t.Context(), done.ID)
	if tr.Action != TrailAlreadyCancelled || tr.CancelledAt.IsZero() || !strings.Contains(tr.String(), "already cancelled") {
		t.Errorf("trail %+v (%s), want already cancelled with its time", tr, tr)
	}
	for _, id := range []string{pending.ID, done.ID} {
		if _, err := s.Get(t.Context(), id); !errors.Is(err, ErrNotFound) {
			t.Errorf("stale entry %s: %v, want dropped", id, err)
		}
	}

	// --force replaces a completed task, never an active one.
	forced := deadLetter(t, rdb, s, pandaTask(t, 3))
	completeTask(t, rdb, q, forced.ID)
	res, err = Requeue(t.Context(), s, enq, forced.ID, RequeueOptions{Force: true, By: "test"})
	if err != nil || !res.Replaced || res.State != tasks.StateCompleted {
		t.Errorf("forced requeue over a completed task: %+v, %v; want it replaced", res, err)
	}
	active := deadLetter(t, rdb, s, pandaTask(t, 4))
	if err := rdb.HSet(t.Context(), taskstore.TaskKey(q, active.ID), "state", "active").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := Requeue(t.Context(), s, enq, active.ID, RequeueOptions{Force: true}); !errors.Is(err, tasks.ErrActive) {
		t.Errorf("forced requeue over an active task: %v, want ErrActive", err)
	}
	if e, err := s.Get(t.Context(), active.ID); err != nil || e.Seq != active.Seq {
		t.Errorf("entry after the refused forced requeue: %+v, %v; want it back, as it was", e, err)
	}
}

// completeTask moves archived task id of queue to completed, as asynq
// does when a run succeeds.
func completeTask(t *testing.T, rdb *redis.Client, queue, id string) {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if err := insp.RunTask(queue, id); err != nil {
		t.Fatal(err)
	}
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Queues: map[string]int{queue: 1}, Concurrency: 1, LogLevel: asynq.FatalLevel})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := insp.GetTaskInfo(queue, id)
		if err == nil && info.State == asynq.TaskStateCompleted {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s not completed: %+v, %v", id, info, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRequeueEnqueueFails: when the enqueue fails after the claim, the
// entry is put back as it was.
func TestRequeueEnqueueFails(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	rdb := srv.Client(t)
	s := New(rdb)
	e := deadLetter(t, rdb, s, pandaTask(t, 9))
	down := srv.Client(t)
	_ = down.Close()
	_, err := Requeue(t.Context(), s, tasks.NewEnqueuer(down, tasks.Shards{}), e.ID, RequeueOptions{})
	if err == nil || !strings.Contains(err.Error(), "entry kept") {
		t.Fatalf("requeue with the enqueue failing: %v, want an error saying the entry is kept", err)
	}
	if got, err := s.Get(t.Context(), e.ID); err != nil || got.Seq != e.Seq {
		t.Errorf("entry after the failed requeue: %+v, %v; want it back", got, err)
	}
	if ids, _ := s.IDs(t.Context(), "pandapon"); len(ids) != 1 {
		t.Errorf("provider index %v, want the entry back in it", ids)
	}
	if c := rdb.HLen(t.Context(), s.claimsKey()).Val(); c != 0 {
		t.Errorf("%d claims left, want none", c)
	}
}

// TestSettleClaim: a requeuer that died between its claim and its enqueue
// leaves a claim; settled, the entry goes back when the task is still
// archived, and the claim is released as requeued when the task got in.
func TestSettleClaim(t *testing.T) {
	t.Parallel()
	rdb := redistest.New(t).Client(t)
	s := New(rdb)
	stuck := deadLetter(t, rdb, s, pandaTask(t, 21))
	got := deadLetter(t, rdb, s, pandaTask(t, 22))
	for _, e := range []Entry{stuck, got} {
		_, raw, err := s.get(t.Context(), e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := s.claim(t.Context(), e, raw); !ok || err != nil {
			t.Fatalf("claim %s: %v, %v", e.ID, ok, err)
		}
	}
	// The Reconciler must count a claimed entry as there.
	if missing, err := s.Missing(t.Context(), []string{stuck.ID, got.ID, "pandapon:404"}); err != nil || len(missing) != 1 || missing[0] != "pandapon:404" {
		t.Errorf("Missing = %v, %v; want only pandapon:404", missing, err)
	}
	if err := asynq.NewInspectorFromRedisClient(rdb).RunTask(tasks.QueuePandaPon, got.ID); err != nil {
		t.Fatal(err)
	}
	claims, err := s.StaleClaims(t.Context(), -time.Second, 10)
	if err != nil || len(claims) != 2 {
		t.Fatalf("stale claims %+v, %v; want 2", claims, err)
	}
	if recent, _ := s.StaleClaims(t.Context(), time.Minute, 10); len(recent) != 0 {
		t.Errorf("claims older than a minute: %d, want none", len(recent))
	}
	for _, c := range claims {
		state := tasks.StateArchived
		if c.Entry.ID == got.ID {
			state = tasks.StatePending
		}
		restored, err := s.SettleClaim(t.Context(), c, state)
		if err != nil || restored != (c.Entry.ID == stuck.ID) {
			t.Errorf("settle %s (task %s): restored %v, %v", c.Entry.ID, state, restored, err)
		}
	}
	if e, err := s.Get(t.Context(), stuck.ID); err != nil || e.Seq != stuck.Seq {
		t.Errorf("the stuck requeue's entry: %+v, %v; want it back", e, err)
	}
	if _, err := s.Get(t.Context(), got.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("the requeue that got its task in: entry %v, want gone", err)
	}
	if tr, ok, _ := s.Trail(t.Context(), got.ID); !ok || tr.Action != TrailRequeued {
		t.Errorf("trail %+v, want requeued", tr)
	}
}

// TestResolve: a success removes an entry filed before it, leaves one
// filed after it, and adds its time to the trail of the entry a task was
// requeued from; tasks with neither cost one round trip.
func TestResolve(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t)
	now := time.Now().UTC()
	before, err := s.Put(t.Context(), entry("pandapon:31", "pandapon", now.Add(-time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	after, err := s.Put(t.Context(), entry("pandapon:32", "pandapon", now.Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	requeued := deadLetter(t, rdb, s, pandaTask(t, 33))
	if _, err := Requeue(t.Context(), s, tasks.NewEnqueuer(rdb, tasks.Shards{}), requeued.ID, RequeueOptions{By: "test"}); err != nil {
		t.Fatal(err)
	}
	removed, err := s.Resolve(t.Context(), []Done{
		{ID: before.ID, At: now}, {ID: after.ID, At: now}, {ID: requeued.ID, RequeuedFrom: requeued.Seq, At: now}, {ID: "pandapon:34", At: now},
	})
	if err != nil || len(removed) != 1 || removed[0].ID != before.ID {
		t.Fatalf("Resolve removed %+v, %v; want only %s", removed, err, before.ID)
	}
	if tr, ok, _ := s.Trail(t.Context(), before.ID); !ok || tr.Action != TrailCancelled || !tr.CancelledAt.Equal(now) {
		t.Errorf("trail of the removed entry %+v, want cancelled at %s", tr, now)
	}
	if _, err := s.Get(t.Context(), after.ID); err != nil {
		t.Errorf("entry filed after the success: %v, want kept", err)
	}
	tr, ok, _ := s.Trail(t.Context(), requeued.ID)
	if !ok || tr.Action != TrailRequeued || !tr.CancelledAt.Equal(now) || tr.Seq != requeued.Seq {
		t.Errorf("trail of the requeued entry %+v, want requeued from %d, cancelled at %s", tr, requeued.Seq, now)
	}
	if want := fmt.Sprintf("dead-letter entry %d (permanent) requeued by test at ", requeued.Seq); !strings.HasPrefix(tr.String(), want) || !strings.Contains(tr.String(), "; cancelled at ") {
		t.Errorf("trail says %q, want %q…; cancelled at …", tr, want)
	}
	if ttl := rdb.PTTL(t.Context(), s.trailKey(requeued.ID)).Val(); ttl < TrailTTL-time.Minute {
		t.Errorf("trail TTL %s after the update, want about %s kept", ttl, TrailTTL)
	}
}
