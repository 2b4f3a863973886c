package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// attemptKeyPrefix names the per-task attempt record: a Redis hash with the
// number of attempts made, the time of the first failure, and whether any
// attempt ended with an unknown outcome (UPSTREAMS.md §4). It outlives a
// dead-lettering, so that a requeued task still knows an earlier attempt may
// have cancelled the order; it is deleted when the cancel succeeds and
// otherwise expires with the task's retention.
const attemptKeyPrefix = "cancelworker:attempt:"

// record is what earlier attempts of a task left behind.
type record struct {
	Attempt        int       // number of this attempt, 1 for the first
	FirstFailedAt  time.Time // zero if no attempt failed before
	OutcomeUnknown bool      // an earlier attempt's outcome was unknown
}

// attempts keeps attempt records in Redis. It is safe for concurrent use.
type attempts struct {
	rdb redis.UniversalClient
	ttl time.Duration
}

func (a attempts) key(taskID string) string { return attemptKeyPrefix + taskID }

// begin counts a new attempt of taskID and returns the record as it stood.
// The attempt is counted before the upstream call, so a worker that dies
// mid-call still leaves it counted.
func (a attempts) begin(ctx context.Context, taskID string) (record, error) {
	k := a.key(taskID)
	pipe := a.rdb.TxPipeline()
	n := pipe.HIncrBy(ctx, k, "n", 1)
	vals := pipe.HMGet(ctx, k, "first", "unknown")
	pipe.Expire(ctx, k, a.ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return record{}, fmt.Errorf("attempt record %s: %w", taskID, err)
	}
	r := record{Attempt: int(n.Val())}
	v := vals.Val()
	if s, ok := v[0].(string); ok {
		if ns, err := strconv.ParseInt(s, 10, 64); err == nil {
			r.FirstFailedAt = time.Unix(0, ns).UTC()
		}
	}
	r.OutcomeUnknown = v[1] == "1"
	return r, nil
}

// failed notes a failure at now and, when unknown, that its outcome is not
// known.
func (a attempts) failed(ctx context.Context, taskID string, now time.Time, unknown bool) error {
	k := a.key(taskID)
	pipe := a.rdb.TxPipeline()
	pipe.HSetNX(ctx, k, "first", strconv.FormatInt(now.UnixNano(), 10))
	if unknown {
		pipe.HSet(ctx, k, "unknown", "1")
	}
	pipe.Expire(ctx, k, a.ttl)
	_, err := pipe.Exec(ctx)
	if err != nil {
		return fmt.Errorf("attempt record %s: %w", taskID, err)
	}
	return nil
}

// succeeded forgets the task's record.
func (a attempts) succeeded(ctx context.Context, taskID string) error {
	if err := a.rdb.Del(ctx, a.key(taskID)).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("attempt record %s: %w", taskID, err)
	}
	return nil
}
