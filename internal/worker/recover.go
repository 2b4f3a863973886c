package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/hibiken/asynq"
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
// paused (SIGSTOP, a frozen VM, a long GC pause) or cut off from Redis. It
// stops heartbeating exactly as a dead one does, yet when it resumes within
// its lease it finishes the call and writes the outcome: asynq's processor
// checks only its own lease before MarkAsComplete, Retry or Requeue, and
// its syncer retries a failed write until the lease's deadline (asynq
// v0.26 processor.go, syncer.go). Had the task been put back and picked up
// by another worker meanwhile, the cancel goes twice and that worker's task
// is completed, or moved, under it. Nothing in Redis tells a stopped
// process from a dead one, and asynq's own server records can miss a live
// holder (its heartbeat writes the records before it extends the leases,
// and goes on when the first write fails; on a Cluster they live on
// another node).
//
// So every worker process registers itself (procsKey: host, PID, kernel
// boot and PID namespace, start time; refreshed every pass) and publishes,
// every pass, its asynq servers' IDs and which of the queues' settled
// leases (by task and lease) it will write nothing under (disclaimKey):
// it does not hold the task, did not run it lately or its lease expired 5s
// ago, and no dequeue of its still in flight may be taking it. It knows
// what it holds from the moment a dequeue's reply arrives (scriptWatch). A
// task is put back before asynq would only when every process that could
// hold it is accounted for:
//
//   - a registered process of this machine (same host, boot and PID
//     namespace) that no longer exists: kill(pid, 0) answers ESRCH, and a
//     dead process writes nothing;
//   - a live registered process that disclaimed this very lease;
//   - this process, which does not hold it: at once if it disclaims it,
//     and if it ran it lately once the lease has expired by 5s on its own
//     clock (its syncer gives up at the deadline; the slack is for a write
//     still on its way, and a clock step);
//
// and every asynq server alive when the lease was set is one of a
// registered process's (it lists it, or, before it has found its servers,
// has its host and PID alone). When none of them is dead and this process
// did not run it, no process holds the task: the dequeue that set the
// lease lost its reply (a Sentinel failover, a connection cut), and asynq
// never started it. Anything else (a process registered in the last hour
// that is none of these, an asynq server no registered process owns)
// leaves the task to asynq's rule, the lease expired 30s ago, which this
// recoverer checks every 2s rather than every minute.
const (
	// RecoverIntervalDefault is how often the worker looks for tasks
	// whose holder died.
	RecoverIntervalDefault = 2 * time.Second
	// leaseSkew is how long past its expiry a lease is taken as lapsed
	// whatever the clocks: asynq's recoverer's own allowance.
	leaseSkew = 30 * time.Second
	// selfMargin is how long past its expiry a lease this process set is
	// taken as lapsed: one clock, so only a write still on its way (the
	// Redis client's timeouts are 3s) and a small clock step.
	selfMargin = 5 * time.Second
	// settleTime is the least age of a lease before anyone acts on it:
	// time for its holder to have registered and begun the task's run.
	settleTime = 5 * time.Second
	// serversLookback bounds the asynq servers read: one whose record
	// expired longer ago cannot hold a task with a live lease.
	serversLookback = taskstore.LeaseDuration + leaseSkew + time.Minute
	// procsLookback is how long a process that stopped refreshing its
	// registration still counts as one that could hold a task; procsKeep
	// how long its registration is kept at all.
	procsLookback = time.Hour
	procsKeep     = 24 * time.Hour
	// disclaimTTL is how long a process's disclaim outlives its last
	// pass: its server IDs must be known for as long as a lease it set can
	// be judged.
	disclaimTTL = serversLookback + time.Minute
	// recoverPrefix starts the error text of a task put back because its
	// holder stopped, asynq's recoverer's included: a task put back a
	// second time is retried after the policy's backoff, not at once (it
	// may be what kills its workers).
	recoverPrefix = "asynq: task lease"
)

// procsKey is the sorted set of worker processes, scored by their last
// refresh (Unix ms); each member is a process's JSON procRecord.
const procsKey = "cancelworker:procs"

// disclaimKey returns the key of proc's disclaim: the settled leases it
// neither runs nor ran lately, and when it said so.
func disclaimKey(member string) string { return "cancelworker:disclaim:" + member }

// procRecord is a registered worker process.
type procRecord struct {
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// Machine is "<boot id> <pid namespace>": where kill(pid, 0) means
	// this process; "" where /proc does not tell.
	Machine string `json:"machine,omitempty"`
	// Started is when it started, in Unix ms.
	Started int64 `json:"started"`
}

