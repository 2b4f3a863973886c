// Command bench measures the worker against the peers a user could run
// instead, all in one run on one machine, and writes BENCHMARKS.md:
//
//   - throughput: N pre-enqueued Meari cancellations, for upstream delay
//     0 and 20 ms and concurrency 50 and 200, served by (a) asynq with a
//     handler that calls nothing and only waits the delay (the ceiling),
//     (b) a hand-written asynq handler doing the Meari call (the
//     reference) and (c) the worker binary in its production
//     configuration; tasks/s, CPU per task, peak RSS; and a CPU profile of
//     the worker, broken down per task;
//   - idle pickup: single enqueues 100 ms apart to an idle worker, and the
//     time from each enqueue to its upstream call;
//   - the batch bound: asynq's dequeue and completion scripts one round
//     trip per task, as its processor runs them, against the same scripts
//     pipelined 50 per round trip (batch.go);
//   - the enqueue side: "enqueue file" against a plain asynq.Client from 16,
//     64 and 256 goroutines (the fastest is the baseline), each a whole
//     process from start to exit.
//
// It starts its own redis-server (no persistence) on a free loopback port
// and a stub upstream on one P, builds the worker and enqueue binaries,
// and checks that every task was processed exactly once: it exits 1 if
// not, never for a speed. Run it from the repository (make bench, or make
// bench-quick for N = 2,000 and one repetition).
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Environment of the peer processes.
const (
	envKey    = "BENCH_MEARI_KEY"
	envSecret = "BENCH_MEARI_SECRET"
)

func main() {
	if len(os.Args) > 1 {
		if code, ok := child(os.Args[1], os.Args[2:]); ok {
			os.Exit(code)
		}
	}
	os.Exit(run(os.Args[1:]))
}

// child runs this binary as one of the benchmark's processes, if name is
// one.
func child(name string, args []string) (code int, ok bool) {
	var err error
	conc := func() int {
		n, _ := strconv.Atoi(args[1])
		return n
	}
	switch name {
	case "stub":
		err = runStub(args[0])
	case "noop":
		var delay time.Duration
		if delay, err = time.ParseDuration(args[2]); err == nil {
			err = runNoop(args[0], conc(), delay)
		}
	case "handwritten":
		err = runHandwritten(args[0], conc(), args[2], os.Getenv(envKey), os.Getenv(envSecret))
	case "handwritten-fasthttp":
		err = runHandwrittenFast(args[0], conc(), args[2], os.Getenv(envKey), os.Getenv(envSecret))
	case "client":
		var g int
		if g, err = strconv.Atoi(args[2]); err == nil {
			err = runClient(args[0], args[1], g)
		}
	default:
		return 0, false
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", name, err)
		return 1, true
	}
	return 0, true
}

// settings are the benchmark's parameters.
type settings struct {
	n, reps, pickups, enqueueN int
	delays                     []time.Duration
	concurrency                []int
	out                        string
	quick                      bool
	// workerEnv is added to the worker's environment: for measuring a
	// knob's effect; the report says so when it is set.
	workerEnv  []string
	parts      map[string]bool // which measurements to run
	args       []string        // the bench's command line, for the report
	contenders []contender     // which contenders
	// procs is every contender's and producer's GOMAXPROCS (the stub's is
	// 1). checks are the contenders run again in every cell at another
	// GOMAXPROCS, so that no baseline is measured at a setting that slows
	// it: each ratio is taken against the baseline's faster setting.
	procs  int
	checks []contender
}

