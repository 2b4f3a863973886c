package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cancelworker/cancelworker/tasks"
	"github.com/redis/go-redis/v9"
)

// The bench's fake Meari account. The secret is not a real one; it still
// reaches the worker through a file, as a real one would.
const (
	benchKey       = "bench-partner"
	benchSecret    = "bench-secret-not-a-real-one"
	benchSourceApp = 72
)

// Keys of the Meari queue in asynq's layout.
var (
	pendingKey   = "asynq:{" + tasks.QueueMeari + "}:pending"
	activeKey    = "asynq:{" + tasks.QueueMeari + "}:active"
	completedKey = "asynq:{" + tasks.QueueMeari + "}:completed"
	retryKey     = "asynq:{" + tasks.QueueMeari + "}:retry"
	archivedKey  = "asynq:{" + tasks.QueueMeari + "}:archived"
)

// contender is one of the servers measured. A worker variant (-variant)
// is the worker binary with env added, for measuring a knob; procs, when
// set, is its GOMAXPROCS in place of the run's (-check-gomaxprocs).
type contender struct {
	key, name, env string
	procs          int
}

// at returns k run at GOMAXPROCS p.
func (k contender) at(p int) contender {
	k.procs, k.name = p, fmt.Sprintf("%s, GOMAXPROCS %d", k.name, p)
	return k
}

func (k contender) isWorker() bool {
	return k.key == workerBin.key || strings.HasPrefix(k.key, workerBin.key+" ")
}

// variant returns the worker with env (NAME=value, space-separated) added.
func variant(env string) contender {
	return contender{key: workerBin.key + " " + env, name: "(c) worker with `" + env + "`", env: env}
}

var (
	noopC        = contender{key: "noop", name: "(a) asynq, handler that only waits the delay"}
	handwrittenC = contender{key: "handwritten", name: "(b) hand-written asynq handler"}
	handFastC    = contender{key: "handwritten-fasthttp", name: "(b′) the same on fasthttp"}
	workerBin    = contender{key: "worker", name: "(c) cancelworker worker"}
	contenders   = []contender{noopC, handwrittenC, handFastC, workerBin}
)

// bench holds what every run shares: the binaries, Redis and the stub.
type bench struct {
	s                     settings
	dir                   string
	self, worker, enqueue string
	redisAddr             string
	redisVersion          string
	rdb                   *redis.Client
	stub, redis           *proc
	stubURL               string
	secretFile            string
	keep                  bool // keep dir: something went wrong
}

func setUp(ctx context.Context, s settings) (*bench, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "cancelworker-bench-")
	if err != nil {
		return nil, err
	}
	b := &bench{s: s, dir: dir}
	if b.self, err = os.Executable(); err != nil {
		return b, err
	}
	for _, c := range []struct {
		out *string
		pkg string
	}{{&b.worker, "./cmd/worker"}, {&b.enqueue, "./cmd/enqueue"}} {
		*c.out = filepath.Join(dir, filepath.Base(c.pkg))
		// As the Dockerfile builds them: static, without symbol tables.
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", *c.out, c.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", c.pkg, err, out)
		}
	}
	b.secretFile = filepath.Join(dir, "meari-secret")
	if err := os.WriteFile(b.secretFile, []byte(benchSecret), 0o600); err != nil {
		return b, err
	}

	path, err := exec.LookPath("redis-server")
	if err != nil {
		return b, errors.New("redis-server is not on PATH (apt-get install redis-server)")
	}
	if out, err := exec.Command(path, "--version").Output(); err == nil {
		b.redisVersion = strings.TrimSpace(string(out))
	}
	if b.redisAddr, err = freeAddr(); err != nil {
		return b, err
	}
	_, port, _ := strings.Cut(b.redisAddr, ":")
	logf, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		return b, err
	}
	b.redis, err = startProc("redis-server", nil, logf, path, "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning")
	if err != nil {
		return b, err
	}
	b.rdb = redis.NewClient(&redis.Options{Addr: b.redisAddr, PoolSize: 40})
	if err := waitFor("redis-server", 10*time.Second, 10*time.Millisecond, func() (bool, error) {
		if err := b.redis.exited(); err != nil {
			return false, err
		}
		return b.rdb.Ping(ctx).Err() == nil, nil
	}); err != nil {
		return b, err
	}

	stubAddr, err := freeAddr()
	if err != nil {
		return b, err
	}
	b.stubURL = "http://" + stubAddr
	if logf, err = os.Create(filepath.Join(dir, "stub.log")); err != nil {
		return b, err
	}
	if b.stub, err = startProc("stub", []string{"GOMAXPROCS=1", envSecret + "=" + benchSecret}, logf, b.self, "stub", stubAddr); err != nil {
		return b, err
	}
	err = waitFor("the stub upstream", 10*time.Second, 10*time.Millisecond, func() (bool, error) {
		if err := b.stub.exited(); err != nil {
			return false, err
		}
		_, err := b.stubStats(ctx, false)
		return err == nil, nil
	})
	return b, err
}

