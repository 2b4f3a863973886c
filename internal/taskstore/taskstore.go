// Package taskstore is what cancelworker does in asynq's Redis layout beyond
// asynq's public API, each in one atomic script:
//
//   - Enqueue: enqueue a task, or report the state of the task already
//     holding its ID (pending, retry, completed, archived, ...), in one round
//     trip, where asynq's client only says "conflict".
//   - Replace: swap a task for a new one with the same ID, whatever state
//     the old one is in but active, so that a failure leaves the old task
//     in place rather than neither (asynq offers delete, then enqueue).
//   - Compact: shrink completed tasks to a small string under the same key,
//     kept for the task's retention. asynq keeps a completed task as its
//     whole message plus an index entry, about 720 bytes; the compact form
//     is about 175. The key stays, so asynq's own enqueue still refuses the
//     ID (dedupe holds for any asynq client) and status lookups still find
//     it, but asynq's Inspector no longer lists or reads it.
//
// Every script touches keys of one queue only, all of which carry the
// queue's hash tag ("asynq:{<queue>}:..."), as does the attempt record
// (AttemptKey), so each runs on Redis Cluster as on one server.
//
// The layout is asynq v0.26's (internal/base and internal/rdb), pinned by
// go.mod; the tests check it against asynq's own Inspector and Server.
package taskstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Task states, as asynq stores them in a task hash's "state" field.
const (
	StatePending     = "pending"
	StateActive      = "active"
	StateScheduled   = "scheduled"
	StateRetry       = "retry"
	StateArchived    = "archived"
	StateCompleted   = "completed"
	StateAggregating = "aggregating"
)

// allQueues is asynq's set of queue names.
const allQueues = "asynq:queues"

func queuePrefix(queue string) string { return "asynq:{" + queue + "}:" }

// TaskKey returns the key of task id in queue.
func TaskKey(queue, id string) string { return queuePrefix(queue) + "t:" + id }

func pendingKey(queue string) string   { return queuePrefix(queue) + "pending" }
func scheduledKey(queue string) string { return queuePrefix(queue) + "scheduled" }
func retryKey(queue string) string     { return queuePrefix(queue) + "retry" }
func archivedKey(queue string) string  { return queuePrefix(queue) + "archived" }
func completedKey(queue string) string { return queuePrefix(queue) + "completed" }

// AttemptKey returns the key of the worker's attempt record of task id in
// queue: not asynq's, but in the queue's hash slot, so that Replace can
// reset it in the same script.
func AttemptKey(queue, id string) string {
	return "cancelworker:{" + queue + "}:attempt:" + id
}

// Queues returns the names in asynq's set of queues.
func (s *Store) Queues(ctx context.Context) ([]string, error) {
	qs, err := s.rdb.SMembers(ctx, allQueues).Result()
	if err != nil {
		return nil, fmt.Errorf("asynq queues: %w", err)
	}
	return qs, nil
}

// ErrActive is returned by Replace while the task is being processed:
// replacing it could send the same cancel twice at once.
var ErrActive = errors.New("the task is being processed right now")

// Store runs the scripts on one Redis. It is safe for concurrent use and
// does not close the client.
type Store struct {
	rdb       redis.UniversalClient
	published sync.Map // queue name → when last added to asynq:queues (time.Time)
	nowFunc   func() time.Time
}

// New returns a Store on rdb.
func New(rdb redis.UniversalClient) *Store {
	return &Store{rdb: rdb, nowFunc: time.Now}
}

// publishEvery is how often publish adds a queue again: a Redis that
// lost the set (a failover to a replica that had not caught up, a restart
// without persistence) has it back within that time.
const publishEvery = 30 * time.Second

// publish adds queue to asynq's set of queues, as asynq's client does, so
// that the Inspector and the UI list it: once, then again every
// publishEvery.
func (s *Store) publish(ctx context.Context, queue string) error {
	now := s.nowFunc()
	if at, ok := s.published.Load(queue); ok && now.Sub(at.(time.Time)) < publishEvery {
		return nil
	}
	if err := s.rdb.SAdd(ctx, allQueues, queue).Err(); err != nil {
		return err
	}
	s.published.Store(queue, now)
	return nil
}

