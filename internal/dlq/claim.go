package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/tasks"
	"github.com/redis/go-redis/v9"
)

// An entry leaves the queue in one of two steps, never in neither:
//
//   - requeue claims it first: one script moves it from the entries to the
//     claims (<prefix>claims, with the claim's time in <prefix>claimed_at)
//     if it is still the entry read, so that of two requeues at once
//     exactly one wins. The winner then enqueues the order's task and
//     releases the claim, leaving the entry's trail; if the enqueue
//     fails, it puts the entry back. A requeuer that dies in between
//     leaves the claim, which the worker's maintenance settles (see
//     Store.RecoverClaims);
//   - purge, and a task that succeeds (Store.Resolve), delete it in one
//     compare-and-delete, leaving its trail.
//
// The trail (<prefix>trail:<task id>, kept TrailTTL) says what became of
// the order's last entry, by whom and when, for `enqueue status`.

// Trail actions: what became of a dead-letter entry.
const (
	// TrailRequeued: requeued, a new task enqueued for the order.
	TrailRequeued = "requeued"
	// TrailAlreadyQueued: a requeue found the order's task waiting,
	// running or retrying, brought back another way; the entry was stale
	// and dropped.
	TrailAlreadyQueued = "already_queued"
	// TrailAlreadyCancelled: a requeue found the order's task completed;
	// the entry was stale and dropped.
	TrailAlreadyCancelled = "already_cancelled"
	// TrailCancelled: a task of the order that came back another way (the
	// monitoring UI's Run, a forced enqueue) succeeded, and removed the
	// entry.
	TrailCancelled = "cancelled"
	// TrailReplaced: a forced enqueue replaced the order's task.
	TrailReplaced = "replaced"
	// TrailPurged: purged for good, the order not cancelled.
	TrailPurged = "purged"
)

// TrailTTL is the least time an entry's trail is kept: as long as a
// completed task (tasks.RetentionDefault).
const TrailTTL = tasks.RetentionDefault

// Trail is what became of an order's last dead-letter entry.
type Trail struct {
	ID string `json:"id"`
	// Seq, Reason, UpstreamCode and LastFailedAt are the entry's.
	Seq          int64     `json:"seq"`
	Reason       string    `json:"reason"`
	UpstreamCode string    `json:"upstream_code,omitempty"`
	LastFailedAt time.Time `json:"last_failed_at"`
	// Action is one of the Trail constants.
	Action string `json:"action"`
	// By says who did it: an operator and the way ("alice (dead-letter
	// page)", "root@host (enqueue CLI)"), or "worker".
	By string    `json:"by,omitempty"`
	At time.Time `json:"at"`
	// CancelledAt is when the order's cancellation completed, once known.
	CancelledAt time.Time `json:"cancelled_at,omitzero"`
}

