package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/status"
	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/cancelworker/cancelworker/internal/worker"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/cancelworker/cancelworker/retry"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// events records what the worker tells its Observer.
type events struct {
	mu             sync.Mutex
	deadLettered   map[string]int // reason → count
	outcomeUnknown int
	resolved       int
	reconciled     int
}

func (e *events) Attempt(string, string, string, time.Duration) {}
func (e *events) DeadLettered(_, reason string, unknown bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.deadLettered == nil {
		e.deadLettered = map[string]int{}
	}
	e.deadLettered[reason]++
	if unknown {
		e.outcomeUnknown++
	}
}
func (e *events) Reconciled(string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reconciled++
}
func (e *events) Resolved(string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.resolved++
}

func (e *events) counts() (unknown, reconciled int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.outcomeUnknown, e.reconciled
}

// TestShutdownCutOffMarksUnknown cuts a call off at shutdown after the
// upstream took the cancel: asynq puts the task back without counting the
// run, and the retry's "not found" (4001) is dead-lettered marked
// outcome_unknown.
func TestShutdownCutOffMarksUnknown(t *testing.T) {
	t.Parallel()
	ev := &events{}
	r := workertest.Start(t, workertest.WithShutdownTimeout(200*time.Millisecond), workertest.WithUpstreamTimeout(time.Minute), workertest.WithObserver(ev))
	r.Sandbox.Script("meari", "CUT-1", sandbox.Slow(time.Minute, sandbox.OK()), sandbox.MeariCode("4001"))
	res := r.EnqueueMeari(t, "CUT-1")
	r.WaitCalls(t, "meari", "CUT-1", 1)
	r.Worker.Shutdown()
	info := r.WaitState(t, res, asynq.TaskStatePending)
	if info.Retried != 0 {
		t.Fatalf("after the cut-off: retried %d, want 0 (asynq requeues without counting)", info.Retried)
	}
	// The sandbox takes the cancel once it sees the client gone.
	workertest.Wait(t, "the sandbox to take the cancel", func() (bool, string) {
		return r.Sandbox.Cancelled("meari", "CUT-1"), "not cancelled"
	})
	r.StartWorker(t)
	r.WaitState(t, res, asynq.TaskStateArchived)
	e, err := r.DLQ.Get(t.Context(), res.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	// The cut-off used no attempt: the 4001 is attempt 1, as asynq counts.
	if !e.OutcomeUnknown || e.Reason != dlq.ReasonPermanent || e.UpstreamCode != "4001" || e.Attempts != 1 {
		t.Errorf("entry %+v: want permanent 4001, outcome unknown, 1 attempt", e)
	}
	if unknown, _ := ev.counts(); unknown != 1 {
		t.Errorf("outcome-unknown dead-letterings observed: %d, want 1", unknown)
	}
}

// TestRequeueCarriesUnknown dead-letters an order after an unknown
// outcome, lets the attempt record expire (as it does RETRY_MAX_AGE after
// the last failure) and asynq trim its archive, requeues the entry, and
// gets "not found" again: the new entry is still marked outcome_unknown,
// carried by the task.
func TestRequeueCarriesUnknown(t *testing.T) {
	t.Parallel()
	r := workertest.Start(t)
	r.Sandbox.Script("meari", "REQ-1", sandbox.Reset(), sandbox.MeariCode("4001"), sandbox.MeariCode("4001"))
	res := r.EnqueueMeari(t, "REQ-1")
	r.WaitState(t, res, asynq.TaskStateArchived)
	e, err := r.DLQ.Get(t.Context(), res.TaskID)
	if err != nil || !e.OutcomeUnknown {
		t.Fatalf("first entry %+v, %v; want outcome unknown", e, err)
	}
	if err := r.RDB.Del(t.Context(), taskstore.AttemptKey(res.Queue, res.TaskID)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Inspector.DeleteTask(res.Queue, res.TaskID); err != nil {
		t.Fatal(err)
	}
	if _, err := dlq.Requeue(t.Context(), r.DLQ, r.Enqueuer, res.TaskID, dlq.RequeueOptions{}); err != nil {
		t.Fatal(err)
	}
	r.WaitCalls(t, "meari", "REQ-1", 3)
	workertest.Wait(t, "a new DLQ entry", func() (bool, string) {
		e, err = r.DLQ.Get(t.Context(), res.TaskID)
		return err == nil && e.Seq > 0, fmt.Sprintf("%+v, %v", e, err)
	})
	if !e.OutcomeUnknown || e.Reason != dlq.ReasonPermanent {
		t.Errorf("entry after requeue %+v: want permanent, outcome unknown", e)
	}
}

// TestRecordTTLFollowsMaxAge checks that the attempt record of a failing
// task lives as long as the configured maximum age lets the task go on.
func TestRecordTTLFollowsMaxAge(t *testing.T) {
	t.Parallel()
	p := workertest.FastPolicy
	p.MaxAge = 90 * time.Hour
	p.InitialInterval, p.MaxInterval = time.Hour, time.Hour // no second attempt during the test
	r := workertest.Start(t, workertest.WithPolicy(p))
	r.Sandbox.Script("meari", "TTL-1", sandbox.HTTPStatus(503))
	res := r.EnqueueMeari(t, "TTL-1")
	r.WaitState(t, res, asynq.TaskStateRetry)
	ttl, err := r.RDB.PTTL(t.Context(), taskstore.AttemptKey(res.Queue, res.TaskID)).Result()
	want := p.RecordTTL() // 90 h + the 1 h Retry-After cap
	if err != nil || ttl > want || ttl < want-time.Minute || want < 91*time.Hour {
		t.Errorf("record TTL %s, %v; want %s", ttl, err, want)
	}
}

// countingHook counts the commands a client sends.
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(int64(len(cmds))); return next(ctx, cmds) }
}