// enqueueScript enqueues tasks of one queue, in order, each unless its key
// exists, and returns for each {1, ""} when enqueued, {0, state} otherwise
// (a compact completed task, a string, is "completed"), flattened. One call
// for many tasks saves Redis a script call per task. Redis checks for
// maxmemory only before a script's first write, so a call either fails
// before it writes anything or runs to the end.
// KEYS: pending, then each task's key. ARGV: now (Unix ns), then each
// task's message and ID.
var enqueueScript = redis.NewScript(`
local now = ARGV[1]
local out = {}
for i = 2, #KEYS do
	local key = KEYS[i]
	local kind = redis.call("TYPE", key).ok
	if kind == "none" then
		redis.call("HSET", key, "msg", ARGV[2*i-2], "state", "pending", "pending_since", now)
		redis.call("LPUSH", KEYS[1], ARGV[2*i-1])
		out[#out+1] = 1
		out[#out+1] = ""
	elseif kind == "hash" then
		out[#out+1] = 0
		out[#out+1] = redis.call("HGET", key, "state") or ""
	elseif kind == "string" then
		out[#out+1] = 0
		out[#out+1] = "completed"
	else
		out[#out+1] = 0
		out[#out+1] = kind
	end
end
return out`)

// Enqueue adds m to its queue as asynq's client would, unless a task with
// its ID exists: then it returns that task's state and false.
func (s *Store) Enqueue(ctx context.Context, m Message) (existing string, enqueued bool, err error) {
	r := s.EnqueueMany(ctx, []Message{m})[0]
	return r.Existing, r.Enqueued, r.Err
}

// EnqueueResult is what EnqueueMany did with one message.
type EnqueueResult struct {
	// Existing is the state of the task already holding the message's ID
	// when Enqueued is false.
	Existing string
	Enqueued bool
	Err      error
}

// EnqueueMany is Enqueue for each of ms, in one pipelined round trip of
// one script call per queue: Redis runs them in order, so a later message
// with the ID of an earlier one finds it there, as one Enqueue after the
// other would.
func (s *Store) EnqueueMany(ctx context.Context, ms []Message) []EnqueueResult {
	if len(ms) == 0 {
		return nil
	}
	out := make([]EnqueueResult, len(ms))
	fail := func(idx []int, err error) {
		for _, i := range idx {
			out[i].Err = fmt.Errorf("enqueue %s: %w", ms[i].ID, err)
		}
	}
	// The messages of each queue, in order; the same ID is always in
	// the same queue.
	var queues []string
	byQueue := map[string][]int{}
	for i, m := range ms {
		if _, ok := byQueue[m.Queue]; !ok {
			if err := s.publish(ctx, m.Queue); err != nil {
				fail(indices(len(ms)), err)
				return out
			}
			queues = append(queues, m.Queue)
		}
		byQueue[m.Queue] = append(byQueue[m.Queue], i)
	}
	for try := 0; len(queues) > 0; try++ {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(queues))
		now := s.nowFunc().UnixNano()
		for q, queue := range queues {
			idx := byQueue[queue]
			keys := make([]string, 0, len(idx)+1)
			args := make([]any, 0, 2*len(idx)+1)
			keys = append(keys, pendingKey(queue))
			args = append(args, now)
			for _, i := range idx {
				keys = append(keys, TaskKey(queue, ms[i].ID))
				args = append(args, ms[i].Encode(), ms[i].ID)
			}
			cmds[q] = enqueueScript.EvalSha(ctx, pipe, keys, args...)
		}
		_, _ = pipe.Exec(ctx) // each command's error is read below
		var again []string    // the queues whose call found no script
		for q, c := range cmds {
			idx := byQueue[queues[q]]
			res, err := c.Slice()
			switch {
			case err != nil && try == 0 && redis.HasErrorPrefix(err, "NOSCRIPT"):
				// Not in that Redis's script cache (a restart, SCRIPT
				// FLUSH, a Cluster node that never had it): the call
				// did not run. Send it again once the script is loaded.
				again = append(again, queues[q])
			case err != nil:
				fail(idx, err)
			case len(res) != 2*len(idx):
				fail(idx, fmt.Errorf("unexpected script reply of %d values for %d tasks", len(res), len(idx)))
			default:
				for k, i := range idx {
					ok, _ := res[2*k].(int64)
					out[i].Existing, _ = res[2*k+1].(string)
					out[i].Enqueued = ok == 1
				}
			}
		}
		if len(again) > 0 {
			if err := enqueueScript.Load(ctx, s.rdb).Err(); err != nil {
				for _, queue := range again {
					fail(byQueue[queue], err)
				}
				return out
			}
		}
		queues = again
	}
	return out
}

