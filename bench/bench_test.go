package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestQuick runs the quick benchmark end to end: its own Redis and stub,
// the three contenders, pickup and enqueue. It asserts that the benchmark
// works and that every task was processed exactly once (the bench exits 1
// otherwise), never a speed.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("the quick benchmark takes about 75 s")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("REQUIRE_REDIS") == "1" {
			t.Fatal("REQUIRE_REDIS=1 but redis-server is not on PATH")
		}
		t.Skip("redis-server is not on PATH")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bench")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	report := filepath.Join(dir, "report.md")
	cmd := exec.Command(bin, "-quick", "-out", report)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench -quick: %v\n%s", err, out)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{
		"| 20ms | 200 | (c) cancelworker worker |",
		"| 0s | 50 | (a) asynq, handler that only waits the delay |",
		"## Idle pickup", "| `enqueue file` |", "| plain asynq.Client, 256 goroutines |", "## Targets",
		"TCP connections to the stub", "### Where a task's time goes in the worker", "| 20ms | 50 |",
		"## The bound of asynq's processor", "| the same scripts pipelined, 50 calls per round trip |",
		"## Tracing on and off", "| 0s | 50 | on |",
		"cores: " + strconv.Itoa(runtime.NumCPU()) + " (GOMAXPROCS 1 for the contenders",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	// The stub keeps its delay: at 20 ms its mean time per call is at
	// least 20 ms (and not, say, a timer that never fired).
	found := false
	for _, line := range strings.Split(text, "\n") {
		cols := strings.Split(line, "|")
		if !strings.HasPrefix(line, "| 20ms | 50 | ") || len(cols) != 14 || !strings.Contains(cols[3], " / ") {
			continue // not the stage table's row, whose stages are "p50 / p99"
		}
		found = true
		held, err := strconv.ParseFloat(strings.TrimSpace(cols[len(cols)-3]), 64)
		if err != nil || held < 20 || held > 40 {
			t.Errorf("stage table: the stub's mean time per call at 20ms is %q, want 20–40 ms: %s", cols[len(cols)-3], line)
		}
	}
	if !found {
		t.Errorf("report lacks the stage table's row for 20ms / 50:\n%s", text)
	}
	// Each baseline ran at the machine's cores too, and so did the
	// producers, so that none is measured at a setting that slows it.
	if n := runtime.NumCPU(); n > 1 {
		for _, want := range []string{
			"### GOMAXPROCS",
			fmt.Sprintf("| 0s | 200 | (b) hand-written asynq handler, GOMAXPROCS %d |", n),
			fmt.Sprintf("| 20ms | 50 | (b′) the same on fasthttp, GOMAXPROCS %d |", n),
			fmt.Sprintf("| plain asynq.Client, 64 goroutines, GOMAXPROCS %d |", n),
		} {
			if !strings.Contains(text, want) {
				t.Errorf("report lacks %q:\n%s", want, text)
			}
		}
	}
	if strings.Contains(text, "violations") {
		t.Errorf("report lists exactly-once violations:\n%s", text)
	}
}

// TestRatioAgainstFasterSetting checks that the worker is measured against
// a baseline at whichever GOMAXPROCS made it faster, repetition by
// repetition.
func TestRatioAgainstFasterSetting(t *testing.T) {
	s := settings{procs: 1, contenders: contenders, delays: []time.Duration{0}, concurrency: []int{50}}
	for _, k := range contenders {
		s.checks = append(s.checks, k.at(2))
	}
	r := &report{s: s, runs: map[cell][]runResult{}}
	runs := func(k contender, rates ...float64) {
		for _, x := range rates {
			r.runs[cell{k, 0, 50}] = append(r.runs[cell{k, 0, 50}], runResult{rate: x})
		}
	}
	runs(workerBin, 6000, 6600, 6000)
	runs(handwrittenC, 4000, 4400, 4000)
	runs(handwrittenC.at(2), 5000, 5500, 5000)
	if got := r.strongest(handwrittenC, 0, 50); got != handwrittenC.at(2) {
		t.Fatalf("strongest (b) is %q, want it at GOMAXPROCS 2", got.name)
	}
	if got := r.ratio(workerBin, r.strongest(handwrittenC, 0, 50), 0, 50); got < 1.199 || got > 1.201 {
		t.Errorf("worker / strongest (b) = %.3f, want 1.2", got)
	}
	// When the run's own setting is the faster, it is the baseline.
	runs(handFastC, 5000, 5000, 5000)
	runs(handFastC.at(2), 4000, 4000, 4000)
	if got := r.strongest(handFastC, 0, 50); got != handFastC {
		t.Errorf("strongest (b′) is %q, want it at GOMAXPROCS 1", got.name)
	}
	// A cell without check runs falls back to the run's setting.
	if got := r.strongest(handwrittenC, 20*time.Millisecond, 50); got != handwrittenC {
		t.Errorf("strongest (b) in a cell without checks is %q", got.name)
	}
	var sb strings.Builder
	r.procsTable(func(f string, a ...any) { fmt.Fprintf(&sb, f, a...) })
	if !strings.Contains(sb.String(), "| 0s | 50 | (b) hand-written asynq handler, GOMAXPROCS 2 | 5000 (5000–5500) | 1.25× |") || !strings.Contains(sb.String(), "**GOMAXPROCS 2** |") {
		t.Errorf("GOMAXPROCS table:\n%s", sb.String())
	}
}

