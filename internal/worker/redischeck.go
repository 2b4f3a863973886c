package worker

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// RedisWarnings inspects the Redis server's settings that decide whether
// accepted cancellations survive, and returns a sentence for each that
// puts them at risk: an eviction policy other than noeviction (Redis would
// silently drop pending tasks and DLQ entries under memory pressure), and
// neither AOF nor RDB persistence (a restart loses everything). A setting
// Redis does not reveal (CONFIG is often disabled on managed services) is
// named as unknown rather than guessed.
//
// On a Cluster every master is inspected, and each sentence names its node.
func RedisWarnings(ctx context.Context, rdb redis.UniversalClient) []string {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		var ws []string
		err := eachMaster(ctx, cc, func(addr string, c *redis.Client) {
			for _, w := range RedisWarnings(ctx, c) {
				ws = append(ws, "node "+addr+": "+w)
			}
		})
		slices.Sort(ws)
		if err != nil {
			ws = append(ws, fmt.Sprintf("could not reach every Cluster master to check its settings (%v)", err))
		}
		return ws
	}
	var ws []string
	mem, err := rdb.Info(ctx, "memory").Result()
	switch policy := infoField(mem, "maxmemory_policy"); {
	case err != nil:
		ws = append(ws, fmt.Sprintf("could not read Redis's maxmemory-policy (%v): make sure it is noeviction, or Redis may evict pending tasks and dead-letter entries", err))
	case policy != "noeviction":
		ws = append(ws, fmt.Sprintf("Redis's maxmemory-policy is %q, not noeviction: under memory pressure Redis would silently evict pending tasks and dead-letter entries; set maxmemory-policy noeviction", policy))
	}
	pers, err := rdb.Info(ctx, "persistence").Result()
	if err != nil {
		return append(ws, fmt.Sprintf("could not read Redis's persistence settings (%v): without AOF or RDB a Redis restart loses every queued cancellation", err))
	}
	if infoField(pers, "aof_enabled") == "1" {
		return ws
	}
	save, err := rdb.ConfigGet(ctx, "save").Result()
	switch {
	case err != nil:
		ws = append(ws, "Redis has AOF off and its RDB save rules cannot be read (CONFIG GET is refused): unless it snapshots, a restart loses every queued cancellation; prefer appendonly yes")
	case strings.TrimSpace(save["save"]) == "":
		ws = append(ws, "Redis has neither AOF nor RDB persistence: a restart loses every queued cancellation and dead-letter entry; set appendonly yes (appendfsync everysec)")
	}
	return ws
}

// infoField returns the value of field in the text of an INFO reply.
func infoField(info, field string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// RedisSummary describes the Redis server rdb talks to in one line: its
// version and mode, its persistence and its maxmemory-policy, as `worker
// check` prints them. What Redis does not reveal is named as unknown.
//
// On a Cluster it describes each master, in address order.
func RedisSummary(ctx context.Context, rdb redis.UniversalClient) (string, error) {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		var (
			lines []string
			first error
		)
		err := eachMaster(ctx, cc, func(addr string, c *redis.Client) {
			sum, err := RedisSummary(ctx, c)
			if err != nil {
				first = cmp.Or(first, fmt.Errorf("node %s: %w", addr, err))
				return
			}
			lines = append(lines, "node "+addr+": "+sum)
		})
		if err = cmp.Or(err, first); err != nil {
			return "", err
		}
		slices.Sort(lines)
		return fmt.Sprintf("Redis Cluster of %d masters: %s", len(lines), strings.Join(lines, "; ")), nil
	}
	srv, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return "", err
	}
	pers, err := rdb.Info(ctx, "persistence").Result()
	if err != nil {
		return "", err
	}
	mem, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return "", err
	}
	persistence := "RDB snapshots only or none (AOF off)"
	if infoField(pers, "aof_enabled") == "1" {
		persistence = "AOF on"
		if v, err := rdb.ConfigGet(ctx, "appendfsync").Result(); err == nil && v["appendfsync"] != "" {
			persistence += " (appendfsync " + v["appendfsync"] + ")"
		}
	} else if v, err := rdb.ConfigGet(ctx, "save").Result(); err == nil {
		if strings.TrimSpace(v["save"]) == "" {
			persistence = "none (AOF off, no RDB save rules)"
		} else {
			persistence = "RDB snapshots (save " + strings.TrimSpace(v["save"]) + "), AOF off"
		}
	}
	policy := cmp.Or(infoField(mem, "maxmemory_policy"), "unknown")
	return fmt.Sprintf("Redis %s (%s), persistence: %s, maxmemory-policy %s",
		cmp.Or(infoField(srv, "redis_version"), "of unknown version"), cmp.Or(infoField(srv, "redis_mode"), "unknown mode"), persistence, policy), nil
}

// eachMaster calls f for every master of cc, one at a time.
func eachMaster(ctx context.Context, cc *redis.ClusterClient, f func(addr string, c *redis.Client)) error {
	var mu sync.Mutex
	return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		f(c.Options().Addr, c)
		return nil
	})
}