func run(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "N = 2,000, one repetition, 20 pickups: checks the benchmark works, not the speed")
	n := fs.Int("n", 0, "tasks per throughput run (default 20,000; 2,000 with -quick)")
	reps := fs.Int("reps", 0, "repetitions; medians are reported (default 3; 1 with -quick)")
	out := fs.String("out", "", "write the report to this file as well (make bench: BENCHMARKS.md)")
	var workerEnv []string
	fs.Func("worker-env", "`NAME=value` added to the worker's environment, to measure a knob (repeatable)", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("want NAME=value, got %q", v)
		}
		workerEnv = append(workerEnv, v)
		return nil
	})
	var variants []contender
	fs.Func("variant", "run the worker also with `NAME=value[,NAME=value]` added to its environment, as a contender of its own ({redis} in a value is the bench's Redis address; repeatable)", func(v string) error {
		env := strings.Fields(strings.ReplaceAll(v, ",", " "))
		for _, e := range env {
			if !strings.Contains(e, "=") {
				return fmt.Errorf("want NAME=value, got %q", e)
			}
		}
		variants = append(variants, variant(strings.Join(env, " ")))
		return nil
	})
	only := fs.String("only", "", "comma-separated parts to run: throughput, pickup, batch, tracing, enqueue (default all)")
	delays := fs.String("delays", "", "comma-separated upstream delays (default 0,20ms)")
	concs := fs.String("concurrency", "", "comma-separated concurrencies (default 50,200)")
	keep := fs.Bool("keep", false, "keep the work directory (logs, binaries) and say where")
	procs := fs.Int("gomaxprocs", 1, "GOMAXPROCS of every contender and producer (the stub has 1)")
	checkProcs := fs.String("check-gomaxprocs", "", "comma-separated GOMAXPROCS at which (a), (b), (b′) and the worker also run in every cell, and the producers too; each ratio is taken against a baseline's faster setting (default: the number of cores, unless that is -gomaxprocs; none to run none)")
	who := fs.String("contenders", "", "comma-separated contenders to run: noop, handwritten, handwritten-fasthttp, worker (default all)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	s := settings{n: 20000, reps: 3, pickups: 200, delays: []time.Duration{0, 20 * time.Millisecond}, concurrency: []int{50, 200}, out: *out, quick: *quick, args: args}
	if *quick {
		s.n, s.reps, s.pickups = 2000, 1, 20
	}
	s.n, s.reps = cmp.Or(*n, s.n), cmp.Or(*reps, s.reps)
	s.enqueueN = s.n
	s.workerEnv = workerEnv
	s.parts = map[string]bool{"throughput": true, "pickup": true, "batch": true, "tracing": true, "enqueue": true}
	if *only != "" {
		s.parts = map[string]bool{}
		for _, p := range strings.Split(*only, ",") {
			s.parts[strings.TrimSpace(p)] = true
		}
	}
	s.contenders = contenders
	if *who != "" {
		s.contenders = nil
		for _, k := range contenders {
			if strings.Contains(","+*who+",", ","+k.key+",") {
				s.contenders = append(s.contenders, k)
			}
		}
	}
	s.procs = *procs
	if s.procs < 1 {
		fmt.Fprintln(os.Stderr, "bench: -gomaxprocs must be positive")
		return 2
	}
	var checks []int
	switch *checkProcs {
	case "":
		if runtime.NumCPU() != s.procs {
			checks = []int{runtime.NumCPU()}
		}
	case "none":
	default:
		for _, v := range strings.Split(*checkProcs, ",") {
			p, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || p < 1 {
				fmt.Fprintf(os.Stderr, "bench: -check-gomaxprocs: want positive integers or none, got %q\n", v)
				return 2
			}
			if p != s.procs {
				checks = append(checks, p)
			}
		}
	}
	for _, p := range checks {
		for _, k := range s.contenders {
			s.checks = append(s.checks, k.at(p))
		}
	}
	s.contenders = append(s.contenders, variants...)
	if *delays != "" {
		s.delays = nil
		for _, v := range strings.Split(*delays, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench: -delays: %v\n", err)
				return 2
			}
			s.delays = append(s.delays, d)
		}
	}
	if *concs != "" {
		s.concurrency = nil
		for _, v := range strings.Split(*concs, ",") {
			c, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || c < 1 {
				fmt.Fprintf(os.Stderr, "bench: -concurrency: want positive integers, got %q\n", v)
				return 2
			}
			s.concurrency = append(s.concurrency, c)
		}
	}
	if s.n < 1 || s.reps < 1 {
		fmt.Fprintln(os.Stderr, "bench: -n and -reps must be positive")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer killAll()
	b, err := setUp(ctx, s)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	b.keep = *keep
	defer b.tearDown()
	rep, err := b.measure(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	text := rep.markdown()
	fmt.Print(text)
	if s.out != "" {
		if err := os.WriteFile(s.out, []byte(text), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "bench: wrote %s\n", s.out)
	}
	if len(rep.violations) > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d runs did not process every task exactly once:\n  %s\n", len(rep.violations), strings.Join(rep.violations, "\n  "))
		return 1
	}
	return 0
}

// moduleRoot returns the directory of the module being benchmarked.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("run bench from the repository (no go.mod here)")
	}
	return filepath.Dir(gomod), nil
}
