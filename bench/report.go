package main

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// cell names one throughput configuration of one contender.
type cell struct {
	k     contender
	delay time.Duration
	conc  int
}

// report is everything one benchmark run measured.
type report struct {
	s          settings
	started    time.Time
	took       time.Duration
	machine    []string
	runs       map[cell][]runResult
	pickups    map[contender]pickupResult
	enqueue    map[producer][]enqueueResult
	batch      map[batchMode][]batchResult
	tracing    map[cell][]tracingResult
	violations []string
	// The CPU profile of one extra worker run, per task.
	profile                         []profileGroup
	profileTotal                    float64
	profileN, profileConc, profSecs int
	profileErr                      string
}

// measure runs every measurement, contenders interleaved within each
// repetition so that drift on the machine touches them alike.
func (b *bench) measure(ctx context.Context) (*report, error) {
	r := &report{s: b.s, started: time.Now().UTC(), runs: map[cell][]runResult{}, pickups: map[contender]pickupResult{}, enqueue: map[producer][]enqueueResult{}, batch: map[batchMode][]batchResult{}, tracing: map[cell][]tracingResult{}}
	r.machine = b.machine()
	note := func(what string, bad []string) {
		for _, v := range bad {
			r.violations = append(r.violations, what+": "+v)
		}
		if len(bad) > 0 {
			b.keep = true
		}
	}
	for _, d := range b.s.delays {
		for _, c := range b.s.concurrency {
			for rep := range b.s.reps {
				if !b.s.parts["throughput"] {
					break
				}
				for _, k := range append(slices.Clone(b.s.contenders), b.s.checks...) {
					if err := ctx.Err(); err != nil {
						return nil, err
					}
					res, bad, err := b.throughput(ctx, k, d, c, b.s.n)
					what := fmt.Sprintf("%s, delay %s, concurrency %d, repetition %d", k.key, d, c, rep+1)
					if err != nil {
						b.keep = true
						return nil, fmt.Errorf("%s: %w", what, err)
					}
					note(what, bad)
					r.runs[cell{k, d, c}] = append(r.runs[cell{k, d, c}], res)
					fmt.Fprintf(os.Stderr, "bench: %-60s %7.0f tasks/s  %4.0f µs CPU/task (Redis %3.0f, stub %3.0f)  %3.0f MB  %d conns\n", what, res.rate, micros(res.cpu), micros(res.redisCPU), micros(res.stubCPU), mb(res.rss), res.conns)
				}
			}
		}
	}
	if b.s.parts["throughput"] {
		// Enough tasks to outlast the profile at any speed this machine
		// reaches.
		r.profileN, r.profileConc, r.profSecs = 30000, 50, 2
		if b.s.quick {
			r.profileN, r.profSecs = 10000, 1
		}
		var err error
		if r.profile, r.profileTotal, err = b.profile(ctx, r.profileConc, r.profileN, r.profSecs); err != nil {
			// Not a measurement of its own: say so and go on.
			b.keep = true
			r.profileErr = err.Error()
			fmt.Fprintf(os.Stderr, "bench: profile of the worker failed: %v\n", err)
		} else {
			fmt.Fprintf(os.Stderr, "bench: profile of the worker: %.0f µs of CPU per task sampled\n", r.profileTotal)
		}
	}
	for _, k := range b.s.contenders {
		if !b.s.parts["pickup"] || k == noopC || k == handFastC {
			continue
		}
		res, bad, err := b.pickup(ctx, k, b.s.pickups)
		if err != nil {
			b.keep = true
			return nil, fmt.Errorf("idle pickup, %s: %w", k.key, err)
		}
		note("idle pickup, "+k.key, bad)
		r.pickups[k] = res
		fmt.Fprintf(os.Stderr, "bench: idle pickup %-14s p50 %s p99 %s; idle Redis %.0f commands/s\n", k.key, res.p50, res.p99, res.idleCommands)
	}
	for rep := range b.s.reps {
		if !b.s.parts["batch"] {
			break
		}
		for _, m := range batchModes {
			res, bad, err := b.batchRun(ctx, m, b.s.n)
			what := fmt.Sprintf("batch bound, %s, repetition %d", m.key, rep+1)
			if err != nil {
				b.keep = true
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			note(what, bad)
			r.batch[m] = append(r.batch[m], res)
			fmt.Fprintf(os.Stderr, "bench: %-60s %7.0f tasks/s  Redis %3.0f µs/task, client %3.0f µs/task, %d round trips\n", what, res.rate, micros(res.redisCPU), micros(res.clientCPU), res.roundTrips)
		}
	}
	if b.s.parts["tracing"] {
		if err := b.measureTracing(ctx, r, note); err != nil {
			return nil, err
		}
	}
	path, err := b.writeOrders(b.s.enqueueN)
	if err != nil {
		return nil, err
	}
	for rep := range b.s.reps {
		if !b.s.parts["enqueue"] {
			break
		}
		for _, pr := range b.s.producers() {
			res, bad, err := b.enqueueRun(ctx, pr, path, b.s.enqueueN)
			what := fmt.Sprintf("enqueue, %s, repetition %d", pr.name(), rep+1)
			if err != nil {
				b.keep = true
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			note(what, bad)
			r.enqueue[pr] = append(r.enqueue[pr], res)
			fmt.Fprintf(os.Stderr, "bench: %-60s %7.0f tasks/s\n", what, res.rate)
		}
	}
	r.took = time.Since(r.started)
	return r, nil
}

// producer is one enqueuing process: `enqueue file` (goroutines 0) or a
// plain asynq.Client from that many goroutines; procs, when set, is its
// GOMAXPROCS in place of the run's.
type producer struct{ goroutines, procs int }

// producers are the enqueue side's contenders: the plain client at several
// goroutine counts, the fastest of which is the baseline.
var producers = []producer{{goroutines: 0}, {goroutines: 16}, {goroutines: 64}, {goroutines: 256}}

// producers returns the producers this run measures: each also at every
// GOMAXPROCS of -check-gomaxprocs.
func (s settings) producers() []producer {
	all := slices.Clone(producers)
	seen := map[int]bool{}
	for _, k := range s.checks {
		if !seen[k.procs] {
			seen[k.procs] = true
			for _, pr := range producers {
				pr.procs = k.procs
				all = append(all, pr)
			}
		}
	}
	return all
}

func (p producer) name() string {
	name := "`enqueue file`"
	if p.goroutines > 0 {
		name = fmt.Sprintf("plain asynq.Client, %d goroutines", p.goroutines)
	}
	if p.procs > 0 {
		name += fmt.Sprintf(", GOMAXPROCS %d", p.procs)
	}
	return name
}

// machine describes where the run happened.
func (b *bench) machine() []string {
	var lines []string
	if out, err := exec.Command("uname", "-srm").Output(); err == nil {
		lines = append(lines, "OS: "+strings.TrimSpace(string(out)))
	}
	if cpuinfo, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(cpuinfo), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				lines = append(lines, "CPU: "+strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":")))
				break
			}
		}
	}
	lines = append(lines, fmt.Sprintf("cores: %d (GOMAXPROCS %d for the contenders and producers unless a row says otherwise, 1 for the stub)", runtime.NumCPU(), b.s.procs))
	if meminfo, err := os.ReadFile("/proc/meminfo"); err == nil {
		first, _, _ := strings.Cut(string(meminfo), "\n")
		lines = append(lines, "memory: "+strings.Join(strings.Fields(strings.TrimPrefix(first, "MemTotal:")), " "))
	}
	lines = append(lines, "Go: "+runtime.Version())
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/hibiken/asynq", "github.com/redis/go-redis/v9":
				lines = append(lines, d.Path+" "+d.Version)
			}
		}
	}
	if b.redisVersion != "" {
		lines = append(lines, b.redisVersion)
	}
	if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		lines = append(lines, "commit: "+strings.TrimSpace(string(out)))
	}
	return lines
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func mb(b int64) float64             { return float64(b) / (1 << 20) }

