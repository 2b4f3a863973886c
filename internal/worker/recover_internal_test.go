package worker

import (
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// deadPID returns the PID of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// holdScript moves a pending task to active under a lease, as asynq's
// dequeue does. KEYS: pending, active, lease, task. ARGV: ID, lease (Unix s).
var holdScript = redis.NewScript(`
redis.call("LREM", KEYS[1], 0, ARGV[1])
redis.call("LPUSH", KEYS[2], ARGV[1])
redis.call("HSET", KEYS[4], "state", "active")
redis.call("HDEL", KEYS[4], "pending_since")
redis.call("ZADD", KEYS[3], ARGV[2], ARGV[1])
return 1`)

// server writes the heartbeat of an asynq server host:pid:sid, as asynq
// does: its record (alive: with a TTL of 10s, left beatAgo ago) or only
// its entry in the servers set (dead, its record expired), and the tasks
// it lists.
func server(t *testing.T, rdb *redis.Client, host string, pid int, sid string, alive bool, beatAgo time.Duration, tasks ...string) {
	t.Helper()
	ctx := t.Context()
	inner := host + ":" + strconv.Itoa(pid) + ":" + sid
	expires := time.Now().Add(-beatAgo).Add(10 * time.Second)
	if err := rdb.ZAdd(ctx, "asynq:servers", redis.Z{Score: float64(expires.Unix()), Member: "asynq:servers:{" + inner + "}"}).Err(); err != nil {
		t.Fatal(err)
	}
	if !alive {
		return
	}
	ttl := 10*time.Second - beatAgo
	if err := rdb.Set(ctx, "asynq:servers:{"+inner+"}", "info", ttl).Err(); err != nil {
		t.Fatal(err)
	}
	wkey := "asynq:workers:{" + inner + "}"
	for _, id := range tasks {
		rdb.HSet(ctx, wkey, id, "w")
	}
	rdb.PExpire(ctx, wkey, ttl)
}

// TestRecoverDeadProcess fabricates asynq's records of active tasks and
// their holders, and checks which the recoverer puts back: the task of a
// proved dead process of this machine at once; not one that a live
// server may hold, nor one held by a process of another machine or one
// still running, until their lease has lapsed for asynq's skew allowance.
func TestRecoverDeadProcess(t *testing.T) {
	t.Parallel()
	rdb := redistest.New(t).Client(t)
	ctx := t.Context()
	enq := tasks.NewEnqueuer(rdb, tasks.Shards{})
	q := tasks.QueuePandaPon
	self := thisProc()
	self.started = time.Now().Add(-time.Hour)
	if self.machine == "" {
		t.Skip("no /proc: no process can be proved dead here")
	}
	now := time.Now()
	// leaseSet is when each task's lease was last set: its expiry is 30s
	// later.
	hold := func(n int64, leaseSet time.Time) string {
		task, err := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: tasks.OrderID(n)})
		if err != nil {
			t.Fatal(err)
		}
		res, err := enq.Enqueue(ctx, task, false)
		if err != nil {
			t.Fatal(err)
		}
		keys := []string{"asynq:{" + q + "}:pending", "asynq:{" + q + "}:active", "asynq:{" + q + "}:lease", taskstore.TaskKey(q, res.TaskID)}
		if err := holdScript.Run(ctx, rdb, keys, res.TaskID, leaseSet.Add(taskstore.LeaseDuration).Unix()).Err(); err != nil {
			t.Fatal(err)
		}
		return res.TaskID
	}
	dead, other := deadPID(t), deadPID(t)
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	record := func(host string, pid int, machine string, started time.Time) {
		b, _ := json.Marshal(procRecord{Machine: machine, Started: started})
		rdb.Set(ctx, procKey(host, pid), b, time.Hour)
	}
	for _, pid := range []int{dead, sleeper.Process.Pid} {
		record(self.host, pid, self.machine, now.Add(-time.Hour))
	}
	record("elsewhere", other, "another boot", now.Add(-time.Hour))

	// The dead process held "deadTask" (set 6s ago); a live server (this
	// process's) beat 1s ago without it.
	deadTask := hold(1, now.Add(-6*time.Second))
	server(t, rdb, self.host, dead, "s-dead", true, 4*time.Second, deadTask)
	server(t, rdb, self.host, self.pid, "s-live", true, time.Second)
	// A paused process of this machine (it exists) held "pausedTask".
	pausedTask := hold(2, now.Add(-20*time.Second))
	server(t, rdb, self.host, sleeper.Process.Pid, "s-paused", false, 20*time.Second)
	// A process of another machine, record gone, held "elsewhereTask".
	elsewhereTask := hold(3, now.Add(-20*time.Second))
	server(t, rdb, "elsewhere", other, "s-other", false, 20*time.Second)
	// A lease lapsed a minute ago, whoever held it.
	lapsedTask := hold(4, now.Add(-90*time.Second))

	r := &recoverer{store: taskstore.New(rdb), rdb: rdb, log: zap.NewNop(), queues: []string{q}, interval: time.Hour, self: self, nowFunc: time.Now}
	if err := r.pass(ctx); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	for id, want := range map[string]asynq.TaskState{
		deadTask: asynq.TaskStatePending, lapsedTask: asynq.TaskStatePending,
		pausedTask: asynq.TaskStateActive, elsewhereTask: asynq.TaskStateActive,
	} {
		info, err := insp.GetTaskInfo(q, id)
		if err != nil || info.State != want {
			t.Errorf("task %s: %v, %v; want %s", id, info, err, want)
			continue
		}
		if want == asynq.TaskStatePending && (info.Retried != 1 || info.LastErr == "") {
			t.Errorf("recovered task %s: retried %d, last error %q; want the lost run counted, with why", id, info.Retried, info.LastErr)
		}
	}
	if n := rdb.ZCard(ctx, "asynq:{"+q+"}:lease").Val(); n != 2 {
		t.Errorf("%d leases left, want the 2 not recovered", n)
	}
	var rec procRecord
	if err := json.Unmarshal([]byte(rdb.Get(ctx, procKey(self.host, self.pid)).Val()), &rec); err != nil || rec.Machine != self.machine {
		t.Errorf("this process's record %+v, %v; want machine %q", rec, err, self.machine)
	}

	// A process of this machine that started after the lease was set
	// never held the task: the dead one did.
	restarted := hold(7, time.Now().Add(-6*time.Second))
	newcomer := deadPID(t) // its PID; the process need not exist for this
	record(self.host, newcomer, self.machine, time.Now().Add(-time.Second))
	server(t, rdb, self.host, newcomer, "s-new", true, 0)
	server(t, rdb, self.host, dead, "s-dead3", true, 6*time.Second)
	r.exists = func(pid int) bool { return pid != dead }
	if err := r.pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if info, _ := insp.GetTaskInfo(q, restarted); info == nil || info.State != asynq.TaskStatePending {
		t.Errorf("task of the dead process, a newcomer running: %v, want pending", info)
	}
}

