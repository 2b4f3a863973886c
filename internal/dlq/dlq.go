// Package dlq is the durable dead-letter queue: one entry per order the
// worker gave up on, kept in Redis until an operator requeues or purges it.
//
// asynq's own archive is trimmed (at most 10,000 tasks, for at most 90
// days), so it cannot be the record; this store is, and it is never
// trimmed. The keys, under a prefix (PrefixDefault):
//
//	<prefix>entries          hash: task ID → JSON Entry
//	<prefix>by_time          sorted set: task ID scored by LastFailedAt (Unix ms)
//	<prefix>by_time:<prov>   the same, for one provider
//	<prefix>seq              counter that gives every write its Seq
//
// The prefix carries one hash tag, "{dlq}", so that every key is in one
// Redis Cluster slot and each write is one script there as on one server.
// Versions before it used PrefixLegacy; Migrate moves those keys' entries.
package dlq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/text"

	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Reason codes, stored in Entry.Reason.
const (
	// ReasonPermanent: the upstream refused the cancel for good.
	ReasonPermanent = "permanent"
	// ReasonRetriesExhausted: transient failures used up the retry budget.
	ReasonRetriesExhausted = "retries exhausted"
	// ReasonMaxAge: the cancellation was older than the retry policy allows.
	ReasonMaxAge = "max age exceeded"
	// ReasonBadPayload: the task payload could not be decoded or validated.
	ReasonBadPayload = "bad payload"
	// ReasonMisconfigured: this worker cannot serve the task (for instance a
	// Meari source_app it is not configured for).
	ReasonMisconfigured = "not servable"
	// ReasonArchived: the task was archived without the worker
	// dead-lettering it (the monitoring UI's archive buttons, asynq's own
	// retry limit, a handler panic), and the reconciler filed the entry.
	ReasonArchived = "archived"
)

// Reasons returns every Reason code, in the order they are declared.
func Reasons() []string {
	return []string{ReasonPermanent, ReasonRetriesExhausted, ReasonMaxAge, ReasonBadPayload, ReasonMisconfigured, ReasonArchived}
}

// PrefixDefault is the key prefix of the store's keys.
const PrefixDefault = "cancelworker:{dlq}:"

// PrefixLegacy is the prefix of the store's keys before they carried a
// hash tag. Migrate moves what is under it.
const PrefixLegacy = "cancelworker:dlq:"

// MessageLimit is the most bytes of Entry.Message that Put stores.
const MessageLimit = 1024

// Entry is one dead-lettered task.
type Entry struct {
	// ID is the asynq task ID, e.g. "pandapon:2542285634920880794".
	ID string `json:"id"`
	// Seq is set by Put: unique per write, increasing. Remove compares it.
	Seq int64 `json:"seq"`
	// Provider is "meari" or "pandapon".
	Provider string `json:"provider"`
	// Order is the order as operators name it (the payload's OrderRef).
	Order    string `json:"order"`
	TaskType string `json:"task_type"`
	Queue    string `json:"queue"`
	// Payload is the original task payload. Put stores JSON compacted, and
	// anything that is not JSON as a JSON string.
	Payload json.RawMessage `json:"payload"`
	// Headers are the original task's headers (its retention, its
	// prior-outcome-unknown mark), for requeue to rebuild it.
	Headers map[string]string `json:"headers,omitempty"`
	// Reason is one of the Reason constants.
	Reason string `json:"reason"`
	// UpstreamCode is the provider's result code or "http_<status>", if any.
	UpstreamCode string `json:"upstream_code,omitempty"`
	// Message is the upstream message or last error, without secrets; Put
	// truncates it to MessageLimit bytes.
	Message string `json:"message"`
	// OutcomeUnknown reports that an earlier attempt's outcome was unknown:
	// the order may already be cancelled, so check before acting. Put keeps
	// it once an entry of the ID has it.
	OutcomeUnknown bool `json:"outcome_unknown,omitempty"`
	// Attempts is how many times the task was tried.
	Attempts int `json:"attempts"`
	// FirstFailedAt is when the first attempt failed. Put keeps the earliest
	// one written for the ID; zero means LastFailedAt.
	FirstFailedAt time.Time `json:"first_failed_at"`
	// LastFailedAt is when the task was given up on. Zero means now.
	LastFailedAt time.Time `json:"last_failed_at"`

	// Corrupt is set by Get and List, never stored: it says why the stored
	// JSON of ID does not decode. Such an entry has only ID, Provider (from
	// the ID), Corrupt and Raw; List keeps it in its place, Put replaces it,
	// Purge deletes it, Requeue refuses it.
	Corrupt string `json:"corrupt,omitempty"`
	// Raw is the start of a corrupt entry's stored JSON, at most RawShown
	// bytes, as valid UTF-8.
	Raw string `json:"raw,omitempty"`
}

