package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Recovering the tasks of a worker process that died (kill -9, a crash, an
// OOM kill) sooner than asynq does.
//
// asynq holds an active task under a lease of 30s that the holder's
// heartbeat extends every 5s; its recoverer, once a minute, puts back the
// tasks whose lease expired more than 30s ago (its allowance for clock
// skew). A task the dead process held thus waits 60 to about 120s.
//
// What makes the lease necessary is a holder that is not dead but stopped:
// paused (SIGSTOP, a frozen VM, a long GC pause) or cut off from Redis. Its
// heartbeat, and so its server record, stop exactly as a dead one's, yet
// when it resumes within its lease it finishes the call and writes the
// outcome: asynq's processor checks only its own lease before
// MarkAsComplete, Retry or Requeue, and its syncer retries a failed write
// until the lease's deadline (asynq v0.26 processor.go, syncer.go). Had the
// task been put back and picked up by another worker meanwhile, the cancel
// goes twice and that worker's task is completed, or moved, under it. No
// Redis record tells a stopped process from a dead one.
//
// So a task is put back before asynq would only when each asynq server that
// could hold it (any whose record outlived the moment its lease was last
// set) is accounted for:
//
//   - a process of this machine that no longer exists (same host, kernel
//     boot and PID namespace by its process record, and kill(pid, 0) says
//     ESRCH): a dead process writes nothing; or
//   - a process that started after the lease was set: it never held the
//     task; or
//   - this very process, when it has not run the task lately (started or
//     finished it within the last 40s); if it has, and is done with it,
//     its syncer may still write for it until the lease's deadline, on
//     this clock, so it waits for that (plus a second).
//
// Any other server (another machine's, or one that may hold it) leaves the
// task to asynq's rule, the lease expired 30s ago, which this recoverer
// only checks more often than asynq's once a minute.
const (
	// RecoverIntervalDefault is how often the worker looks for tasks
	// whose holder died.
	RecoverIntervalDefault = 2 * time.Second
	// leaseSkew is how long past its expiry a lease is taken as lapsed
	// whatever the clocks: asynq's recoverer's own allowance.
	leaseSkew = 30 * time.Second
	// selfMargin is how long past its expiry a lease this process set is
	// taken as lapsed: one clock, so only the syncer's last attempt.
	selfMargin = time.Second
	// settleTime is the least age of a lease before a dead holder's task
	// is put back: time for a server that has just started to have
	// written its record (asynq writes it as it starts).
	settleTime = 5 * time.Second
	// serversLookback bounds the servers read: one whose record expired
	// longer ago cannot hold a task with a live lease.
	serversLookback = taskstore.LeaseDuration + leaseSkew + time.Minute
	// procTTL is how long a worker's process record lives after its last
	// refresh (every procRefresh).
	procTTL     = 24 * time.Hour
	procRefresh = time.Hour
)

// procKey returns the Redis key of the process record of host and pid.
func procKey(host string, pid int) string {
	return "cancelworker:proc:" + host + ":" + strconv.Itoa(pid)
}

// procRecord is what a worker process records of itself: the machine
// (kernel boot and PID namespace: where kill(pid, 0) means that process)
// and when it started.
type procRecord struct {
	Machine string    `json:"machine"`
	Started time.Time `json:"started"`
}

// proc is this process, for the records.
type proc struct {
	host string
	pid  int
	// machine is "<boot id> <pid namespace>"; "" where /proc does not
	// tell (then no process is ever proved dead).
	machine string
	started time.Time
}

func thisProc() proc {
	p := proc{pid: os.Getpid(), started: time.Now()}
	p.host, _ = os.Hostname()
	boot, err1 := os.ReadFile("/proc/sys/kernel/random/boot_id")
	ns, err2 := os.Readlink("/proc/self/ns/pid")
	if err1 == nil && err2 == nil {
		p.machine = strings.TrimSpace(string(boot)) + " " + ns
	}
	return p
}

// recoverer puts back the tasks of worker processes that died.
type recoverer struct {
	store    *taskstore.Store
	rdb      redis.UniversalClient
	log      *zap.Logger
	queues   []string
	interval time.Duration
	self     proc
	// exists reports whether a process of this machine exists; nil means
	// processExists (kill(pid, 0)).
	exists func(pid int) bool
	// ranLately reports whether this process started or finished a task
	// lately (Handler.ranLately); nil means never.
	ranLately func(id string) bool
	nowFunc   func() time.Time

	refreshed time.Time              // when this process's record was last written
	records   map[string]*procRecord // procKey → record (nil: none), read this pass
}

// run looks every interval until ctx ends.
func (r *recoverer) run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		if err := r.pass(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("could not look for the tasks of dead worker processes", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// register writes this process's record, which lets a worker started
// after it on this machine prove it dead; the worker calls it before its
// asynq servers take a task, and pass refreshes it.
func (r *recoverer) register(ctx context.Context) error {
	b, err := json.Marshal(procRecord{Machine: r.self.machine, Started: r.self.started})
	if err != nil {
		return err
	}
	if err := r.rdb.Set(ctx, procKey(r.self.host, r.self.pid), b, procTTL).Err(); err != nil {
		return fmt.Errorf("write this process's record: %w", err)
	}
	r.refreshed = r.nowFunc()
	return nil
}

// pass puts back every task, in the queues served, whose holder is
// accounted for as above, or whose lease expired 30s ago.
func (r *recoverer) pass(ctx context.Context) error {
	now := r.nowFunc()
	clear(r.records)
	if now.Sub(r.refreshed) >= procRefresh {
		if err := r.register(ctx); err != nil {
			return err
		}
	}
	var servers []taskstore.Server
	read := false
	for _, q := range r.queues {
		leases, err := r.store.Leases(ctx, q)
		if err != nil {
			return err
		}
		for _, l := range leases {
			set := l.Expires.Add(-taskstore.LeaseDuration) // when the holder last set it
			if now.Sub(set) < settleTime {
				continue
			}
			if !read {
				if servers, err = r.store.Servers(ctx, now.Add(-serversLookback), now); err != nil {
					return err
				}
				read = true
			}
			at, why, held, err := r.verdict(ctx, servers, l, set)
			if err != nil {
				return err
			}
			if held || now.Before(at) {
				continue
			}
			ok, err := r.store.RecoverActive(ctx, q, l, why, now)
			if err != nil {
				return err
			}
			if ok {
				r.log.Warn("put back a task whose worker stopped: its call's outcome is unknown, so a permanent answer to the next attempt is flagged",
					zap.String("task_id", l.ID), zap.String("queue", q), zap.Time("lease_set", set), zap.String("why", why))
			}
		}
	}
	return nil
}

// verdict returns when the task under lease l, last set at set, may be put
// back, and why; held when this process is running it.
func (r *recoverer) verdict(ctx context.Context, servers []taskstore.Server, l taskstore.Lease, set time.Time) (at time.Time, why string, held bool, err error) {
	at = set
	lapsed := func(t time.Time, w string) {
		if t.After(at) {
			at, why = t, w
		}
	}
	candidates := 0
	var dead []string
	for _, s := range servers {
		if s.Expires.Before(set.Add(-time.Second)) {
			continue // its record was gone before the lease was set
		}
		candidates++
		rec, err := r.record(ctx, s.Host, s.PID)
		if err != nil {
			return time.Time{}, "", false, err
		}
		sameMachine := rec != nil && r.self.machine != "" && s.Host == r.self.host && rec.Machine == r.self.machine
		self := s.Host == r.self.host && s.PID == r.self.pid
		switch {
		case self && s.Alive && s.Tasks[l.ID]:
			return time.Time{}, "", true, nil // running it
		case self && r.self.started.After(set.Add(time.Second)):
			// This process started after the lease was set.
		case self && r.ranLately != nil && r.ranLately(l.ID):
			lapsed(l.Expires.Add(selfMargin), fmt.Sprintf("asynq: task lease expired at %s, and this process, which ran it, is done with it", l.Expires.UTC().Format(time.RFC3339)))
		case self:
			// Not run here lately: not this process's.
		case sameMachine && rec.Started.After(set.Add(time.Second)):
			// Started after the lease was set: it never held the task.
		case sameMachine && !r.processExists(s.PID):
			dead = append(dead, s.Host+":"+strconv.Itoa(s.PID))
		default:
			lapsed(l.Expires.Add(leaseSkew), "")
		}
	}
	if candidates == 0 || (len(dead) == 0 && !at.After(set)) {
		// No server to account for it: whoever set the lease left no
		// record to judge by.
		lapsed(l.Expires.Add(leaseSkew), "")
	}
	switch {
	case why != "":
	case at.After(set):
		why = fmt.Sprintf("asynq: task lease expired (at %s, not renewed since): its worker stopped", l.Expires.UTC().Format(time.RFC3339))
	case len(dead) > 0:
		why = "asynq: task lease cut short: the worker process holding it is dead (" + strings.Join(dead, ", ") + ")"
	}
	return at, why, false, nil
}

// record returns the process record of host and pid, nil when there is
// none; each is read once a pass.
func (r *recoverer) record(ctx context.Context, host string, pid int) (*procRecord, error) {
	key := procKey(host, pid)
	if rec, ok := r.records[key]; ok {
		return rec, nil
	}
	v, err := r.rdb.Get(ctx, key).Bytes()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read the record of process %s:%d: %w", host, pid, err)
	}
	var rec *procRecord
	if err == nil {
		rec = &procRecord{}
		if json.Unmarshal(v, rec) != nil {
			rec = nil
		}
	}
	if r.records == nil {
		r.records = map[string]*procRecord{}
	}
	r.records[key] = rec
	return rec, nil
}

func (r *recoverer) processExists(pid int) bool {
	if r.exists != nil {
		return r.exists(pid)
	}
	return processExists(pid)
}