// indices returns 0, 1, ..., n-1.
func indices(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// Task is what Peek found under a task's key.
type Task struct {
	// State is the task's state, "" when there is no task.
	State string
	// Compact is true for a compacted completed task; Message is then
	// empty and CompletedAt and Retried come from the compact form.
	Compact bool
	// Raw is the stored message or compact value, as read: Replace
	// compares it.
	Raw string
	// Message is the decoded message of a task hash.
	Message     Message
	CompletedAt time.Time
	Retried     int
	// Reported is how many of the task's runs asynq counted as failures
	// that reported back to the attempt record (its "n" field).
	Reported int
	// Unknown is the attempt record's unknown-outcome mark.
	Unknown bool
}

// UnreportedRuns reports whether the task had runs that asynq counted but
// that never reported back: their outcome is unknown.
func (t Task) UnreportedRuns() bool { return t.Retried > t.Reported }

// peekScript returns {type, state, msg or value, record n, record u}.
// KEYS: task, attempt record.
var peekScript = redis.NewScript(`
local kind = redis.call("TYPE", KEYS[1]).ok
local n, u = unpack(redis.call("HMGET", KEYS[2], "n", "u"))
n, u = n or "0", u or "0"
if kind == "hash" then
	local msg, state = unpack(redis.call("HMGET", KEYS[1], "msg", "state"))
	return {kind, state or "", msg or "", n, u}
elseif kind == "string" then
	return {kind, "completed", redis.call("GET", KEYS[1]), n, u}
end
return {kind, "", "", n, u}`)

// Peek returns the task of id in queue as stored: hash or compact form.
// With no task it returns a zero Task and no error.
func (s *Store) Peek(ctx context.Context, queue, id string) (Task, error) {
	res, err := peekScript.Run(ctx, s.rdb, []string{TaskKey(queue, id), AttemptKey(queue, id)}).StringSlice()
	if err != nil {
		return Task{}, fmt.Errorf("look up task %s: %w", id, err)
	}
	if len(res) != 5 {
		return Task{}, fmt.Errorf("look up task %s: unexpected script reply %v", id, res)
	}
	t := Task{State: res[1], Raw: res[2], Unknown: res[4] == "1"}
	t.Reported, _ = strconv.Atoi(res[3])
	switch res[0] {
	case "none":
		return Task{}, nil
	case "string":
		t.Compact = true
		t.CompletedAt, t.Retried, err = parseCompact(res[2])
	case "hash":
		t.Message, err = DecodeMessage([]byte(res[2]))
		t.Retried = t.Message.Retried
		if t.Message.CompletedAt > 0 {
			t.CompletedAt = time.Unix(t.Message.CompletedAt, 0).UTC()
		}
	default:
		err = fmt.Errorf("the key holds a %s, not a task", res[0])
	}
	if err != nil {
		return Task{}, fmt.Errorf("look up task %s: %w", id, err)
	}
	return t, nil
}

// replaceScript swaps the task for a new pending one if the stored task is
// still the one read (its state and message or compact value), and never
// an active one. It resets the attempt record's counters for the new task
// and keeps its unknown-outcome flag, setting it when ARGV[5] is "1".
// Returns {1, old state} when replaced, {0, "changed"} or {0, "active"}
// otherwise.
// KEYS: task, pending, scheduled, retry, archived, completed, attempt
// record. ARGV: message, ID, now (Unix ns), expected raw ("" for no task),
// mark unknown ("1" or "0"), the TTL of a record that keeps a mark (ms).
var replaceScript = redis.NewScript(`
local kind = redis.call("TYPE", KEYS[1]).ok
local state, raw = "", ""
if kind == "hash" then
	local msg, st = unpack(redis.call("HMGET", KEYS[1], "msg", "state"))
	state, raw = st or "", msg or ""
elseif kind == "string" then
	state, raw = "completed", redis.call("GET", KEYS[1])
elseif kind ~= "none" then
	return {0, "changed"}
end
if raw ~= ARGV[4] then
	return {0, "changed"}
end
if state == "active" then
	return {0, "active"}
end
if kind == "hash" then
	if state == "pending" then
		redis.call("LREM", KEYS[2], 0, ARGV[2])
	elseif state == "scheduled" then
		redis.call("ZREM", KEYS[3], ARGV[2])
	elseif state == "retry" then
		redis.call("ZREM", KEYS[4], ARGV[2])
	elseif state == "archived" then
		redis.call("ZREM", KEYS[5], ARGV[2])
	elseif state == "completed" then
		redis.call("ZREM", KEYS[6], ARGV[2])
	else
		return {0, "changed"}
	end
end
redis.call("DEL", KEYS[1])
redis.call("HSET", KEYS[1], "msg", ARGV[1], "state", "pending", "pending_since", ARGV[3])
redis.call("LPUSH", KEYS[2], ARGV[2])
redis.call("HDEL", KEYS[7], "n", "a", "f")
if ARGV[5] == "1" then
	redis.call("HSET", KEYS[7], "u", "1")
end
if redis.call("HEXISTS", KEYS[7], "u") == 1 then
	redis.call("PEXPIRE", KEYS[7], ARGV[6])
end
return {1, state}`)

// RecordTTLFloor is the least a replaced task's marked attempt record
// lives: long enough for the new task to run and refresh it.
const RecordTTLFloor = 7 * 24 * time.Hour

// replaceAttempts bounds Replace's optimistic retries while the task keeps
// changing under it (a worker running it, retrying it).
const replaceAttempts = 16

// Replace swaps the task with m's ID for m, pending, and returns the old
// task's state ("" if there was none). It refuses an active task
// (ErrActive). When the old task had runs that never reported back to the
// attempt record, or had completed, the record is marked as having an
// unknown outcome: a later permanent answer for the order is then flagged,
// as an earlier attempt may already have cancelled it. A record that keeps
// a mark lives recordTTL from now, at least RecordTTLFloor.
func (s *Store) Replace(ctx context.Context, m Message, recordTTL time.Duration) (string, error) {
	old, _, err := s.ReplaceIf(ctx, m, recordTTL, func(Task) bool { return true })
	return old.State, err
}

// ReplaceIf is Replace while allow accepts the task holding m's ID (a
// zero Task, State "", for none): it returns the old task and true once
// it replaced it, or the task as read and false when allow refused it.
// The check and the swap are one atomic step: a task that changes in
// between is read and judged again.
func (s *Store) ReplaceIf(ctx context.Context, m Message, recordTTL time.Duration, allow func(Task) bool) (Task, bool, error) {
	recordTTL = max(recordTTL, RecordTTLFloor)
	if err := s.publish(ctx, m.Queue); err != nil {
		return Task{}, false, fmt.Errorf("replace %s: %w", m.ID, err)
	}
	keys := []string{
		TaskKey(m.Queue, m.ID), pendingKey(m.Queue), scheduledKey(m.Queue), retryKey(m.Queue),
		archivedKey(m.Queue), completedKey(m.Queue), AttemptKey(m.Queue, m.ID),
	}
	encoded := m.Encode()
	for range replaceAttempts {
		old, err := s.Peek(ctx, m.Queue, m.ID)
		if err != nil {
			return Task{}, false, fmt.Errorf("replace: %w", err)
		}
		if !allow(old) {
			return old, false, nil
		}
		if old.State == StateActive {
			return old, false, fmt.Errorf("replace %s: %w", m.ID, ErrActive)
		}
		mark := "0"
		if old.State == StateCompleted || old.UnreportedRuns() {
			mark = "1"
		}
		res, err := replaceScript.Run(ctx, s.rdb, keys, encoded, m.ID, s.nowFunc().UnixNano(), old.Raw, mark, recordTTL.Milliseconds()).Slice()
		if err != nil {
			return Task{}, false, fmt.Errorf("replace %s: %w", m.ID, err)
		}
		if len(res) != 2 {
			return Task{}, false, fmt.Errorf("replace %s: unexpected script reply %v", m.ID, res)
		}
		ok, _ := res[0].(int64)
		state, _ := res[1].(string)
		switch {
		case ok == 1:
			return old, true, nil
		case state == StateActive:
			return old, false, fmt.Errorf("replace %s: %w", m.ID, ErrActive)
		}
		// Changed since Peek: read it again.
	}
	return Task{}, false, fmt.Errorf("replace %s: the task kept changing during %d attempts", m.ID, replaceAttempts)
}

// compactValue encodes a compact completed task as one integer, which Redis
// stores in the key's object itself: the completion time in Unix seconds
// times 1000, plus the retry count (at most 999).
func compactValue(completedAt int64, retried int) int64 {
	return completedAt*1000 + int64(min(max(retried, 0), 999))
}

func parseCompact(v string) (time.Time, int, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, 0, fmt.Errorf("compact task value %q is not one", v)
	}
	return time.Unix(n/1000, 0).UTC(), int(n % 1000), nil
}

