package taskstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// queue is a real queue name, so that key sizes, and the memory measured, are
// those of production.
const queue = "cancel:meari"

// message is a task as the tasks package builds them.
func message(id string) taskstore.Message {
	return taskstore.Message{
		Type: "order:cancel:test", Payload: []byte(`{"order_id":2542285634920880794}`),
		Headers: map[string]string{"cancelworker-retention": "3600", "b": "2"},
		ID:      id, Queue: queue, Retry: 1000, Timeout: 2 * time.Minute, Retention: time.Hour,
	}
}

func newStore(t *testing.T) (*taskstore.Store, *redis.Client, *asynq.Inspector) {
	t.Helper()
	rdb := redistest.New(t).Client(t)
	return taskstore.New(rdb), rdb, asynq.NewInspectorFromRedisClient(rdb)
}

// TestMessageMatchesAsynq enqueues the same task through asynq's own
// client and through Enqueue: the stored messages decode alike, and
// asynq's Inspector reads ours with every field.
func TestMessageMatchesAsynq(t *testing.T) {
	t.Parallel()
	s, rdb, insp := newStore(t)
	ctx := t.Context()
	m := message("by-us")
	theirs := asynq.NewTaskWithHeaders(m.Type, m.Payload, m.Headers,
		asynq.TaskID("by-asynq"), asynq.Queue(queue), asynq.MaxRetry(m.Retry), asynq.Timeout(m.Timeout), asynq.Retention(m.Retention))
	if _, err := asynq.NewClientFromRedisClient(rdb).EnqueueContext(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Enqueue(ctx, m); err != nil || !ok {
		t.Fatalf("Enqueue = %v, %v", ok, err)
	}
	raw := func(id string) []byte {
		b, err := rdb.HGet(ctx, taskstore.TaskKey(queue, id), "msg").Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	got, err := taskstore.DecodeMessage(raw("by-asynq"))
	if err != nil {
		t.Fatal(err)
	}
	ours, err := taskstore.DecodeMessage(raw("by-us"))
	if err != nil {
		t.Fatal(err)
	}
	got.ID = "by-us"
	if fmt.Sprint(got) != fmt.Sprint(ours) {
		t.Errorf("asynq's message decodes to\n%+v\nours to\n%+v", got, ours)
	}
	if !bytes.Equal(taskstore.Message(got).Encode(), raw("by-us")) {
		t.Errorf("encoding asynq's message again does not give our bytes")
	}
	info, err := insp.GetTaskInfo(queue, "by-us")
	if err != nil {
		t.Fatal(err)
	}
	if info.State != asynq.TaskStatePending || info.Type != m.Type || string(info.Payload) != string(m.Payload) || info.MaxRetry != 1000 ||
		info.Timeout != 2*time.Minute || info.Retention != time.Hour || info.Headers["b"] != "2" {
		t.Errorf("Inspector reads our task as %+v", info)
	}
	qi, err := insp.GetQueueInfo(queue)
	if err != nil || qi.Pending != 2 {
		t.Errorf("queue info %+v, %v; want 2 pending", qi, err)
	}
}

// TestMessageRoundTrip covers the fields asynq sets as a task runs.
func TestMessageRoundTrip(t *testing.T) {
	t.Parallel()
	m := message("x")
	m.Retried, m.ErrorMsg, m.LastFailedAt, m.Deadline, m.CompletedAt = 7, "boom", 1700000000, 1700000100, 1700000200
	m.Retry = -1 // int32 sign extension
	got, err := taskstore.DecodeMessage(m.Encode())
	if err != nil || fmt.Sprint(got) != fmt.Sprint(m) {
		t.Fatalf("round trip:\n%+v, %v\nwant\n%+v", got, err, m)
	}
	if _, err := taskstore.DecodeMessage([]byte{0x0a, 0x05, 'a'}); err == nil {
		t.Error("a truncated message decodes")
	}
	if id := taskstore.MessageID(m.Encode()); id != m.ID {
		t.Errorf("MessageID = %q, want %q", id, m.ID)
	}
	if id := taskstore.MessageID([]byte{0x0a, 0x05, 'a'}); id != "" {
		t.Errorf("MessageID of a truncated message = %q, want none", id)
	}
}

// FuzzMessageID holds MessageID to DecodeMessage.
func FuzzMessageID(f *testing.F) {
	m := message("meari:72:1:N1")
	m.ErrorMsg = "boom"
	f.Add(m.Encode())
	f.Add([]byte{0x1a, 0x01, 'x', 0x0a})
	f.Fuzz(func(t *testing.T, b []byte) {
		got := taskstore.MessageID(b)
		if m, err := taskstore.DecodeMessage(b); err == nil && got != m.ID {
			t.Fatalf("MessageID = %q, DecodeMessage's ID %q", got, m.ID)
		}
	})
}

// server runs an asynq server on queue with h, stopped at cleanup.
func server(t *testing.T, rdb *redis.Client, h asynq.HandlerFunc) {
	t.Helper()
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: 20, Queues: map[string]int{queue: 1}, TaskCheckInterval: 10 * time.Millisecond,
		DelayedTaskCheckInterval: 50 * time.Millisecond, LogLevel: asynq.FatalLevel,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Hour },
	})
	if err := srv.Start(h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
}

