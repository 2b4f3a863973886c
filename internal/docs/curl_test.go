package docs

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/workertest"
)

// docToken is the intake token the docs' examples use: the sandbox's, and
// the one the test writes to deploy/secrets/intake_token in curl's
// directory.
const docToken = "sandbox-intake-token"

// TestCurlExamples runs every curl command of the docs' shell blocks, as
// written, against a real intake (its address put in for the docs'
// 127.0.0.1:8081) with its own Redis: each must exit 0 and get a JSON
// answer that is not an error, and a POST must have every item enqueued.
func TestCurlExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl on PATH")
	}
	var cmds []shellLine
	for _, sl := range shellLines(t) {
		if strings.HasPrefix(strings.TrimSpace(sl.line), "curl ") {
			cmds = append(cmds, sl)
		}
	}
	if len(cmds) < 4 {
		t.Fatalf("only %d curl commands found: is the parser broken?", len(cmds))
	}

	srv := redistest.New(t)
	intake := exec.Command(filepath.Join(bin(t), "intake"), "--addr", "127.0.0.1:0")
	// As deploy/example.env and the sandbox profile set it.
	intake.Env = []string{"REDIS_URL=" + srv.URL, "INTAKE_TOKEN=" + docToken, "MEARI_SOURCE_APP=72"}
	stderr, err := intake.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := intake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = intake.Process.Kill(); _ = intake.Wait() })
	addrc, _ := workertest.LogAddr(stderr, "listening")
	var addr string
	select {
	case addr = <-addrc:
	case <-time.After(20 * time.Second):
		t.Fatal("the intake did not listen within 20s")
	}

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "deploy/secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "deploy/secrets/intake_token"), []byte(docToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		page, line := c.page, c.line
		run := strings.ReplaceAll(line, "http://127.0.0.1:8081", "http://"+addr)
		if run == line {
			t.Errorf("%s: `%s` does not call the intake at 127.0.0.1:8081", page, line)
			continue
		}
		cmd := exec.Command("sh", "-c", run)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("%s: `%s`: %v\n%s", page, line, err, out)
			continue
		}
		var reply map[string]any
		if err := json.Unmarshal(out, &reply); err != nil {
			t.Errorf("%s: `%s` answered no JSON object: %v\n%s", page, line, err, out)
			continue
		}
		if _, bad := reply["errors"]; bad {
			t.Errorf("%s: `%s` answered an error:\n%s", page, line, out)
		}
		if strings.Contains(line, " -d ") {
			results, _ := reply["results"].([]any)
			if len(results) == 0 {
				t.Errorf("%s: `%s` answered no results:\n%s", page, line, out)
			}
			for _, r := range results {
				if m, _ := r.(map[string]any); m["state"] != "queued" && m["state"] != "already_queued" {
					t.Errorf("%s: `%s`: an item was not enqueued:\n%s", page, line, out)
				}
			}
		}
		t.Logf("%s: %s", page, out)
	}
}