// listCompletedScript returns up to ARGV[1] completed task IDs, soonest to
// expire first, each followed by its message.
// KEYS: completed, task key prefix.
var listCompletedScript = redis.NewScript(`
local ids = redis.call("ZRANGE", KEYS[1], 0, tonumber(ARGV[1]) - 1)
local out = {}
for _, id in ipairs(ids) do
	local key = KEYS[2] .. id
	table.insert(out, id)
	if redis.call("TYPE", key).ok == "hash" then
		table.insert(out, redis.call("HGET", key, "msg") or "")
	else
		table.insert(out, "")
	end
end
return out`)

// compactScript turns each listed completed task into its compact value,
// expiring when its retention ends, if it is still the completed task that
// was read; it also drops the task's attempt record. Returns the number
// compacted.
// KEYS: completed, task key prefix, attempt record prefix.
// ARGV: quadruples of ID, expected message ("" for an index entry whose
// task hash is gone), value, expiry (Unix s).
var compactScript = redis.NewScript(`
local n = 0
for i = 1, #ARGV, 4 do
	local id = ARGV[i]
	local key = KEYS[2] .. id
	local kind = redis.call("TYPE", key).ok
	local msg, state = "", ""
	if kind == "hash" then
		msg, state = unpack(redis.call("HMGET", key, "msg", "state"))
	end
	if state == "completed" and msg == ARGV[i + 1] then
		redis.call("DEL", key, KEYS[3] .. id)
		redis.call("SET", key, ARGV[i + 2])
		redis.call("EXPIREAT", key, ARGV[i + 3])
		redis.call("ZREM", KEYS[1], id)
		n = n + 1
	elseif ARGV[i + 1] == "" and kind ~= "hash" then
		redis.call("ZREM", KEYS[1], id)
	end
end
return n`)