// RawShown is the most bytes of a corrupt entry's stored JSON that Get and
// List return in Entry.Raw.
const RawShown = 256

// ErrCorrupt is matched (errors.Is) by the errors of operations that need
// a corrupt entry's content, such as Requeue.
var ErrCorrupt = errors.New("the stored entry is corrupt")

// ErrNotFound is returned (wrapped) for an ID the store does not hold.
var ErrNotFound = errors.New("no dead-letter entry")

// Store is the dead-letter queue in Redis. It is safe for concurrent use.
// It does not close the Redis client it was given.
type Store struct {
	rdb    redis.UniversalClient
	tasks  *taskstore.Store
	prefix string
	// nowFunc returns the current time; tests replace it.
	nowFunc func() time.Time
}

// New returns a Store keeping its keys under PrefixDefault in rdb. The
// caller keeps ownership of rdb.
func New(rdb redis.UniversalClient) *Store {
	return &Store{rdb: rdb, tasks: taskstore.New(rdb), prefix: PrefixDefault, nowFunc: time.Now}
}

func (s *Store) entriesKey() string { return s.prefix + "entries" }
func (s *Store) seqKey() string     { return s.prefix + "seq" }

// indexKey returns the sorted set of provider's IDs, or of all IDs for "".
func (s *Store) indexKey(provider string) string {
	if provider == "" {
		return s.prefix + "by_time"
	}
	return s.prefix + "by_time:" + provider
}

const (
	// casAttempts bounds the optimistic retries of Put and Purge while
	// other writers keep changing the same entry.
	casAttempts = 16
	// batchSize is the most IDs fetched per HMGET.
	batchSize = 500
)

var (
	// putScript writes an entry if the stored one is still ARGV[2] ("" for
	// none), giving it the next Seq, and returns {seq, ""}; otherwise it
	// writes nothing and returns {0, stored}.
	// KEYS: entries, all index, provider index, old provider index, seq.
	// ARGV: id, expected JSON, new JSON up to the Seq, the rest, score.
	putScript = redis.NewScript(`
local cur = redis.call("HGET", KEYS[1], ARGV[1]) or ""
if cur ~= ARGV[2] then
	return {0, cur}
end
local seq = redis.call("INCR", KEYS[5])
redis.call("HSET", KEYS[1], ARGV[1], ARGV[3] .. string.format("%d", seq) .. ARGV[4])
if KEYS[4] ~= KEYS[3] then
	redis.call("ZREM", KEYS[4], ARGV[1])
end
redis.call("ZADD", KEYS[2], ARGV[5], ARGV[1])
redis.call("ZADD", KEYS[3], ARGV[5], ARGV[1])
return {seq, ""}`)

	// casDelScript deletes field ARGV[1] of the hash KEYS[1] if it is
	// still ARGV[2], and the member ARGV[1] of each sorted set KEYS[2..];
	// given a trail (ARGV[3], kept ARGV[4] ms), it writes it to the last
	// key, which is then the trail's, not a sorted set. Returns 1 if it
	// deleted. It deletes an entry (KEYS: entries, all index, provider
	// index[, trail]) and ends a claim (KEYS: claims, claimed_at, trail).
	casDelScript = redis.NewScript(`
if redis.call("HGET", KEYS[1], ARGV[1]) ~= ARGV[2] then
	return 0
end
redis.call("HDEL", KEYS[1], ARGV[1])
local sets = #KEYS
if ARGV[3] then
	sets = sets - 1
	redis.call("SET", KEYS[#KEYS], ARGV[3], "PX", ARGV[4])
end
for i = 2, sets do
	redis.call("ZREM", KEYS[i], ARGV[1])
end
return 1`)
)

