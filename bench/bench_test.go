package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestQuick runs the quick benchmark end to end: its own Redis and stub,
// the three contenders, pickup and enqueue. It asserts that the benchmark
// works and that every task was processed exactly once (the bench exits 1
// otherwise), never a speed.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("the quick benchmark takes about 40 s")
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
	if strings.Contains(text, "violations") {
		t.Errorf("report lists exactly-once violations:\n%s", text)
	}
}