// Compact compacts up to batch of queue's completed tasks that completed
// at least after ago, and returns how many it compacted. A task whose
// retention has already ended is deleted instead, as asynq's janitor would.
func (s *Store) Compact(ctx context.Context, queue string, after time.Duration, batch int) (int, error) {
	keys := []string{completedKey(queue), queuePrefix(queue) + "t:"}
	res, err := listCompletedScript.Run(ctx, s.rdb, keys, batch).StringSlice()
	if err != nil {
		return 0, fmt.Errorf("compact %s: %w", queue, err)
	}
	now := s.nowFunc()
	var args []any
	for i := 0; i+1 < len(res); i += 2 {
		id, raw := res[i], res[i+1]
		m, err := DecodeMessage([]byte(raw))
		if raw == "" {
			args = append(args, id, "", 0, 0) // no task hash: the script drops the index entry
			continue
		}
		if err != nil || m.CompletedAt == 0 {
			continue // not ours to judge; asynq's janitor deletes it when it expires
		}
		done := time.Unix(m.CompletedAt, 0)
		if now.Sub(done) < after {
			continue
		}
		expiry := done.Add(m.Retention)
		if !expiry.After(now) {
			expiry = now.Add(time.Second) // gone in a second, as it should be
		}
		args = append(args, id, raw, compactValue(m.CompletedAt, m.Retried), expiry.Unix())
	}
	if len(args) == 0 {
		return 0, nil
	}
	keys = append(keys, AttemptKey(queue, ""))
	n, err := compactScript.Run(ctx, s.rdb, keys, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("compact %s: %w", queue, err)
	}
	return n, nil
}