// TestRecoverOwnTask: a task this process ran and is done with, whose
// completion did not reach Redis (a failover lost it), is put back once its
// lease has lapsed by a second on this clock, not after asynq's 30s more.
func TestRecoverOwnTask(t *testing.T) {
	t.Parallel()
	rdb := redistest.New(t).Client(t)
	ctx := t.Context()
	q := tasks.QueuePandaPon
	self := thisProc()
	self.started = time.Now().Add(-time.Hour)
	enq := tasks.NewEnqueuer(rdb, tasks.Shards{})
	hold := func(n int64, leaseSet time.Time) string {
		task, err := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: tasks.OrderID(n)})
		if err != nil {
			t.Fatal(err)
		}
		res, err := enq.Enqueue(ctx, task, false)
		if err != nil {
			t.Fatal(err)
		}
		keys := []string{"asynq:{" + q + "}:pending", "asynq:{" + q + "}:active", "asynq:{" + q + "}:lease", taskstore.TaskKey(q, res.TaskID)}
		if err := holdScript.Run(ctx, rdb, keys, res.TaskID, leaseSet.Add(taskstore.LeaseDuration).Unix()).Err(); err != nil {
			t.Fatal(err)
		}
		return res.TaskID
	}
	ours := hold(5, time.Now().Add(-29*time.Second))
	later := hold(6, time.Now().Add(-32*time.Second))
	running := hold(7, time.Now().Add(-40*time.Second))
	notOurs := hold(8, time.Now().Add(-32*time.Second))
	server(t, rdb, self.host, self.pid, "s-live", true, 0, running)
	r := &recoverer{store: taskstore.New(rdb), rdb: rdb, log: zap.NewNop(), queues: []string{q}, interval: time.Hour, self: self, nowFunc: time.Now,
		ranLately: func(id string) bool { return id == ours || id == later || id == running }}
	if err := r.pass(ctx); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	for id, want := range map[string]asynq.TaskState{
		ours: asynq.TaskStateActive, later: asynq.TaskStatePending, running: asynq.TaskStateActive,
		// Not run here, and no other server to account for it: asynq's
		// rule, 30s after its lease.
		notOurs: asynq.TaskStateActive,
	} {
		if info, err := insp.GetTaskInfo(q, id); err != nil || info.State != want {
			t.Errorf("task %s: %v, %v; want %s", id, info, err, want)
		}
	}
}