// Put stores e under e.ID and returns it as stored: with a new Seq, times
// in UTC, defaults filled in. Writing an ID again replaces its entry (a
// worker that dies after Put re-runs the task and writes again: one entry,
// not lost) but keeps the earliest FirstFailedAt and an OutcomeUnknown
// mark. The write is atomic, and
// takes one round trip for a new ID.
func (s *Store) Put(ctx context.Context, e Entry) (Entry, error) {
	if err := e.normalize(s.nowFunc()); err != nil {
		return Entry{}, err
	}
	first := e.FirstFailedAt
	expected, oldProvider := "", e.Provider // optimistic: no entry yet
	for range casAttempts {
		next := e
		next.Seq = 0
		if expected != "" {
			// A corrupt stored entry is replaced: it must not keep the
			// task from being dead-lettered.
			prev := decode(e.ID, expected)
			if !prev.FirstFailedAt.IsZero() && prev.FirstFailedAt.Before(first) {
				next.FirstFailedAt = prev.FirstFailedAt.UTC()
			}
			next.OutcomeUnknown = e.OutcomeUnknown || prev.OutcomeUnknown
			oldProvider = prev.Provider
		}
		head, tail, err := encodeSplit(next)
		if err != nil {
			return Entry{}, fmt.Errorf("dlq put %s: %w", e.ID, err)
		}
		keys := []string{s.entriesKey(), s.indexKey(""), s.indexKey(next.Provider), s.indexKey(oldProvider), s.seqKey()}
		res, err := putScript.Run(ctx, s.rdb, keys, e.ID, expected, head, tail, next.LastFailedAt.UnixMilli()).Slice()
		if err != nil {
			return Entry{}, fmt.Errorf("dlq put %s: %w", e.ID, err)
		}
		if len(res) != 2 {
			return Entry{}, fmt.Errorf("dlq put %s: unexpected script reply %v", e.ID, res)
		}
		if seq, _ := res[0].(int64); seq > 0 {
			next.Seq = seq
			return next, nil
		}
		// The stored entry is not the one expected: build on it.
		expected, _ = res[1].(string)
		oldProvider = e.Provider
	}
	return Entry{}, fmt.Errorf("dlq put %s: the entry kept changing during %d attempts", e.ID, casAttempts)
}

