package worker

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/redis/go-redis/v9"
)

// CheckLine is one line of `worker check`: its status (ok, warn, fail),
// what it is about and what was found.
type CheckLine struct{ Status, What, Detail string }

// Statuses of a CheckLine.
const (
	CheckOK   = "ok"
	CheckWarn = "warn"
	CheckFail = "fail"
)

// RedisTopology checks the high availability of the Redis conn names, as
// `worker check` shows it. Through Sentinel: what each Sentinel knows (the
// master it names, its replicas, the other Sentinels, whether it can reach
// quorum), with a warning (never a failure) for each reason a failover
// could not happen; a failure only when no Sentinel answers. On a Cluster:
// every master reachable and every slot served, each a failure otherwise.
// A single server has nothing to check: no lines.
func RedisTopology(ctx context.Context, conn config.RedisConn) []CheckLine {
	switch {
	case conn.Failover != nil:
		return sentinelTopology(ctx, conn.Failover)
	case conn.Cluster != nil:
		o := *conn.Cluster
		cc := redis.NewClusterClient(&o)
		defer cc.Close()
		return clusterTopology(ctx, cc)
	}
	return nil
}

// sentinelView is what one Sentinel says of the master.
type sentinelView struct {
	addr      string
	err       error    // it did not answer
	master    string   // ip:port it names
	flags     string   // the master's flags (s_down, o_down...)
	quorum    int      // the master's configured quorum
	replicas  []string // ip:port of the replicas it holds up
	down      []string // replicas it knows but holds down or disconnected
	sentinels []string // the other Sentinels it knows
	ckquorum  error    // SENTINEL CKQUORUM's refusal, if any
}

// sentinelTimeout bounds what check asks one Sentinel.
const sentinelTimeout = 3 * time.Second

func sentinelTopology(ctx context.Context, fo *redis.FailoverOptions) []CheckLine {
	// All at once, each on its own clock: a silent Sentinel must not use
	// up the others' time.
	views := make([]sentinelView, len(fo.SentinelAddrs))
	var wg sync.WaitGroup
	for i, addr := range fo.SentinelAddrs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, sentinelTimeout)
			defer cancel()
			views[i] = askSentinel(ctx, fo, addr)
		})
	}
	wg.Wait()
	return judgeSentinels(fo.MasterName, views)
}

// askSentinel reads what the Sentinel at addr knows of the master.
func askSentinel(ctx context.Context, fo *redis.FailoverOptions, addr string) sentinelView {
	v := sentinelView{addr: addr}
	// No retries: check reports what answers now.
	sc := config.AskSentinel(fo, addr, min(cmp.Or(fo.DialTimeout, sentinelTimeout), sentinelTimeout))
	defer sc.Close()
	m, err := sc.Master(ctx, fo.MasterName).Result()
	if err != nil {
		v.err = err
		return v
	}
	v.master = net.JoinHostPort(m["ip"], m["port"])
	v.flags = m["flags"]
	v.quorum, _ = strconv.Atoi(m["quorum"])
	reps, err := sc.Replicas(ctx, fo.MasterName).Result()
	if err != nil {
		v.err = err
		return v
	}
	for _, r := range reps {
		a := net.JoinHostPort(r["ip"], r["port"])
		if strings.Contains(r["flags"], "down") || strings.Contains(r["flags"], "disconnected") || r["master-link-status"] == "err" {
			v.down = append(v.down, a)
		} else {
			v.replicas = append(v.replicas, a)
		}
	}
	others, err := sc.Sentinels(ctx, fo.MasterName).Result()
	if err != nil {
		v.err = err
		return v
	}
	for _, s := range others {
		v.sentinels = append(v.sentinels, net.JoinHostPort(s["ip"], s["port"]))
	}
	if _, err := sc.CkQuorum(ctx, fo.MasterName).Result(); err != nil {
		v.ckquorum = err
	}
	slices.Sort(v.replicas)
	slices.Sort(v.sentinels)
	return v
}