// percentile returns the p-th percentile of ds by nearest rank.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}

// median returns the median of xs (the mean of the middle two for an even
// count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func pick[T any](rs []T, f func(T) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

// ratio returns the median over the repetitions of k's rate over base's
// in the same repetition: the contenders of one repetition run one after
// the other, so their ratio is less touched by the machine's drift (its
// speed varies by tens of percent over minutes) than a ratio of medians.
func (r *report) ratio(k, base contender, d time.Duration, c int) float64 {
	ks, bs := r.runs[cell{k, d, c}], r.runs[cell{base, d, c}]
	var xs []float64
	for i := range min(len(ks), len(bs)) {
		xs = append(xs, ks[i].rate/bs[i].rate)
	}
	return median(xs)
}

// strongest returns the faster of base's rows in the cell: base at the
// run's GOMAXPROCS, or at one of -check-gomaxprocs.
func (r *report) strongest(base contender, d time.Duration, c int) contender {
	best := base
	for _, k := range r.s.checks {
		if k.key == base.key && len(r.runs[cell{k, d, c}]) > 0 && r.rate(k, d, c) > r.rate(best, d, c) {
			best = k
		}
	}
	return best
}

func (r *report) rate(k contender, d time.Duration, c int) float64 {
	return median(pick(r.runs[cell{k, d, c}], func(x runResult) float64 { return x.rate }))
}

func (r *report) markdown() string {
	var sb strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	w("# Benchmarks\n\n")
	cgo := ""
	if os.Getenv("CGO_ENABLED") == "0" {
		cgo = "CGO_ENABLED=0 "
	}
	w("Measured by `%sgo run ./bench %s` on %s, in one run of %s.\n", cgo, strings.Join(r.s.args, " "), r.started.Format("2006-01-02 15:04 MST"), r.took.Round(time.Second))
	if r.s.quick {
		w("This is a quick run (`make bench-quick`): it shows the benchmark works; its figures are not the ones to quote.\n")
	}
	w("\n")
	for _, l := range r.machine {
		w("- %s\n", l)
	}
	if len(r.s.workerEnv) > 0 {
		w("- worker environment added for this run: `%s`\n", strings.Join(r.s.workerEnv, " "))
	}
	w("\nN = %d tasks per throughput run, %d repetition(s), medians (min–max over the repetitions). "+
		"Redis (no persistence), the stub upstream (one P) and the contender share the machine's cores. "+
		"The stub answers each correctly signed call after the upstream delay, which it and (a) wait on a timerfd: a Go timer on an idle P wakes in whole milliseconds, which made the stub's 20 ms about 20.6 ms when measured on 2026-12-06 (`bench/hold_linux.go`). "+
		"Every run is checked: each task completed, none retried or archived, and the upstream called once per order (the worker's /metrics agreeing).\n\n", r.s.n, r.s.reps)

	if len(r.runs) > 0 {
		r.contenderList(w)
		r.throughputTable(w)
	}
	r.stageTable(w)

	if r.profileErr != "" {
		w("\nThe worker's CPU profile failed: %s\n", r.profileErr)
	}
	if len(r.profile) > 0 {
		w("\n### Where the worker's CPU goes\n\n")
		w("A CPU profile of the worker (an extra run with `ADMIN_PPROF=true`, delay 0, concurrency %d, %d s while it worked through %d tasks), per task completed in that window; "+
			"the profile is kept when the bench is run with `-keep`. Each line is the cumulative time of the functions named in `bench/run.go` (profileGroups).\n\n", r.profileConc, r.profSecs, r.profileN)
		w("| where | CPU µs/task |\n|---|---|\n")
		for _, g := range r.profile {
			w("| %s | %.0f |\n", g.name, g.micro)
		}
		w("| **all samples** | **%.0f** |\n", r.profileTotal)
	}

	if len(r.pickups) > 0 {
		r.pickupTable(w)
	}
	r.batchTable(w)
	r.tracingTable(w)
	fileRate, clientRate := 0.0, 0.0
	if len(r.enqueue) > 0 {
		fileRate, clientRate = r.enqueueTable(w)
	}
	r.targets(w, fileRate, clientRate)
	r.outOfReach(w)
	if len(r.violations) > 0 {
		w("\n## Exactly-once violations\n\n")
		for _, v := range r.violations {
			w("- %s\n", v)
		}
	}
	return sb.String()
}