// normalize checks e and fills in the defaults Put documents.
func (e *Entry) normalize(now time.Time) error {
	var errs []error
	if e.ID == "" {
		errs = append(errs, errors.New("id: is required"))
	}
	if e.Provider == "" {
		errs = append(errs, errors.New("provider: is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dlq put %q: %w", e.ID, err)
	}
	switch {
	case len(e.Payload) == 0:
		e.Payload = nil
	case !json.Valid(e.Payload):
		b, _ := json.Marshal(string(e.Payload)) // a string always marshals
		e.Payload = b
	}
	e.Corrupt, e.Raw = "", ""
	e.Message = text.Truncate(e.Message, MessageLimit-len("…"))
	if e.LastFailedAt.IsZero() {
		e.LastFailedAt = now
	}
	if e.FirstFailedAt.IsZero() {
		e.FirstFailedAt = e.LastFailedAt
	}
	e.LastFailedAt = e.LastFailedAt.UTC()
	e.FirstFailedAt = e.FirstFailedAt.UTC()
	return nil
}

// encodeSplit marshals e, whose Seq is 0, without escaping HTML (so the
// payload keeps its bytes), and splits it where the Seq's digits go.
func encodeSplit(e Entry) (head, tail string, err error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return "", "", err
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	// "seq" follows "id", whose string cannot hold an unescaped quote, so
	// the first match is the field itself.
	const field = `,"seq":0,`
	i := bytes.Index(b, []byte(field))
	if i < 0 {
		return "", "", errors.New("encoded entry has no seq field")
	}
	return string(b[:i+len(field)-2]), string(b[i+len(field)-1:]), nil
}

// decode unmarshals the stored entry of id. JSON that does not decode, or
// decodes to an entry without provider or of another ID, gives a corrupt
// Entry (Corrupt set), never an error, so that one bad entry cannot hide
// the others.
func decode(id, s string) Entry {
	var e Entry
	err := json.Unmarshal([]byte(s), &e)
	switch {
	case err != nil:
	case e.ID != id:
		err = fmt.Errorf("it holds the ID %q", text.Truncate(e.ID, 80-len("…")))
	case e.Provider == "":
		err = errors.New("it has no provider")
	default:
		e.Corrupt, e.Raw = "", ""
		return e
	}
	provider, _, _ := strings.Cut(id, ":")
	return Entry{ID: id, Provider: provider, Corrupt: err.Error(), Raw: text.Truncate(strings.ToValidUTF8(s, "\uFFFD"), RawShown-len("…"))}
}

// Get returns the entry of id, or an error matching ErrNotFound. An entry
// whose stored JSON does not decode is returned with Corrupt set.
func (s *Store) Get(ctx context.Context, id string) (Entry, error) {
	e, _, err := s.get(ctx, id)
	return e, err
}

// get returns the entry of id and its stored JSON.
func (s *Store) get(ctx context.Context, id string) (Entry, string, error) {
	raw, err := s.rdb.HGet(ctx, s.entriesKey(), id).Result()
	if errors.Is(err, redis.Nil) {
		return Entry{}, "", fmt.Errorf("dlq get %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Entry{}, "", fmt.Errorf("dlq get %s: %w", id, err)
	}
	return decode(id, raw), raw, nil
}

// ListOptions selects the entries List returns.
type ListOptions struct {
	// Provider keeps only this provider's entries; "" means all.
	Provider string
	// Offset skips this many entries, oldest first.
	Offset int
	// Limit is the most entries returned; 0 means all.
	Limit int
}

// List returns entries oldest first by LastFailedAt (ties by ID), and the
// total number of entries matching o.Provider. An entry removed while List
// runs is left out; one whose stored JSON does not decode is listed with
// Corrupt set, in its place.
func (s *Store) List(ctx context.Context, o ListOptions) ([]Entry, int64, error) {
	if o.Offset < 0 || o.Limit < 0 {
		return nil, 0, fmt.Errorf("dlq list: offset and limit must not be negative, got %d and %d", o.Offset, o.Limit)
	}
	stop := int64(-1)
	if o.Limit > 0 {
		stop = int64(o.Offset) + int64(o.Limit) - 1
	}
	var (
		pipe  = s.rdb.TxPipeline()
		total = pipe.ZCard(ctx, s.indexKey(o.Provider))
		ids   = pipe.ZRange(ctx, s.indexKey(o.Provider), int64(o.Offset), stop)
	)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, 0, fmt.Errorf("dlq list: %w", err)
	}
	raws, err := s.fetch(ctx, ids.Val())
	if err != nil {
		return nil, 0, fmt.Errorf("dlq list: %w", err)
	}
	entries := make([]Entry, 0, len(raws))
	for i, raw := range raws {
		if raw == "" {
			continue
		}
		entries = append(entries, decode(ids.Val()[i], raw))
	}
	return entries, total.Val(), nil
}

// fetch returns the stored JSON of each ID, "" for one that is gone, with
// one pipelined round trip of HMGETs.
func (s *Store) fetch(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, 0, len(ids)/batchSize+1)
	for start := 0; start < len(ids); start += batchSize {
		cmds = append(cmds, pipe.HMGet(ctx, s.entriesKey(), ids[start:min(start+batchSize, len(ids))]...))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ids))
	for _, c := range cmds {
		for _, v := range c.Val() {
			str, _ := v.(string) // nil for a missing field
			out = append(out, str)
		}
	}
	return out, nil
}

