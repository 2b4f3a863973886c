package worker

import (
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
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

// recoverWorld is one test's fabricated world: asynq's records of active
// tasks and servers, the workers' registry and disclaims, and a recoverer
// for this process.
type recoverWorld struct {
	t    *testing.T
	rdb  *redis.Client
	q    string
	r    *recoverer
	insp *asynq.Inspector
	n    int64
}

func newRecoverWorld(t *testing.T) *recoverWorld {
	t.Helper()
	self := thisProc()
	if self.Machine == "" {
		t.Skip("no /proc: no process can be proved dead here")
	}
	self.Started = time.Now().Add(-time.Hour).UnixMilli()
	rdb := redistest.New(t).Client(t)
	w := &recoverWorld{t: t, rdb: rdb, q: tasks.QueuePandaPon, insp: asynq.NewInspectorFromRedisClient(rdb)}
	w.r = &recoverer{store: taskstore.New(rdb), rdb: rdb, log: zap.NewNop(), queues: []string{w.q}, interval: time.Hour, self: self, nowFunc: time.Now}
	w.register(self, time.Now())
	return w
}

// hold enqueues a task and makes it active under a lease last set at set.
func (w *recoverWorld) hold(set time.Time) string {
	w.t.Helper()
	w.n++
	task, err := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: tasks.OrderID(w.n)})
	if err != nil {
		w.t.Fatal(err)
	}
	res, err := tasks.NewEnqueuer(w.rdb, tasks.Shards{}).Enqueue(w.t.Context(), task, false)
	if err != nil {
		w.t.Fatal(err)
	}
	keys := []string{"asynq:{" + w.q + "}:pending", "asynq:{" + w.q + "}:active", "asynq:{" + w.q + "}:lease", taskstore.TaskKey(w.q, res.TaskID)}
	if err := holdScript.Run(w.t.Context(), w.rdb, keys, res.TaskID, set.Add(taskstore.LeaseDuration).Unix()).Err(); err != nil {
		w.t.Fatal(err)
	}
	return res.TaskID
}

// register adds p to the workers' registry, last refreshed at.
func (w *recoverWorld) register(p procRecord, at time.Time) {
	w.t.Helper()
	if err := w.rdb.ZAdd(w.t.Context(), procsKey, redis.Z{Score: float64(at.UnixMilli()), Member: p.member()}).Err(); err != nil {
		w.t.Fatal(err)
	}
}

// disclaim publishes p's disclaim of the leases of ids (task ID → lease
// set), and its asynq servers.
func (w *recoverWorld) disclaim(p procRecord, servers []string, leases map[string]time.Time) {
	w.t.Helper()
	d := disclaim{Servers: servers, Leases: map[string]int64{}}
	for id, set := range leases {
		d.Leases[id] = set.Add(taskstore.LeaseDuration).Unix()
	}
	b, _ := json.Marshal(d)
	if err := w.rdb.Set(w.t.Context(), disclaimKey(p.member()), b, time.Minute).Err(); err != nil {
		w.t.Fatal(err)
	}
}

// server writes an asynq server's record, alive, as its heartbeat does.
func (w *recoverWorld) server(host string, pid int, sid string) {
	w.t.Helper()
	inner := host + ":" + strconv.Itoa(pid) + ":" + sid
	ctx := w.t.Context()
	w.rdb.ZAdd(ctx, "asynq:servers", redis.Z{Score: float64(time.Now().Add(10 * time.Second).Unix()), Member: "asynq:servers:{" + inner + "}"})
	w.rdb.Set(ctx, "asynq:servers:{"+inner+"}", "info", 10*time.Second)
}

// pass runs one pass of the recoverer.
func (w *recoverWorld) pass() {
	w.t.Helper()
	if err := w.r.pass(w.t.Context()); err != nil {
		w.t.Fatal(err)
	}
}

// want fails the test unless task id is in state.
func (w *recoverWorld) want(what, id string, state asynq.TaskState) *asynq.TaskInfo {
	w.t.Helper()
	info, err := w.insp.GetTaskInfo(w.q, id)
	if err != nil || info.State != state {
		w.t.Errorf("%s: task %s is %v (%v), want %s", what, id, info, err, state)
		return nil
	}
	return info
}

// other returns a registered process of this machine with pid.
func (w *recoverWorld) other(pid int) procRecord {
	return procRecord{Host: w.r.self.Host, PID: pid, Machine: w.r.self.Machine, Started: time.Now().Add(-time.Hour).UnixMilli()}
}