// member is r as procsKey holds it.
func (p procRecord) member() string {
	b, _ := json.Marshal(p) // fixed fields: always marshals, always alike
	return string(b)
}

func thisProc() procRecord {
	p := procRecord{PID: os.Getpid(), Started: time.Now().UnixMilli()}
	p.Host, _ = os.Hostname()
	boot, err1 := os.ReadFile("/proc/sys/kernel/random/boot_id")
	ns, err2 := os.Readlink("/proc/self/ns/pid")
	if err1 == nil && err2 == nil {
		p.Machine = strings.TrimSpace(string(boot)) + " " + ns
	}
	return p
}

// disclaim is what a process publishes each pass: its asynq servers'
// IDs, and the settled leases it does not hold, by task ID and lease
// expiry (Unix s): a lease set anew is another lease.
type disclaim struct {
	// Servers are the IDs of the asynq servers it runs, once it has
	// found them all.
	Servers []string         `json:"servers"`
	Leases  map[string]int64 `json:"leases"`
}

// recoverer puts back the tasks of worker processes that died.
type recoverer struct {
	store    *taskstore.Store
	rdb      redis.UniversalClient
	log      *zap.Logger
	queues   []string
	interval time.Duration
	self     procRecord
	// exists reports whether a process of this machine exists; nil means
	// processExists (kill(pid, 0)).
	exists func(pid int) bool
	// taskState reports whether this process holds a task, and whether it
	// held it lately (Handler.taskState); nil means never.
	taskState func(id string) (held, lately bool)
	// oldestDequeue returns when this process's oldest dequeue in flight
	// began (seenRing.oldestDequeue); nil means none ever is.
	oldestDequeue func() (time.Time, bool)
	// idle reports whether this process holds no task; nil means it never
	// does.
	idle func() bool
	// insp and dequeuers find this process's asynq servers' IDs: it runs
	// dequeuers of them.
	insp      *asynq.Inspector
	dequeuers int
	serverIDs []string
	// backoff is how long a task put back a second time waits, by its
	// type and retry count; nil means not at all.
	backoff func(typ string, retried int) time.Duration
	nowFunc func() time.Time
}

// run looks every interval until ctx ends, then withdraws this process's
// disclaim.
func (r *recoverer) run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		if err := r.pass(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("could not look for the tasks of dead worker processes", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			r.deregister(ctx)
			return
		case <-t.C:
		}
	}
}

// deregister takes this process out of the registry as it stops, once its
// asynq servers have shut down, if it holds no task: it then keeps no other
// worker from putting a task back early. (A call asynq gave up on at the
// shutdown timeout may still be running: then it stays registered.)
func (r *recoverer) deregister(ctx context.Context) {
	if r.idle != nil && !r.idle() {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	pipe := r.rdb.Pipeline()
	pipe.ZRem(dctx, procsKey, r.self.member())
	pipe.Del(dctx, disclaimKey(r.self.member()))
	if _, err := pipe.Exec(dctx); err != nil {
		r.log.Warn("could not take this process out of the workers' registry; for an hour, a worker on another machine that dies has its tasks put back only after asynq's lease", zap.Error(err))
	}
}

// register adds this process to the registry, or refreshes it; the worker
// calls it before its asynq servers take a task, and every pass does.
func (r *recoverer) register(ctx context.Context) error {
	now := r.nowFunc()
	pipe := r.rdb.Pipeline()
	pipe.ZAdd(ctx, procsKey, redis.Z{Score: float64(now.UnixMilli()), Member: r.self.member()})
	pipe.ZRemRangeByScore(ctx, procsKey, "-inf", "("+strconv.FormatInt(now.Add(-procsKeep).UnixMilli(), 10))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("register this process: %w", err)
	}
	return nil
}

// candidate is a lease that may be put back: old enough to judge.
type candidate struct {
	queue string
	lease taskstore.Lease
	set   time.Time // when its holder last set it
}

