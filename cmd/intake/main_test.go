package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/workertest"
)

// TestBinary runs the built intake as a process: it listens, answers
// /healthz and /readyz in the shared format, and stops with exit 0 on
// SIGTERM.
func TestBinary(t *testing.T) {
	t.Parallel()
	cmd, base, drained := startIntake(t)
	for path, want := range map[string]string{"/healthz": `{"status":"ok"}`, "/readyz": `{"status":"ready"}`} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != want {
			t.Errorf("GET %s: %d %s, want 200 %s", path, resp.StatusCode, b, want)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		<-drained // Wait closes the pipe: read it to the end first
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the intake did not stop within 15s of SIGTERM")
	}
}

// TestHostileBodies sends rounds of 12 parallel bodies of about 900 KB of
// unknown keys, in two shapes, to the built intake: each is answered 400
// in at most 64 KiB, and the process's peak resident memory stays at most
// 150 MB.
func TestHostileBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and loads the intake")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read the peak resident memory")
	}
	t.Parallel()
	cmd, base, _ := startIntake(t)

	const size = 900 << 10
	shapes := map[string][]byte{}
	var b bytes.Buffer
	b.WriteString(`{"provider":"pandapon","orderId":1`) // one item, ~60,000 unknown keys
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, `,"unknown%06d":1`, i)
	}
	shapes["one object"] = append(b.Bytes(), '}')
	b = bytes.Buffer{}
	b.WriteString("[") // 1000 items of 100 short unknown keys each
	for i := range 1000 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"provider":"pandapon","orderId":1`)
		for k := range 100 {
			fmt.Fprintf(&b, `,"k%d":0`, k)
		}
		b.WriteString("}")
	}
	shapes["an array"] = append(b.Bytes(), ']')

	client := &http.Client{Timeout: time.Minute}
	for name, body := range shapes {
		if len(body) > 1<<20 || len(body) < 800<<10 {
			t.Fatalf("%s: %d bytes, want about 900 KB", name, len(body))
		}
		for round := range 3 {
			var wg sync.WaitGroup
			for range 12 {
				wg.Go(func() {
					resp, err := client.Post(base+"/v1/cancellations", "application/json", bytes.NewReader(body))
					if err != nil {
						t.Error(err)
						return
					}
					defer func() { _ = resp.Body.Close() }()
					n, _ := io.Copy(io.Discard, resp.Body)
					if resp.StatusCode != http.StatusBadRequest || n > 64<<10 {
						t.Errorf("%s, round %d: %d with %d bytes, want 400 in at most 64 KiB", name, round, resp.StatusCode, n)
					}
				})
			}
			wg.Wait()
		}
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var hwm int64
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			hwm, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	t.Logf("intake peak resident memory after 6 rounds of 12 parallel hostile bodies: %d MB", hwm>>10)
	if hwm == 0 || hwm > 150_000 {
		t.Errorf("peak resident memory %d kB, want at most 150 MB", hwm)
	}
}

// startIntake builds the intake, starts it on a free port with its own
// Redis, and returns the process, its base URL and a channel closed once
// its stderr is read to the end. It is killed at cleanup.
func startIntake(t *testing.T) (*exec.Cmd, string, <-chan struct{}) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "intake")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	srv := redistest.New(t)
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0")
	cmd.Env = []string{"REDIS_URL=" + srv.URL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	addr, drained := workertest.LogAddr(stderr, "listening")
	select {
	case a := <-addr:
		return cmd, "http://" + a, drained
	case <-time.After(20 * time.Second):
		t.Fatal("the intake did not listen within 20s")
	}
	return nil, "", nil
}