// TestRatioMissed checks that a cell under 1.2× the hand-written handler
// at its faster setting is explained, naming that setting, and that a
// cell at or above it is not.
func TestRatioMissed(t *testing.T) {
	s := settings{procs: 1, contenders: contenders, delays: []time.Duration{0}, concurrency: []int{50, 200}}
	for _, k := range contenders {
		s.checks = append(s.checks, k.at(2))
	}
	r := &report{s: s, runs: map[cell][]runResult{}}
	runs := func(k contender, c int, rate float64) {
		r.runs[cell{k, 0, c}] = append(r.runs[cell{k, 0, c}], runResult{rate: rate, cpu: time.Duration(rate)})
	}
	// C=50: 1.25× (b) at GOMAXPROCS 1, but 1.10× (b) at GOMAXPROCS 2.
	runs(workerBin, 50, 5500)
	runs(handwrittenC, 50, 4400)
	runs(handwrittenC.at(2), 50, 5000)
	// C=200: 1.25× (b) at its faster setting.
	runs(workerBin, 200, 5000)
	runs(handwrittenC, 200, 4000)
	runs(handwrittenC.at(2), 200, 3000)
	got := r.ratioMissed(0, 50)
	for _, want := range []string{"1.2× the hand-written handler, 0s / C=50", "1.10×", "5000 (at GOMAXPROCS 2, its faster setting here)"} {
		if !strings.Contains(got, want) {
			t.Errorf("C=50: %q lacks %q", got, want)
		}
	}
	if !strings.Contains(got, "so its lead is its pipelines, its client") || strings.Contains(got, "repetitions' ratios") {
		t.Errorf("C=50, one repetition, worker ahead of (b): %q", got)
	}
	if got := r.ratioMissed(0, 200); got != "" {
		t.Errorf("C=200 meets 1.2× but is explained: %q", got)
	}
	// 20 ms / C=200, three repetitions: the worker trails (b) in two, so
	// the median of the ratios (0.90×) is under 1 while the medians'
	// ratio (4500 / 4500) is not; the line must say both, and must not
	// speak of a lead.
	for _, pair := range [][2]float64{{4500, 5000}, {4600, 4000}, {4050, 4500}} {
		r.runs[cell{workerBin, 20 * time.Millisecond, 200}] = append(r.runs[cell{workerBin, 20 * time.Millisecond, 200}], runResult{rate: pair[0]})
		r.runs[cell{handwrittenC, 20 * time.Millisecond, 200}] = append(r.runs[cell{handwrittenC, 20 * time.Millisecond, 200}], runResult{rate: pair[1]})
	}
	got = r.ratioMissed(20*time.Millisecond, 200)
	for _, want := range []string{"The worker made 4500 tasks/s against the hand-written handler's 4500", ": 0.90×, the median of the 3 repetitions' ratios (the two medians' own ratio is 1.00×)", "here that lead does not show"} {
		if !strings.Contains(got, want) {
			t.Errorf("20ms / C=200: %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "its lead is") {
		t.Errorf("20ms / C=200: the worker trails, but: %q", got)
	}
	// The CPU profile's line explains a CPU target missed, and only that:
	// the worker at 200 µs per task, then at 140.
	for i := range profileGroups() {
		r.profile = append(r.profile, profileGroup{name: fmt.Sprint(i), micro: 10})
	}
	runs(noopC, 50, 100)
	runs(noopC, 200, 100)
	workerCPU := func(d time.Duration) {
		for _, c := range []int{50, 200} {
			for i := range r.runs[cell{workerBin, 0, c}] {
				r.runs[cell{workerBin, 0, c}][i].cpu = d
			}
		}
	}
	workerCPU(200 * time.Microsecond)
	var sb strings.Builder
	r.outOfReach(func(f string, a ...any) { fmt.Fprintf(&sb, f, a...) })
	if !strings.Contains(sb.String(), "0s / C=50.**") || strings.Contains(sb.String(), "0s / C=200.**") || !strings.Contains(sb.String(), "What would reach 150 µs") {
		t.Errorf("targets not met:\n%s", sb.String())
	}
	workerCPU(140 * time.Microsecond)
	sb.Reset()
	r.outOfReach(func(f string, a ...any) { fmt.Fprintf(&sb, f, a...) })
	if strings.Contains(sb.String(), "What would reach 150 µs") || strings.Contains(sb.String(), "**CPU per task") {
		t.Errorf("the CPU targets are met, but:\n%s", sb.String())
	}
}
