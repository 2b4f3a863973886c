package intake

import (
	"context"
	"errors"
	"testing"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/redis/go-redis/v9"
)

// meariCancellation is the Cancellation of Meari order num.
func meariCancellation(t *testing.T, num string, force bool) Cancellation {
	t.Helper()
	m := tasks.MeariCancel{SourceApp: 72, UserAccount: "u@x.com", OrderType: 1, OrderNum: num}
	task, err := tasks.NewMeariCancelTask(m)
	if err != nil {
		t.Fatal(err)
	}
	return Cancellation{Provider: tasks.ProviderMeari, Order: m.OrderRef(), TaskID: m.TaskID(), Task: task, Force: force}
}

// TestStreamInOrder submits orders given twice, within a batch and across
// batches, and a forced one amid the others, against a real Redis: each
// outcome is the one the tasks would get enqueued one after the other.
func TestStreamInOrder(t *testing.T) {
	t.Parallel()
	rdb := redistest.New(t).Client(t)
	s := NewStream(NewSubmitter(rdb, tasks.Shards{}, "test"), 4)
	steps := []struct {
		num      string
		force    bool
		state    string
		replaced bool
	}{
		{num: "A", state: StateQueued},
		{num: "B", state: StateQueued},
		{num: "A", state: StateAlreadyQueued}, // the same batch
		{num: "C", state: StateQueued},        // the first batch is full
		{num: "D", state: StateQueued},
		{num: "A", force: true, state: StateQueued, replaced: true},
		{num: "D", state: StateAlreadyQueued}, // after the forced one
		{num: "E", state: StateQueued},
		{num: "E", state: StateAlreadyQueued}, // the next batch
		{num: "B", state: StateAlreadyQueued},
		// A run of forced ones, two of one order: one after the other.
		{num: "G", force: true, state: StateQueued},
		{num: "B", force: true, state: StateQueued, replaced: true},
		{num: "G", force: true, state: StateQueued, replaced: true},
		{num: "G", state: StateAlreadyQueued},
	}
	var tickets []*Ticket
	for _, st := range steps {
		tickets = append(tickets, s.Submit(t.Context(), meariCancellation(t, st.num, st.force)))
	}
	s.Close()
	for i, st := range steps {
		out := tickets[i].Wait()
		if out.Err != nil || out.Submission.State != st.state || out.Submission.Replaced != st.replaced {
			t.Errorf("step %d (%s, force %t): %+v, want state %s, replaced %t", i, st.num, st.force, out, st.state, st.replaced)
		}
	}
	if n, err := rdb.LLen(t.Context(), "asynq:{"+tasks.QueueMeari+"}:pending").Result(); err != nil || n != 6 {
		t.Errorf("%d tasks pending (%v), want 6", n, err)
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err: %v", err)
	}
}

// TestStreamFailures checks that a Redis failure settles each ticket with
// it and is kept for Err, and that a task submitted once the context has
// ended is not sent.
func TestStreamFailures(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	closed := srv.Client(t)
	_ = closed.Close() // every command fails
	s := NewStream(NewSubmitter(closed, tasks.Shards{}, "test"), 2)
	a, b := s.Submit(t.Context(), meariCancellation(t, "F1", false)), s.Submit(t.Context(), meariCancellation(t, "F2", false))
	for _, tk := range []*Ticket{a, b} {
		if out := tk.Wait(); !errors.Is(out.Err, redis.ErrClosed) {
			t.Errorf("outcome: %+v, want redis.ErrClosed", out)
		}
	}
	if err := s.Err(); !errors.Is(err, redis.ErrClosed) {
		t.Errorf("Err: %v, want redis.ErrClosed", err)
	}
	s.Close()

	rdb := srv.Client(t)
	s = NewStream(NewSubmitter(rdb, tasks.Shards{}, "test"), 2)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	f3 := meariCancellation(t, "F3", false)
	if out := s.Submit(ctx, f3).Wait(); !errors.Is(out.Err, context.Canceled) {
		t.Errorf("ended context: %+v, want context.Canceled", out)
	}
	s.Close()
	if n, err := rdb.Exists(t.Context(), taskstore.TaskKey(tasks.QueueMeari, f3.TaskID)).Result(); err != nil || n != 0 {
		t.Errorf("the ended context's task exists (%d, %v)", n, err)
	}
}
