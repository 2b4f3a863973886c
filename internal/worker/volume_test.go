package worker

import (
	"fmt"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/cancelworker/cancelworker/tasks"
)

// asynq trims its own archive to 10,000 tasks (maxArchiveSize in its
// internal/rdb); the DLQ must keep every entry past that.
const asynqArchiveCap = 10000

func TestTwelveThousandPermanentFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("long: 12,000 tasks through the worker")
	}
	t.Parallel()
	const n = 12000
	r := newRig(t, withConcurrency(64))
	orders := make([]string, n)
	for i := range orders {
		orders[i] = fmt.Sprintf("VOL-%05d", i)
		r.sb.Script("meari", orders[i], sandbox.MeariCode("4001"))
	}
	for _, o := range orders {
		if res := r.enqueueMeari(t, o); res.AlreadyQueued {
			t.Fatalf("%s already queued", o)
		}
	}
	deadline := time.Now().Add(8 * time.Minute)
	var got int64
	for time.Now().Before(deadline) {
		var err error
		if got, err = r.store.Count(t.Context(), "meari"); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			break
		}
		time.Sleep(200 * time.Millisecond) // polling: nothing signals a DLQ write
	}
	if got != n {
		t.Fatalf("DLQ holds %d entries, want %d", got, n)
	}
	entries, total, err := r.store.List(t.Context(), dlq.ListOptions{Provider: "meari"})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool, n)
	for _, e := range entries {
		if e.Reason != dlq.ReasonPermanent || e.UpstreamCode != "4001" {
			t.Fatalf("entry %s: reason %q code %q", e.ID, e.Reason, e.UpstreamCode)
		}
		seen[e.ID] = true
	}
	if total != n || len(seen) != n {
		t.Fatalf("List: total %d, %d distinct entries, want %d", total, len(seen), n)
	}
	for _, o := range orders {
		if !seen[fmt.Sprintf("meari:%d:1:%s", testSourceApp, o)] {
			t.Fatalf("no DLQ entry for %s", o)
		}
	}
	if calls := r.sb.TotalCalls(); calls != n {
		t.Errorf("upstream calls = %d, want %d (no retries of permanent failures)", calls, n)
	}
	info, err := r.insp.GetQueueInfo(tasks.QueueMeari)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("asynq archive holds %d of %d dead-lettered tasks; the DLQ holds %d", info.Archived, n, got)
	if info.Archived > asynqArchiveCap {
		t.Errorf("asynq archive holds %d, more than its documented cap %d: revisit this test's premise", info.Archived, asynqArchiveCap)
	}
}