// TestSuccessPathNoRedisCalls runs the handler under a real asynq server
// with a Redis client of its own: a first attempt that succeeds sends it
// nothing; a failing one writes its attempt record.
func TestSuccessPathNoRedisCalls(t *testing.T) {
	t.Parallel()
	r := workertest.New(t) // Redis and the sandbox; the test runs its own handler
	counted := redis.NewClient(r.RDB.Options())
	t.Cleanup(func() { _ = counted.Close() })
	hook := &countingHook{}
	counted.AddHook(hook)
	h, err := worker.NewHandler(worker.HandlerOptions{
		Logger: r.Options.Logger, Redis: counted, DLQ: dlq.New(counted),
		Meari: meariClient(t, r), MeariSourceApp: workertest.SourceApp,
		Policies: map[string]retry.Policy{tasks.ProviderMeari: workertest.FastPolicy},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := asynq.NewServerFromRedisClient(r.RDB, asynq.Config{
		Concurrency: 2, Queues: map[string]int{tasks.QueueMeari: 1}, TaskCheckInterval: 10 * time.Millisecond,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Hour }, LogLevel: asynq.FatalLevel,
	})
	if err := srv.Start(h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)

	r.Sandbox.Script("meari", "FAST-OK", sandbox.OK())
	r.WaitState(t, r.EnqueueMeari(t, "FAST-OK"), asynq.TaskStateCompleted)
	if n := hook.n.Load(); n != 0 {
		t.Errorf("a first attempt that succeeded sent %d Redis commands of its own, want 0", n)
	}
	r.Sandbox.Script("meari", "FAST-503", sandbox.HTTPStatus(503))
	r.WaitState(t, r.EnqueueMeari(t, "FAST-503"), asynq.TaskStateRetry)
	if n := hook.n.Load(); n == 0 {
		t.Error("a failed attempt wrote no attempt record")
	}
}

// waitPasses waits until w's maintainer has completed n more passes.
func waitPasses(t *testing.T, w *worker.Worker, n int64) {
	t.Helper()
	want := worker.MaintenancePasses(w) + n
	workertest.Wait(t, fmt.Sprintf("%d maintenance passes", want), func() (bool, string) {
		got := worker.MaintenancePasses(w)
		return got >= want, fmt.Sprintf("%d passes", got)
	})
}

// meariClient is a Meari client for r's sandbox, as the worker builds it.
func meariClient(t *testing.T, r *workertest.Rig) *meari.Client {
	t.Helper()
	cl, err := meari.New(*workertest.MeariConfig(r.Upstream))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestReconcilerFilesArchived archives tasks as the monitoring UI's
// buttons do, around the worker: the maintenance pass files a DLQ entry
// for each, says so, and leaves the worker's own entries alone.
func TestReconcilerFilesArchived(t *testing.T) {
	t.Parallel()
	ev := &events{}
	r := workertest.Start(t, workertest.WithObserver(ev), workertest.WithMaintenance(20*time.Millisecond, 0))
	// The worker's own dead-lettering: already has an entry.
	r.Sandbox.Script("meari", "OWN-4001", sandbox.MeariCode("4001"))
	own := r.EnqueueMeari(t, "OWN-4001")
	r.WaitState(t, own, asynq.TaskStateArchived)
	if err := r.Inspector.PauseQueue(tasks.QueuePandaPon); err != nil {
		t.Fatal(err)
	}
	var archived []tasks.Result
	for _, order := range []string{"2542285634920881001", "2542285634920881002"} {
		archived = append(archived, r.EnqueuePandaPon(t, order))
	}
	// The second had a run whose outcome is unknown, as a reset after the
	// request was sent leaves it, before it was archived.
	if _, err := taskstore.New(r.RDB).RecordFailure(t.Context(), archived[1].Queue, archived[1].TaskID, 0, true, true, time.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, res := range archived {
		if err := r.Inspector.ArchiveTask(res.Queue, res.TaskID); err != nil {
			t.Fatal(err)
		}
	}
	for i, res := range archived {
		var e dlq.Entry
		workertest.Wait(t, "an entry filed for "+res.TaskID, func() (bool, string) {
			var err error
			e, err = r.DLQ.Get(t.Context(), res.TaskID)
			if err != nil && !errors.Is(err, dlq.ErrNotFound) {
				t.Fatalf("DLQ get %s: %v", res.TaskID, err)
			}
			return err == nil, fmt.Sprint(err)
		})
		if e.Reason != dlq.ReasonArchived || e.Provider != tasks.ProviderPandaPon || e.Order != res.TaskID[len("pandapon:"):] || len(e.Payload) == 0 {
			t.Errorf("filed entry %+v", e)
		}
		if e.OutcomeUnknown != (i == 1) {
			t.Errorf("filed entry %s: outcome unknown %v, want %v", e.ID, e.OutcomeUnknown, i == 1)
		}
	}
	// Counted just after the entry is written.
	workertest.Wait(t, "2 reconciled entries counted", func() (bool, string) {
		_, reconciled := ev.counts()
		return reconciled == 2, fmt.Sprint(reconciled)
	})
	e, err := r.DLQ.Get(t.Context(), own.TaskID)
	if err != nil || e.Reason != dlq.ReasonPermanent || e.Seq != 1 {
		t.Errorf("the worker's own entry changed: %+v, %v", e, err)
	}
	// Purged entries stay purged: purge removes the archived task too.
	n, err := r.DLQ.Purge(t.Context(), "test", archived[0].TaskID)
	if err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	waitPasses(t, r.Worker, 3)
	if _, err := r.DLQ.Get(t.Context(), archived[0].TaskID); !errors.Is(err, dlq.ErrNotFound) {
		t.Errorf("a purged entry came back: %v", err)
	}
	if _, err := r.Inspector.GetTaskInfo(archived[0].Queue, archived[0].TaskID); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("the purged order's archived task: %v, want gone", err)
	}
}

// TestWorkerCompactsCompleted checks that the worker's maintenance pass
// compacts completed tasks, and that the order then still reads as
// already cancelled.
func TestWorkerCompactsCompleted(t *testing.T) {
	t.Parallel()
	r := workertest.Start(t, workertest.WithMaintenance(20*time.Millisecond, -1))
	r.Sandbox.Script("meari", "DONE-1", sandbox.OK())
	res := r.EnqueueMeari(t, "DONE-1")
	store := taskstore.New(r.RDB)
	workertest.Wait(t, "the completed task to be compacted", func() (bool, string) {
		task, err := store.Peek(t.Context(), res.Queue, res.TaskID)
		return err == nil && task.Compact, fmt.Sprintf("%+v, %v", task, err)
	})
	again := r.EnqueueMeari(t, "DONE-1")
	if !again.AlreadyQueued || again.State != tasks.StateCompleted {
		t.Errorf("enqueue of a compacted order = %+v; want already queued, completed", again)
	}
	if n := len(r.Sandbox.Calls("meari", "DONE-1")); n != 1 {
		t.Errorf("upstream calls %d, want 1", n)
	}
}

// TestReconcilerArchiveAll archives more tasks than one reconcile batch in
// the same second, as the UI's "archive all" does: every one gets its
// entry.
func TestReconcilerArchiveAll(t *testing.T) {
	if testing.Short() {
		t.Skip("enqueues 1,500 tasks")
	}
	t.Parallel()
	r := workertest.Start(t, workertest.WithMaintenance(20*time.Millisecond, 0))
	if err := r.Inspector.PauseQueue(tasks.QueuePandaPon); err != nil {
		t.Fatal(err)
	}
	const n = worker.ReconcileBatch + 500
	for i := range n {
		r.EnqueuePandaPon(t, fmt.Sprint(1000000+i))
	}
	if _, err := r.Inspector.ArchiveAllPendingTasks(tasks.QueuePandaPon); err != nil {
		t.Fatal(err)
	}
	workertest.WaitUpTo(t, time.Minute, fmt.Sprintf("%d entries filed", n), func() (bool, string) {
		c, err := r.DLQ.Count(t.Context(), tasks.ProviderPandaPon)
		return err == nil && c == n, fmt.Sprintf("%d entries (%v)", c, err)
	})
}

// TestDeadLetteringCountsNothing checks that a run the worker dead-letters
// is not noted as one asynq counted: asynq archives it without counting,
// and a later run (the UI's "Run", then a crash) must still show a gap.
func TestDeadLetteringCountsNothing(t *testing.T) {
	t.Parallel()
	p := workertest.FastPolicy
	p.MaxAttempts = 2
	r := workertest.Start(t, workertest.WithPolicy(p))
	r.Sandbox.Script("meari", "EXH-1", sandbox.HTTPStatus(503))
	res := r.EnqueueMeari(t, "EXH-1")
	info := r.WaitState(t, res, asynq.TaskStateArchived)
	n, err := r.RDB.HGet(t.Context(), taskstore.AttemptKey(res.Queue, res.TaskID), "n").Int()
	if err != nil || n != info.Retried {
		t.Fatalf("record n = %d, %v; want asynq's retry count %d", n, err, info.Retried)
	}
	// Run from the UI, crashed: asynq's lease recovery counts it.
	a, err := taskstore.New(r.RDB).RecordFailure(t.Context(), res.Queue, res.TaskID, info.Retried+1, false, false, time.Now(), time.Hour)
	if err != nil || !a.EarlierUnknown {
		t.Errorf("after a crashed run: %+v, %v; want an earlier unknown outcome", a, err)
	}
}

// failRecordHook fails every script on an attempt record, as a Redis gone
// at that moment would.
type failRecordHook struct{ countingHook }

func (h *failRecordHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if strings.HasPrefix(cmd.Name(), "eval") && strings.Contains(fmt.Sprint(cmd.Args()), ":attempt:") {
			err := errors.New("connection reset by peer")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

// TestRecordFailureUnreadable checks that a permanent answer whose attempt
// record cannot be read is dead-lettered marked outcome unknown: the
// worker cannot tell, and flagging is the safe mistake.
func TestRecordFailureUnreadable(t *testing.T) {
	t.Parallel()
	r := workertest.New(t) // Redis and the sandbox; the test runs its own handler
	failing := redis.NewClient(r.RDB.Options())
	t.Cleanup(func() { _ = failing.Close() })
	failing.AddHook(&failRecordHook{})
	h, err := worker.NewHandler(worker.HandlerOptions{
		Logger: r.Options.Logger, Redis: failing, DLQ: dlq.New(r.RDB),
		Meari: meariClient(t, r), MeariSourceApp: workertest.SourceApp,
		Policies: map[string]retry.Policy{tasks.ProviderMeari: workertest.FastPolicy},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := asynq.NewServerFromRedisClient(r.RDB, asynq.Config{
		Concurrency: 1, Queues: map[string]int{tasks.QueueMeari: 1}, TaskCheckInterval: 10 * time.Millisecond, LogLevel: asynq.FatalLevel,
	})
	if err := srv.Start(h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	r.Sandbox.Script("meari", "NOREC-1", sandbox.MeariCode("4001"))
	res := r.EnqueueMeari(t, "NOREC-1")
	r.WaitState(t, res, asynq.TaskStateArchived)
	e, err := r.DLQ.Get(t.Context(), res.TaskID)
	if err != nil || !e.OutcomeUnknown || e.Reason != dlq.ReasonPermanent {
		t.Errorf("entry %+v, %v; want permanent, outcome unknown", e, err)
	}
}

// TestMarkRunningUnknown marks a call in flight, as the worker does just
// before asynq cuts such calls off at shutdown.
func TestMarkRunningUnknown(t *testing.T) {
	t.Parallel()
	r := workertest.Start(t, workertest.WithUpstreamTimeout(time.Minute))
	r.Sandbox.Script("meari", "MARK-1", sandbox.Slow(time.Minute, sandbox.OK()))
	res := r.EnqueueMeari(t, "MARK-1")
	r.WaitCalls(t, "meari", "MARK-1", 1)
	if err := worker.MarkRunningUnknown(t.Context(), r.Worker); err != nil {
		t.Fatal(err)
	}
	task, err := taskstore.New(r.RDB).Peek(t.Context(), res.Queue, res.TaskID)
	if err != nil || !task.Unknown {
		t.Errorf("after the mark: %+v, %v; want the record marked unknown", task, err)
	}
	if err := worker.MarkRunningUnknown(t.Context(), r.Worker); err != nil {
		t.Fatal(err)
	}
}

// TestShutdownMarksBeforeCutOff lets the calls' own bookkeeping fail, as a
// worker killed right after asynq's cut-off would: the mark written just
// before the cut-off still flags the order.
func TestShutdownMarksBeforeCutOff(t *testing.T) {
	t.Parallel()
	r := workertest.New(t, workertest.WithShutdownTimeout(400*time.Millisecond), workertest.WithUpstreamTimeout(time.Minute))
	hooked := redis.NewClient(r.RDB.Options())
	t.Cleanup(func() { _ = hooked.Close() })
	hooked.AddHook(&failRecordHook{})
	r.Options.Redis = hooked
	w := r.StartWorker(t)
	r.Sandbox.Script("meari", "MARKED-1", sandbox.Slow(time.Minute, sandbox.OK()))
	res := r.EnqueueMeari(t, "MARKED-1")
	r.WaitCalls(t, "meari", "MARKED-1", 1)
	w.Shutdown()
	task, err := taskstore.New(r.RDB).Peek(t.Context(), res.Queue, res.TaskID)
	if err != nil || !task.Unknown || task.State != taskstore.StatePending {
		t.Errorf("after the cut-off: %+v, %v; want the task pending and its record marked unknown", task, err)
	}
}

// TestMaintenanceMovesLegacyDLQ: dead-letter entries an older version
// wrote under the untagged keys (dlq.PrefixLegacy) are moved before the
// reconciler looks at the archive, so the archived task of such an entry
// keeps its real reason rather than getting an "archived" entry.
func TestMaintenanceMovesLegacyDLQ(t *testing.T) {
	t.Parallel()
	r := workertest.New(t, workertest.WithMaintenance(20*time.Millisecond, 0))
	ctx := t.Context()
	if err := r.Inspector.PauseQueue(tasks.QueuePandaPon); err != nil {
		t.Fatal(err)
	}
	res := r.EnqueuePandaPon(t, "2542285634920882001")
	if err := r.Inspector.ArchiveTask(res.Queue, res.TaskID); err != nil {
		t.Fatal(err)
	}
	// The old layout, as the old version's Put wrote it.
	old := fmt.Sprintf(`{"id":%q,"seq":7,"provider":"pandapon","order":"2542285634920882001","task_type":%q,"queue":%q,"payload":{},"reason":%q,"message":"refused","attempts":1,"first_failed_at":"2025-01-02T03:04:05Z","last_failed_at":"2025-01-02T03:04:05Z"}`,
		res.TaskID, tasks.TypePandaPonCancel, res.Queue, dlq.ReasonPermanent)
	pipe := r.RDB.TxPipeline()
	pipe.HSet(ctx, dlq.PrefixLegacy+"entries", res.TaskID, old)
	pipe.ZAdd(ctx, dlq.PrefixLegacy+"by_time", redis.Z{Score: 1735787045000, Member: res.TaskID})
	pipe.ZAdd(ctx, dlq.PrefixLegacy+"by_time:pandapon", redis.Z{Score: 1735787045000, Member: res.TaskID})
	pipe.Set(ctx, dlq.PrefixLegacy+"seq", 7, 0)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	w := r.StartWorker(t)
	waitPasses(t, w, 2)
	e, err := r.DLQ.Get(ctx, res.TaskID)
	if err != nil || e.Reason != dlq.ReasonPermanent || e.Seq != 7 {
		t.Errorf("entry after the move = %+v, %v; want the legacy one (permanent, seq 7)", e, err)
	}
	if keys, _ := r.RDB.Keys(ctx, dlq.PrefixLegacy+"*").Result(); len(keys) != 0 {
		t.Errorf("legacy keys left: %v", keys)
	}
	if n, _ := r.DLQ.Count(ctx, tasks.ProviderPandaPon); n != 1 {
		t.Errorf("pandapon entries = %d, want 1", n)
	}
}

// TestStrayShardWarned: tasks on a shard this worker does not serve (an
// enqueuer with another PANDAPON_QUEUE_SHARDS) are warned about, naming
// the queue, and the worker does not take them.
func TestStrayShardWarned(t *testing.T) {
	t.Parallel()
	r := workertest.Start(t, workertest.WithMaintenance(20*time.Millisecond, 0))
	other := tasks.NewEnqueuer(r.Client, tasks.Shards{PandaPon: 2})
	id, _ := tasks.ParseOrderID("2542285634920883001")
	task, err := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: id})
	if err != nil {
		t.Fatal(err)
	}
	res, err := other.Enqueue(t.Context(), task, false)
	if err != nil || !strings.HasPrefix(res.Queue, tasks.QueuePandaPon+":") {
		t.Fatalf("Enqueue = %+v, %v", res, err)
	}
	workertest.Wait(t, "a warning naming "+res.Queue, func() (bool, string) {
		l := r.Logs.FilterMessageSnippet("holds tasks this worker does not serve").FilterField(zap.String("queue", res.Queue)).All()
		return len(l) > 0, fmt.Sprintf("%d lines", len(l))
	})
	waitPasses(t, r.Worker, 3)
	if n := r.Logs.FilterMessageSnippet("holds tasks this worker does not serve").Len(); n != 1 {
		t.Errorf("%d warnings, want 1 (at most one per %s)", n, "5 minutes")
	}
	if calls := r.Sandbox.Calls("pandapon", "2542285634920883001"); len(calls) != 0 {
		t.Errorf("the worker took a task of a queue it does not serve")
	}
}

// TestRunFromArchiveResolves runs a dead-lettered task again as the
// monitoring UI's Run does (asynq's RunTask, no requeue): its success
// removes the order's dead-letter entry, the trail says so, and a requeue
// afterwards sends nothing: the order is cancelled once.
func TestRunFromArchiveResolves(t *testing.T) {
	t.Parallel()
	ev := &events{}
	r := workertest.Start(t, workertest.WithObserver(ev))
	res := r.EnqueueMeari(t, "RUN-1", sandbox.MeariCode("4001"), sandbox.OK())
	r.WaitState(t, res, asynq.TaskStateArchived)
	e, err := r.DLQ.Get(t.Context(), res.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Inspector.RunTask(res.Queue, res.TaskID); err != nil {
		t.Fatal(err)
	}
	r.WaitState(t, res, asynq.TaskStateCompleted)
	workertest.Wait(t, "the entry removed by the success", func() (bool, string) {
		_, err := r.DLQ.Get(t.Context(), res.TaskID)
		return errors.Is(err, dlq.ErrNotFound), fmt.Sprint(err)
	})
	tr, ok, err := r.DLQ.Trail(t.Context(), res.TaskID)
	if err != nil || !ok || tr.Action != dlq.TrailCancelled || tr.Seq != e.Seq || tr.CancelledAt.IsZero() {
		t.Errorf("trail %+v, %v, %v; want entry %d cancelled, with the time", tr, ok, err, e.Seq)
	}
	if _, err := dlq.Requeue(t.Context(), r.DLQ, r.Enqueuer, res.TaskID, dlq.RequeueOptions{}); !errors.Is(err, dlq.ErrAlreadyRequeued) {
		t.Errorf("requeue after the success: %v, want already requeued (the trail)", err)
	}
	successes := 0
	for _, c := range r.Sandbox.Calls("meari", "RUN-1") {
		if c.Outcome == "ok" {
			successes++
		}
	}
	if successes != 1 {
		t.Errorf("the order was cancelled %d times, want once", successes)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.resolved != 1 {
		t.Errorf("resolved entries observed: %d, want 1", ev.resolved)
	}
}

// TestRequeueRecordsCancellation requeues a dead-lettered order: once the
// new task succeeds, the order's status says it was requeued from the
// entry, by whom, and then cancelled.
func TestRequeueRecordsCancellation(t *testing.T) {
	t.Parallel()
	r := workertest.Start(t)
	res := r.EnqueuePandaPon(t, "8801", sandbox.PandaPonCode(200, new(bool)), sandbox.OK())
	r.WaitState(t, res, asynq.TaskStateArchived)
	e, err := r.DLQ.Get(t.Context(), res.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dlq.Requeue(t.Context(), r.DLQ, r.Enqueuer, res.TaskID, dlq.RequeueOptions{By: "alice (test)"}); err != nil {
		t.Fatal(err)
	}
	r.WaitState(t, res, asynq.TaskStateCompleted)
	var st status.Status
	workertest.Wait(t, "the status to say requeued, then cancelled", func() (bool, string) {
		st, err = status.Lookup(t.Context(), r.RDB, r.DLQ, tasks.Shards{}, res.TaskID, "")
		return err == nil && st.Trail != nil && !st.Trail.CancelledAt.IsZero(), fmt.Sprintf("%+v, %v", st.Trail, err)
	})
	want := fmt.Sprintf("dead-letter entry %d (permanent, 200) requeued by alice (test) at ", e.Seq)
	if got := st.Trail.String(); !strings.HasPrefix(got, want) || !strings.Contains(got, "; cancelled at ") || st.State != status.StateCompleted {
		t.Errorf("status %s, history %q; want completed, %q…; cancelled at …", st.State, got, want)
	}
}

// TestMaintenanceSettlesClaims leaves the claim a requeuer killed between
// its claim and its enqueue would leave: the worker's maintenance puts the
// entry back while the task is still archived.
func TestMaintenanceSettlesClaims(t *testing.T) {
	t.Parallel()
	r := workertest.Start(t, workertest.WithMaintenance(50*time.Millisecond, time.Hour))
	res := r.EnqueueMeari(t, "CLAIM-1", sandbox.MeariCode("4001"))
	r.WaitState(t, res, asynq.TaskStateArchived)
	e, err := r.DLQ.Get(t.Context(), res.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	// What dlq's claim script does, two minutes ago.
	ctx, p := t.Context(), dlq.PrefixDefault
	raw := r.RDB.HGet(ctx, p+"entries", res.TaskID).Val()
	pipe := r.RDB.TxPipeline()
	pipe.HDel(ctx, p+"entries", res.TaskID)
	pipe.ZRem(ctx, p+"by_time", res.TaskID)
	pipe.ZRem(ctx, p+"by_time:meari", res.TaskID)
	pipe.HSet(ctx, p+"claims", res.TaskID, raw)
	pipe.ZAdd(ctx, p+"claimed_at", redis.Z{Score: float64(time.Now().Add(-2 * time.Minute).UnixMilli()), Member: res.TaskID})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	// The maintenance logs its warning just after it puts the entry back.
	workertest.Wait(t, "the entry put back, and a warning", func() (bool, string) {
		got, err := r.DLQ.Get(ctx, res.TaskID)
		warned := r.Logs.FilterMessageSnippet("a requeue was interrupted").Len()
		return err == nil && got.Seq == e.Seq && warned > 0, fmt.Sprintf("%+v, %v; %d warnings", got, err, warned)
	})
	if n := r.RDB.HLen(ctx, p+"claims").Val(); n != 0 {
		t.Errorf("%d claims left, want none", n)
	}
	if n := r.Logs.FilterMessageSnippet("a requeue was interrupted").Len(); n != 1 {
		t.Errorf("%d warnings about the interrupted requeue, want 1", n)
	}
}

// TestMaintenanceSweepsCancelled: an entry left for an order whose task
// has completed since (the worker that ran it was killed before it
// settled the entry) is removed by the maintenance's sweep, with its
// trail: a requeue then finds nothing to send again, even after the
// completed task's retention.
func TestMaintenanceSweepsCancelled(t *testing.T) {
	t.Parallel()
	r := workertest.Start(t, workertest.WithMaintenance(50*time.Millisecond, time.Hour))
	res := r.EnqueueMeari(t, "SWEEP-1", sandbox.OK())
	r.WaitState(t, res, asynq.TaskStateCompleted)
	task, err := tasks.NewMeariCancelTask(tasks.MeariCancel{SourceApp: workertest.SourceApp, UserAccount: "test@123.com", OrderType: 1, OrderNum: "SWEEP-1"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := r.DLQ.Put(t.Context(), dlq.Entry{ID: res.TaskID, Provider: "meari", TaskType: task.Type(), Queue: res.Queue, Payload: task.Payload(),
		Reason: dlq.ReasonPermanent, LastFailedAt: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	workertest.Wait(t, "the sweep to remove the entry", func() (bool, string) {
		_, err := r.DLQ.Get(t.Context(), res.TaskID)
		return errors.Is(err, dlq.ErrNotFound), fmt.Sprint(err)
	})
	if tr, ok, _ := r.DLQ.Trail(t.Context(), res.TaskID); !ok || tr.Action != dlq.TrailCancelled || tr.Seq != e.Seq || tr.CancelledAt.IsZero() {
		t.Errorf("trail %+v, want entry %d cancelled", tr, e.Seq)
	}
	// Filed after the completion: kept.
	later, err := r.DLQ.Put(t.Context(), dlq.Entry{ID: res.TaskID, Provider: "meari", TaskType: task.Type(), Queue: res.Queue, Payload: task.Payload(),
		Reason: dlq.ReasonPermanent, LastFailedAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	waitPasses(t, r.Worker, 3)
	if got, err := r.DLQ.Get(t.Context(), res.TaskID); err != nil || got.Seq != later.Seq {
		t.Errorf("an entry written after the completion: %+v, %v; want kept", got, err)
	}
}

// TestReconcilerClockSkew archives a task as a process whose clock is 10
// minutes behind would (asynq scores the archive with the archiving
// process's clock), after the reconciler's cursor has moved past that
// time: a periodic read of the whole archive still files its entry, with
// the time the task last failed, not the time it was filed.
func TestReconcilerClockSkew(t *testing.T) {
	t.Parallel()
	r := workertest.Start(t, workertest.WithMaintenance(20*time.Millisecond, 0))
	ctx := t.Context()
	if err := r.Inspector.PauseQueue(tasks.QueuePandaPon); err != nil {
		t.Fatal(err)
	}
	// A first archived task moves the cursor to about now.
	first := r.EnqueuePandaPon(t, "2542285634920882001")
	if err := r.Inspector.ArchiveTask(first.Queue, first.TaskID); err != nil {
		t.Fatal(err)
	}
	workertest.Wait(t, "the first entry filed", func() (bool, string) {
		_, err := r.DLQ.Get(ctx, first.TaskID)
		return err == nil, fmt.Sprint(err)
	})
	waitPasses(t, r.Worker, 1)

	// The second failed 3 minutes ago, and a process 10 minutes behind
	// archived it, as asynq's archive does (out of pending, into the
	// archive scored with that process's clock, state archived), at once.
	skewed := r.EnqueuePandaPon(t, "2542285634920882002")
	failedAt := time.Now().Add(-3 * time.Minute).Truncate(time.Second)
	key := taskstore.TaskKey(skewed.Queue, skewed.TaskID)
	raw, err := r.RDB.HGet(ctx, key, "msg").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	m, err := taskstore.DecodeMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	m.Retried, m.ErrorMsg, m.LastFailedAt = 2, "pandapon: transient: HTTP 503", failedAt.Unix()
	prefix := "asynq:{" + skewed.Queue + "}:"
	pipe := r.RDB.TxPipeline()
	removed := pipe.LRem(ctx, prefix+"pending", 1, skewed.TaskID)
	pipe.ZAdd(ctx, prefix+"archived", redis.Z{Score: float64(time.Now().Add(-10 * time.Minute).Unix()), Member: skewed.TaskID})
	pipe.HSet(ctx, key, "msg", m.Encode(), "state", "archived")
	if _, err := pipe.Exec(ctx); err != nil || removed.Val() != 1 {
		t.Fatalf("archive as a skewed process: %v, %d removed from pending", err, removed.Val())
	}
	info, err := r.Inspector.GetTaskInfo(skewed.Queue, skewed.TaskID)
	if err != nil || info.State != asynq.TaskStateArchived || !info.LastFailedAt.Equal(failedAt) {
		t.Fatalf("the skewed archive as asynq reads it: %+v, %v", info, err)
	}
	var e dlq.Entry
	workertest.WaitUpTo(t, 30*time.Second, "the skewed archive's entry filed", func() (bool, string) {
		e, err = r.DLQ.Get(ctx, skewed.TaskID)
		return err == nil, fmt.Sprint(err)
	})
	if !e.LastFailedAt.Equal(failedAt) || e.Attempts != 3 || !strings.Contains(e.Message, "HTTP 503") {
		t.Errorf("entry: last failed %s, %d attempts, %q; want %s (when the task failed), 3 attempts and its error", e.LastFailedAt, e.Attempts, e.Message, failedAt)
	}
}