// Missing returns those of ids that have no entry, in order. An entry a
// requeue has claimed (and is putting back on its queue) counts as there.
func (s *Store) Missing(ctx context.Context, ids []string) ([]string, error) {
	raws, err := s.fetch(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("dlq lookup: %w", err)
	}
	var absent []string
	for i, raw := range raws {
		if raw == "" {
			absent = append(absent, ids[i])
		}
	}
	if len(absent) == 0 {
		return nil, nil
	}
	claimed, err := s.rdb.HMGet(ctx, s.claimsKey(), absent...).Result()
	if err != nil {
		return nil, fmt.Errorf("dlq lookup: %w", err)
	}
	missing := absent[:0]
	for i, v := range claimed {
		if v == nil {
			missing = append(missing, absent[i])
		}
	}
	return missing, nil
}

// Count returns the number of entries of provider, or of all for "".
func (s *Store) Count(ctx context.Context, provider string) (int64, error) {
	n, err := s.rdb.ZCard(ctx, s.indexKey(provider)).Result()
	if err != nil {
		return 0, fmt.Errorf("dlq count: %w", err)
	}
	return n, nil
}

// IDs returns the IDs of provider's entries, or of all for "", oldest
// first.
func (s *Store) IDs(ctx context.Context, provider string) ([]string, error) {
	ids, err := s.rdb.ZRange(ctx, s.indexKey(provider), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("dlq ids: %w", err)
	}
	return ids, nil
}

// Remove deletes the entry of id only if it still has Seq seq, and reports
// whether it did. So a requeue that raced a fresh failure of the same order
// never deletes the fresh entry.
func (s *Store) Remove(ctx context.Context, id string, seq int64) (bool, error) {
	e, raw, err := s.get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("dlq remove: %w", err)
	}
	if e.Corrupt != "" || e.Seq != seq {
		return false, nil
	}
	// Every write has a new Seq, so the stored JSON is unchanged exactly
	// when the Seq is.
	ok, err := s.casDelete(ctx, id, raw, e.Provider)
	if err != nil {
		return false, fmt.Errorf("dlq remove %s: %w", id, err)
	}
	return ok, nil
}

// casDelete deletes the entry of id if its stored JSON is still raw.
func (s *Store) casDelete(ctx context.Context, id, raw, provider string) (bool, error) {
	keys := []string{s.entriesKey(), s.indexKey(""), s.indexKey(provider)}
	n, err := casDelScript.Run(ctx, s.rdb, keys, id, raw).Int()
	return n == 1, err
}