func (b *bench) tearDown() {
	if b.stub != nil {
		_ = b.stub.stop(5 * time.Second)
	}
	if b.rdb != nil {
		_ = b.rdb.Close()
	}
	if b.redis != nil {
		_ = b.redis.stop(5 * time.Second)
	}
	if b.keep {
		fmt.Fprintf(os.Stderr, "bench: logs kept in %s\n", b.dir)
		return
	}
	_ = os.RemoveAll(b.dir)
}

// reset empties Redis and the stub's counts and sets its delay.
func (b *bench) reset(ctx context.Context, delay time.Duration) error {
	if err := b.rdb.FlushAll(ctx).Err(); err != nil {
		return err
	}
	resp, err := http.Post(b.stubURL+"/reset?delay="+delay.String(), "text/plain", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("stub reset: %s", resp.Status)
	}
	return nil
}

func (b *bench) stubStats(ctx context.Context, arrivals bool) (stubStats, error) {
	var st stubStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.stubURL+"/stats?arrivals="+strconv.FormatBool(arrivals), nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// meariTask returns the task of order num, as every producer builds it.
func meariTask(num string) tasks.MeariCancel {
	return tasks.MeariCancel{SourceApp: benchSourceApp, UserAccount: "bench@example.com", OrderType: 1, OrderNum: num}
}

// preEnqueue enqueues n tasks named prefix0000000...; not timed.
func (b *bench) preEnqueue(ctx context.Context, prefix string, n int) error {
	enq := tasks.NewEnqueuer(b.rdb, tasks.Shards{})
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan int)
	)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t, err := tasks.NewMeariCancelTask(meariTask(fmt.Sprintf("%s%07d", prefix, i)))
				if err == nil {
					var res tasks.Result
					res, err = enq.Enqueue(ctx, t, false)
					if err == nil && res.AlreadyQueued {
						err = fmt.Errorf("task %s was there already", res.TaskID)
					}
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("pre-enqueue: %d failed, the first: %w", len(errs), errs[0])
	}
	return nil
}

// procs returns the GOMAXPROCS k runs at.
func (b *bench) procs(k contender) int { return cmp.Or(k.procs, b.s.procs) }

// startContender starts k serving the Meari queue with concurrency conc,
// its output to a log file; for the worker it also returns the admin
// server's address.
func (b *bench) startContender(k contender, conc int, delay time.Duration) (p *proc, admin string, err error) {
	logf, err := os.Create(filepath.Join(b.dir, strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, k.key)+fmt.Sprintf(".procs%d.log", b.procs(k))))
	if err != nil {
		return nil, "", err
	}
	defer logf.Close() // the child has its own descriptor
	c := strconv.Itoa(conc)
	procs := "GOMAXPROCS=" + strconv.Itoa(b.procs(k))
	switch {
	case k.key == noopC.key:
		p, err = startProc(k.key, []string{procs}, logf, b.self, "noop", b.redisAddr, c, delay.String())
	case k.key == handwrittenC.key, k.key == handFastC.key:
		p, err = startProc(k.key, []string{procs, envKey + "=" + benchKey, envSecret + "=" + benchSecret}, logf, b.self, k.key, b.redisAddr, c, b.stubURL)
	case k.isWorker():
		if admin, err = freeAddr(); err != nil {
			return nil, "", err
		}
		// The production configuration: JSON logs at info (to a file),
		// the admin server with /metrics and the UI, the default retry
		// policy; nothing set for the benchmark but the concurrency.
		// A variant's own GOMAXPROCS, later in the list, wins.
		p, err = startProc(k.key, append([]string{
			procs,
			"REDIS_URL=redis://" + b.redisAddr,
			"MEARI_BASE_URL=" + b.stubURL,
			"MEARI_PARTNER_KEY=" + benchKey,
			"MEARI_PARTNER_SECRET_FILE=" + b.secretFile,
			"MEARI_SOURCE_APP=" + strconv.Itoa(benchSourceApp),
			"WORKER_CONCURRENCY=" + c,
			"LOG_FORMAT=json",
			"LOG_LEVEL=info",
			"ADMIN_ADDR=" + admin,
		}, append(b.s.workerEnv, strings.Fields(strings.ReplaceAll(k.env, "{redis}", b.redisAddr))...)...), logf, b.worker)
	}
	return p, admin, err
}

