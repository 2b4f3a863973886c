package docs

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// startDemo runs `worker --demo` until the test ends and returns the lines
// it printed up to its table's end.
func startDemo(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	demo := exec.CommandContext(ctx, filepath.Join(bin(t), "worker"), "--demo", "--log-level", "warn")
	demo.Env = []string{"PATH=" + os.Getenv("PATH"), "ADMIN_ADDR=127.0.0.1:0"}
	stdout, err := demo.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	demo.Stderr = io.Discard
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = demo.Process.Signal(os.Interrupt)
		_ = demo.Wait()
		cancel()
	})
	var printed []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		printed = append(printed, sc.Text())
		if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
			break
		}
	}
	if !slices.ContainsFunc(printed, func(l string) bool { return strings.HasPrefix(l, "Press Ctrl-C") }) {
		t.Fatalf("the demo stopped before it settled:\n%s", strings.Join(printed, "\n"))
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return printed
}

// TestMonitoringNames: every metric the Grafana dashboard and the alert
// rules in deploy/ name is on a live worker's /metrics (the demo's, after
// its sample orders settled), but `up`, which Prometheus makes. With
// promtool on PATH, the rules also pass `promtool check rules`.
func TestMonitoringNames(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs the demo")
	}
	files := []string{"deploy/grafana/dashboards/cancelworker.json", "deploy/prometheus/rules.yml"}
	name := regexp.MustCompile(`\b(?:cancelworker|asynq)_[a-z0-9_]+\b`)
	want := map[string][]string{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range name.FindAllString(string(b), -1) {
			if !slices.Contains(want[n], f) {
				want[n] = append(want[n], f)
			}
		}
	}
	if len(want) < 12 {
		t.Fatalf("only %d metric names found in %v", len(want), files)
	}

	printed := startDemo(t)
	url := ""
	for _, l := range printed {
		if s, ok := strings.CutPrefix(l, "Metrics:"); ok {
			url = strings.TrimSpace(s)
		}
	}
	if url == "" {
		t.Fatalf("the demo printed no metrics address:\n%s", strings.Join(printed, "\n"))
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v %s", url, err, resp.Status)
	}
	have := map[string]bool{}
	for l := range strings.Lines(string(body)) {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if m := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`).FindString(l); m != "" {
			have[m] = true
		}
	}
	for n, fs := range want {
		if !have[n] {
			t.Errorf("%s, named in %v, is not on the worker's /metrics", n, fs)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool is not on PATH: the rules' syntax is not checked (Debian's prometheus package has it)")
		return
	}
	out, err := exec.Command(promtool, "check", "rules", filepath.Join(root, "deploy/prometheus/rules.yml")).CombinedOutput()
	if err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}
