package worker_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/status"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/tasks"
)

// TestRetentionTwentyThousand runs 20,000 orders through the worker with
// completed tasks compacted 5s after completion (TASK_COMPACT_AFTER=5s)
// and the maintenance at its default interval: all are compacted within a
// minute of the last upstream call, each costs at most 200 bytes of Redis
// memory (INFO used_memory growth), and status lookups still answer.
func TestRetentionTwentyThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("long: 20,000 orders through the worker")
	}
	t.Parallel()
	const n = 20_000
	r := workertest.Start(t, workertest.WithConcurrency(64), workertest.WithMaintenance(0, 5*time.Second))
	if r.Redis.Kind == redistest.KindMiniredis {
		t.Skip("miniredis reports no memory")
	}
	ctx := t.Context()
	used := func() int64 { return redistest.UsedMemory(t, r.RDB) }
	completed := func() int64 {
		c, err := r.RDB.ZCard(ctx, "asynq:{"+tasks.QueueMeari+"}:completed").Result()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Warm up: the queue is published and one order compacted.
	r.EnqueueMeari(t, "MEM-WARMUP")
	workertest.WaitUpTo(t, time.Minute, "the warm-up order compacted", func() (bool, string) {
		return r.Sandbox.TotalCalls() == 1 && completed() == 0, fmt.Sprintf("%d calls, %d whole", r.Sandbox.TotalCalls(), completed())
	})
	base := used()

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < n; i += 8 {
				r.EnqueueMeari(t, fmt.Sprintf("MEM-%06d", i))
			}
		})
	}
	wg.Wait()
	workertest.WaitUpTo(t, 5*time.Minute, "every order cancelled", func() (bool, string) {
		return r.Sandbox.TotalCalls() >= n+1, fmt.Sprintf("%d calls", r.Sandbox.TotalCalls()-1)
	})
	lastCall := time.Now()
	workertest.WaitUpTo(t, 90*time.Second, "every completed task compacted", func() (bool, string) {
		return completed() == 0, fmt.Sprintf("%d still whole", completed())
	})
	took := time.Since(lastCall)
	per := float64(used()-base) / n
	t.Logf("20,000 completed orders compacted %s after the last call; %.0f bytes of Redis each", took.Round(100*time.Millisecond), per)
	if took > time.Minute {
		t.Errorf("compacted %s after the last call, want within a minute", took)
	}
	if per > 200 {
		t.Errorf("a compacted completed order costs %.0f bytes of Redis, want at most 200", per)
	}
	for _, order := range []string{"MEM-000000", "MEM-000777", "MEM-019999"} {
		all, err := status.LookupOrder(ctx, r.RDB, r.DLQ, tasks.Shards{}, status.OrderQuery{Provider: tasks.ProviderMeari, SourceApp: workertest.SourceApp, OrderType: 1, OrderNum: order})
		if err != nil || len(all) != 1 || all[0].State != status.StateCompleted || all[0].CompletedAt == nil {
			t.Errorf("status of %s: %+v, %v; want completed, with its time", order, all, err)
		}
	}
}
