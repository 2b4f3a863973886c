package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/cancelworker/cancelworker/tasks"
)

// The batch part measures what asynq's processor costs in Redis, and what
// the same work would cost batched: the bound issue 19 asks to measure
// before building anything past asynq's processor.
//
// Both sides run asynq v0.26's own dequeue and markAsComplete scripts,
// copied below, on the same pre-enqueued tasks, with no handler between
// them: "one by one" as asynq's processor issues them (one round trip
// per script per task, from as many goroutines as the concurrency), and
// "pipelined" with batchSize calls of each script in one round trip. Each
// script call stays one atomic step in Redis, so Redis ends in the same
// state either way; only the round trips differ.

// dequeueScript is asynq v0.26's dequeueCmd (internal/rdb/rdb.go).
var dequeueScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[2]) == 0 then
	local id = redis.call("RPOPLPUSH", KEYS[1], KEYS[3])
	if id then
		local key = ARGV[2] .. id
		redis.call("HSET", key, "state", "active")
		redis.call("HDEL", key, "pending_since")
		redis.call("ZADD", KEYS[4], ARGV[1], id)
		return redis.call("HGET", key, "msg")
	end
end
return nil`)

// markAsCompleteScript is asynq v0.26's markAsCompleteCmd.
var markAsCompleteScript = redis.NewScript(`
if redis.call("LREM", KEYS[1], 0, ARGV[1]) == 0 then
  return redis.error_reply("NOT FOUND")
end
if redis.call("ZREM", KEYS[2], ARGV[1]) == 0 then
  return redis.error_reply("NOT FOUND")
end
if redis.call("ZADD", KEYS[3], ARGV[3], ARGV[1]) ~= 1 then
  return redis.error_reply("INTERNAL")
end
redis.call("HSET", KEYS[4], "msg", ARGV[4], "state", "completed")
local n = redis.call("INCR", KEYS[5])
if tonumber(n) == 1 then
	redis.call("EXPIREAT", KEYS[5], ARGV[2])
end
local total = redis.call("GET", KEYS[6])
if tonumber(total) == tonumber(ARGV[5]) then
	redis.call("SET", KEYS[6], 1)
else
	redis.call("INCR", KEYS[6])