// String says it in one sentence.
func (t Trail) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dead-letter entry %d (%s", t.Seq, t.Reason)
	if t.UpstreamCode != "" {
		fmt.Fprintf(&b, ", %s", t.UpstreamCode)
	}
	b.WriteString(") ")
	switch t.Action {
	case TrailRequeued:
		b.WriteString("requeued")
	case TrailAlreadyQueued:
		b.WriteString("dropped by a requeue: the order's task was already queued")
	case TrailAlreadyCancelled:
		b.WriteString("dropped by a requeue: the order was already cancelled")
	case TrailCancelled:
		b.WriteString("removed: the order's task, run again, succeeded")
	case TrailReplaced:
		b.WriteString("requeued with force, in place of the order's task")
	case TrailPurged:
		b.WriteString("purged; the order was not cancelled")
	default:
		b.WriteString(t.Action)
	}
	if t.By != "" {
		fmt.Fprintf(&b, " by %s", t.By)
	}
	fmt.Fprintf(&b, " at %s", t.At.UTC().Format(time.RFC3339))
	if !t.CancelledAt.IsZero() {
		fmt.Fprintf(&b, "; cancelled at %s", t.CancelledAt.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// trailOf returns the trail e leaves for action.
func trailOf(e Entry, action, by string, at time.Time) Trail {
	return Trail{ID: e.ID, Seq: e.Seq, Reason: e.Reason, UpstreamCode: e.UpstreamCode, LastFailedAt: e.LastFailedAt,
		Action: action, By: by, At: at.UTC()}
}

// trailTTL is how long e's trail is kept: its task's retention, at least
// TrailTTL.
func trailTTL(e Entry) time.Duration {
	ttl := TrailTTL
	if v, ok := e.Headers[tasks.HeaderRetention]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && time.Duration(n)*time.Second > ttl {
			ttl = time.Duration(n) * time.Second
		}
	}
	return ttl
}

func (s *Store) claimsKey() string         { return s.prefix + "claims" }
func (s *Store) claimedAtKey() string      { return s.prefix + "claimed_at" }
func (s *Store) trailKey(id string) string { return s.prefix + "trail:" + id }
func encodeTrail(t Trail) (string, error)  { b, err := json.Marshal(t); return string(b), err }

var (
	// claimScript moves an entry to the claims if it is still ARGV[2],
	// timed by Redis's clock, the one StaleClaims reads: the requeuer's
	// may be another machine's. KEYS: entries, all index, provider index,
	// claims, claimed_at. ARGV: id, stored JSON. Returns 1 if claimed.
	claimScript = redis.NewScript(`
if redis.call("HGET", KEYS[1], ARGV[1]) ~= ARGV[2] then
	return 0
end
local t = redis.call("TIME")
redis.call("HDEL", KEYS[1], ARGV[1])
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("ZREM", KEYS[3], ARGV[1])
redis.call("HSET", KEYS[4], ARGV[1], ARGV[2])
redis.call("ZADD", KEYS[5], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])
return 1`)

	// cancelledScript adds the cancellation time to a trail that is still
	// of entry ARGV[1]'s Seq and has none yet, keeping its TTL. KEYS:
	// trail. ARGV: Seq, the trail with its time. Returns 1 if it did.
	cancelledScript = redis.NewScript(`
local cur = redis.call("GET", KEYS[1])
if not cur or not string.find(cur, '"seq":' .. ARGV[1] .. ',', 1, true) or string.find(cur, '"cancelled_at"', 1, true) then
	return 0
end
local ttl = redis.call("PTTL", KEYS[1])
if ttl > 0 then
	redis.call("SET", KEYS[1], ARGV[2], "PX", ttl)
else
	redis.call("SET", KEYS[1], ARGV[2])
end
return 1`)

	// unclaimScript puts a claimed entry that is still ARGV[2] back, unless
	// the order has a newer entry. KEYS: claims, claimed_at, entries, all
	// index, provider index. ARGV: id, stored JSON, score. Returns 1 if put
	// back, 2 if a newer entry was there (the claim is dropped), 0 if the
	// claim was not ARGV[2].
	unclaimScript = redis.NewScript(`
if redis.call("HGET", KEYS[1], ARGV[1]) ~= ARGV[2] then
	return 0
end
redis.call("HDEL", KEYS[1], ARGV[1])
redis.call("ZREM", KEYS[2], ARGV[1])
if redis.call("HEXISTS", KEYS[3], ARGV[1]) == 1 then
	return 2
end
redis.call("HSET", KEYS[3], ARGV[1], ARGV[2])
redis.call("ZADD", KEYS[4], ARGV[3], ARGV[1])
redis.call("ZADD", KEYS[5], ARGV[3], ARGV[1])
return 1`)
)

// claim moves the entry e, stored as raw, to the claims, and reports
// whether it did: false when the entry is no longer raw.
func (s *Store) claim(ctx context.Context, e Entry, raw string) (bool, error) {
	keys := []string{s.entriesKey(), s.indexKey(""), s.indexKey(e.Provider), s.claimsKey(), s.claimedAtKey()}
	n, err := claimScript.Run(ctx, s.rdb, keys, e.ID, raw).Int()
	if err != nil {
		return false, fmt.Errorf("claim the entry: %w", err)
	}
	return n == 1, nil
}

// release ends the claim of e, stored as raw, leaving tr as its trail.
func (s *Store) release(ctx context.Context, e Entry, raw string, tr Trail) (bool, error) {
	js, err := encodeTrail(tr)
	if err != nil {
		return false, err
	}
	keys := []string{s.claimsKey(), s.claimedAtKey(), s.trailKey(e.ID)}
	n, err := casDelScript.Run(ctx, s.rdb, keys, e.ID, raw, js, trailTTL(e).Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("release the claim: %w", err)
	}
	return n == 1, nil
}

// unclaim puts the claimed entry e, stored as raw, back, unless the order
// has a newer entry, and reports whether it did.
func (s *Store) unclaim(ctx context.Context, e Entry, raw string) (bool, error) {
	keys := []string{s.claimsKey(), s.claimedAtKey(), s.entriesKey(), s.indexKey(""), s.indexKey(e.Provider)}
	n, err := unclaimScript.Run(ctx, s.rdb, keys, e.ID, raw, e.LastFailedAt.UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("put the entry back: %w", err)
	}
	return n == 1, nil
}

// claimed returns the stored JSON of id's claim, "" for none.
func (s *Store) claimed(ctx context.Context, id string) (string, error) {
	raw, err := s.rdb.HGet(ctx, s.claimsKey(), id).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return raw, err
}

// Trail returns the trail of id's last entry, and false when there is
// none (never dead-lettered, or longer ago than its retention).
func (s *Store) Trail(ctx context.Context, id string) (Trail, bool, error) {
	raw, err := s.rdb.Get(ctx, s.trailKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return Trail{}, false, nil
	}
	if err != nil {
		return Trail{}, false, fmt.Errorf("dlq trail %s: %w", id, err)
	}
	var t Trail
	if err := json.Unmarshal([]byte(raw), &t); err != nil {
		return Trail{}, false, fmt.Errorf("dlq trail %s: %w", id, err)
	}
	return t, true, nil
}

// Claim is a requeue's claim on an entry.
type Claim struct {
	Entry Entry
	At    time.Time // when it was claimed
	raw   string
}

// StaleClaims returns up to limit claims older than age by Redis's clock:
// requeues that have not settled them, most likely because the requeuer
// died between its claim and its enqueue.
func (s *Store) StaleClaims(ctx context.Context, age time.Duration, limit int) ([]Claim, error) {
	now, err := s.rdb.Time(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("stale claims: %w", err)
	}
	since := now.Add(-age)
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, s.claimedAtKey(), &redis.ZRangeBy{
		Min: "-inf", Max: "(" + strconv.FormatInt(since.UnixMilli(), 10), Count: int64(limit),
	}).Result()
	if err != nil || len(zs) == 0 {
		return nil, err
	}
	ids := make([]string, len(zs))
	for i, z := range zs {
		ids[i], _ = z.Member.(string)
	}
	raws, err := s.rdb.HMGet(ctx, s.claimsKey(), ids...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Claim, 0, len(ids))
	for i, v := range raws {
		raw, _ := v.(string)
		if raw == "" {
			continue
		}
		out = append(out, Claim{Entry: decode(ids[i], raw), At: time.UnixMilli(int64(zs[i].Score)).UTC(), raw: raw})
	}
	return out, nil
}

// SettleClaim ends a stale claim: when the order's task is live (taskState
// is pending, active, scheduled, retry or completed), the requeue got its
// task in before it died, and the claim is released as requeued;
// otherwise the entry is put back. It reports whether the entry went back.
func (s *Store) SettleClaim(ctx context.Context, c Claim, taskState string) (restored bool, err error) {
	switch taskState {
	case "", "archived":
		return s.unclaim(ctx, c.Entry, c.raw)
	}
	_, err = s.release(ctx, c.Entry, c.raw, trailOf(c.Entry, TrailRequeued, "an interrupted requeue, settled by the worker", s.nowFunc()))
	return false, err
}

// Done is a task that succeeded, for Resolve.
type Done struct {
	ID string
	// RequeuedFrom is the Seq of the entry the task was requeued from
	// (tasks.RequeuedFrom), 0 for none.
	RequeuedFrom int64
	// At is when it succeeded.
	At time.Time
}

// Resolve settles the dead-letter side of tasks that succeeded. An entry
// the order still has, filed before the success (its task was brought
// back another way: the monitoring UI's Run, a forced enqueue, asynq's own
// tools), is removed, compared by its stored JSON, leaving the trail
// "cancelled"; it is returned. The trail of the entry a task was requeued
// from gets the cancellation time. It takes one round trip when no order
// has either, the common case.
func (s *Store) Resolve(ctx context.Context, done []Done) ([]Entry, error) {
	if len(done) == 0 {
		return nil, nil
	}
	ids := make([]string, len(done))
	for i, d := range done {
		ids[i] = d.ID
	}
	pipe := s.rdb.Pipeline()
	var gets []*redis.SliceCmd
	for start := 0; start < len(ids); start += batchSize {
		gets = append(gets, pipe.HMGet(ctx, s.entriesKey(), ids[start:min(start+batchSize, len(ids))]...))
	}
	trails := map[int]*redis.StringCmd{}
	for i, d := range done {
		if d.RequeuedFrom > 0 {
			trails[i] = pipe.Get(ctx, s.trailKey(d.ID))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("dlq resolve: %w", err)
	}
	var raws []string
	for _, c := range gets {
		for _, v := range c.Val() {
			str, _ := v.(string)
			raws = append(raws, str)
		}
	}
	var removed []Entry
	var errs []error
	for i, d := range done {
		if raws[i] != "" {
			e := decode(d.ID, raws[i])
			if e.Corrupt != "" || !e.LastFailedAt.Before(d.At) {
				continue // not ours to judge, or written after the success
			}
			tr := trailOf(e, TrailCancelled, "", d.At)
			tr.CancelledAt = d.At.UTC()
			js, err := encodeTrail(tr)
			if err != nil {
				return removed, err
			}
			keys := []string{s.entriesKey(), s.indexKey(""), s.indexKey(e.Provider), s.trailKey(d.ID)}
			n, err := casDelScript.Run(ctx, s.rdb, keys, d.ID, raws[i], js, trailTTL(e).Milliseconds()).Int()
			if err != nil {
				errs = append(errs, fmt.Errorf("dlq resolve %s: %w", d.ID, err))
				continue
			}
			if n == 1 {
				removed = append(removed, e)
			}
			continue
		}
		c, ok := trails[i]
		if !ok || c.Err() != nil {
			continue
		}
		var tr Trail
		if json.Unmarshal([]byte(c.Val()), &tr) != nil || tr.Seq != d.RequeuedFrom || !tr.CancelledAt.IsZero() {
			continue
		}
		tr.CancelledAt = d.At.UTC()
		js, err := encodeTrail(tr)
		if err != nil {
			return removed, err
		}
		if err := cancelledScript.Run(ctx, s.rdb, []string{s.trailKey(d.ID)}, tr.Seq, js).Err(); err != nil {
			errs = append(errs, fmt.Errorf("dlq resolve %s: %w", d.ID, err))
		}
	}
	return removed, errors.Join(errs...)
}