// pass registers this process, publishes its disclaim, and puts back every
// task, in the queues served, whose holders are accounted for as above, or
// whose lease expired 30s ago.
func (r *recoverer) pass(ctx context.Context) error {
	now := r.nowFunc()
	if err := r.register(ctx); err != nil {
		return err
	}
	if len(r.serverIDs) < r.dequeuers {
		r.learnServers()
	}
	var settled []candidate
	mine := disclaim{Servers: r.fullServers(), Leases: map[string]int64{}}
	for _, q := range r.queues {
		leases, err := r.store.Leases(ctx, q)
		if err != nil {
			return err
		}
		for _, l := range leases {
			set := l.Expires.Add(-taskstore.LeaseDuration)
			if now.Sub(set) < settleTime {
				continue
			}
			settled = append(settled, candidate{q, l, set})
		}
	}
	// What this process holds, read after the leases: a dequeue of its
	// that set one of them began before, and is now either in flight (a
	// lease set since it began may be the one it is taking, its reply not
	// yet seen: not disclaimed) or done, and then its task is held.
	since, inflight := time.Time{}, false
	if r.oldestDequeue != nil {
		since, inflight = r.oldestDequeue()
	}
	for _, c := range settled {
		if r.disclaims(c, now, since, inflight) {
			mine.Leases[c.lease.ID] = c.lease.Expires.Unix()
		}
	}
	// Written every pass, so that what it says is this pass's.
	b, err := json.Marshal(mine)
	if err != nil {
		return err
	}
	if err := r.rdb.Set(ctx, disclaimKey(r.self.member()), b, disclaimTTL).Err(); err != nil {
		return fmt.Errorf("publish this process's disclaim: %w", err)
	}
	if len(settled) == 0 {
		return nil
	}
	w, err := r.world(ctx, now)
	if err != nil {
		return err
	}
	for _, c := range settled {
		at, why, held := r.verdict(w, c, mine)
		if held || now.Before(at) {
			continue
		}
		ok, err := r.putBack(ctx, c, why, now)
		if err != nil {
			return err
		}
		if ok {
			r.log.Warn("put back a task whose worker stopped: its call's outcome is unknown, so a permanent answer to the next attempt is flagged",
				zap.String("task_id", c.lease.ID), zap.String("queue", c.queue), zap.Time("lease_set", c.set), zap.String("why", why))
		}
	}
	return nil
}

// disclaims reports whether this process can say it will write nothing
// under the lease of c, as of now: it does not hold the task; it did not
// run it lately, or its lease expired selfMargin ago (asynq here may write
// its outcome until the lease's deadline); and no dequeue of its in flight
// since (a dequeue in flight since before the lease was set, by a second
// of clock slack, may be the one taking it, its reply not yet seen).
func (r *recoverer) disclaims(c candidate, now, since time.Time, inflight bool) bool {
	held, lately := r.state(c.lease.ID)
	switch {
	case held:
		return false
	case lately && now.Before(c.lease.Expires.Add(selfMargin)):
		return false
	}
	return !inflight || c.set.Before(since.Add(-time.Second))
}

// world is what a pass knows of the processes and asynq's servers.
type world struct {
	procs   []proc
	servers []taskstore.Server
}

// owned reports whether asynq server s is a registered process's: one that
// lists it among its servers, or, the one registered process of its host
// and PID that has not listed its servers yet (it died, or began, within
// its first pass).
func (w world) owned(s taskstore.Server) bool {
	var same []proc
	for _, p := range w.procs {
		if p.rec.Host != s.Host || p.rec.PID != s.PID {
			continue
		}
		if slices.Contains(p.disclaim.Servers, s.ID) {
			return true
		}
		same = append(same, p)
	}
	return len(same) == 1 && len(same[0].disclaim.Servers) == 0
}

// proc is a registered process, as a pass sees it.
type proc struct {
	rec      procRecord
	self     bool
	dead     bool // proved: this machine, and kill(pid, 0) says ESRCH
	disclaim disclaim
}

// world reads the registry, each process's disclaim and asynq's servers.
func (r *recoverer) world(ctx context.Context, now time.Time) (world, error) {
	var w world
	members, err := r.rdb.ZRangeByScore(ctx, procsKey, &redis.ZRangeBy{Min: strconv.FormatInt(now.Add(-procsLookback).UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil {
		return w, fmt.Errorf("read the worker processes: %w", err)
	}
	self := r.self.member()
	pipe := r.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(members))
	for i, m := range members {
		gets[i] = pipe.Get(ctx, disclaimKey(m))
	}
	if len(members) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return w, fmt.Errorf("read the disclaims: %w", err)
		}
	}
	for i, m := range members {
		p := proc{self: m == self}
		if json.Unmarshal([]byte(m), &p.rec) != nil {
			continue
		}
		if v, err := gets[i].Bytes(); err == nil {
			_ = json.Unmarshal(v, &p.disclaim)
		}
		sameMachine := r.self.Machine != "" && p.rec.Machine == r.self.Machine && p.rec.Host == r.self.Host
		switch {
		case p.self || !sameMachine:
		case p.rec.PID == r.self.PID:
			p.dead = true // this process holds its PID now
		default:
			p.dead = !r.processExists(p.rec.PID)
		}
		if p.self {
			p.disclaim.Servers = r.fullServers()
		}
		w.procs = append(w.procs, p)
	}
	if w.servers, err = r.store.Servers(ctx, now.Add(-serversLookback)); err != nil {
		return w, err
	}
	return w, nil
}

