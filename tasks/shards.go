package tasks

import (
	"hash/fnv"
	"strconv"
	"strings"
)

// MaxShards is the most queues one provider's tasks may be spread over.
const MaxShards = 64

// Shards says over how many queues each provider's tasks are spread
// (MEARI_QUEUE_SHARDS, PANDAPON_QUEUE_SHARDS). With one, the zero value's
// count, a provider has the one queue QueueFor names. With n > 1 its tasks
// go to QueueFor(p)+":0" … ":n-1", the shard chosen from the task ID, so
// that the same order always lands in the same queue and asynq's per-queue
// task ID still refuses a second task for it. asynq keeps each queue in one
// Redis Cluster hash slot ("asynq:{cancel:meari:2}:..."), so on a Cluster
// the shards spread over the masters.
//
// Every process that enqueues, and every worker, must use the same counts:
// see Queues for what the worker serves while they change.
type Shards struct {
	Meari, PandaPon int
}

// Of returns the number of queues of provider p, at least 1.
func (s Shards) Of(p string) int {
	n := 1
	switch p {
	case ProviderMeari:
		n = s.Meari
	case ProviderPandaPon:
		n = s.PandaPon
	}
	return max(n, 1)
}

// Shard returns the shard of task id among n: the FNV-1a 32-bit hash of
// the ID's bytes, modulo n.
func Shard(id string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(id)) // never fails
	return int(h.Sum32() % uint32(n))
}

// Queue returns the queue of task id of provider p, or "" for an unknown
// provider.
func (s Shards) Queue(p, id string) string {
	base := QueueFor(p)
	n := s.Of(p)
	if base == "" || n == 1 {
		return base
	}
	return base + ":" + strconv.Itoa(Shard(id, n))
}

// Queues returns the queues a worker serves for provider p: the shards in
// order and, with more than one, the provider's unsharded queue last, so
// that tasks enqueued before sharding was turned on, or by a client that
// does not shard, are still served. nil for an unknown provider.
func (s Shards) Queues(p string) []string {
	base := QueueFor(p)
	if base == "" {
		return nil
	}
	n := s.Of(p)
	if n == 1 {
		return []string{base}
	}
	qs := make([]string, 0, n+1)
	for i := range n {
		qs = append(qs, base+":"+strconv.Itoa(i))
	}
	return append(qs, base)
}

// All returns Queues of every provider, in Providers order.
func (s Shards) All() []string {
	var qs []string
	for _, p := range Providers() {
		qs = append(qs, s.Queues(p)...)
	}
	return qs
}

// ProviderOfQueue returns the provider whose queue, sharded or not, q is,
// and the shard number (-1 for the unsharded queue); ok is false for any
// other name.
func ProviderOfQueue(q string) (provider string, shard int, ok bool) {
	for _, p := range Providers() {
		base := QueueFor(p)
		if q == base {
			return p, -1, true
		}
		if rest, found := strings.CutPrefix(q, base+":"); found {
			n, err := strconv.Atoi(rest)
			if err == nil && n >= 0 && strconv.Itoa(n) == rest {
				return p, n, true
			}
		}
	}
	return "", 0, false
}