// runResult is one throughput run.
type runResult struct {
	rate float64       // tasks per second
	cpu  time.Duration // CPU time per task
	rss  int64         // peak RSS, bytes
	// anon is the largest anonymous RSS seen (RssAnon, sampled every 5 ms
	// while the tasks ran): the peak less the binary's pages.
	anon    int64
	elapsed time.Duration
	// The CPU per task of Redis and of the stub over the same window: the
	// three share the machine's cores.
	redisCPU, stubCPU time.Duration
	// conns is how many TCP connections the stub accepted during the run
	// (the bench's own /stats request included): about the concurrency
	// when the contender reuses them, about the calls when it does not.
	conns int64
	// stubHold is the stub's mean time in its handler per call (from its
	// start to the reply handed to net/http): the delay as the stub kept it.
	stubHold time.Duration
	// stages is the worker's time per stage (its /metrics), by stage.
	stages map[string]stageQuantiles
}

// throughput runs contender k once over n pre-enqueued tasks and checks
// that each was processed exactly once. The clock runs from the first task
// taken to the last completed; CPU is the contender's over that window.
func (b *bench) throughput(ctx context.Context, k contender, delay time.Duration, conc, n int) (runResult, []string, error) {
	var res runResult
	if err := b.reset(ctx, delay); err != nil {
		return res, nil, err
	}
	if err := b.preEnqueue(ctx, "T", n); err != nil {
		return res, nil, err
	}
	p, admin, err := b.startContender(k, conc, delay)
	if err != nil {
		return res, nil, err
	}
	defer func() { _ = p.stop(20 * time.Second) }()

	var (
		t0                 time.Time
		cpu0, rcpu0, scpu0 time.Duration
	)
	err = waitFor(k.key+" to take its first task", 30*time.Second, time.Millisecond, func() (bool, error) {
		if err := p.exited(); err != nil {
			return false, err
		}
		l, err := b.rdb.LLen(ctx, pendingKey).Result()
		if err != nil || l >= int64(n) {
			return false, err
		}
		t0 = time.Now()
		cpu0, err = cpuTime(p.pid())
		if err == nil {
			rcpu0, err = cpuTime(b.redis.pid())
		}
		if err == nil {
			scpu0, err = cpuTime(b.stub.pid())
		}
		return true, err
	})
	if err != nil {
		return res, nil, err
	}
	err = waitFor(k.key+" to complete every task", 10*time.Minute, 5*time.Millisecond, func() (bool, error) {
		if err := p.exited(); err != nil {
			return false, err
		}
		if a, err := anonRSS(p.pid()); err == nil {
			res.anon = max(res.anon, a)
		}
		z, err := b.rdb.ZCard(ctx, completedKey).Result()
		return z >= int64(n), err
	})
	if err != nil {
		return res, nil, err
	}
	res.elapsed = time.Since(t0)
	cpu1, err1 := cpuTime(p.pid())
	rss, err2 := peakRSS(p.pid())
	rcpu1, err3 := cpuTime(b.redis.pid())
	scpu1, err4 := cpuTime(b.stub.pid())
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return res, nil, err
	}
	res.redisCPU = (rcpu1 - rcpu0) / time.Duration(n)
	res.stubCPU = (scpu1 - scpu0) / time.Duration(n)
	res.rate = float64(n) / res.elapsed.Seconds()
	res.cpu = (cpu1 - cpu0) / time.Duration(n)
	res.rss = rss

	// Exactly once: every task completed, none left anywhere, and the
	// upstream saw each order once (no call at all for (a)).
	var bad []string
	pipe := b.rdb.Pipeline()
	counts := []*redis.IntCmd{pipe.LLen(ctx, pendingKey), pipe.LLen(ctx, activeKey), pipe.ZCard(ctx, retryKey), pipe.ZCard(ctx, archivedKey), pipe.ZCard(ctx, completedKey)}
	if _, err := pipe.Exec(ctx); err != nil {
		return res, nil, err
	}
	names := []string{"pending", "active", "retry", "archived", "completed"}
	for i, c := range counts {
		want := int64(0)
		if names[i] == "completed" {
			want = int64(n)
		}
		if c.Val() != want {
			bad = append(bad, fmt.Sprintf("%s tasks: %d, want %d", names[i], c.Val(), want))
		}
	}
	if k.isWorker() {
		ok, stages, err := b.workerMetrics(ctx, admin)
		if err != nil {
			return res, nil, err
		}
		res.stages = stages
		if ok != n {
			bad = append(bad, fmt.Sprintf("/metrics counts %d successful attempts, want %d", ok, n))
		}
	}
	if err := p.stop(20 * time.Second); err != nil {
		bad = append(bad, fmt.Sprintf("%s exit: %v", k.key, err))
	}
	st, err := b.stubStats(ctx, false)
	if err != nil {
		return res, nil, err
	}
	res.conns = st.Conns
	if st.Held > 0 {
		res.stubHold = time.Duration(st.HeldNs / st.Held)
	}
	wantCalls := n
	if k.key == noopC.key {
		wantCalls = 0
	}
	if st.Calls != wantCalls || st.Orders != wantCalls || st.Bad != 0 || len(st.Repeats) != 0 {
		bad = append(bad, fmt.Sprintf("upstream: %d calls for %d orders, %d badly signed, %d orders called more than once; want %d calls, each order once",
			st.Calls, st.Orders, st.Bad, len(st.Repeats), wantCalls))
	}
	return res, bad, nil
}