// Attempt is what the attempt record says of a failed run, once noted.
type Attempt struct {
	// Number is the run's attempt number: asynq's retry count plus one,
	// the one count the retry budget (retry.Policy.MaxAttempts) is spent
	// by, and the one the logs and the DLQ entry show. Runs asynq does not
	// count (auth rejections, calls cut short at shutdown) are retried
	// without using an attempt; a run that never reported back (a crash, a
	// lost lease) was counted by asynq and so is one.
	Number int
	// FirstFailedAt is when the task's first failure was noted.
	FirstFailedAt time.Time
	// EarlierUnknown reports that an earlier run's outcome is unknown: it
	// did not report back (a crash, a lost acknowledgement, a lost lease,
	// a shutdown cut-off), it reported an unknown outcome (a timeout or
	// reset after the request was sent), or the task replaced one that had
	// completed. The order may then already be cancelled.
	EarlierUnknown bool
}

// recordScript notes one failed run in the attempt record, a hash:
//
//	n  the retry count asynq gives the run after the last one noted: the
//	   runs asynq counted that reported back
//	f  when the first failure was noted (Unix ns)
//	u  "1" once any run's outcome is unknown
//
// A run whose retry count is above n follows runs that asynq counted as
// failures but that never reported: their outcome is unknown. The record
// counts no attempts of its own: asynq's retry count is the one count.
// KEYS: record. ARGV: retry count, counted (0/1), unknown (0/1), now (Unix
// ns), TTL (ms). Returns {f, earlier unknown (0/1)}.
var recordScript = redis.NewScript(`
local n = tonumber(redis.call("HGET", KEYS[1], "n") or "0")
local f = redis.call("HGET", KEYS[1], "f") or ARGV[4]
local earlier = redis.call("HGET", KEYS[1], "u") == "1"
local retried = tonumber(ARGV[1])
if retried > n then
	earlier = true
end
redis.call("HSET", KEYS[1], "n", math.max(n, retried + tonumber(ARGV[2])), "f", f)
if earlier or ARGV[3] == "1" then
	redis.call("HSET", KEYS[1], "u", "1")
end
redis.call("PEXPIRE", KEYS[1], ARGV[5])
return {f, earlier and 1 or 0}`)

// RecordFailure notes a failed or cut-short run of task id in queue and
// returns the record as it then stands. retried is the run's retry count
// from asynq; counted says asynq will count the run as a failure (it
// retries the task with IsFailure true), which only the caller knows;
// unknown says the run's own outcome is unknown. The record lives ttl from
// this write. The success path writes nothing: a run that never reports is
// found by the next failure, from its retry count.
func (s *Store) RecordFailure(ctx context.Context, queue, id string, retried int, counted, unknown bool, now time.Time, ttl time.Duration) (Attempt, error) {
	flag := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	res, err := recordScript.Run(ctx, s.rdb, []string{AttemptKey(queue, id)},
		retried, flag(counted), flag(unknown), now.UnixNano(), ttl.Milliseconds()).Slice()
	if err != nil {
		return Attempt{}, fmt.Errorf("attempt record %s: %w", id, err)
	}
	if len(res) != 2 {
		return Attempt{}, fmt.Errorf("attempt record %s: unexpected script reply %v", id, res)
	}
	a := Attempt{Number: retried + 1}
	if f, ok := res[0].(string); ok {
		if ns, err := strconv.ParseInt(f, 10, 64); err == nil {
			a.FirstFailedAt = time.Unix(0, ns).UTC()
		}
	}
	u, _ := res[1].(int64)
	a.EarlierUnknown = u == 1
	return a, nil
}

// Archived is one task in a queue's archive.
type Archived struct {
	ID string
	At time.Time // when asynq archived it, in whole seconds
}

// ArchivedSince returns up to limit of queue's archived tasks archived at
// or after since, oldest first, skipping the first skip of them.
func (s *Store) ArchivedSince(ctx context.Context, queue string, since time.Time, skip, limit int) ([]Archived, error) {
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, archivedKey(queue), &redis.ZRangeBy{
		Min: strconv.FormatInt(since.Unix(), 10), Max: "+inf", Offset: int64(skip), Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("list archived tasks of %s: %w", queue, err)
	}
	out := make([]Archived, len(zs))
	for i, z := range zs {
		id, _ := z.Member.(string)
		out[i] = Archived{ID: id, At: time.Unix(int64(z.Score), 0).UTC()}
	}
	return out, nil
}