func (r *report) pickupTable(w func(string, ...any)) {
	w("\n## Idle pickup\n\n")
	w("%d single enqueues 100 ms apart to an idle contender (concurrency 50, delay 0): the time from each enqueue to its upstream call. The Redis load is that of the idle contender, measured over 3 s before the enqueues.\n\n", r.s.pickups)
	w("| contender | p50 | p99 | max | idle Redis commands/s | idle Redis CPU |\n|---|---|---|---|---|---|\n")
	for _, k := range r.s.contenders {
		p, ok := r.pickups[k]
		if !ok {
			continue
		}
		w("| %s | %s | %s | %s | %.0f | %.2f%% |\n", k.name, ms(p.p50), ms(p.p99), ms(p.max), p.idleCommands, 100*p.idleCPU)
	}

}

// enqueueTable writes the enqueue side and returns the rate of `enqueue
// file` and of the strongest plain producer.
func (r *report) enqueueTable(w func(string, ...any)) (fileRate, clientRate float64) {
	w("\n## Enqueue\n\n")
	w("The same %d-line JSON Lines file into an empty Redis, each producer a whole process from start to exit.\n\n", r.s.enqueueN)
	w("| producer | tasks/s | CPU µs/task |\n|---|---|---|\n")
	best := producer{}
	for _, pr := range r.s.producers() {
		rs := r.enqueue[pr]
		rate := median(pick(rs, func(x enqueueResult) float64 { return x.rate }))
		w("| %s | %s | %.0f |\n", pr.name(), spread(pick(rs, func(x enqueueResult) float64 { return x.rate }), "%.0f"),
			median(pick(rs, func(x enqueueResult) float64 { return micros(x.cpu) })))
		switch {
		case pr.goroutines == 0 && pr.procs == 0:
			fileRate = rate
		case pr.goroutines == 0:
		case rate > clientRate:
			clientRate, best = rate, pr
		}
	}
	if clientRate > 0 {
		w("\nThe strongest plain producer here: %s.\n", best.name())
	}
	return fileRate, clientRate
}

// down and up round x to prec decimals toward the side that a threshold
// judged on x does not flatter: 0.947 against ≥ 0.95 shows as 0.94, not
// 0.95; 150.2 µs against ≤ 150 as 151.
func down(x float64, prec int) float64 {
	p := math.Pow10(prec)
	return math.Floor(x*p) / p
}

func up(x float64, prec int) float64 {
	p := math.Pow10(prec)
	return math.Ceil(x*p) / p
}

// ratioCells are the cells where issue 19 asks for the worker at 1.2×
// the hand-written handler.
var ratioCells = []struct {
	d time.Duration
	c int
}{{0, 50}, {0, 200}, {20 * time.Millisecond, 200}}