// workerMetrics reads the worker's /metrics: the successful attempts
// (cancelworker_attempts_total{class="success"}) and each stage's p50 and
// p99 (cancelworker_task_stage_seconds).
func (b *bench) workerMetrics(ctx context.Context, admin string) (int, map[string]stageQuantiles, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("worker /metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	total := 0
	buckets := map[string][]bucket{} // stage → cumulative buckets, in order
	sums, counts := map[string]float64{}, map[string]float64{}
	for _, l := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(l, "cancelworker_task_stage_seconds_sum{"); ok {
			if err := sumOrCount(rest, sums); err != nil {
				return 0, nil, fmt.Errorf("worker /metrics: %q: %w", l, err)
			}
		}
		if rest, ok := strings.CutPrefix(l, "cancelworker_task_stage_seconds_count{"); ok {
			if err := sumOrCount(rest, counts); err != nil {
				return 0, nil, fmt.Errorf("worker /metrics: %q: %w", l, err)
			}
		}
		switch {
		case strings.HasPrefix(l, "cancelworker_attempts_total{") && strings.Contains(l, `class="success"`):
			f := strings.Fields(l)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				return 0, nil, fmt.Errorf("worker /metrics: %q: %w", l, err)
			}
			total += int(v)
		case strings.HasPrefix(l, "cancelworker_task_stage_seconds_bucket{"):
			stage, le, count, err := parseBucket(l)
			if err != nil {
				return 0, nil, fmt.Errorf("worker /metrics: %q: %w", l, err)
			}
			buckets[stage] = append(buckets[stage], bucket{le: le, count: count})
		}
	}
	stages := map[string]stageQuantiles{}
	for stage, bs := range buckets {
		q := stageQuantiles{p50: quantile(bs, 0.5), p99: quantile(bs, 0.99)}
		if counts[stage] > 0 {
			q.mean = sums[stage] / counts[stage]
		}
		stages[stage] = q
	}
	return total, stages, nil
}

