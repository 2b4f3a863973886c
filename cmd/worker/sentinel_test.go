package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/intake"
	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
)

// TestSentinelFailover runs the worker against a real Sentinel set (a
// master, a replica, three Sentinels) while 1,000 cancellations (every
// 50th refused by the provider) are enqueued
// through the Sentinels too; mid-run the master is killed with SIGKILL.
// The Sentinels elect the replica, the worker and the enqueuer follow it
// without a restart, every enqueue acknowledged after the failover is
// cancelled, the DLQ stays empty, and the test reports how many
// acknowledged enqueues the kill lost (Redis replicates asynchronously)
// and how long the pipeline stalled.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	s := redistest.NewSentinel(t)
	sb, base := workertest.Upstream(t)
	env := map[string]string{
		"REDIS_SENTINEL_ADDRS": strings.Join(s.Addrs, ","), "REDIS_MASTER_NAME": redistest.MasterName,
		"PANDAPON_BASE_URL": base, "PANDAPON_ACCESS_KEY": workertest.PandaPonAccessKey,
		"PANDAPON_ACCESS_SECRET": workertest.PandaPonSecret, "PANDAPON_USER_ID": workertest.PandaPonUserID,
		"WORKER_CONCURRENCY": "20", "ADMIN_ADDR": workertest.ClosedAddr(t), "LOG_LEVEL": "warn",
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr, intakeErr syncBuffer
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, nil, envFunc(env), &syncBuffer{}, &stderr) }()
	// The intake, through the same Sentinels.
	intakeAddr := workertest.ClosedAddr(t)
	intakeExited := make(chan int, 1)
	go func() { intakeExited <- intake.Main(ctx, []string{"--addr", intakeAddr}, envFunc(env), &intakeErr) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		<-intakeExited
	})
	workerReady, intakeURL := "http://"+env["ADMIN_ADDR"]+"/readyz", "http://"+intakeAddr
	workertest.Wait(t, "the worker and the intake ready", func() (bool, string) {
		a, _ := httpStatus(workerReady)
		b, _ := httpStatus(intakeURL + "/readyz")
		return a == 200 && b == 200, fmt.Sprintf("worker %d, intake %d", a, b)
	})

	// The enqueuer connects as the CLI and the intake do: through the
	// Sentinels.
	l := config.NewLoader(envFunc(env), nil)
	rs := config.AddRedis(l)
	l.Resolve()
	conn := rs.Read(l)
	if err := l.Err(); err != nil || conn.Mode != config.RedisSentinel {
		t.Fatalf("conn %s: %v", conn.Mode, err)
	}
	rdb := conn.NewClient()
	t.Cleanup(func() { _ = rdb.Close() })
	enq := tasks.NewEnqueuer(rdb, tasks.Shards{})

	// Every 50th order is refused (PandaPon data false): it must end in the
	// DLQ, once; the others cancelled.
	refused := false
	permanent := func(id string) bool { n, _ := strconv.Atoi(id); return n%50 == 0 }
	settled := func(id string) bool {
		if permanent(id) {
			return len(sb.Calls(tasks.ProviderPandaPon, id)) > 0
		}
		return sb.Cancelled(tasks.ProviderPandaPon, id)
	}
	var mu sync.Mutex
	var ackedBefore, ackedAfter []string
	var killed time.Time
	stop := make(chan struct{})
	enqueued := make(chan struct{})
	go func() {
		defer close(enqueued)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := strconv.Itoa(9_000_000 + i)
			if permanent(id) {
				sb.Script(tasks.ProviderPandaPon, id, sandbox.PandaPonCode(200, &refused))
			}
			n, _ := tasks.ParseOrderID(id)
			task, _ := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: n})
			ectx, ecancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := enq.Enqueue(ectx, task, false)
			ecancel()
			if err != nil {
				continue // refused during the failover: not acknowledged
			}
			mu.Lock()
			if killed.IsZero() {
				ackedBefore = append(ackedBefore, id)
			} else {
				ackedAfter = append(ackedAfter, id)
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond) // a steady stream, not a flood
		}
	}()

	workertest.WaitUpTo(t, time.Minute, "500 calls before the kill", func() (bool, string) {
		return sb.TotalCalls() >= 500, fmt.Sprintf("%d calls", sb.TotalCalls())
	})
	mu.Lock()
	killed = time.Now()
	mu.Unlock()
	callsAtKill := sb.TotalCalls()
	s.KillMaster()
	// Through the failover, both /readyz are polled and an order is posted
	// to the intake every 20ms: each answer is 202 or 503 with a reason.
	// (Started after the kill: an order accepted by the old master could be
	// lost with it, which the counts above already measure.)
	mon := &failoverMonitor{}
	monStop, monDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(monDone); mon.run(monStop, workerReady, intakeURL) }()
	workertest.WaitUpTo(t, time.Minute, "cancellations to resume after the failover", func() (bool, string) {
		return sb.TotalCalls() > callsAtKill+50, fmt.Sprintf("%d calls", sb.TotalCalls())
	})
	resumed := time.Now()
	workertest.WaitUpTo(t, 30*time.Second, "both /readyz and the intake to answer 200/202 again", func() (bool, string) {
		return mon.recovered(), mon.String()
	})
	close(monStop)
	<-monDone
	workertest.WaitUpTo(t, time.Minute, "1,000 enqueues acknowledged in all", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(ackedBefore)+len(ackedAfter) >= 1000 && len(ackedAfter) >= 200, fmt.Sprintf("%d + %d", len(ackedBefore), len(ackedAfter))
	})
	close(stop)
	<-enqueued

	mu.Lock()
	before, after := append([]string(nil), ackedBefore...), append([]string(nil), ackedAfter...)
	mu.Unlock()
	workertest.WaitUpTo(t, 2*time.Minute, "every enqueue acknowledged after the failover cancelled", func() (bool, string) {
		missing := 0
		for _, id := range after {
			if !settled(id) {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d missing", missing, len(after))
	})
	// The enqueues acknowledged before the kill that the new master never
	// got are the replication lag at the kill: once the queue has drained,
	// they are the ones not cancelled.
	// Nothing left to send: the calls in flight at the kill were made (the
	// sandbox has them); asynq's bookkeeping of those may stay behind on
	// the new master until its recoverer runs (see the README).
	workertest.WaitUpTo(t, time.Minute, "nothing pending", func() (bool, string) {
		p, err := rdb.LLen(ctx, "asynq:{"+tasks.QueuePandaPon+"}:pending").Result()
		return err == nil && p == 0, fmt.Sprintf("pending %d (%v)", p, err)
	})
	lost := 0
	wantDLQ := map[string]bool{}
	for _, id := range before {
		if !settled(id) {
			lost++
		} else if permanent(id) {
			wantDLQ["pandapon:"+id] = true
		}
	}
	for _, id := range after {
		if permanent(id) {
			wantDLQ["pandapon:"+id] = true
		}
	}
	// The DLQ holds exactly the scripted refusals that reached the new
	// master. A refusal whose task the new master still holds (active: its
	// run's end was not replicated) is run again once asynq's recoverer
	// finds its lease expired, a minute or two later, and then files its
	// entry; one the new master has no trace of went with the kill.
	insp := asynq.NewInspectorFromRedisClient(rdb)
	got, gone := map[string]bool{}, map[string]bool{}
	var recovered []string
	workertest.WaitUpTo(t, 3*time.Minute, fmt.Sprintf("the DLQ to hold exactly the %d scripted refusals", len(wantDLQ)), func() (bool, string) {
		ids, err := dlq.New(rdb).IDs(ctx, "")
		if err != nil {
			return false, err.Error()
		}
		clear(got)
		for _, id := range ids {
			got[id] = true
		}
		var waiting, extra []string
		for id := range wantDLQ {
			if got[id] || gone[id] {
				continue
			}
			info, err := insp.GetTaskInfo(tasks.QueuePandaPon, id)
			switch {
			case errors.Is(err, asynq.ErrTaskNotFound):
				gone[id] = true
			case err != nil:
				waiting = append(waiting, id+": "+err.Error())
			default:
				waiting = append(waiting, fmt.Sprintf("%s %s (next %s)", id, info.State, info.NextProcessAt.Format(time.TimeOnly)))
				if !slices.Contains(recovered, id) {
					recovered = append(recovered, id)
				}
			}
		}
		for id := range got {
			if !wantDLQ[id] {
				extra = append(extra, id)
			}
		}
		return len(waiting) == 0 && len(extra) == 0, fmt.Sprintf("%d entries; waiting for %v; not scripted %v", len(got), waiting, extra)
	})
	// The intake answered every post within 5s: accepted (go-redis
	// waits for the new master), or 503 with Retry-After and the item's
	// reason; each accepted order was cancelled; both /readyz answered 200
	// or 503 throughout, and 200 after, without a restart.
	mon.mu.Lock()
	for _, b := range mon.bad {
		t.Errorf("during the failover: %s", b)
	}
	accepted, refused503, slowest := slices.Clone(mon.accepted), mon.refused, mon.slowest
	mon.mu.Unlock()
	workertest.WaitUpTo(t, 3*time.Minute, fmt.Sprintf("the %d orders the intake accepted during the failover cancelled", len(accepted)), func() (bool, string) {
		missing := 0
		for _, id := range accepted {
			if !sb.Cancelled(tasks.ProviderPandaPon, id) {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d missing", missing)
	})
	t.Logf("intake during the failover: %d posts accepted and cancelled, %d answered 503 with Retry-After, the slowest answer %s; /readyz 503s: worker %d, intake %d",
		len(accepted), refused503, slowest.Round(100*time.Millisecond), mon.workerDown, mon.intakeDown)
	if code := <-waitOrNil(intakeExited); code != -1 {
		t.Fatalf("the intake exited with %d during the failover:\n%s", code, intakeErr.String())
	}
	if code := <-waitOrNil(exited); code != -1 {
		t.Fatalf("the worker exited with %d during the failover:\n%s", code, stderr.String())
	}
	t.Logf("sentinel failover: %d enqueues acknowledged before the SIGKILL of the master, %d of them lost (not replicated); %d acknowledged after, all settled; DLQ %d (the scripted refusals; %d filed after asynq recovered their task %v, %d whose task and entry the kill took %v); cancellations stalled %s (kill → 50 more calls)",
		len(before), lost, len(after), len(got), len(recovered), recovered, len(gone), slices.Sorted(maps.Keys(gone)), resumed.Sub(killed).Round(100*time.Millisecond))
	if lost+len(gone) > len(before)/10 {
		t.Errorf("%d of %d acknowledged enqueues lost, and %d dead-letter writes: far more than a replication lag", lost, len(before), len(gone))
	}
}

func TestMain(m *testing.M) {
	// The Sentinel test kills a master: go-redis's own dial logs would
	// drown the output.
	redis.SetLogger(&logging.VoidLogger{})
	os.Exit(m.Run())
}

// waitOrNil returns a channel that yields the worker's exit code if it
// has exited, else -1 at once.
func waitOrNil(exited chan int) chan int {
	out := make(chan int, 1)
	select {
	case code := <-exited:
		exited <- code
		out <- code
	default:
		out <- -1
	}
	return out
}

// failoverMonitor polls the worker's and the intake's /readyz and posts an
// order to the intake every 20ms, and keeps what it saw.
type failoverMonitor struct {
	mu                     sync.Mutex
	workerDown, intakeDown int      // 503s of /readyz
	accepted               []string // orders the intake took (202)
	refused                int      // posts answered 503
	bad                    []string // any other answer
	lastWorker, lastIntake int      // the last /readyz status
	lastPost               int      // the last post's status
	slowest                time.Duration
}

func (m *failoverMonitor) run(stop <-chan struct{}, workerReady, intakeURL string) {
	var wg sync.WaitGroup
	every := func(f func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				f(i)
			}
		}()
	}
	ready := func(name, url string, last, down *int) func(int) {
		return func(int) {
			code, err := httpStatus(url)
			m.mu.Lock()
			defer m.mu.Unlock()
			*last = code
			switch code {
			case http.StatusOK:
			case http.StatusServiceUnavailable:
				*down++
			default:
				m.bad = append(m.bad, fmt.Sprintf("%s /readyz: %d %v", name, code, err))
			}
		}
	}
	every(ready("worker", workerReady, &m.lastWorker, &m.workerDown))
	every(ready("intake", intakeURL+"/readyz", &m.lastIntake, &m.intakeDown))
	every(func(i int) {
		order := strconv.Itoa(7_000_000 + i)
		start := time.Now()
		code, body, retryAfter := postJSON(intakeURL+"/v1/cancellations", `{"provider":"pandapon","orderId":`+order+`}`)
		took := time.Since(start)
		m.mu.Lock()
		defer m.mu.Unlock()
		m.lastPost, m.slowest = code, max(m.slowest, took)
		switch {
		case code == http.StatusAccepted && strings.Contains(body, `"state":"queued"`):
			m.accepted = append(m.accepted, order)
		case code == http.StatusServiceUnavailable && retryAfter != "" && strings.Contains(body, "not enqueued: "):
			m.refused++
		default:
			m.bad = append(m.bad, fmt.Sprintf("POST order %s: %d %.300s", order, code, body))
		}
	})
	wg.Wait()
}

// recovered reports whether the last round saw both ready and the post
// accepted.
func (m *failoverMonitor) recovered() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastWorker == 200 && m.lastIntake == 200 && m.lastPost == http.StatusAccepted
}

func (m *failoverMonitor) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fmt.Sprintf("worker /readyz %d, intake /readyz %d, last post %d", m.lastWorker, m.lastIntake, m.lastPost)
}

// httpStatus GETs url and returns its status (0 when it did not answer
// within 5s: /readyz bounds its checks at 2s).
func httpStatus(url string) (int, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// postJSON posts body to url and returns the status, the answer and its
// Retry-After (0 and "" when it did not answer).
func postJSON(url, body string) (int, string, string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err.Error(), ""
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, resp.Body)
	return resp.StatusCode, b.String(), resp.Header.Get("Retry-After")
}