// judgeSentinels turns the Sentinels' views into check lines.
func judgeSentinels(name string, views []sentinelView) []CheckLine {
	var out []CheckLine
	answered := 0
	masters := map[string][]string{} // master → the Sentinels naming it
	var warns []string
	for _, v := range views {
		what := "sentinel " + v.addr
		if v.err != nil {
			out = append(out, CheckLine{CheckWarn, what, fmt.Sprintf("did not answer about master %q: %v", name, v.err)})
			continue
		}
		answered++
		masters[v.master] = append(masters[v.master], v.addr)
		detail := fmt.Sprintf("master %q at %s; %d replica(s) up %s; knows %d other Sentinel(s) %s; quorum %d",
			name, v.master, len(v.replicas), list(v.replicas), len(v.sentinels), list(v.sentinels), v.quorum)
		if len(v.down) > 0 {
			detail += fmt.Sprintf("; replica(s) down %s", list(v.down))
		}
		status := CheckOK
		if v.ckquorum != nil {
			status = CheckWarn
			detail += "; quorum not reachable: " + v.ckquorum.Error()
		}
		if strings.Contains(v.flags, "down") {
			status = CheckWarn
			detail += "; it holds the master down (" + v.flags + ")"
		}
		out = append(out, CheckLine{status, what, detail})
		if len(v.replicas) == 0 {
			warns = append(warns, fmt.Sprintf("sentinel %s knows no replica that is up: a failover could not happen", v.addr))
		}
		if n := len(v.sentinels) + 1; n < 3 {
			warns = append(warns, fmt.Sprintf("sentinel %s knows %d Sentinel(s) in all, itself included: with fewer than 3, losing one machine can stop a failover", v.addr, n))
		}
	}
	if answered == 0 {
		return append(out, CheckLine{CheckFail, "sentinel", fmt.Sprintf("no Sentinel of REDIS_SENTINEL_ADDRS answered about master %q", name)})
	}
	if len(masters) > 1 {
		var parts []string
		for m, by := range masters {
			parts = append(parts, m+" (by "+strings.Join(by, ", ")+")")
		}
		slices.Sort(parts)
		warns = append(warns, "the Sentinels disagree on the master: "+strings.Join(parts, "; "))
	}
	slices.Sort(warns)
	for _, w := range slices.Compact(warns) {
		out = append(out, CheckLine{CheckWarn, "sentinel", w})
	}
	return out
}

// list shows addresses in brackets, or (none).
func list(addrs []string) string {
	if len(addrs) == 0 {
		return "(none)"
	}
	return "(" + strings.Join(addrs, ", ") + ")"
}

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

func clusterTopology(ctx context.Context, cc *redis.ClusterClient) []CheckLine {
	// CLUSTER SLOTS, not CLUSTER SHARDS: it is what go-redis routes by
	// (so the addresses match the masters ForEachMaster reaches), and
	// Redis 6 has it.
	//lint:ignore SA1019 see above
	slots, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		return []CheckLine{{CheckFail, "cluster", "CLUSTER SLOTS: " + err.Error()}}
	}
	var out []CheckLine
	covered := make([]bool, clusterSlots)
	type master struct {
		addr  string // as CLUSTER SLOTS names it
		slots int
	}
	masters := map[string]*master{} // by node ID
	replicas := map[string]bool{}
	for _, s := range slots {
		if len(s.Nodes) == 0 {
			continue
		}
		for i := max(s.Start, 0); i <= min(s.End, clusterSlots-1); i++ {
			covered[i] = true
		}
		m := masters[s.Nodes[0].ID]
		if m == nil {
			m = &master{addr: s.Nodes[0].Addr}
			masters[s.Nodes[0].ID] = m
		}
		m.slots += s.End - s.Start + 1
		for _, r := range s.Nodes[1:] {
			replicas[r.ID] = true
		}
	}
	// Each master go-redis routes to, asked its node ID: go-redis may
	// rewrite the addresses CLUSTER SLOTS gives (a loopback host, a TLS
	// port), so the masters are matched by ID.
	var mu sync.Mutex
	answered := map[string]bool{}
	var failures []string
	err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		id, err := c.Do(ctx, "CLUSTER", "MYID").Text()
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failures = append(failures, c.Options().Addr+": "+err.Error())
		} else {
			answered[id] = true
		}
		return nil
	})
	if err != nil {
		failures = append(failures, err.Error())
	}
	var addrs []string
	for id, m := range masters {
		addrs = append(addrs, m.addr)
		if !answered[id] {
			out = append(out, CheckLine{CheckFail, "cluster master " + m.addr, fmt.Sprintf("serves %d slots but does not answer", m.slots)})
		}
	}
	slices.Sort(addrs)
	slices.SortFunc(out, func(a, b CheckLine) int { return strings.Compare(a.What, b.What) })
	if len(failures) > 0 {
		slices.Sort(failures)
		out = append(out, CheckLine{CheckFail, "cluster", "could not reach every master: " + strings.Join(failures, "; ")})
	}
	allAnswer := len(out) == 0
	var gaps []string
	for i := 0; i < clusterSlots; {
		if covered[i] {
			i++
			continue
		}
		j := i
		for j+1 < clusterSlots && !covered[j+1] {
			j++
		}
		if i == j {
			gaps = append(gaps, strconv.Itoa(i))
		} else {
			gaps = append(gaps, fmt.Sprintf("%d-%d", i, j))
		}
		i = j + 1
	}
	if len(gaps) > 0 {
		out = append(out, CheckLine{CheckFail, "cluster", fmt.Sprintf("slots served by no master: %s (a key there cannot be read or written)", strings.Join(gaps, ", "))})
	}
	if allAnswer && len(gaps) == 0 {
		out = append(out, CheckLine{CheckOK, "cluster", fmt.Sprintf("%d masters %s all answer and serve all %d slots; %d replica(s)", len(addrs), list(addrs), clusterSlots, len(replicas))})
	}
	if len(replicas) == 0 {
		out = append(out, CheckLine{CheckWarn, "cluster", "no master has a replica: losing one loses its slots' tasks until it is back"})
	}
	return out
}