// sumOrCount reads `stage="fetch"} 1.5` (a histogram's _sum or _count
// line after its name and brace) into m[stage].
func sumOrCount(l string, m map[string]float64) error {
	labels, value, ok := strings.Cut(l, "} ")
	if !ok {
		return errors.New("no value")
	}
	stage := ""
	for _, kv := range strings.Split(labels, ",") {
		if k, v, _ := strings.Cut(kv, "="); k == "stage" {
			stage = strings.Trim(v, `"`)
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
	m[stage] = v
	return err
}

// bucket is one cumulative histogram bucket: count observations ≤ le.
type bucket struct{ le, count float64 }

// stageQuantiles are a stage's median, 99th percentile and mean, in
// seconds.
type stageQuantiles struct{ p50, p99, mean float64 }

// parseBucket reads `..._bucket{le="0.001",stage="fetch"} 42`.
func parseBucket(l string) (stage string, le, count float64, err error) {
	labels, value, ok := strings.Cut(strings.TrimPrefix(l, "cancelworker_task_stage_seconds_bucket{"), "} ")
	if !ok {
		return "", 0, 0, errors.New("not a bucket line")
	}
	for _, kv := range strings.Split(labels, ",") {
		k, v, _ := strings.Cut(kv, "=")
		v = strings.Trim(v, `"`)
		switch k {
		case "stage":
			stage = v
		case "le":
			if le, err = strconv.ParseFloat(v, 64); err != nil {
				return "", 0, 0, err
			}
		}
	}
	count, err = strconv.ParseFloat(strings.TrimSpace(value), 64)
	return stage, le, count, err
}

// quantile estimates the q-quantile of cumulative buckets in order, as
// Prometheus's histogram_quantile does: linearly within the bucket that
// holds it (the last finite bound, for the +Inf bucket). NaN without
// observations.
func quantile(bs []bucket, q float64) float64 {
	if len(bs) == 0 || bs[len(bs)-1].count == 0 {
		return math.NaN()
	}
	rank := q * bs[len(bs)-1].count
	lower, below := 0.0, 0.0
	for _, b := range bs {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				return lower
			}
			if b.count == below {
				return b.le
			}
			return lower + (b.le-lower)*(rank-below)/(b.count-below)
		}
		lower, below = b.le, b.count
	}
	return lower
}

// pickupResult is the idle pickup run of one contender.
type pickupResult struct {
	p50, p99, max time.Duration
	// Redis load while the contender sat idle.
	idleCommands float64 // commands per second
	idleCPU      float64 // Redis CPU seconds per second
}

// pickup enqueues count tasks one at a time, 100 ms apart, to an idle
// contender and measures the time from each enqueue to its upstream call.
func (b *bench) pickup(ctx context.Context, k contender, count int) (pickupResult, []string, error) {
	var res pickupResult
	if err := b.reset(ctx, 0); err != nil {
		return res, nil, err
	}
	p, _, err := b.startContender(k, 50, 0)
	if err != nil {
		return res, nil, err
	}
	defer func() { _ = p.stop(20 * time.Second) }()
	if err := waitFor(k.key+" to register", 30*time.Second, 10*time.Millisecond, func() (bool, error) {
		if err := p.exited(); err != nil {
			return false, err
		}
		z, err := b.rdb.ZCard(ctx, "asynq:servers").Result()
		return z > 0, err
	}); err != nil {
		return res, nil, err
	}
	// The Redis load of an idle server: a measurement window, after a
	// second for its start-up work to finish.
	time.Sleep(time.Second)
	c0, cpu0, err := b.redisLoad(ctx)
	if err != nil {
		return res, nil, err
	}
	const window = 3 * time.Second
	time.Sleep(window)
	c1, cpu1, err := b.redisLoad(ctx)
	if err != nil {
		return res, nil, err
	}
	res.idleCommands = float64(c1-c0-1) / window.Seconds()
	res.idleCPU = (cpu1 - cpu0) / window.Seconds()

	enq := tasks.NewEnqueuer(b.rdb, tasks.Shards{})
	sent := make(map[string]time.Time, count)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := range count {
		<-tick.C
		num := fmt.Sprintf("P%07d", i)
		t, err := tasks.NewMeariCancelTask(meariTask(num))
		if err != nil {
			return res, nil, err
		}
		sent[num] = time.Now()
		if _, err := enq.Enqueue(ctx, t, false); err != nil {
			return res, nil, err
		}
	}
	var st stubStats
	if err := waitFor("every pickup to reach the upstream", 30*time.Second, 10*time.Millisecond, func() (bool, error) {
		st, err = b.stubStats(ctx, true)
		return err == nil && st.Orders >= count, err
	}); err != nil {
		return res, nil, err
	}
	lat := make([]time.Duration, 0, count)
	for num, at := range sent {
		lat = append(lat, time.Unix(0, st.Arrived[num]).Sub(at))
	}
	res.p50, res.p99, res.max = percentile(lat, 50), percentile(lat, 99), percentile(lat, 100)
	var bad []string
	if st.Calls != count || st.Bad != 0 || len(st.Repeats) != 0 {
		bad = append(bad, fmt.Sprintf("pickup: %d calls for %d orders, %d badly signed, want each of %d once", st.Calls, st.Orders, st.Bad, count))
	}
	return res, bad, nil
}