// TestRecoverDeadProcess checks which active tasks the recoverer puts back
// before asynq's lease, on fabricated records.
func TestRecoverDeadProcess(t *testing.T) {
	t.Parallel()
	sleeper := exec.Command("sleep", "120")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	alivePID := sleeper.Process.Pid

	t.Run("a dead process of this machine: at once", func(t *testing.T) {
		t.Parallel()
		w := newRecoverWorld(t)
		w.register(w.other(deadPID(t)), time.Now().Add(-3*time.Second))
		x := w.hold(time.Now().Add(-6 * time.Second))
		fresh := w.hold(time.Now().Add(-2 * time.Second))
		w.pass()
		if info := w.want("the dead process's task", x, asynq.TaskStatePending); info != nil && (info.Retried != 1 || !strings.Contains(info.LastErr, "is dead")) {
			t.Errorf("retried %d, last error %q; want the lost run counted, saying its holder is dead", info.Retried, info.LastErr)
		}
		w.want("a lease set 2s ago", fresh, asynq.TaskStateActive)
	})

	t.Run("another live process: only once it disclaims this very lease", func(t *testing.T) {
		t.Parallel()
		w := newRecoverWorld(t)
		w.register(w.other(deadPID(t)), time.Now())
		live := w.other(alivePID)
		w.register(live, time.Now())
		set := time.Now().Add(-7 * time.Second)
		x := w.hold(set)
		w.disclaim(live, nil, map[string]time.Time{x: set.Add(-time.Minute)}) // an earlier lease: says nothing of this one
		w.pass()
		w.want("before the live process disclaims it", x, asynq.TaskStateActive)
		w.disclaim(live, nil, map[string]time.Time{x: set})
		w.pass()
		w.want("after it disclaims it", x, asynq.TaskStatePending)
	})

	t.Run("an asynq server of a registered process: by its list, or its host and PID alone", func(t *testing.T) {
		t.Parallel()
		w := newRecoverWorld(t)
		w.register(w.other(deadPID(t)), time.Now())
		live := w.other(alivePID)
		w.register(live, time.Now())
		// Another incarnation with the same host and PID (a container's
		// PID 1): which one runs the server cannot be told.
		twin := live
		twin.Machine, twin.Started = "another namespace", time.Now().Add(-2*time.Hour).UnixMilli()
		w.register(twin, time.Now())
		w.server(live.Host, live.PID, "sid-live")
		set := time.Now().Add(-7 * time.Second)
		x := w.hold(set)
		w.disclaim(twin, nil, map[string]time.Time{x: set})
		w.disclaim(live, nil, map[string]time.Time{x: set})
		w.pass()
		w.want("a server two registrations may own, neither listing it", x, asynq.TaskStateActive)
		w.disclaim(live, []string{"sid-other"}, map[string]time.Time{x: set})
		w.pass()
		w.want("a server its process's full list leaves out", x, asynq.TaskStateActive)
		w.disclaim(live, []string{"sid-live"}, map[string]time.Time{x: set})
		w.pass()
		w.want("a server its process lists", x, asynq.TaskStatePending)
	})

	t.Run("a dequeue of this process in flight: its lease is not disclaimed", func(t *testing.T) {
		t.Parallel()
		w := newRecoverWorld(t)
		set := time.Now().Add(-20 * time.Second)
		x := w.hold(set)
		old := w.hold(time.Now().Add(-40 * time.Second))
		w.r.oldestDequeue = func() (time.Time, bool) { return set.Add(-500 * time.Millisecond), true }
		w.pass()
		var d disclaim
		if err := json.Unmarshal([]byte(w.rdb.Get(t.Context(), disclaimKey(w.r.self.member())).Val()), &d); err != nil {
			t.Fatal(err)
		}
		if _, ok := d.Leases[x]; ok {
			t.Errorf("disclaimed %s, set after a dequeue still in flight began", x)
		}
		if _, ok := d.Leases[old]; !ok {
			t.Errorf("did not disclaim %s, set before the dequeue began", old)
		}
	})

	t.Run("a process that cannot be proved dead: asynq's lease", func(t *testing.T) {
		t.Parallel()
		w := newRecoverWorld(t)
		w.register(w.other(deadPID(t)), time.Now())
		w.register(procRecord{Host: "elsewhere", PID: 7, Machine: "another boot", Started: 1}, time.Now().Add(-30*time.Minute))
		w.register(w.other(alivePID), time.Now().Add(-10*time.Minute)) // paused: exists, silent
		x := w.hold(time.Now().Add(-20 * time.Second))
		lapsed := w.hold(time.Now().Add(-61 * time.Second))
		w.pass()
		w.want("another machine's or a paused process's", x, asynq.TaskStateActive)
		w.want("a lease expired over 30s ago", lapsed, asynq.TaskStatePending)
	})

	t.Run("an asynq server no worker registered: asynq's lease", func(t *testing.T) {
		t.Parallel()
		w := newRecoverWorld(t)
		w.register(w.other(deadPID(t)), time.Now())
		w.server("foreign-host", 99, "sid-foreign")
		x := w.hold(time.Now().Add(-6 * time.Second))
		w.pass()
		w.want("with an unregistered server alive", x, asynq.TaskStateActive)
	})

	t.Run("this process: never while it holds the task; 5s past the lease once done", func(t *testing.T) {
		t.Parallel()
		w := newRecoverWorld(t)
		running := w.hold(time.Now().Add(-70 * time.Second))
		done := w.hold(time.Now().Add(-29 * time.Second))
		doneLapsed := w.hold(time.Now().Add(-32 * time.Second))
		notOurs := w.hold(time.Now().Add(-20 * time.Second))
		w.r.taskState = func(id string) (bool, bool) { return id == running, id == running || id == done || id == doneLapsed }
		doneLapsed2 := w.hold(time.Now().Add(-36 * time.Second))
		w.r.taskState = func(id string) (bool, bool) {
			return id == running, id == running || id == done || id == doneLapsed || id == doneLapsed2
		}
		w.pass()
		w.want("running here", running, asynq.TaskStateActive)
		w.want("run here, lease not yet lapsed", done, asynq.TaskStateActive)
		w.want("run here, lease lapsed 2s ago", doneLapsed, asynq.TaskStateActive)
		w.want("run here, lease lapsed 6s ago", doneLapsed2, asynq.TaskStatePending)
		if info := w.want("never run here, no other process", notOurs, asynq.TaskStatePending); info != nil && !strings.Contains(info.LastErr, "never delivered") {
			t.Errorf("last error %q; want it to say no process holds it", info.LastErr)
		}
	})

	t.Run("a disclaim leaves out what the process ran lately until 5s past the lease", func(t *testing.T) {
		t.Parallel()
		w := newRecoverWorld(t)
		// Another live process holds a task: nothing is put back meanwhile.
		live := w.other(alivePID)
		w.register(live, time.Now())
		ranFresh := w.hold(time.Now().Add(-20 * time.Second))
		ranLapsed := w.hold(time.Now().Add(-36 * time.Second))
		never := w.hold(time.Now().Add(-20 * time.Second))
		w.r.taskState = func(id string) (bool, bool) { return false, id == ranFresh || id == ranLapsed }
		w.pass()
		var d disclaim
		if err := json.Unmarshal([]byte(w.rdb.Get(t.Context(), disclaimKey(w.r.self.member())).Val()), &d); err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]bool{ranFresh: false, ranLapsed: true, never: true} {
			if _, got := d.Leases[id]; got != want {
				t.Errorf("disclaimed %s: %v, want %v (leases %v)", id, got, want, d.Leases)
			}
		}
		for _, id := range []string{ranFresh, ranLapsed, never} {
			w.want("with a live process that disclaims nothing", id, asynq.TaskStateActive)
		}
	})

	t.Run("put back a second time: after the backoff", func(t *testing.T) {
		t.Parallel()
		w := newRecoverWorld(t)
		w.r.backoff = func(string, int) time.Duration { return time.Hour }
		w.register(w.other(deadPID(t)), time.Now())
		x := w.hold(time.Now().Add(-6 * time.Second))
		w.pass()
		w.want("first time", x, asynq.TaskStatePending)
		keys := []string{"asynq:{" + w.q + "}:pending", "asynq:{" + w.q + "}:active", "asynq:{" + w.q + "}:lease", taskstore.TaskKey(w.q, x)}
		if err := holdScript.Run(t.Context(), w.rdb, keys, x, time.Now().Add(-6*time.Second).Add(taskstore.LeaseDuration).Unix()).Err(); err != nil {
			t.Fatal(err)
		}
		w.pass()
		if info := w.want("second time", x, asynq.TaskStateRetry); info != nil && info.NextProcessAt.Before(time.Now().Add(50*time.Minute)) {
			t.Errorf("retry at %s, want after the hour's backoff", info.NextProcessAt)
		}
	})

	t.Run("a registration this process left, and its disclaim", func(t *testing.T) {
		t.Parallel()
		w := newRecoverWorld(t)
		if err := w.r.register(t.Context()); err != nil {
			t.Fatal(err)
		}
		x := w.hold(time.Now().Add(-6 * time.Second))
		w.pass()
		if score, err := w.rdb.ZScore(t.Context(), procsKey, w.r.self.member()).Result(); err != nil || time.Since(time.UnixMilli(int64(score))) > 5*time.Second {
			t.Errorf("this process's registration: %v, %v; want refreshed", score, err)
		}
		var d disclaim
		if err := json.Unmarshal([]byte(w.rdb.Get(t.Context(), disclaimKey(w.r.self.member())).Val()), &d); err != nil || len(d.Leases) != 1 || d.Leases[x] == 0 {
			t.Errorf("this process's disclaim %+v, %v; want %s", d, err, x)
		}
		w.r.deregister(t.Context())
		if n := w.rdb.Exists(t.Context(), disclaimKey(w.r.self.member())).Val(); n != 0 || w.rdb.ZScore(t.Context(), procsKey, w.r.self.member()).Err() == nil {
			t.Error("deregister left this process's registration or disclaim")
		}
	})
}