// ArchivedAt returns when asynq archived task id of queue (whole seconds),
// or the zero time when it is not in the archive.
func (s *Store) ArchivedAt(ctx context.Context, queue, id string) (time.Time, error) {
	score, err := s.rdb.ZScore(ctx, archivedKey(queue), id).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("archive time of %s: %w", id, err)
	}
	return time.Unix(int64(score), 0).UTC(), nil
}

// dropArchivedScript deletes each listed task that is archived.
// KEYS: archived, task key prefix. ARGV: IDs. Returns the number deleted.
var dropArchivedScript = redis.NewScript(`
local n = 0
for _, id in ipairs(ARGV) do
	local key = KEYS[2] .. id
	if redis.call("TYPE", key).ok == "hash" and redis.call("HGET", key, "state") == "archived" then
		redis.call("ZREM", KEYS[1], id)
		redis.call("DEL", key)
		n = n + 1
	end
end
return n`)

// DropArchived deletes those of ids in queue that are archived, and
// returns how many. Tasks in any other state are left alone.
func (s *Store) DropArchived(ctx context.Context, queue string, ids ...string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	n, err := dropArchivedScript.Run(ctx, s.rdb, []string{archivedKey(queue), queuePrefix(queue) + "t:"}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("delete archived tasks of %s: %w", queue, err)
	}
	return n, nil
}

// Running names a task being processed, for MarkUnknown.
type Running struct {
	Queue, ID string
	// TTL is how long its attempt record must live.
	TTL time.Duration
}