// redisLoad returns Redis's total commands processed and CPU seconds used.
func (b *bench) redisLoad(ctx context.Context) (commands int64, cpu float64, err error) {
	info, err := b.rdb.Info(ctx, "stats", "cpu").Result()
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(l, ":")
		switch k {
		case "total_commands_processed":
			commands, _ = strconv.ParseInt(v, 10, 64)
		case "used_cpu_sys", "used_cpu_user":
			f, _ := strconv.ParseFloat(v, 64)
			cpu += f
		}
	}
	return commands, cpu, nil
}

// enqueueResult is one run of a producer process.
type enqueueResult struct {
	rate float64       // tasks per second, whole process
	cpu  time.Duration // its CPU time per task
}

// enqueueRun runs one producer over the file of n lines into an empty
// Redis, timing the whole process, and checks that n tasks are pending.
func (b *bench) enqueueRun(ctx context.Context, pr producer, path string, n int) (enqueueResult, []string, error) {
	var res enqueueResult
	if err := b.reset(ctx, 0); err != nil {
		return res, nil, err
	}
	logf, err := os.Create(filepath.Join(b.dir, "enqueue.log"))
	if err != nil {
		return res, nil, err
	}
	defer logf.Close()
	procs := "GOMAXPROCS=" + strconv.Itoa(cmp.Or(pr.procs, b.s.procs))
	start := time.Now()
	var p *proc
	if pr.goroutines == 0 {
		p, err = startProc("enqueue file", []string{procs, "REDIS_URL=redis://" + b.redisAddr}, logf, b.enqueue, "file", path)
	} else {
		p, err = startProc("asynq client", []string{procs}, logf, b.self, "client", b.redisAddr, path, strconv.Itoa(pr.goroutines))
	}
	if err != nil {
		return res, nil, err
	}
	<-p.done
	elapsed := time.Since(start)
	var bad []string
	if p.err != nil {
		bad = append(bad, fmt.Sprintf("%s: %v (see %s)", p.name, p.err, logf.Name()))
	}
	st := p.cmd.ProcessState
	res.rate = float64(n) / elapsed.Seconds()
	res.cpu = (st.UserTime() + st.SystemTime()) / time.Duration(n)
	l, err := b.rdb.LLen(ctx, pendingKey).Result()
	if err != nil {
		return res, nil, err
	}
	if l != int64(n) {
		bad = append(bad, fmt.Sprintf("%s: %d tasks pending, want %d", p.name, l, n))
	}
	return res, bad, nil
}

// writeOrders writes n cancellations as JSON Lines.
func (b *bench) writeOrders(n int) (string, error) {
	path := filepath.Join(b.dir, "orders.jsonl")
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, `{"provider":"meari","userAccount":"bench@example.com","orderType":1,"orderNum":"E%07d","sourceApp":%d}`+"\n", i, benchSourceApp)
	}
	return path, os.WriteFile(path, []byte(sb.String()), 0o644)
}

// profileGroup is one line of the CPU breakdown: the functions whose
// cumulative time it sums (none of them calling another; a line named "of
// which" is part of the line above it).
type profileGroup struct {
	name  string
	funcs []string
	micro float64 // µs of CPU per task
}

