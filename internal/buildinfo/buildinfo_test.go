package buildinfo_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionFlag builds every binary as a user would (go build in this
// checkout) and runs it with --version: each names itself, and the
// revision is this checkout's commit.
func TestVersionFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the four binaries")
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-buildvcs=auto", "-o", dir+"/", "./cmd/worker", "./cmd/enqueue", "./cmd/intake", "./cmd/sandbox")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	head := ""
	if out, err := exec.Command("git", "-C", "../..", "rev-parse", "HEAD").Output(); err == nil {
		head = strings.TrimSpace(string(out))[:12]
	}
	for _, name := range []string{"worker", "enqueue", "intake", "sandbox"} {
		cmd := exec.Command(filepath.Join(dir, name), "--version")
		cmd.Env = []string{"PATH=/usr/bin:/bin"} // no configuration: --version needs none
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("%s --version: %v", name, err)
			continue
		}
		line := strings.TrimSpace(string(out))
		if !strings.HasPrefix(line, name+" ") || strings.Count(line, "\n") != 0 {
			t.Errorf("%s --version printed %q, want one line starting with its name", name, line)
		}
		if head != "" && !strings.Contains(line, "revision "+head) {
			t.Errorf("%s --version printed %q, want revision %s", name, line, head)
		}
		if !strings.Contains(line, "go1.") {
			t.Errorf("%s --version printed %q, want the Go version", name, line)
		}
	}
}
