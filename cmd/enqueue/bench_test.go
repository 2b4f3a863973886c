package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cancelworker/cancelworker/internal/redistest"
)

// BenchmarkEnqueueFile runs `enqueue file` over benchLines new orders per
// iteration against a real Redis, one enqueue at a time (the baseline) and
// with the default concurrency, measured in the same run:
//
//	go test -run '^$' -bench EnqueueFile -benchtime 3x ./cmd/enqueue
func BenchmarkEnqueueFile(b *testing.B) {
	const benchLines = 2000
	for _, bc := range []struct {
		name    string
		workers int
	}{
		{name: "sequential", workers: 1},
		{name: "concurrent", workers: workersDefault},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := redistest.New(b)
			dir := b.TempDir()
			getenv := func(k string) string {
				if k == envSourceApp {
					return "72"
				}
				return ""
			}
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				path := filepath.Join(dir, strconv.Itoa(i)+".jsonl")
				var sb strings.Builder
				for j := range benchLines {
					if j%2 == 0 {
						fmt.Fprintf(&sb, `{"provider":"pandapon","orderId":%d,"cancelReason":"bench"}`+"\n", 2542285634920880794+int64(i*benchLines+j))
					} else {
						fmt.Fprintf(&sb, `{"provider":"meari","userAccount":"u@x.com","orderType":1,"orderNum":"B%d-%d"}`+"\n", i, j)
					}
				}
				if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()

				args := []string{"--redis-url", srv.URL, "file", path, "--concurrency", strconv.Itoa(bc.workers)}
				var stdout strings.Builder
				if code := runEnv(b.Context(), args, &stdout, io.Discard, getenv); code != exitOK {
					b.Fatalf("exit %d: %s", code, stdout.String())
				}
				if want := fmt.Sprintf("enqueued %d, already queued 0, invalid 0\n", benchLines); stdout.String() != want {
					b.Fatalf("want %q, got %q", want, stdout.String())
				}
			}
			b.ReportMetric(float64(benchLines*b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}