// targets writes issue 19's targets against this run's figures, each only
// where this run measured it.
func (r *report) targets(w func(string, ...any), fileRate, clientRate float64) {

	w("\n## Targets\n\n| target | measured | |\n|---|---|---|\n")
	target := func(name, measured string, ok bool) {
		verdict := "met"
		if !ok {
			verdict = "**not met**"
		}
		w("| %s | %s | %s |\n", name, measured, verdict)
	}
	has := func(d time.Duration, c int) bool { return len(r.runs[cell{workerBin, d, c}]) > 0 }
	for _, dc := range ratioCells {
		if has(dc.d, dc.c) {
			x := r.ratio(workerBin, r.strongest(handwrittenC, dc.d, dc.c), dc.d, dc.c)
			target(fmt.Sprintf("worker ≥ 1.2× hand-written, %s / C=%d", dc.d, dc.c), fmt.Sprintf("%.2f×", down(x, 2)), x >= 1.2)
		}
	}
	if d, c := 20*time.Millisecond, 50; has(d, c) {
		x := r.rate(workerBin, d, c) / (float64(c) / d.Seconds())
		target("worker ≥ 0.95 of C / latency, 20ms / C=50", fmt.Sprintf("%.2f", down(x, 2)), x >= 0.95)
	}
	for _, c := range r.s.concurrency {
		if has(0, c) {
			x := median(pick(r.runs[cell{workerBin, 0, c}], func(x runResult) float64 { return micros(x.cpu) }))
			target(fmt.Sprintf("worker CPU ≤ 150 µs/task, 0s / C=%d", c), fmt.Sprintf("%.0f µs", up(x, 0)), x <= 150)
		}
	}
	for _, d := range r.s.delays {
		if has(d, 200) {
			x := median(pick(r.runs[cell{workerBin, d, 200}], func(x runResult) float64 { return mb(x.rss) }))
			target(fmt.Sprintf("worker peak RSS ≤ 32 MB, %s / C=200", d), fmt.Sprintf("%.1f MB", up(x, 1)), x <= 32)
		}
	}
	if p, ok := r.pickups[workerBin]; ok {
		target("idle pickup p50 ≤ 50 ms, p99 ≤ 200 ms", fmt.Sprintf("p50 %s, p99 %s", ms(p.p50), ms(p.p99)), p.p50 <= 50*time.Millisecond && p.p99 <= 200*time.Millisecond)
	}
	if clientRate > 0 {
		target("`enqueue file` ≥ 1.5× the strongest plain asynq.Client", fmt.Sprintf("%.2f×", down(fileRate/clientRate, 2)), fileRate >= 1.5*clientRate)
	}
}

// outOfReach explains, from this run's own figures, the targets that no
// worker on asynq's processor can meet here.
func (r *report) outOfReach(w func(string, ...any)) {
	cpu := func(k contender, d time.Duration, c int) float64 {
		return median(pick(r.runs[cell{k, d, c}], func(x runResult) float64 { return micros(x.cpu) }))
	}
	var lines []string
	for _, dc := range ratioCells {
		if l := r.ratioMissed(dc.d, dc.c); l != "" {
			lines = append(lines, l)
		}
	}
	cpuMissed := false
	for _, c := range r.s.concurrency {
		if len(r.runs[cell{noopC, 0, c}]) == 0 || cpu(workerBin, 0, c) <= 150 {
			continue
		}
		cpuMissed = true
		verdict := "asynq alone is above the 150 µs target"
		if cpu(noopC, 0, c) <= 150 {
			verdict = fmt.Sprintf("the worker adds %.0f µs to what asynq costs", cpu(workerBin, 0, c)-cpu(noopC, 0, c))
		}
		lines = append(lines, fmt.Sprintf("- **CPU per task, C=%d.** asynq with a handler that does nothing used %.0f µs per task in this run, "+
			"the worker %.0f µs: %s.", c, cpu(noopC, 0, c), cpu(workerBin, 0, c), verdict))
	}
	if cpuMissed && len(r.profile) > 0 {
		// profileGroups' order: fetch, complete, the pipelines, call,
		// of which its round trip, decode, log, metrics, scheduler, GC.
		asynqRT := r.profile[0].micro + r.profile[1].micro + r.profile[2].micro
		httpRT := r.profile[3].micro
		lines = append(lines, fmt.Sprintf("  The profile above puts %.0f µs of the worker's %.0f µs in asynq's two script calls per task (fetch, complete, and the pipelines that carry them) "+
			"and %.0f µs in the upstream call (signing, the HTTP round trip, the reply); the worker's own work, decoding, logging and metrics, is %.0f µs. "+
			"What would reach 150 µs: fewer script calls per task, several tasks fetched or completed by one, which asynq's processor does not do (one Dequeue and one "+
			"MarkAsComplete per task, each a Lua script call).",
			asynqRT, r.profileTotal, httpRT, r.profile[5].micro+r.profile[6].micro+r.profile[7].micro))
	}
	if d, c := 20*time.Millisecond, 50; len(r.runs[cell{noopC, d, c}]) > 0 && len(r.runs[cell{workerBin, d, c}]) > 0 {
		bound := float64(c) / d.Seconds()
		if x := r.rate(workerBin, d, c) / bound; x < 0.95 {
			a := r.rate(noopC, d, c)
			lines = append(lines, fmt.Sprintf("- **0.95 of concurrency / latency at 20 ms, C=50.** asynq with a handler that only waits the 20 ms reached %.0f tasks/s, "+
				"%.2f of the %.0f bound: each slot cycle took %.1f ms, %.1f ms more than the wait. asynq frees a slot only after the complete round trip and fills it "+
				"only after a fetch round trip, one fetch at a time per server, so a slot idles between calls; a real call adds its own overhead to the 20 ms "+
				"(the worker logs each call's latency_ms), which leaves less still. The worker takes a fifth of its concurrency (at most 10) in tasks ahead of its calls (`WORKER_PREFETCH`), "+
				"so that a slot's next task is at hand when its call ends, and reached %.2f%s.%s",
				a, down(a/bound, 2), bound, 1000*float64(c)/a, 1000*float64(c)/a-1000*d.Seconds(), down(x, 2), r.prefetchReached(d, c, bound), r.callBoundText(d, c, bound)))
		}
	}
	for _, d := range r.s.delays {
		wr, hr := r.runs[cell{workerBin, d, 200}], r.runs[cell{handwrittenC, d, 200}]
		if len(wr) == 0 || len(hr) == 0 {
			continue
		}
		rss := func(rs []runResult) (all, anon float64) {
			return median(pick(rs, func(x runResult) float64 { return mb(x.rss) })), median(pick(rs, func(x runResult) float64 { return mb(x.anon) }))
		}
		wAll, wAnon := rss(wr)
		if wAll <= 32 {
			continue
		}
		hAll, hAnon := rss(hr)
		lines = append(lines, fmt.Sprintf("- **Peak RSS ≤ 32 MB, %s / C=200.** The worker's peak was %.1f MB, of which at most %.1f MB anonymous (heap, stacks); "+
			"the rest, about %.1f MB, is the pages of its binary it has read, its code and read-only data mapped from the page cache (shared and reclaimable): "+
			"asynq, go-redis, the monitoring UI's server, the Prometheus client, the OpenTelemetry SDK and exporter, the demo's in-process Redis. "+
			"The hand-written handler, a smaller binary doing less: %.1f MB, %.1f MB anonymous.",
			d, wAll, wAnon, wAll-wAnon, hAll, hAnon))
	}
	if len(lines) == 0 {
		return
	}
	w("\n## Targets not met, and why\n\n")
	for _, l := range lines {
		w("%s\n", l)
	}
}