func waitState(t *testing.T, insp *asynq.Inspector, id string, want asynq.TaskState) {
	t.Helper()
	workertest.WaitState(t, insp, queue, id, want)
}

// TestEnqueueReportsState runs tasks into each state with a real asynq
// server, then enqueues each again: nothing is enqueued and the state is
// told, the compact completed form included.
func TestEnqueueReportsState(t *testing.T) {
	t.Parallel()
	s, rdb, insp := newStore(t)
	ctx := t.Context()
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	server(t, rdb, func(ctx context.Context, task *asynq.Task) error {
		switch id, _ := asynq.GetTaskID(ctx); id {
		case "done":
			return nil
		case "dead":
			return fmt.Errorf("refused: %w", asynq.SkipRetry)
		case "failing":
			return errors.New("transient")
		case "running":
			<-block
		}
		return nil
	})
	for _, id := range []string{"done", "dead", "failing", "running"} {
		if _, ok, err := s.Enqueue(ctx, message(id)); err != nil || !ok {
			t.Fatalf("Enqueue %s = %v, %v", id, ok, err)
		}
	}
	waitState(t, insp, "done", asynq.TaskStateCompleted)
	waitState(t, insp, "dead", asynq.TaskStateArchived)
	waitState(t, insp, "failing", asynq.TaskStateRetry)
	waitState(t, insp, "running", asynq.TaskStateActive)
	for id, want := range map[string]string{"done": "completed", "dead": "archived", "failing": "retry", "running": "active"} {
		state, ok, err := s.Enqueue(ctx, message(id))
		if err != nil || ok || state != want {
			t.Errorf("Enqueue %s again = %q, %v, %v; want %q, not enqueued", id, state, ok, err, want)
		}
	}
	if n, err := s.Compact(ctx, queue, 0, 100); err != nil || n != 1 {
		t.Fatalf("Compact = %d, %v; want 1", n, err)
	}
	state, ok, err := s.Enqueue(ctx, message("done"))
	if err != nil || ok || state != "completed" {
		t.Errorf("Enqueue of a compacted task = %q, %v, %v; want completed, not enqueued", state, ok, err)
	}
	// asynq's own client refuses the ID too: dedupe holds for any producer.
	_, err = asynq.NewClientFromRedisClient(rdb).EnqueueContext(ctx, asynq.NewTask("order:cancel:test", nil, asynq.TaskID("done"), asynq.Queue(queue)))
	if !errors.Is(err, asynq.ErrTaskIDConflict) {
		t.Errorf("asynq client enqueue of a compacted ID: %v, want ErrTaskIDConflict", err)
	}
}