// MarkUnknown marks the attempt records of tasks as having an unknown
// outcome, in one round trip: for calls about to be cut off at shutdown,
// which asynq puts back in their queue without counting them, so that a
// later permanent answer is flagged even if the worker dies before it can
// note the cut itself.
func (s *Store) MarkUnknown(ctx context.Context, tasks []Running) error {
	if len(tasks) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for _, t := range tasks {
		k := AttemptKey(t.Queue, t.ID)
		pipe.HSet(ctx, k, "u", "1")
		pipe.PExpire(ctx, k, t.TTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("mark %d running tasks' outcome unknown: %w", len(tasks), err)
	}
	return nil
}

// asynq's keys for its servers (v0.26 internal/base): a sorted set of
// server keys scored by when their record, which each heartbeat writes
// with a TTL of twice its 5s interval, expires.
const (
	allServers      = "asynq:servers"
	serverKeyPrefix = "asynq:servers:"
	// LeaseDuration is how long asynq's lease on an active task runs past
	// its dequeue or its last extension (every 5s heartbeat).
	LeaseDuration = 30 * time.Second
)

func leaseKey(queue string) string  { return queuePrefix(queue) + "lease" }
func activeKey(queue string) string { return queuePrefix(queue) + "active" }

// Server is an asynq server as its heartbeats left it in Redis.
type Server struct {
	Host string
	PID  int
	ID   string
	// Expires is when its last record expires (or expired): its last
	// heartbeat plus 10s, in whole seconds.
	Expires time.Time
}

// Servers returns the asynq servers whose record expired at or after
// since, or has not yet.
func (s *Store) Servers(ctx context.Context, since time.Time) ([]Server, error) {
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, allServers, &redis.ZRangeBy{Min: strconv.FormatInt(since.Unix(), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("asynq servers: %w", err)
	}
	out := make([]Server, 0, len(zs))
	for _, z := range zs {
		key, _ := z.Member.(string)
		inner, ok := strings.CutPrefix(key, serverKeyPrefix+"{")
		if !ok || !strings.HasSuffix(inner, "}") {
			continue
		}
		inner = strings.TrimSuffix(inner, "}")
		// host:pid:sid; the host may hold colons, the others do not.
		i := strings.LastIndexByte(inner, ':')
		j := strings.LastIndexByte(inner[:max(i, 0)], ':')
		if i <= 0 || j <= 0 {
			continue
		}
		pid, err := strconv.Atoi(inner[j+1 : i])
		if err != nil {
			continue
		}
		out = append(out, Server{Host: inner[:j], PID: pid, ID: inner[i+1:], Expires: time.Unix(int64(z.Score), 0)})
	}
	return out, nil
}

// Lease is an active task's lease: when it expires, in whole seconds, as
// the holder's clock set it.
type Lease struct {
	ID      string
	Expires time.Time
}

// Leases returns queue's active tasks and their leases.
func (s *Store) Leases(ctx context.Context, queue string) ([]Lease, error) {
	zs, err := s.rdb.ZRangeWithScores(ctx, leaseKey(queue), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("leases of %s: %w", queue, err)
	}
	out := make([]Lease, len(zs))
	for i, z := range zs {
		id, _ := z.Member.(string)
		out[i] = Lease{ID: id, Expires: time.Unix(int64(z.Score), 0)}
	}
	return out, nil
}

// recoverScript puts an active task whose holder is gone back in its
// queue, as asynq's recoverer does: pending at once, or in the retry set
// until ARGV[7] when that is after now. Only if it is still active, its
// lease still the one read and its message unchanged. It counts the lost
// run as a failure, as asynq does.
// KEYS: task, active, lease, pending, processed today, failed today,
// processed total, failed total, retry. ARGV: ID, lease (Unix s), old
// message, new message, now (Unix ns), the day keys' expiry (Unix s), due
// (Unix s; 0 for now).
var recoverScript = redis.NewScript(`
local score = redis.call("ZSCORE", KEYS[3], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then
	return 0
end
local msg, state = unpack(redis.call("HMGET", KEYS[1], "msg", "state"))
if state ~= "active" or msg ~= ARGV[3] then
	return 0
end
if redis.call("LREM", KEYS[2], 0, ARGV[1]) == 0 then
	return 0
end
redis.call("ZREM", KEYS[3], ARGV[1])
if tonumber(ARGV[7]) > 0 then
	redis.call("HSET", KEYS[1], "msg", ARGV[4], "state", "retry")
	redis.call("ZADD", KEYS[9], ARGV[7], ARGV[1])
else
	redis.call("HSET", KEYS[1], "msg", ARGV[4], "state", "pending", "pending_since", ARGV[5])
	redis.call("LPUSH", KEYS[4], ARGV[1])
end
for i = 5, 6 do
	if redis.call("INCR", KEYS[i]) == 1 then
		redis.call("EXPIREAT", KEYS[i], ARGV[6])
	end
end
redis.call("INCR", KEYS[7])
redis.call("INCR", KEYS[8])
return 1`)

// statsTTL is how long asynq keeps a day's processed and failed counts.
const statsTTL = 90 * 24 * time.Hour

// RecoverActive puts task id of queue, active under lease l, back in its
// queue, its run counted as a failed one with errMsg (so that the attempt
// record flags its unknown outcome): pending at once, or retrying at
// due(message) (the message as it was) when that is after now. It
// reports whether it did: not when the task changed meanwhile (a lease
// extended by a live holder, a recoverer faster), nor when the run would
// use up asynq's own retry limit (asynq's recoverer archives it then).
func (s *Store) RecoverActive(ctx context.Context, queue string, l Lease, errMsg string, now time.Time, due func(Message) time.Time) (bool, error) {
	t, err := s.Peek(ctx, queue, l.ID)
	if err != nil || t.State != StateActive {
		return false, err
	}
	m := t.Message
	if m.Retried+1 > m.Retry {
		return false, nil
	}
	var dueAt int64
	if d := due(m); d.After(now) {
		dueAt = max(d.Unix(), now.Unix()+1)
	}
	m.Retried++
	m.ErrorMsg = errMsg
	m.LastFailedAt = now.Unix()
	day := now.UTC().Format("2006-01-02")
	keys := []string{
		TaskKey(queue, l.ID), activeKey(queue), leaseKey(queue), pendingKey(queue),
		queuePrefix(queue) + "processed:" + day, queuePrefix(queue) + "failed:" + day,
		queuePrefix(queue) + "processed", queuePrefix(queue) + "failed", retryKey(queue),
	}
	n, err := recoverScript.Run(ctx, s.rdb, keys, l.ID, l.Expires.Unix(), t.Raw, m.Encode(), now.UnixNano(), now.Add(statsTTL).Unix(), dueAt).Int()
	if err != nil {
		return false, fmt.Errorf("recover task %s: %w", l.ID, err)
	}
	return n == 1, nil
}