// ratioMissed explains, from this run's figures, a cell where the worker
// is under 1.2× the hand-written handler at its faster setting, or
// returns "" where it is not (or the cell was not measured).
func (r *report) ratioMissed(d time.Duration, c int) string {
	b := r.strongest(handwrittenC, d, c)
	if len(r.runs[cell{workerBin, d, c}]) == 0 || len(r.runs[cell{b, d, c}]) == 0 {
		return ""
	}
	x := r.ratio(workerBin, b, d, c)
	if x >= 1.2 {
		return ""
	}
	setting := fmt.Sprintf("GOMAXPROCS %d", cmp.Or(b.procs, r.s.procs))
	wr, br := r.rate(workerBin, d, c), r.rate(b, d, c)
	l := fmt.Sprintf("- **1.2× the hand-written handler, %s / C=%d.** The worker made %.0f tasks/s against the hand-written handler's %.0f (at %s, its faster setting here): %.2f×",
		d, c, wr, br, setting, down(x, 2))
	if m := wr / br; math.Abs(m-x) >= 0.02 {
		// The ratio is the median of the repetitions' own ratios; say
		// so where it differs from the medians' ratio, or the figures
		// in this line would not add up.
		l += fmt.Sprintf(", the median of the %d repetitions' ratios (the two medians' own ratio is %.2f×)", min(len(r.runs[cell{workerBin, d, c}]), len(r.runs[cell{b, d, c}])), down(m, 2))
	}
	f := r.strongest(handFastC, d, c)
	if len(r.runs[cell{f, d, c}]) > 0 {
		l += fmt.Sprintf("; and %.2f× the same handler on fasthttp's client, whose %.0f tasks/s are %.2f× the hand-written handler's", down(r.ratio(workerBin, f, d, c), 2), r.rate(f, d, c), down(r.rate(f, d, c)/br, 2))
	}
	l += ". The worker takes and completes its tasks on the same asynq processor as the hand-written handler, one Dequeue and one MarkAsComplete script call per task, " +
		"but sends the calls of all its slots to Redis in shared pipelines (`WORKER_PIPELINE`), " +
		"and does what the handler does and more (a log line, metrics, its retry policy)"
	if x >= 1 {
		l += ", so its lead is its pipelines, its client (fasthttp) and leaner code. "
	} else {
		l += "; here that lead does not show. "
	}
	l += fmt.Sprintf("With Redis and the stub on the same %d cores, the worker's runs used %.0f µs of CPU per task in all (the worker, Redis and the stub), the hand-written handler's %.0f. "+
		"What would reach 1.2×: less CPU per task in all; the profile of the worker's CPU above says where its share goes.",
		runtime.NumCPU(), r.allCPU(workerBin, d, c), r.allCPU(b, d, c))
	if off, ok := r.variantWith("WORKER_PIPELINE=false", d, c); ok {
		l += fmt.Sprintf(" Without its pipelines (`%s`) the worker made %.2f× the hand-written handler here.", off.env, down(r.ratio(off, b, d, c), 2))
	}
	return l
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// spread formats the median of xs with their range when there are several.
func spread(xs []float64, format string) string {
	m := fmt.Sprintf(format, median(xs))
	if len(xs) < 2 {
		return m
	}
	return fmt.Sprintf("%s ("+format+"–"+format+")", m, slices.Min(xs), slices.Max(xs))
}

// stageOrder is the worker's stages in order (worker.Stages; the bench
// reads them from /metrics and does not import the worker).
var stageOrder = []string{"fetch", "dispatch", "prepare", "upstream", "finish", "complete"}

// stageTable writes where a task's time went in the worker, per stage,
// from its cancelworker_task_stage_seconds histogram in each run.
func (r *report) stageTable(w func(string, ...any)) {
	var cells []cell
	for _, d := range r.s.delays {
		for _, c := range r.s.concurrency {
			if rs := r.runs[cell{workerBin, d, c}]; len(rs) > 0 && len(rs[0].stages) > 0 {
				cells = append(cells, cell{workerBin, d, c})
			}
		}
	}
	if len(cells) == 0 {
		return
	}
	w("\n### Where a task's time goes in the worker\n\n")
	w("p50 / p99 of each stage of each task, in ms, from the worker's own `cancelworker_task_stage_seconds` histogram (medians over the repetitions; estimated within its buckets, which grow by 1.5×): " +
		"fetch is asynq's dequeue script call, from asynq's call to the reply (with the wait for the next shared pipeline, `WORKER_PIPELINE`), dispatch the wait from its reply to the handler's start, prepare the decoding, the wait of a task taken ahead for a call slot (`WORKER_PREFETCH`), rate limit and breaker, upstream the call, " +
		"finish the log line and metrics after it, complete asynq's completion script call, as fetch. Beyond the upstream is the sum of the other p50s. " +
		"The upstream's mean is exact (the histogram's sum over its count): with at most concurrency calls in flight, concurrency / that mean is the most any client of this stub reaches here. " +
		"Of it in the stub is the stub's own mean time per call, from its handler's start to its reply handed to net/http: the delay as the stub kept it (it waits on a timerfd, `bench/hold_linux.go`); the rest of the upstream's mean is the network and the two processes' scheduling.\n\n")
	w("| upstream delay | concurrency |")
	for _, st := range stageOrder {
		w(" %s |", st)
	}
	w(" beyond the upstream, p50 | upstream, mean | of it in the stub, mean | concurrency / mean |\n|---|---|")
	for range stageOrder {
		w("---|")
	}
	w("---|---|---|---|\n")
	for _, k := range cells {
		rs := r.runs[k]
		w("| %s | %d |", k.delay, k.conc)
		beyond := 0.0
		for _, st := range stageOrder {
			p50 := median(pick(rs, func(x runResult) float64 { return 1000 * x.stages[st].p50 }))
			p99 := median(pick(rs, func(x runResult) float64 { return 1000 * x.stages[st].p99 }))
			w(" %s / %s |", msFigure(p50), msFigure(p99))
			if st != "upstream" {
				beyond += p50
			}
		}
		mean := median(pick(rs, func(x runResult) float64 { return x.stages["upstream"].mean }))
		bound := "–"
		if mean > 0 {
			bound = fmt.Sprintf("%.0f/s", float64(k.conc)/mean)
		}
		hold := median(pick(rs, func(x runResult) float64 { return x.stubHold.Seconds() }))
		w(" %s | %s | %s | %s |\n", msFigure(beyond), msFigure(1000*mean), msFigure(1000*hold), bound)
	}
}

// callBound is concurrency over the worker's mean upstream call at d, c:
// the most calls a second any client of the stub gets there; zero if not
// measured.
func (r *report) callBound(d time.Duration, c int) float64 {
	rs := r.runs[cell{workerBin, d, c}]
	if len(rs) == 0 {
		return 0
	}
	if mean := median(pick(rs, func(x runResult) float64 { return x.stages["upstream"].mean })); mean > 0 {
		return float64(c) / mean
	}
	return 0
}

// msFigure writes milliseconds with two significant decimals below 1.
func msFigure(v float64) string {
	if v < 1 {
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// batchTable writes the batch part: what asynq's per-task scripts cost,
// and what the same scripts cost pipelined.
func (r *report) batchTable(w func(string, ...any)) {
	if len(r.batch) == 0 {
		return
	}
	w("\n## The bound of asynq's processor\n\n")
	w("asynq's processor takes each task with one Dequeue script call and completes it with one MarkAsComplete script call, one round trip each. "+
		"Here %d pre-enqueued tasks go through exactly those two scripts (asynq v0.26's, copied into `bench/batch.go`) with no handler and no upstream: "+
		"first as the processor issues them, then pipelined %d calls per round trip. Each script call is still one atomic step, and Redis ends in the same state; "+
		"the run checks every task completed once. CPU is Redis's and this process's (decoding each task's ID from its message included), per task.\n\n", r.s.n, batchSize)
	w("| how | tasks/s | Redis CPU µs/task | client CPU µs/task | round trips |\n|---|---|---|---|---|\n")
	for _, m := range batchModes {
		rs := r.batch[m]
		w("| %s | %s | %.0f | %.0f | %s |\n", m.name, spread(pick(rs, func(x batchResult) float64 { return x.rate }), "%.0f"),
			median(pick(rs, func(x batchResult) float64 { return micros(x.redisCPU) })),
			median(pick(rs, func(x batchResult) float64 { return micros(x.clientCPU) })),
			spread(pick(rs, func(x batchResult) float64 { return float64(x.roundTrips) }), "%.0f"))
	}
	one, piped := r.batch[batchModes[0]], r.batch[batchModes[1]]
	if len(one) == 0 || len(piped) == 0 {
		return
	}
	cpu := func(rs []batchResult) float64 {
		return median(pick(rs, func(x batchResult) float64 { return micros(x.redisCPU + x.clientCPU) }))
	}
	saved := cpu(one) - cpu(piped)
	w("\nPipelining saves %.0f µs of CPU per task here (Redis and client together, %.0f against %.0f). "+
		"The worker sends its calls so (`WORKER_PIPELINE`, on by default): the calls its slots make while a pipeline is out go together in the next one, "+
		"on asynq's own processor, so every asynq guarantee holds (leases, retry and archive, recovery, the monitoring UI's view).", saved, cpu(one), cpu(piped))
	for _, c := range r.s.concurrency {
		off, ok := r.variantWith("WORKER_PIPELINE=false", 0, c)
		if !ok || len(r.runs[cell{workerBin, 0, c}]) == 0 {
			continue
		}
		w(" At 0 ms / C=%d the worker, Redis and the stub used %.0f µs per task in all, against %.0f with `%s`, and the worker made %.2f× the tasks a second it made without pipelines.",
			c, r.allCPU(workerBin, 0, c), r.allCPU(off, 0, c), off.env, r.ratio(workerBin, off, 0, c))
	}
	w(" Fewer script calls per task, several tasks fetched or completed by one, would take a processor other than asynq's. "+
		"At 20 ms / C=50 the CPU is not the limit (see the stage table): there the dequeue and completion calls took %s and %s ms p50 per task in the worker, "+
		"which a slot would idle for between two calls but for the tasks taken ahead (`WORKER_PREFETCH`).\n",
		r.stageP50("fetch"), r.stageP50("complete"))
}

// allCPU is the CPU per task, in µs, of k, Redis and the stub together at
// d, c (the median over the repetitions).
func (r *report) allCPU(k contender, d time.Duration, c int) float64 {
	return median(pick(r.runs[cell{k, d, c}], func(x runResult) float64 { return micros(x.cpu + x.redisCPU + x.stubCPU) }))
}

// variantWith returns the worker variant whose settings hold env, if it
// ran at d, c.
func (r *report) variantWith(env string, d time.Duration, c int) (contender, bool) {
	for _, k := range r.s.contenders {
		if k.isWorker() && strings.Contains(k.env, env) && len(r.runs[cell{k, d, c}]) > 0 {
			return k, true
		}
	}
	return contender{}, false
}

// stageP50 is the worker's p50 of a stage at 20 ms / C=50, as the stage
// table shows it, or "unmeasured".
func (r *report) stageP50(stage string) string {
	rs := r.runs[cell{workerBin, 20 * time.Millisecond, 50}]
	if len(rs) == 0 || len(rs[0].stages) == 0 {
		return "unmeasured"
	}
	return msFigure(median(pick(rs, func(x runResult) float64 { return 1000 * x.stages[stage].p50 })))
}

// contenderList says what each contender is, and why each baseline is the
// strongest fair version of itself.
func (r *report) contenderList(w func(string, ...any)) {
	w("## The contenders\n\n")
	w("Each runs in a process of its own, built with the same Go, against the same Redis and stub, at the same concurrency and the same GOMAXPROCS (%d; each baseline also at the GOMAXPROCS of the table after the throughput table, and measured against at its faster setting), with asynq's default settings otherwise. The worker is built as the Dockerfile builds it (static, without symbol tables); (a), (b) and (b′) run in the bench's own binary (static too under `make bench`).\n\n", r.s.procs)
	for _, k := range r.s.contenders {
		switch {
		case k == noopC:
			w("- **%s**: one asynq server whose handler calls nothing and only waits the upstream delay. What asynq itself costs: the ceiling of any handler on asynq's processor.\n", k.name)
		case k == handwrittenC:
			w("- **%s**: the handler a competent user writes from the vendor's page, as fast as it fairly gets: the payload decoded into a struct, the fields signed in their sorted order without a map or a sort, the body encoded from a struct, one net/http client whose pool keeps as many idle connections as there are slots (MaxIdleConns = MaxIdleConnsPerHost = concurrency), every reply read to its end so that its connection is reused (the connections column shows about the concurrency, never N), no logs, no metrics, no attempt records, no dead-letter queue (`bench/peers.go`); asynq's server on its own Redis client, as asynq's documentation sets it up, so each script call is a round trip of its own.\n", k.name)
		case k == handFastC:
			w("- **%s**: (b) with its call sent through fasthttp's client (at most as many connections as slots, the reply read whole into a pooled buffer), the client the worker uses by default: what a user who also picks the faster client gets.\n", k.name)
		case k == workerBin:
			w("- **%s**: the worker binary in its production configuration: JSON logs at info to a file, the admin server with `/metrics` and the monitoring UI, the default retry policy and dequeuers, asynq's script calls sent in shared pipelines (`WORKER_PIPELINE`, on by default), a fifth of the concurrency (at most 10) in tasks taken ahead of the calls, each waiting for a call slot (`WORKER_PREFETCH=auto`, the default); nothing set but the concurrency.\n", k.name)
		default:
			w("- **%s**: the worker as above, with that setting.\n", k.name)
		}
	}
	w("\n")
}

// throughputTable writes the throughput runs' table and the bounds.
func (r *report) throughputTable(w func(string, ...any)) {
	w("## Throughput\n\n")
	w("Tasks pre-enqueued, then the contender started; the clock runs from its first task taken to its last completed. CPU is the contender's (user + system, all threads) over that window, per task, and beside it Redis's and the stub's over the same window; RSS is the contender's peak (VmHWM), and beside it the largest anonymous part seen (RssAnon, sampled every 5 ms): its heap, stacks and other private memory, without its binary's pages mapped from the page cache. The ratios are medians of the ratios within each repetition, whose contenders run one after the other; each is taken against the faster of the baseline's GOMAXPROCS settings (the next table).\n\n")
	w("| upstream delay | concurrency | contender | tasks/s | / (b) | / (b′) | / (a) | CPU µs/task | Redis, stub µs/task | peak RSS MB | of it anonymous, MB | TCP connections to the stub |\n")
	w("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, d := range r.s.delays {
		for _, c := range r.s.concurrency {
			for _, k := range r.s.contenders {
				rs := r.runs[cell{k, d, c}]
				rates := pick(rs, func(x runResult) float64 { return x.rate })
				// Each row against the contenders above it that it is
				// measured against: (b′) against (b), the worker against all.
				ratioTo := func(base contender) string {
					if k == base || len(rs) == 0 || len(r.runs[cell{base, d, c}]) == 0 || (!k.isWorker() && (k != handFastC || base != handwrittenC)) {
						return ""
					}
					return fmt.Sprintf("%.2f×", down(r.ratio(k, r.strongest(base, d, c), d, c), 2))
				}
				w("| %s | %d | %s | %s | %s | %s | %s | %.0f | %.0f, %.0f | %.1f | %.1f | %s |\n", d, c, k.name, spread(rates, "%.0f"), ratioTo(handwrittenC), ratioTo(handFastC), ratioTo(noopC),
					median(pick(rs, func(x runResult) float64 { return micros(x.cpu) })),
					median(pick(rs, func(x runResult) float64 { return micros(x.redisCPU) })),
					median(pick(rs, func(x runResult) float64 { return micros(x.stubCPU) })),
					median(pick(rs, func(x runResult) float64 { return mb(x.rss) })),
					median(pick(rs, func(x runResult) float64 { return mb(x.anon) })),
					spread(pick(rs, func(x runResult) float64 { return float64(x.conns) }), "%.0f"))
			}
		}
	}
	r.procsTable(w)
	for _, d := range r.s.delays {
		if d == 0 {
			continue
		}
		for _, c := range r.s.concurrency {
			bound := float64(c) / d.Seconds()
			w("\nAt %s and concurrency %d the bound is concurrency / delay = %.0f tasks/s; the worker reaches %.2f of it.\n", d, c, bound, r.rate(workerBin, d, c)/bound)
		}
	}

}

// procsTable writes the -check-gomaxprocs runs against the same
// contenders at the run's GOMAXPROCS.
func (r *report) procsTable(w func(string, ...any)) {
	if len(r.s.checks) == 0 {
		return
	}
	w("\n### GOMAXPROCS\n\n")
	w("The rows above run at GOMAXPROCS %d. So that no baseline is measured at a setting that slows it, (a), (b), (b′) and the worker also ran in every cell at the GOMAXPROCS below, in the same repetitions; "+
		"a baseline's ratios above are taken against whichever of its settings was faster in the cell. On a machine whose cores the contender shares with Redis and the stub, one P spares the Go scheduler's wake-ups of idle threads.\n\n", r.s.procs)
	w("| upstream delay | concurrency | contender | tasks/s | / at GOMAXPROCS %d | CPU µs/task | peak RSS MB | the baseline's faster setting |\n|---|---|---|---|---|---|---|---|\n", r.s.procs)
	for _, d := range r.s.delays {
		for _, c := range r.s.concurrency {
			for _, k := range r.s.checks {
				rs := r.runs[cell{k, d, c}]
				if len(rs) == 0 {
					continue
				}
				var base contender
				for _, b := range r.s.contenders {
					if b.key == k.key {
						base = b
					}
				}
				faster := ""
				if !k.isWorker() {
					faster = fmt.Sprintf("GOMAXPROCS %d", r.s.procs)
					if r.strongest(base, d, c) == k {
						faster = fmt.Sprintf("**GOMAXPROCS %d**", k.procs)
					}
				}
				w("| %s | %d | %s | %s | %.2f× | %.0f | %.1f | %s |\n", d, c, k.name, spread(pick(rs, func(x runResult) float64 { return x.rate }), "%.0f"), r.ratio(k, base, d, c),
					median(pick(rs, func(x runResult) float64 { return micros(x.cpu) })), median(pick(rs, func(x runResult) float64 { return mb(x.rss) })), faster)
			}
		}
	}
}

// prefetchReached says what fraction of bound the worker with a
// WORKER_PREFETCH variant reached at d, c, if one ran.
func (r *report) prefetchReached(d time.Duration, c int, bound float64) string {
	if k, ok := r.variantWith("WORKER_PREFETCH=", d, c); ok {
		return fmt.Sprintf(" (with `%s`, %.2f)", k.env, down(r.rate(k, d, c)/bound, 2))
	}
	return ""
}

// callBoundText says how far below the bound the calls themselves keep
// any client at d, c: the stub answers no faster than its delay and its
// own work on one P.
func (r *report) callBoundText(d time.Duration, c int, bound float64) string {
	cb := r.callBound(d, c)
	if cb <= 0 {
		return ""
	}
	hold := median(pick(r.runs[cell{workerBin, d, c}], func(x runResult) float64 { return x.stubHold.Seconds() }))
	return fmt.Sprintf(" But the calls themselves took %.1f ms on average as the worker timed them: %.1f ms in the stub's handler (its %s kept on a timerfd, the request's decoding and signature check, on one P on a machine whose %d cores are busy), "+
		"the rest in the network and in the scheduling of the two processes. So %d calls in flight at once make at most %.0f calls a second: %.2f of the bound, the most any client of this stub reaches here, and the worker's %.0f tasks/s is %.2f of that.",
		1000*float64(c)/cb, 1000*hold, d, runtime.NumCPU(), c, cb, cb/bound, r.rate(workerBin, d, c), r.rate(workerBin, d, c)/cb) + r.prefetchOf(d, c, cb)
}

// prefetchOf says what fraction of callBound a WORKER_PREFETCH variant
// reached at d, c, if one ran.
func (r *report) prefetchOf(d time.Duration, c int, cb float64) string {
	if k, ok := r.variantWith("WORKER_PREFETCH=", d, c); ok {
		return fmt.Sprintf(" With `%s`, %.0f tasks/s: %.2f of it.", k.env, r.rate(k, d, c), r.rate(k, d, c)/cb)
	}
	return ""
}