end
return redis.status_reply("OK")
`)

// batchSize is the pipelined side's batch, and the one-by-one side's
// goroutines: the concurrency both serve.
const batchSize = 50

// batchResult is one run of one side.
type batchResult struct {
	rate                float64
	redisCPU, clientCPU time.Duration // per task
	roundTrips          int
}

// batchMode names the two sides.
type batchMode struct {
	key, name string
	pipelined bool
}

var batchModes = []batchMode{
	{"one", "asynq's processor: one round trip per script per task, 50 goroutines", false},
	{"pipelined", "the same scripts pipelined, 50 calls per round trip", true},
}

// queueKeys are asynq's keys of the Meari queue.
type queueKeys struct {
	pending, paused, active, lease, completed, processed, prefix string
}

func meariKeys() queueKeys {
	q := "asynq:{" + tasks.QueueMeari + "}:"
	return queueKeys{pending: q + "pending", paused: q + "paused", active: q + "active", lease: q + "lease",
		completed: q + "completed", processed: q + "processed", prefix: q + "t:"}
}

// batchRun pre-enqueues n tasks, then takes each through dequeue and
// markAsComplete in the given mode, timed, and checks that every task
// ended completed exactly once.
func (b *bench) batchRun(ctx context.Context, m batchMode, n int) (batchResult, []string, error) {
	var res batchResult
	if err := b.reset(ctx, 0); err != nil {
		return res, nil, err
	}
	if err := b.preEnqueue(ctx, "B", n); err != nil {
		return res, nil, err
	}
	// Load the scripts outside the clock.
	for _, s := range []*redis.Script{dequeueScript, markAsCompleteScript} {
		if err := s.Load(ctx, b.rdb).Err(); err != nil {
			return res, nil, err
		}
	}
	// asynq's own client pool is 10 per P; here one connection per
	// goroutine, so that no call waits for a connection.
	rdb := redis.NewClient(&redis.Options{Addr: b.redisAddr, PoolSize: batchSize + 10})
	defer rdb.Close()
	k := meariKeys()
	rcpu0, err := cpuTime(b.redis.pid())
	if err != nil {
		return res, nil, err
	}
	ccpu0, err := cpuTime(os.Getpid())
	if err != nil {
		return res, nil, err
	}
	start := time.Now()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		done     int
		trips    int
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	// Each goroutine runs until the queue is empty.
	goroutines, per := batchSize, 1
	if m.pipelined {
		goroutines, per = 1, batchSize
	}
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, t, err := dequeueBatch(ctx, rdb, k, per)
				if err != nil {
					fail(err)
					return
				}
				if len(got) == 0 {
					mu.Lock()
					trips += t
					mu.Unlock()
					return
				}
				t2, err := completeBatch(ctx, rdb, k, got)
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				done += len(got)
				trips += t + t2
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if firstErr != nil {
		return res, nil, firstErr
	}
	rcpu1, err := cpuTime(b.redis.pid())
	if err != nil {
		return res, nil, err
	}
	ccpu1, err := cpuTime(os.Getpid())
	if err != nil {
		return res, nil, err
	}
	res = batchResult{rate: float64(n) / took.Seconds(), redisCPU: (rcpu1 - rcpu0) / time.Duration(n),
		clientCPU: (ccpu1 - ccpu0) / time.Duration(n), roundTrips: trips}

	var bad []string
	if done != n {
		bad = append(bad, fmt.Sprintf("%d tasks taken, want %d", done, n))
	}
	pipe := b.rdb.Pipeline()
	completed, pending, active := pipe.ZCard(ctx, k.completed), pipe.LLen(ctx, k.pending), pipe.LLen(ctx, k.active)
	if _, err := pipe.Exec(ctx); err != nil {
		return res, nil, err
	}
	if completed.Val() != int64(n) || pending.Val() != 0 || active.Val() != 0 {
		bad = append(bad, fmt.Sprintf("completed %d, pending %d, active %d; want %d, 0, 0", completed.Val(), pending.Val(), active.Val(), n))
	}
	return res, bad, nil
}

// dequeued is one task taken: its ID and its message as stored.
type dequeued struct{ id, msg string }

// dequeueBatch runs the dequeue script count times in one round trip and
// returns the tasks it took, and the round trips made.
func dequeueBatch(ctx context.Context, rdb *redis.Client, k queueKeys, count int) ([]dequeued, int, error) {
	lease := time.Now().Add(30 * time.Second).Unix()
	keys := []string{k.pending, k.paused, k.active, k.lease}
	pipe := rdb.Pipeline()
	cmds := make([]*redis.Cmd, count)
	for i := range cmds {
		cmds[i] = dequeueScript.EvalSha(ctx, pipe, keys, lease, k.prefix)
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, 1, err
	}
	var got []dequeued
	for _, c := range cmds {
		msg, err := c.Text()
		if err == redis.Nil {
			break
		}
		if err != nil {
			return nil, 1, err
		}
		id, err := messageID([]byte(msg))
		if err != nil {
			return nil, 1, err
		}
		got = append(got, dequeued{id: id, msg: msg})
	}
	return got, 1, nil
}

// messageID reads the task ID (field 3) from an asynq TaskMessage, as
// asynq's processor decodes it (its proto package is internal).
func messageID(b []byte) (string, error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", protowire.ParseError(n)
		}
		b = b[n:]
		if num == 3 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", protowire.ParseError(n)
			}
			return string(v), nil
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return "", protowire.ParseError(n)
		}
		b = b[n:]
	}
	return "", fmt.Errorf("task message without an ID")
}

// completeBatch runs the markAsComplete script for each task in one round
// trip.
func completeBatch(ctx context.Context, rdb *redis.Client, k queueKeys, got []dequeued) (int, error) {
	now := time.Now()
	pipe := rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(got))
	processed := k.processed + ":" + now.UTC().Format("2006-01-02")
	for i, d := range got {
		keys := []string{k.active, k.lease, k.completed, k.prefix + d.id, processed, k.processed}
		cmds[i] = markAsCompleteScript.EvalSha(ctx, pipe, keys, d.id, now.Add(90*24*time.Hour).Unix(), now.Unix()+3600, d.msg, int64(math.MaxInt64))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 1, err
	}
	return 1, nil
}