// profileGroups is where a task's CPU goes in the worker, by the
// functions that own it.
func profileGroups() []profileGroup {
	return []profileGroup{
		{name: "asynq: fetching the task (its Dequeue script call, to the reply)", funcs: []string{"github.com/hibiken/asynq/internal/rdb.(*RDB).Dequeue"}},
		{name: "asynq: marking it complete (its MarkAsComplete script call, to the reply)", funcs: []string{"github.com/hibiken/asynq/internal/rdb.(*RDB).MarkAsComplete"}},
		{name: "go-redis: the shared pipelines that carry those calls (`WORKER_PIPELINE`: gathering the calls, the round trips)", funcs: []string{
			"github.com/redis/go-redis/v9.(*apShard).flusher", "github.com/redis/go-redis/v9.(*baseClient).processPipeline"}},
		{name: "handler: the Meari call on the calling goroutine (sign, encode, the HTTP round trip, decode the reply)", funcs: []string{"github.com/cancelworker/cancelworker/providers/meari.(*Client).Cancel"}},
		{name: "of which the HTTP round trip (fasthttp's write and read of the call)", funcs: []string{"github.com/cancelworker/cancelworker/providers.(*FastClient).roundTrip"}},
		{name: "handler: decoding the payload", funcs: []string{"github.com/cancelworker/cancelworker/internal/worker.(*Handler).decode"}},
		{name: "handler: the log line", funcs: []string{"go.uber.org/zap.(*Logger).Info"}},
		{name: "handler: metrics", funcs: []string{"github.com/cancelworker/cancelworker/internal/metrics.(*Metrics).Attempt"}},
		{name: "Go runtime: scheduler (goroutine switches, idle Ps)", funcs: []string{"runtime.mcall"}},
		{name: "Go runtime: garbage collector", funcs: []string{"runtime.gcBgMarkWorker"}},
	}
}

// profile runs the worker over n tasks at delay 0 and concurrency conc with
// its profiling endpoint on (ADMIN_PPROF, off in the measured runs), takes
// a CPU profile of seconds while it works, and returns the profile's
// breakdown per task and the whole's.
func (b *bench) profile(ctx context.Context, conc, n int, seconds int) ([]profileGroup, float64, error) {
	if err := b.reset(ctx, 0); err != nil {
		return nil, 0, err
	}
	if err := b.preEnqueue(ctx, "T", n); err != nil {
		return nil, 0, err
	}
	k := variant("ADMIN_PPROF=true")
	p, admin, err := b.startContender(k, conc, 0)
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = p.stop(20 * time.Second) }()
	if err := waitFor("the worker to take its first task", 30*time.Second, time.Millisecond, func() (bool, error) {
		if err := p.exited(); err != nil {
			return false, err
		}
		l, err := b.rdb.LLen(ctx, pendingKey).Result()
		return l < int64(n), err
	}); err != nil {
		return nil, 0, err
	}
	// The worker starts its admin server just after its dequeuers.
	if err := waitFor("the worker's admin server", 30*time.Second, 5*time.Millisecond, func() (bool, error) {
		resp, err := http.Get("http://" + admin + "/healthz")
		if err != nil {
			return false, p.exited()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}); err != nil {
		return nil, 0, err
	}
	before, err := b.rdb.ZCard(ctx, completedKey).Result()
	if err != nil {
		return nil, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, seconds), nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	prof, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("CPU profile: %s, %v", resp.Status, err)
	}
	after, err := b.rdb.ZCard(ctx, completedKey).Result()
	if err != nil {
		return nil, 0, err
	}
	if after <= before {
		return nil, 0, fmt.Errorf("no task completed while profiling")
	}
	if after >= int64(n) {
		return nil, 0, fmt.Errorf("the tasks ran out before the profile ended: use more")
	}
	path := filepath.Join(b.dir, "worker.cpu.pprof")
	if err := os.WriteFile(path, prof, 0o644); err != nil {
		return nil, 0, err
	}
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=100000", b.worker, path).Output()
	if err != nil {
		return nil, 0, fmt.Errorf("go tool pprof: %w", err)
	}
	cum, total := parseTop(string(out))
	tasks := float64(after - before)
	groups := profileGroups()
	for i := range groups {
		for _, f := range groups[i].funcs {
			groups[i].micro += cum[f].Seconds() * 1e6 / tasks
		}
	}
	return groups, total.Seconds() * 1e6 / tasks, nil
}

// parseTop reads `go tool pprof -top -cum` output: each function's
// cumulative time, and the total sampled.
func parseTop(out string) (map[string]time.Duration, time.Duration) {
	cum := map[string]time.Duration{}
	var total time.Duration
	for _, l := range strings.Split(out, "\n") {
		if _, rest, ok := strings.Cut(l, "Total samples = "); ok {
			f, _, _ := strings.Cut(rest, " ")
			total, _ = time.ParseDuration(f)
			continue
		}
		f := strings.Fields(l)
		if len(f) < 6 || !strings.HasSuffix(f[1], "%") {
			continue
		}
		d, err := time.ParseDuration(f[3])
		if err != nil {
			continue
		}
		cum[strings.Join(f[5:], " ")] = d
	}
	return cum, total
}
