package dlq

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// migrateBatch is how many legacy entries one round trip moves.
const migrateBatch = 200

// migrateScript moves the legacy entry ARGV[1] to the current keys. When
// both hold the ID, the one that failed last (the higher by_time score)
// is kept, a tie keeps the current one, and the legacy one always wins
// over an entry the reconciler filed (its JSON holds ARGV[2]): that one
// only says the task was archived, which the legacy one says better. It returns 1 if it moved the
// legacy entry, 0 if it dropped it for the current one, -1 if it was gone.
// KEYS: legacy entries, all index, provider index; current entries, all
// index, provider index; legacy seq, current seq. ARGV: id, the
// reconciler's reason as JSON.
var migrateScript = redis.NewScript(`
local raw = redis.call("HGET", KEYS[1], ARGV[1])
if not raw then
	return -1
end
local score = tonumber(redis.call("ZSCORE", KEYS[2], ARGV[1]) or "0")
local cur = redis.call("ZSCORE", KEYS[5], ARGV[1])
local moved = 0
local curRaw = redis.call("HGET", KEYS[4], ARGV[1])
if not curRaw or (cur and tonumber(cur) < score) or string.find(curRaw, ARGV[2], 1, true) then
	redis.call("HSET", KEYS[4], ARGV[1], raw)
	redis.call("ZADD", KEYS[5], score, ARGV[1])
	redis.call("ZADD", KEYS[6], score, ARGV[1])
	moved = 1
end
redis.call("HDEL", KEYS[1], ARGV[1])
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("ZREM", KEYS[3], ARGV[1])
local legacy = tonumber(redis.call("GET", KEYS[7]) or "0")
if legacy > tonumber(redis.call("GET", KEYS[8]) or "0") then
	redis.call("SET", KEYS[8], legacy)
end
if redis.call("HLEN", KEYS[1]) == 0 then
	redis.call("DEL", KEYS[7])
end
return moved`)

// Migrate moves the entries that a version before the hash-tagged keys
// (PrefixLegacy) left, or that such a version still running writes, into
// the store's keys, and returns how many it moved and how many it dropped
// because the store held a later failure of the same ID. Each entry moves
// in one script: it is never in neither place. The Seq counter is carried
// over, so that every later write's Seq is still higher.
//
// The legacy keys never held anything on a Redis Cluster (their scripts
// touched several slots and failed there), so on a Cluster client Migrate
// does nothing.
func (s *Store) Migrate(ctx context.Context) (moved, dropped int, err error) {
	if _, ok := s.rdb.(*redis.ClusterClient); ok {
		return 0, 0, nil
	}
	legacy := &Store{prefix: PrefixLegacy}
	reconciled := `"reason":"` + ReasonArchived + `"`
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, legacy.entriesKey(), cursor, "*", migrateBatch).Result()
		if err != nil {
			return moved, dropped, fmt.Errorf("dlq migrate: %w", err)
		}
		pipe := s.rdb.Pipeline()
		var cmds []*redis.Cmd
		for i := 0; i+1 < len(kv); i += 2 {
			id := kv[i]
			provider := decode(id, kv[i+1]).Provider
			keys := []string{
				legacy.entriesKey(), legacy.indexKey(""), legacy.indexKey(provider),
				s.entriesKey(), s.indexKey(""), s.indexKey(provider),
				legacy.seqKey(), s.seqKey(),
			}
			cmds = append(cmds, migrateScript.Eval(ctx, pipe, keys, id, reconciled))
		}
		if len(cmds) > 0 {
			if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
				return moved, dropped, fmt.Errorf("dlq migrate: %w", err)
			}
			for _, c := range cmds {
				switch n, _ := c.Int(); n {
				case 1:
					moved++
				case 0:
					dropped++
				}
			}
		}
		if next == 0 {
			return moved, dropped, nil
		}
		cursor = next
	}
}