// verdict returns when the task of c may be put back, and why; held when
// this process is running it. mine is this pass's disclaim.
func (r *recoverer) verdict(w world, c candidate, mine disclaim) (at time.Time, why string, held bool) {
	l, set := c.lease, c.set
	generic := l.Expires.Add(leaseSkew)
	holds, self := r.state(l.ID)
	if holds {
		return time.Time{}, "", true
	}
	at = set
	if self {
		// Run here lately: asynq here may still write its outcome until
		// the lease's deadline, on this clock.
		at = l.Expires.Add(selfMargin)
		why = fmt.Sprintf("%s expired at %s and this process, which ran it, is done with it", recoverPrefix, l.Expires.UTC().Format(time.RFC3339))
		// (selfMargin past it.)
	}
	var dead []string
	for _, p := range w.procs {
		switch {
		case p.self:
		case p.dead:
			dead = append(dead, p.rec.Host+":"+strconv.Itoa(p.rec.PID))
		case p.disclaim.Leases[l.ID] == l.Expires.Unix():
			// Alive, and it said it does not hold this lease.
		default:
			return generic, genericWhy(l), false
		}
	}
	for _, s := range w.servers {
		if !s.Expires.Before(set.Add(-time.Second)) && !w.owned(s) {
			return generic, genericWhy(l), false // an asynq server no registered process owns
		}
	}
	switch {
	case self:
	case mine.Leases[l.ID] != l.Expires.Unix():
		// A dequeue of this process in flight may be taking it.
		return generic, genericWhy(l), false
	case len(dead) > 0:
		why = recoverPrefix + " cut short: the worker process holding it is dead (" + strings.Join(dead, ", ") + ")"
	default:
		// No process that could hold it does: the dequeue that set the
		// lease never delivered the task (its reply was lost: a failover,
		// a connection cut as it came back).
		why = recoverPrefix + " cut short: no worker process holds it (the dequeue that set its lease never delivered it)"
	}
	return at, why, false
}

func genericWhy(l taskstore.Lease) string {
	return fmt.Sprintf("%s expired (at %s, not renewed since): its worker stopped", recoverPrefix, l.Expires.UTC().Format(time.RFC3339))
}

// putBack puts the task of c back: at once, or after the backoff when it
// was put back before (it may be what kills its workers).
func (r *recoverer) putBack(ctx context.Context, c candidate, why string, now time.Time) (bool, error) {
	return r.store.RecoverActive(ctx, c.queue, c.lease, why, now, func(m taskstore.Message) time.Time {
		if r.backoff == nil || !strings.HasPrefix(m.ErrorMsg, recoverPrefix) {
			return now
		}
		return now.Add(r.backoff(m.Type, m.Retried))
	})
}

// learnServers finds this process's asynq servers among the live ones:
// its host and PID, started since it did.
func (r *recoverer) learnServers() {
	if r.insp == nil {
		return
	}
	srvs, err := r.insp.Servers()
	if err != nil {
		return
	}
	started := time.UnixMilli(r.self.Started).Add(-time.Second)
	var ids []string
	for _, s := range srvs {
		if s.Host == r.self.Host && s.PID == r.self.PID && !s.Started.Before(started) {
			ids = append(ids, s.ID)
		}
	}
	slices.Sort(ids)
	r.serverIDs = ids
}

// fullServers returns this process's asynq servers' IDs once it has found
// them all, else nil.
func (r *recoverer) fullServers() []string {
	if len(r.serverIDs) == r.dequeuers {
		return r.serverIDs
	}
	return nil
}

func (r *recoverer) state(id string) (held, lately bool) {
	if r.taskState == nil {
		return false, false
	}
	return r.taskState(id)
}

func (r *recoverer) processExists(pid int) bool {
	if r.exists != nil {
		return r.exists(pid)
	}
	return processExists(pid)
}