// Purge deletes the entries of ids whatever their Seq, and returns how many
// it deleted, leaving each a trail that says by whom (by) and when. IDs it
// does not hold are skipped. The archived asynq task of each entry is
// deleted first, so that the worker's reconciler does not file the entry
// again; a crash in between leaves the entry, to purge again.
func (s *Store) Purge(ctx context.Context, by string, ids ...string) (int, error) {
	deleted := 0
	pending := ids
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt == casAttempts {
			return deleted, fmt.Errorf("dlq purge: %d entries kept changing during %d attempts, first %s", len(pending), casAttempts, pending[0])
		}
		raws, err := s.fetch(ctx, pending)
		if err != nil {
			return deleted, fmt.Errorf("dlq purge: %w", err)
		}
		type del struct {
			id  string
			cmd *redis.Cmd
		}
		var dels []del
		archived := map[string][]string{} // queue → IDs
		var known []string                // asynq's queues, read for a corrupt entry
		pipe := s.rdb.Pipeline()
		for i, raw := range raws {
			if raw == "" {
				continue
			}
			e := decode(pending[i], raw) // a corrupt entry's provider comes from its ID
			if e.Queue != "" {
				archived[e.Queue] = append(archived[e.Queue], e.ID)
			} else {
				// Which shard held it is lost with the entry: every queue
				// of its provider.
				if known == nil {
					if known, err = s.tasks.Queues(ctx); err != nil {
						return deleted, fmt.Errorf("dlq purge: %w", err)
					}
				}
				for _, q := range known {
					if p, _, ok := tasks.ProviderOfQueue(q); ok && p == e.Provider {
						archived[q] = append(archived[q], e.ID)
					}
				}
			}
			tr, err := encodeTrail(trailOf(e, TrailPurged, by, s.nowFunc()))
			if err != nil {
				return deleted, fmt.Errorf("dlq purge: %w", err)
			}
			keys := []string{s.entriesKey(), s.indexKey(""), s.indexKey(e.Provider), s.trailKey(pending[i])}
			dels = append(dels, del{id: pending[i], cmd: casDelScript.Eval(ctx, pipe, keys, pending[i], raw, tr, trailTTL(e).Milliseconds())})
		}
		if len(dels) == 0 {
			break
		}
		for q, qids := range archived {
			if _, err := s.tasks.DropArchived(ctx, q, qids...); err != nil {
				return deleted, fmt.Errorf("dlq purge: %w", err)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return deleted, fmt.Errorf("dlq purge: %w", err)
		}
		pending = pending[:0:0]
		for _, d := range dels {
			if n, _ := d.cmd.Int(); n == 1 {
				deleted++
			} else {
				pending = append(pending, d.id)
			}
		}
	}
	return deleted, nil
}

// FileArchived writes the entry of task id, archived in queue without
// one (by the monitoring UI's archive buttons, asynq's own retry limit, a
// handler panic), with reason ReasonArchived and a message that starts
// with why. It reports whether it wrote one: not when the task is gone or
// no longer archived, nor when the order has an entry (or a requeue's
// claim) already. The entry is marked OutcomeUnknown when the task's
// attempt record or its headers say an earlier run's outcome is unknown.
func (s *Store) FileArchived(ctx context.Context, insp *asynq.Inspector, queue, id, why string) (Entry, bool, error) {
	if missing, err := s.Missing(ctx, []string{id}); err != nil || len(missing) == 0 {
		return Entry{}, false, err
	}
	info, err := insp.GetTaskInfo(queue, id)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		return Entry{}, false, nil // requeued or deleted since
	case err != nil:
		return Entry{}, false, fmt.Errorf("look up archived task %s: %w", id, err)
	case info.State != asynq.TaskStateArchived:
		return Entry{}, false, nil
	}
	// Whatever archived it, the task may have had runs whose outcome is
	// unknown: the attempt record and the task's own mark say.
	task, err := s.tasks.Peek(ctx, queue, id)
	if err != nil {
		return Entry{}, false, err
	}
	provider, order := tasks.OrderOf(info.Type, info.Payload)
	if provider == "" {
		provider = "unknown"
	}
	e := Entry{
		ID:             id,
		Provider:       provider,
		Order:          order,
		TaskType:       info.Type,
		Queue:          queue,
		Payload:        info.Payload,
		Headers:        info.Headers,
		OutcomeUnknown: task.Unknown || task.UnreportedRuns() || info.Headers[tasks.HeaderPriorOutcomeUnknown] == "1",
		Reason:         ReasonArchived,
		Message:        text.Truncate(why+"; asynq's last error: "+cmpOr(info.LastErr, "none"), MessageLimit-len("…")),
		Attempts:       info.Retried + 1,
		LastFailedAt:   info.LastFailedAt,
	}
	if e.LastFailedAt.IsZero() {
		// Archived before it ever failed (the monitoring UI's archive of
		// a pending task): when it was archived.
		if a, err := s.tasks.ArchivedAt(ctx, queue, id); err == nil && !a.IsZero() {
			e.LastFailedAt = a
		}
	}
	e, err = s.Put(ctx, e)
	if err != nil {
		return Entry{}, false, fmt.Errorf("file the dead-letter entry of %s: %w", id, err)
	}
	return e, true, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
