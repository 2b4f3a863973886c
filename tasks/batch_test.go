package tasks

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
	"github.com/hibiken/asynq"
)

func meariTask(t *testing.T, num string) taskstore.Message {
	t.Helper()
	task, err := NewMeariCancelTask(MeariCancel{SourceApp: 72, UserAccount: "u@x.com", OrderType: 1, OrderNum: num})
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire(task, Shards{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestBatcherConcurrent enqueues many orders at once, some twice: each
// order is enqueued once, and each call says truly what it did.
func TestBatcherConcurrent(t *testing.T) {
	rdb := redistest.New(t).Client(t)
	e := NewEnqueuer(rdb, Shards{})
	const orders = 600
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		enqueued = map[string]int{}
		already  = map[string]int{}
	)
	for i := range 2 * orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			num := fmt.Sprintf("C%d", i%orders)
			task, err := NewMeariCancelTask(MeariCancel{SourceApp: 72, UserAccount: "u@x.com", OrderType: 1, OrderNum: num})
			if err != nil {
				t.Error(err)
				return
			}
			res, err := e.Enqueue(t.Context(), task, false)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Error(err)
			case res.AlreadyQueued:
				already[num]++
			default:
				enqueued[num]++
			}
		}()
	}
	wg.Wait()
	for i := range orders {
		num := fmt.Sprintf("C%d", i)
		if enqueued[num] != 1 || already[num] != 1 {
			t.Errorf("order %s: enqueued %d times, already queued %d times; want once each", num, enqueued[num], already[num])
		}
	}
	if n, err := rdb.LLen(t.Context(), "asynq:{"+QueueMeari+"}:pending").Result(); err != nil || n != orders {
		t.Errorf("%d tasks pending (%v), want %d", n, err, orders)
	}
}

// TestBatcherCancelledWhileWaiting checks that a call whose context ends
// before its round trip leaves nothing enqueued and says so, and that a
// call already sent reports its real outcome.
func TestBatcherCancelledWhileWaiting(t *testing.T) {
	rdb := redistest.New(t).Client(t)
	store := taskstore.New(rdb)
	b := &batcher{store: store}
	b.senders = batchSenders // every sender busy: calls wait in pending
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan taskstore.EnqueueResult)
	go func() { done <- b.enqueue(ctx, meariTask(t, "W1")) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		n := len(b.pending)
		b.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the call never reached the pending list")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if r := <-done; !errors.Is(r.Err, context.Canceled) || r.Enqueued {
		t.Fatalf("cancelled waiting call: %+v, want context.Canceled and not enqueued", r)
	}
	b.mu.Lock()
	left := len(b.pending)
	b.senders = 0
	b.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d calls left pending after the cancellation", left)
	}
	if n, err := rdb.Exists(t.Context(), taskstore.TaskKey(QueueMeari, "meari:72:1:W1")).Result(); err != nil || n != 0 {
		t.Fatalf("the cancelled call's task exists (%d, %v)", n, err)
	}
	// With a sender free, the next call goes out and is enqueued.
	if r := b.enqueue(t.Context(), meariTask(t, "W1")); r.Err != nil || !r.Enqueued {
		t.Fatalf("call after: %+v", r)
	}
}

// TestEnqueueBatch enqueues more tasks than one round trip carries, some
// orders twice and one task that cannot be enqueued: every result is the
// one its task's own Enqueue would give, in order, and each order is
// enqueued once. A batch whose context has ended enqueues nothing.
func TestEnqueueBatch(t *testing.T) {
	rdb := redistest.New(t).Client(t)
	e := NewEnqueuer(rdb, Shards{})
	const orders = batchMax + 44 // two round trips
	var ts []*asynq.Task
	for i := range orders + 20 {
		task, err := NewMeariCancelTask(MeariCancel{SourceApp: 72, UserAccount: "u@x.com", OrderType: 1, OrderNum: fmt.Sprintf("B%d", i%orders)})
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, task)
	}
	bad := len(ts)
	ts = append(ts, asynq.NewTask("not:a:cancel", nil))
	res, errs := e.EnqueueBatch(t.Context(), ts)
	for i := range ts {
		switch {
		case i == bad:
			if errs[i] == nil || !strings.Contains(errs[i].Error(), "not:a:cancel") {
				t.Errorf("task %d of an unknown type: %+v, %v", i, res[i], errs[i])
			}
		case errs[i] != nil:
			t.Errorf("task %d: %v", i, errs[i])
		case res[i].AlreadyQueued != (i >= orders) || res[i].TaskID != fmt.Sprintf("meari:72:1:B%d", i%orders) || res[i].Queue != QueueMeari:
			t.Errorf("task %d: %+v", i, res[i])
		case i >= orders && res[i].State != StatePending:
			t.Errorf("task %d, an order given again: state %q, want %q", i, res[i].State, StatePending)
		}
	}
	if n, err := rdb.LLen(t.Context(), "asynq:{"+QueueMeari+"}:pending").Result(); err != nil || n != orders {
		t.Errorf("%d tasks pending (%v), want %d", n, err, orders)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	task, err := NewMeariCancelTask(MeariCancel{SourceApp: 72, UserAccount: "u@x.com", OrderType: 1, OrderNum: "GONE"})
	if err != nil {
		t.Fatal(err)
	}
	if _, errs := e.EnqueueBatch(ctx, []*asynq.Task{task}); !errors.Is(errs[0], context.Canceled) {
		t.Errorf("ended context: %v, want context.Canceled", errs[0])
	}
	if n, err := rdb.Exists(t.Context(), taskstore.TaskKey(QueueMeari, "meari:72:1:GONE")).Result(); err != nil || n != 0 {
		t.Errorf("the ended batch's task exists (%d, %v)", n, err)
	}
}