// TestReplace replaces a task in every state but active: the new one is
// pending with the new payload, the old one is gone from its index, and
// asynq's counts agree.
func TestReplace(t *testing.T) {
	t.Parallel()
	s, rdb, insp := newStore(t)
	ctx := t.Context()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	server(t, rdb, func(ctx context.Context, task *asynq.Task) error {
		if strings.Contains(string(task.Payload()), "new") {
			<-release // replaced tasks stay put
			return nil
		}
		switch id, _ := asynq.GetTaskID(ctx); id {
		case "completed", "compacted":
			return nil
		case "archived":
			return asynq.SkipRetry
		case "retry":
			return errors.New("transient")
		case "active":
			<-release
		}
		return nil
	})
	// A scheduled task, put there with asynq's client.
	if _, err := asynq.NewClientFromRedisClient(rdb).EnqueueContext(ctx, asynq.NewTask("order:cancel:test", []byte(`{}`),
		asynq.TaskID("scheduled"), asynq.Queue(queue), asynq.ProcessIn(time.Hour))); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"completed", "compacted", "archived", "retry", "active"} {
		if _, _, err := s.Enqueue(ctx, message(id)); err != nil {
			t.Fatal(err)
		}
	}
	waitState(t, insp, "completed", asynq.TaskStateCompleted)
	waitState(t, insp, "compacted", asynq.TaskStateCompleted)
	waitState(t, insp, "archived", asynq.TaskStateArchived)
	waitState(t, insp, "retry", asynq.TaskStateRetry)
	waitState(t, insp, "active", asynq.TaskStateActive)
	// Compact only the one: the other stays a hash.
	if err := rdb.ZRem(ctx, "asynq:{"+queue+"}:completed", "completed").Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Compact(ctx, queue, 0, 10); err != nil || n != 1 {
		t.Fatalf("Compact = %d, %v", n, err)
	}
	if err := rdb.ZAdd(ctx, "asynq:{"+queue+"}:completed", redis.Z{Score: float64(time.Now().Add(time.Hour).Unix()), Member: "completed"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := insp.PauseQueue(queue); err != nil { // the replacements stay pending
		t.Fatal(err)
	}

	for _, id := range []string{"scheduled", "completed", "compacted", "archived", "retry", "fresh"} {
		m := message(id)
		m.Payload = []byte(`{"new":true}`)
		old, err := s.Replace(ctx, m, time.Hour)
		if err != nil {
			t.Fatalf("Replace %s: %v", id, err)
		}
		want := id
		switch id {
		case "compacted":
			want = "completed"
		case "fresh":
			want = ""
		}
		if old != want {
			t.Errorf("Replace %s: old state %q, want %q", id, old, want)
		}
		info, err := insp.GetTaskInfo(queue, id)
		if err != nil || info.State != asynq.TaskStatePending || string(info.Payload) != `{"new":true}` {
			t.Errorf("after Replace %s: %+v, %v; want pending with the new payload", id, info, err)
		}
	}
	m := message("active")
	if _, err := s.Replace(ctx, m, time.Hour); !errors.Is(err, taskstore.ErrActive) {
		t.Errorf("Replace of an active task: %v, want ErrActive", err)
	}
	qi, err := insp.GetQueueInfo(queue)
	if err != nil {
		t.Fatal(err)
	}
	if qi.Pending != 6 || qi.Scheduled != 0 || qi.Retry != 0 || qi.Archived != 0 || qi.Completed != 0 || qi.Active != 1 {
		t.Errorf("queue after the replacements: %+v; want 6 pending, 1 active, nothing else", qi)
	}
}

// failingHook fails every script call while on is set, as a connection
// lost at that moment would.
type failingHook struct{ on atomic.Bool }

func (h *failingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *failingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *failingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.on.Load() && strings.HasPrefix(cmd.Name(), "eval") && strings.Contains(fmt.Sprint(cmd.Args()), "pending_since") {
			err := errors.New("connection reset by peer")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

// TestReplaceFailureKeepsOldTask fails the replacing call, as a Redis
// connection lost at that moment would: the old task is still there,
// untouched; the next try replaces it.
func TestReplaceFailureKeepsOldTask(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	rdb := srv.Client(t)
	hook := &failingHook{}
	rdb.AddHook(hook)
	s := taskstore.New(rdb)
	insp := asynq.NewInspectorFromRedisClient(srv.Client(t))
	ctx := t.Context()
	if _, _, err := s.Enqueue(ctx, message("t1")); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ZAdd(ctx, "x", redis.Z{}).Err(); err != nil { // the hook lets other calls through
		t.Fatal(err)
	}
	m := message("t1")
	m.Payload = []byte(`{"new":true}`)
	hook.on.Store(true)
	if _, err := s.Replace(ctx, m, time.Hour); err == nil {
		t.Fatal("Replace succeeded through a failing connection")
	}
	info, err := insp.GetTaskInfo(queue, "t1")
	if err != nil || info.State != asynq.TaskStatePending || string(info.Payload) != string(message("t1").Payload) {
		t.Fatalf("after the failed Replace: %+v, %v; want the old task, pending", info, err)
	}
	hook.on.Store(false)
	if _, err := s.Replace(ctx, m, time.Hour); err != nil {
		t.Fatal(err)
	}
	if info, err := insp.GetTaskInfo(queue, "t1"); err != nil || string(info.Payload) != `{"new":true}` {
		t.Fatalf("after Replace: %+v, %v", info, err)
	}
}

// TestRecordFailure walks a task through failed, crashed and cut-short
// runs, with asynq's retry count as each run would see it.
func TestRecordFailure(t *testing.T) {
	t.Parallel()
	s, rdb, _ := newStore(t)
	ctx := t.Context()
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	steps := []struct {
		name             string
		retried          int
		counted, unknown bool
		wantNumber       int
		wantEarlier      bool
	}{
		{name: "first run fails, known outcome", retried: 0, counted: true, wantNumber: 1},
		{name: "second run fails", retried: 1, counted: true, wantNumber: 2},
		{name: "auth failure: asynq does not count it", retried: 2, counted: false, wantNumber: 3},
		// The crashed run was counted by asynq (a lost lease), so it is an
		// attempt; the auth failure is not.
		{name: "a run crashed (retry count 2 was never reported), then this one fails", retried: 3, counted: true, wantNumber: 4, wantEarlier: true},
	}
	for i, st := range steps {
		a, err := s.RecordFailure(ctx, queue, "r1", st.retried, st.counted, st.unknown, t0.Add(time.Duration(i)*time.Minute), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if a.Number != st.wantNumber || a.EarlierUnknown != st.wantEarlier || !a.FirstFailedAt.Equal(t0) {
			t.Errorf("%s: %+v; want number %d, earlier unknown %v, first failure %s", st.name, a, st.wantNumber, st.wantEarlier, t0)
		}
	}
	// A run cut short at shutdown, with the request sent: asynq puts it
	// back uncounted; the next run sees the same retry count.
	if _, err := s.RecordFailure(ctx, queue, "r2", 0, false, true, t0, time.Hour); err != nil {
		t.Fatal(err)
	}
	if a, err := s.RecordFailure(ctx, queue, "r2", 0, false, false, t0, time.Hour); err != nil || !a.EarlierUnknown || a.Number != 1 {
		t.Errorf("after a cut-short run: %+v, %v; want earlier unknown, still attempt 1 (a cut-off uses no attempt)", a, err)
	}
	// A first run that crashed: the next run's retry count is 1, and the
	// record has never been written.
	if a, err := s.RecordFailure(ctx, queue, "r3", 1, true, false, t0, time.Hour); err != nil || !a.EarlierUnknown || a.Number != 2 {
		t.Errorf("after a crashed first run: %+v, %v; want earlier unknown, attempt 2", a, err)
	}
	ttl, err := rdb.PTTL(ctx, taskstore.AttemptKey(queue, "r3")).Result()
	if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("record TTL %s, %v; want about an hour", ttl, err)
	}
}

// TestCompactMemory completes 20,000 tasks through a real asynq server,
// compacts them, and measures what each costs in Redis (INFO memory):
// at most 200 bytes, against about 720 whole. Status and dedupe hold
// throughout.
func TestCompactMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("completes 20,000 tasks")
	}
	t.Parallel()
	srv := redistest.New(t)
	if srv.Kind == redistest.KindMiniredis {
		t.Skip("miniredis reports no memory")
	}
	s, rdb, insp := newStore(t)
	ctx := t.Context()
	const n = 20_000
	used := func() int64 { return redistest.UsedMemory(t, rdb) }
	// Publish the queue and warm the server up before the baseline.
	if _, _, err := s.Enqueue(ctx, message("warm-up")); err != nil {
		t.Fatal(err)
	}
	var done atomic.Int64
	server(t, rdb, func(context.Context, *asynq.Task) error { done.Add(1); return nil })
	for done.Load() < 1 {
		time.Sleep(10 * time.Millisecond)
	}
	base := used()
	for i := range n {
		m := message(fmt.Sprintf("meari:72:1:01582572KS%07d", i))
		if _, _, err := s.Enqueue(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for done.Load() < n+1 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d tasks completed", done.Load()-1, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Wait for the last acknowledgements.
	for {
		qi, err := insp.GetQueueInfo(queue)
		if err == nil && qi.Completed == n+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %+v, %v", qi, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	whole := used()
	compacted := 0
	for {
		c, err := s.Compact(ctx, queue, 0, 500)
		if err != nil {
			t.Fatal(err)
		}
		compacted += c
		if c < 500 {
			break
		}
	}
	if compacted != n+1 {
		t.Fatalf("compacted %d, want %d", compacted, n+1)
	}
	after := used()
	perWhole, perCompact := float64(whole-base)/n, float64(after-base)/n
	t.Logf("Redis memory per completed task (INFO used_memory over %d completions): %.0f bytes as asynq keeps it, %.0f bytes compacted", n, perWhole, perCompact)
	if perCompact > 200 {
		t.Errorf("a compacted completed task costs %.0f bytes, want at most 200", perCompact)
	}
	id := "meari:72:1:01582572KS0012345"
	task, err := s.Peek(ctx, queue, id)
	if err != nil || task.State != "completed" || !task.Compact || task.CompletedAt.IsZero() || time.Since(task.CompletedAt) > 5*time.Minute {
		t.Errorf("Peek of a compacted task: %+v, %v", task, err)
	}
	if state, ok, err := s.Enqueue(ctx, message(id)); err != nil || ok || state != "completed" {
		t.Errorf("Enqueue of a compacted task: %q, %v, %v", state, ok, err)
	}
	ttl, err := rdb.TTL(ctx, taskstore.TaskKey(queue, id)).Result()
	if err != nil || ttl < 55*time.Minute || ttl > time.Hour {
		t.Errorf("compacted task TTL %s, %v; want the hour of retention left", ttl, err)
	}
}

// TestCompactSkipsStrayIndexEntries puts index entries whose task is gone
// or not a task hash ahead of a real completed task: compaction drops
// them and goes on.
func TestCompactSkipsStrayIndexEntries(t *testing.T) {
	t.Parallel()
	s, rdb, _ := newStore(t)
	ctx := t.Context()
	m := message("real")
	m.CompletedAt = time.Now().Add(-time.Hour).Unix()
	if err := rdb.HSet(ctx, taskstore.TaskKey(queue, "real"), "msg", m.Encode(), "state", "completed").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, taskstore.TaskKey(queue, "stray-string"), "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	completed := "asynq:{" + queue + "}:completed"
	for i, id := range []string{"gone", "stray-string", "real"} {
		if err := rdb.ZAdd(ctx, completed, redis.Z{Score: float64(i), Member: id}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Compact(ctx, queue, 0, 10); err != nil || n != 1 {
		t.Fatalf("Compact = %d, %v; want the real task compacted", n, err)
	}
	if left, err := rdb.ZCard(ctx, completed).Result(); err != nil || left != 0 {
		t.Errorf("index entries left: %d, %v; want none", left, err)
	}
}

// TestReplaceRecordTTL replaces a completed task with a zero retention,
// which would expire the marked record at once: it lives RecordTTLFloor.
func TestReplaceRecordTTL(t *testing.T) {
	t.Parallel()
	s, rdb, _ := newStore(t)
	ctx := t.Context()
	m := message("ttl")
	m.CompletedAt = time.Now().Unix()
	if err := rdb.HSet(ctx, taskstore.TaskKey(queue, "ttl"), "msg", m.Encode(), "state", "completed").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Replace(ctx, message("ttl"), 0); err != nil {
		t.Fatal(err)
	}
	task, err := s.Peek(ctx, queue, "ttl")
	if err != nil || !task.Unknown {
		t.Fatalf("after replacing a completed task: %+v, %v; want the record marked", task, err)
	}
	ttl, err := rdb.PTTL(ctx, taskstore.AttemptKey(queue, "ttl")).Result()
	if err != nil || ttl < taskstore.RecordTTLFloor-time.Minute {
		t.Errorf("record TTL %s, %v; want at least %s", ttl, err, taskstore.RecordTTLFloor)
	}
}

// TestEnqueueMany sends several enqueues of two queues in one pipeline:
// they run in order (the second of one ID finds the first), each result
// is its own message's, the queue lists them in order, and they still do
// after Redis has lost its script cache.
func TestEnqueueMany(t *testing.T) {
	t.Parallel()
	s, rdb, insp := newStore(t)
	ctx := t.Context()
	for round, flush := range []bool{false, true} {
		if flush {
			if err := rdb.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		a, b, c := fmt.Sprintf("many-a-%d", round), fmt.Sprintf("many-b-%d", round), fmt.Sprintf("many-c-%d", round)
		other := message(c)
		other.Queue = "cancel:other"
		res := s.EnqueueMany(ctx, []taskstore.Message{message(a), other, message(a), message(b), other})
		want := []taskstore.EnqueueResult{{Enqueued: true}, {Enqueued: true}, {Existing: taskstore.StatePending}, {Enqueued: true}, {Existing: taskstore.StatePending}}
		if len(res) != len(want) {
			t.Fatalf("round %d: %d results, want %d", round, len(res), len(want))
		}
		for i := range want {
			if res[i] != want[i] {
				t.Errorf("round %d, message %d: %+v, want %+v", round, i, res[i], want[i])
			}
		}
		for q, ids := range map[string][]string{queue: {a, b}, other.Queue: {c}} {
			for _, id := range ids {
				if _, err := insp.GetTaskInfo(q, id); err != nil {
					t.Errorf("round %d: task %s: %v", round, id, err)
				}
			}
		}
		// asynq takes from the right end: the first enqueued first.
		if got, err := rdb.LRange(ctx, "asynq:{"+queue+"}:pending", 0, 1).Result(); err != nil || len(got) != 2 || got[0] != b || got[1] != a {
			t.Errorf("round %d: pending %v, %v; want [%s %s]", round, got, err, b, a)
		}
		if err := rdb.Del(ctx, "asynq:{"+queue+"}:pending").Err(); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.EnqueueMany(ctx, nil); len(got) != 0 {
		t.Errorf("EnqueueMany(nil) = %v", got)
	}
}
