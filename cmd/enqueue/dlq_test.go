package main

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// seed stores three entries, oldest first: the PandaPon one, then Meari
// types 1 and 2.
func (h *harness) seed() []dlq.Entry {
	h.t.Helper()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m1 := meariEntry("1", "A1", "1005", dlq.ReasonRetriesExhausted, t0.Add(time.Minute))
	m1.OutcomeUnknown = true
	return []dlq.Entry{
		h.putEntry(pandaponEntry(t0)),
		h.putEntry(m1),
		h.putEntry(meariEntry("2", "B2", "4001", dlq.ReasonPermanent, t0.Add(2*time.Minute))),
	}
}

// dlqIDs returns the IDs left in the harness's dead-letter queue.
func (h *harness) dlqIDs() []string {
	h.t.Helper()
	ids, err := dlq.New(h.srv.Client(h.t)).IDs(h.t.Context(), "")
	if err != nil {
		h.t.Fatalf("dlq ids: %v", err)
	}
	return ids
}

func TestDLQList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		args      []string
		wantIDs   []string
		wantTotal int64
		wantLine  string // the last line of the human output
	}{
		{name: "all", args: nil, wantIDs: []string{pandaponID, "meari:72:1:A1", "meari:72:2:B2"}, wantTotal: 3, wantLine: "total: 3 entries (showing 1-3)"},
		{name: "one provider", args: []string{"--provider", "meari"}, wantIDs: []string{"meari:72:1:A1", "meari:72:2:B2"}, wantTotal: 2, wantLine: "total: 2 entries (showing 1-2)"},
		{name: "a page", args: []string{"--limit", "1", "--offset", "1"}, wantIDs: []string{"meari:72:1:A1"}, wantTotal: 3, wantLine: "total: 3 entries (showing 2-2)"},
		{name: "past the end", args: []string{"--offset", "5"}, wantIDs: []string{}, wantTotal: 3, wantLine: "total: 3 entries (none from offset 5)"},
	}
	h := newHarness(t)
	h.seed()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: the subtests share the harness.
			r := h.mustRun(exitOK, append([]string{"dlq", "list"}, tt.args...)...)
			lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if got := lines[len(lines)-1]; got != tt.wantLine {
				t.Errorf("total line: want %q, got %q", tt.wantLine, got)
			}
			if len(tt.wantIDs) > 0 {
				if len(lines) != len(tt.wantIDs)+2 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "UPSTREAM CODE") {
					t.Fatalf("want a header, %d rows and a total, got:\n%s", len(tt.wantIDs), r.stdout)
				}
				for i, id := range tt.wantIDs {
					if !strings.HasPrefix(lines[i+1], id+" ") {
						t.Errorf("row %d: want %s, got %q", i+1, id, lines[i+1])
					}
				}
			}

			r = h.mustRun(exitOK, append([]string{"--json", "dlq", "list"}, tt.args...)...)
			var out listOutput
			decodeJSON(t, r.stdout, &out)
			if out.Total != tt.wantTotal || len(out.Entries) != len(tt.wantIDs) {
				t.Fatalf("--json: want %d of %d entries, got %+v", len(tt.wantIDs), tt.wantTotal, out)
			}
			for i, id := range tt.wantIDs {
				if out.Entries[i].ID != id {
					t.Errorf("--json entry %d: want %s, got %s", i, id, out.Entries[i].ID)
				}
			}
			if out.Entries == nil {
				t.Errorf("--json: want entries [], got null")
			}
		})
	}

	t.Run("row fields", func(t *testing.T) {
		r := h.mustRun(exitOK, "dlq", "list", "--provider", "meari", "--limit", "1")
		row := strings.Fields(strings.Split(r.stdout, "\n")[1])
		want := []string{"meari:72:1:A1", "meari", "1:A1", "retries", "exhausted", "(outcome", "unknown)", "1005", "8", "2026-01-02T03:05:05Z"}
		if strings.Join(row, " ") != strings.Join(want, " ") {
			t.Errorf("row: want %q, got %q", want, row)
		}
	})
}

func TestDLQListEmpty(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.mustRun(exitOK, "dlq", "list")
	if r.stdout != "total: 0 entries\n" {
		t.Errorf("stdout: want only the total, got %q", r.stdout)
	}
	r = h.mustRun(exitOK, "--json", "dlq", "list")
	var out map[string]any
	decodeJSON(t, r.stdout, &out)
	if entries, ok := out["entries"].([]any); !ok || len(entries) != 0 {
		t.Errorf("--json entries: want [], got %v", out["entries"])
	}
}

func TestDLQShow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.seed()

	r := h.mustRun(exitOK, "dlq", "show", pandaponID)
	for _, s := range []string{
		"id:               " + pandaponID + "\n",
		"task type:        " + tasks.TypePandaPonCancel + "\n",
		"reason:           permanent\n",
		"upstream code:    200\n",
		"message:          upstream refused the cancel (data false)\n",
		"outcome unknown:  no\n",
		"attempts:         1\n",
		"last failed at:   2026-01-02T03:04:05Z\n",
		"payload:\n  {\n    \"order_id\": 2542285634920880794,\n    \"cancel_reason\": \"customer asked\",",
	} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout: want %q in it, got:\n%s", s, r.stdout)
		}
	}

	r = h.mustRun(exitOK, "dlq", "show", "meari:72:1:A1")
	if !strings.Contains(r.stdout, "outcome unknown:  yes: ") {
		t.Errorf("stdout: want the unknown outcome flagged, got:\n%s", r.stdout)
	}

	r = h.mustRun(exitOK, "--json", "dlq", "show", pandaponID)
	var e dlq.Entry
	decodeJSON(t, r.stdout, &e)
	if e.ID != pandaponID || e.Reason != dlq.ReasonPermanent || !strings.Contains(string(e.Payload), "2542285634920880794") {
		t.Errorf("--json: want the PandaPon entry with its payload, got %+v", e)
	}

	r = h.mustRun(exitFailure, "dlq", "show", "pandapon:1")
	if !strings.Contains(r.stderr, `dlq entry "pandapon:1" not found`) {
		t.Errorf("stderr: want not found, got %q", r.stderr)
	}
	r = h.mustRun(exitFailure, "--json", "dlq", "show", "pandapon:1")
	var out errorOutput
	decodeJSON(t, r.stdout, &out)
	if out.ExitCode != exitFailure || !strings.Contains(out.Error, "not found") {
		t.Errorf("--json: want a not-found error, got %+v", out)
	}
}

func TestDLQRequeue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		args      []string
		json      bool
		wantCode  int
		requeued  map[string]string // task ID → queue
		wantLeft  []string
		wantLines []string // substrings of the human stdout or stderr
		// wantResults is the length of the --json array.
		wantResults int
	}{
		{
			name:      "one",
			args:      []string{pandaponID},
			wantCode:  exitOK,
			requeued:  map[string]string{pandaponID: tasks.QueuePandaPon},
			wantLeft:  []string{"meari:72:1:A1", "meari:72:2:B2"},
			wantLines: []string{"requeued " + pandaponID + ": enqueued " + pandaponID + " on queue cancel:pandapon\n"},
		},
		{
			name:        "all of one provider",
			args:        []string{"--all", "--provider", "meari"},
			json:        true,
			wantCode:    exitOK,
			requeued:    map[string]string{"meari:72:1:A1": tasks.QueueMeari, "meari:72:2:B2": tasks.QueueMeari},
			wantLeft:    []string{pandaponID},
			wantResults: 2,
		},
		{
			name:     "all",
			args:     []string{"--all"},
			wantCode: exitOK,
			requeued: map[string]string{pandaponID: tasks.QueuePandaPon, "meari:72:1:A1": tasks.QueueMeari, "meari:72:2:B2": tasks.QueueMeari},
			wantLeft: []string{},
		},
		{
			name:      "one missing, the others still requeued",
			args:      []string{"meari:72:9:Z9", "meari:72:2:B2"},
			wantCode:  exitFailure,
			requeued:  map[string]string{"meari:72:2:B2": tasks.QueueMeari},
			wantLeft:  []string{pandaponID, "meari:72:1:A1"},
			wantLines: []string{"meari:72:9:Z9: no dead-letter entry", "requeued meari:72:2:B2: enqueued", "1 of 2 entries could not be requeued"},
		},
		{
			name:        "one missing, --json",
			args:        []string{"meari:72:9:Z9", "meari:72:2:B2"},
			json:        true,
			wantCode:    exitFailure,
			requeued:    map[string]string{"meari:72:2:B2": tasks.QueueMeari},
			wantLeft:    []string{pandaponID, "meari:72:1:A1"},
			wantResults: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.seed()
			args := append([]string{"dlq", "requeue"}, tt.args...)
			if tt.json {
				args = append([]string{"--json"}, args...)
			}
			r := h.mustRun(tt.wantCode, args...)
			for _, s := range tt.wantLines {
				if !strings.Contains(r.stdout+r.stderr, s) {
					t.Errorf("output: want %q in it, got:\n%s", s, r)
				}
			}
			for id, queue := range tt.requeued {
				if info := h.taskInfo(queue, id); info.State != asynq.TaskStatePending {
					t.Errorf("task %s: want pending, got %s", id, info.State)
				}
			}
			if got := h.dlqIDs(); strings.Join(got, ",") != strings.Join(tt.wantLeft, ",") {
				t.Errorf("entries left: want %q, got %q", tt.wantLeft, got)
			}
			if !tt.json {
				return
			}
			var out []requeueOutput
			decodeJSON(t, r.stdout, &out)
			ok := 0
			for _, o := range out {
				if o.Error == "" {
					ok++
					if tt.requeued[o.ID] != o.Queue || o.TaskID != o.ID {
						t.Errorf("--json: want %s requeued on %s, got %+v", o.ID, tt.requeued[o.ID], o)
					}
				}
			}
			if ok != len(tt.requeued) || len(out) != tt.wantResults {
				t.Errorf("--json: want %d results, %d requeued, got %+v", tt.wantResults, len(tt.requeued), out)
			}
		})
	}
}

func TestDLQRequeueEmpty(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.mustRun(exitOK, "dlq", "requeue", "--all")
	if r.stdout != "nothing to requeue: the dead-letter queue is empty\n" {
		t.Errorf("stdout: got %q", r.stdout)
	}
	r = h.mustRun(exitOK, "--json", "dlq", "requeue", "--all")
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("--json: want [], got %q", r.stdout)
	}
}

func TestDLQPurge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  purgeOutput
		wantLeft []string
	}{
		{name: "ids", args: []string{pandaponID, "meari:72:1:A1"}, wantCode: exitOK, wantOut: purgeOutput{Purged: 2, NotFound: []string{}}, wantLeft: []string{"meari:72:2:B2"}},
		{name: "all of one provider", args: []string{"--all", "--provider", "meari"}, wantCode: exitOK, wantOut: purgeOutput{Purged: 2, NotFound: []string{}}, wantLeft: []string{pandaponID}},
		{name: "all", args: []string{"--all"}, wantCode: exitOK, wantOut: purgeOutput{Purged: 3, NotFound: []string{}}, wantLeft: []string{}},
		{name: "one missing, the other still purged", args: []string{"pandapon:1", pandaponID}, wantCode: exitFailure, wantOut: purgeOutput{Purged: 1, NotFound: []string{"pandapon:1"}}, wantLeft: []string{"meari:72:1:A1", "meari:72:2:B2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Human output.
			h := newHarness(t)
			h.seed()
			r := h.mustRun(tt.wantCode, append([]string{"dlq", "purge", "--yes"}, tt.args...)...)
			if want := "purged " + plural(tt.wantOut.Purged, "entry", "entries") + "\n"; r.stdout != want {
				t.Errorf("stdout: want %q, got %q", want, r.stdout)
			}
			for _, id := range tt.wantOut.NotFound {
				if !strings.Contains(r.stderr, `dlq entry "`+id+`" not found`) {
					t.Errorf("stderr: want %s named, got %q", id, r.stderr)
				}
			}
			if got := h.dlqIDs(); strings.Join(got, ",") != strings.Join(tt.wantLeft, ",") {
				t.Errorf("entries left: want %q, got %q", tt.wantLeft, got)
			}

			// The same with --json, on a fresh seed.
			h = newHarness(t)
			h.seed()
			r = h.mustRun(tt.wantCode, append([]string{"--json", "dlq", "purge", "--yes"}, tt.args...)...)
			var out purgeOutput
			decodeJSON(t, r.stdout, &out)
			if out.Purged != tt.wantOut.Purged || strings.Join(out.NotFound, ",") != strings.Join(tt.wantOut.NotFound, ",") || out.NotFound == nil {
				t.Errorf("--json: want %+v, got %s", tt.wantOut, r.stdout)
			}
			if got := h.dlqIDs(); len(got) != len(tt.wantLeft) {
				t.Errorf("--json: entries left: want %q, got %q", tt.wantLeft, got)
			}
		})
	}
}

func TestDLQPurgeWithoutYesKeepsEntries(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.seed()
	h.mustRun(exitUsage, "dlq", "purge", "--all")
	if got := h.dlqIDs(); len(got) != 3 {
		t.Errorf("entries left: want all 3, got %q", got)
	}
	_, err := dlq.New(h.srv.Client(t)).Get(t.Context(), pandaponID)
	if errors.Is(err, dlq.ErrNotFound) {
		t.Errorf("entry %s: purged without --yes", pandaponID)
	}
}

// TestDLQCorruptEntry checks that one undecodable entry is listed as
// corrupt and stops neither list nor show nor purge.
func TestDLQCorruptEntry(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.seed()
	const bad = "meari:72:3:BAD"
	rdb := h.srv.Client(t)
	if err := rdb.HSet(t.Context(), dlq.PrefixDefault+"entries", bad, "{\"id\": truncated").Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"by_time", "by_time:meari"} {
		if err := rdb.ZAdd(t.Context(), dlq.PrefixDefault+k, redis.Z{Score: 1, Member: bad}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	r := h.mustRun(exitOK, "dlq", "list")
	if !strings.Contains(r.stdout, bad) || !strings.Contains(r.stdout, "CORRUPT: invalid character") || !strings.Contains(r.stdout, "total: 4 entries (showing 1-4)") ||
		!strings.Contains(r.stdout, pandaponID) || !strings.Contains(r.stdout, "meari:72:2:B2") {
		t.Errorf("list: want the three good entries and the corrupt one, got:\n%s", r.stdout)
	}
	r = h.mustRun(exitOK, "--json", "dlq", "list")
	var out listOutput
	decodeJSON(t, r.stdout, &out)
	if len(out.Entries) != 4 || out.Entries[0].ID != bad || out.Entries[0].Corrupt == "" || out.Entries[0].Raw != "{\"id\": truncated" {
		t.Errorf("--json list: want the corrupt entry first with its error and raw bytes, got %+v", out.Entries)
	}
	r = h.mustRun(exitOK, "dlq", "show", bad)
	if !strings.Contains(r.stdout, "corrupt:") || !strings.Contains(r.stdout, "truncated") {
		t.Errorf("show: want the corrupt entry described, got:\n%s", r.stdout)
	}
	r = h.run("dlq", "requeue", bad)
	if r.code != exitFailure || !strings.Contains(r.stderr, "corrupt") {
		t.Errorf("requeue of a corrupt entry: want exit 1 saying corrupt, got %s", r)
	}
	h.mustRun(exitOK, "dlq", "purge", bad, "--yes")
	if ids := h.dlqIDs(); len(ids) != 3 {
		t.Errorf("after purge: %v, want the three good entries", ids)
	}
}

// TestDLQRequeueConcurrent runs two `enqueue dlq requeue --all` at once
// over 300 entries, as two operators would: every order gets one task,
// each command's summary adds up, what one requeued the other reports as
// already requeued (not a failure), and both exit 0.
func TestDLQRequeueConcurrent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const n = 300
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range n {
		h.putEntry(meariEntry("1", fmt.Sprintf("CC%03d", i), "4001", dlq.ReasonPermanent, t0.Add(time.Duration(i)*time.Second)))
	}
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.run("dlq", "requeue", "--all")
		}()
	}
	wg.Wait()
	requeued, already := 0, 0
	summary := regexp.MustCompile(`(?m)^(\d+) requeued, (\d+) already requeued by another requeue, 0 dropped as already queued, 0 dropped as already cancelled, 0 failed$`)
	for _, r := range results {
		if r.code != exitOK {
			t.Fatalf("a concurrent requeue: %s", r)
		}
		r1 := strings.Count(r.stdout, "\nrequeued meari:") + map[bool]int{true: 1}[strings.HasPrefix(r.stdout, "requeued meari:")]
		a1 := strings.Count(r.stdout, "already requeued meari:")
		if m := summary.FindStringSubmatch(r.stdout); r.stdout != "nothing to requeue: the dead-letter queue is empty\n" && (m == nil || m[1] != strconv.Itoa(r1) || m[2] != strconv.Itoa(a1)) {
			t.Errorf("summary does not add up to the lines (%d requeued, %d already):\n%s", r1, a1, r)
		}
		requeued += r1
		already += a1
	}
	if requeued != n {
		t.Errorf("%d requeued by the two commands, want each of %d once", requeued, n)
	}
	if got := h.queueSize(tasks.QueueMeari); got != n {
		t.Errorf("%d tasks on the queue, want %d", got, n)
	}
	if left := h.dlqIDs(); len(left) != 0 {
		t.Errorf("%d entries left, want none", len(left))
	}
	t.Logf("requeued %d, already requeued %d; first command: %s", requeued, already, results[0].stdout[strings.LastIndex(strings.TrimSpace(results[0].stdout), "\n")+1:])
}

// TestDLQRequeueLiveTask: an entry whose order's task completed (run from
// the monitoring UI) is not sent again; the command says so, exits 0 and
// drops the stale entry. --force sends it again.
func TestDLQRequeueLiveTask(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rdb := h.srv.Client(t)
	enq := tasks.NewEnqueuer(rdb, tasks.Shards{})
	for _, num := range []string{"LIVE1", "LIVE2"} {
		task, err := tasks.NewMeariCancelTask(tasks.MeariCancel{SourceApp: 72, UserAccount: "u@x.com", OrderType: 1, OrderNum: num})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := enq.Enqueue(t.Context(), task, false); err != nil {
			t.Fatal(err)
		}
	}
	h.process(tasks.QueueMeari, func() error { return nil })
	for _, num := range []string{"LIVE1", "LIVE2"} {
		h.waitState(tasks.QueueMeari, "meari:72:1:"+num, asynq.TaskStateCompleted)
		h.putEntry(meariEntry("1", num, "4001", dlq.ReasonPermanent, time.Now().Add(-time.Hour)))
	}
	r := h.mustRun(exitOK, "dlq", "requeue", "meari:72:1:LIVE1")
	if !strings.Contains(r.stdout, "already cancelled meari:72:1:LIVE1 at ") || !strings.Contains(r.stdout, "dropped the stale entry (no new task)") {
		t.Errorf("requeue of an order already cancelled: want it said, got %s", r)
	}
	r = h.mustRun(exitOK, "dlq", "requeue", "--force", "meari:72:1:LIVE2")
	if !strings.Contains(r.stdout, "requeued meari:72:1:LIVE2: enqueued meari:72:1:LIVE2 on queue cancel:meari (replaced the earlier completed task)") {
		t.Errorf("forced requeue: want the completed task replaced, got %s", r)
	}
	if left := h.dlqIDs(); len(left) != 0 {
		t.Errorf("entries left %v, want none", left)
	}
	r = h.mustRun(exitOK, "dlq", "requeue", "meari:72:1:LIVE1")
	if !strings.Contains(r.stdout, "already requeued") || !strings.Contains(r.stdout, "dropped by a requeue: the order was already cancelled by ") {
		t.Errorf("requeue of the dropped entry again: want its trail, got %s", r)
	}
	r = h.mustRun(exitOK, "status", "meari", "LIVE1", "--order-type", "1")
	if !strings.Contains(r.stdout, "dead-letter history:") || !strings.Contains(r.stdout, "dropped by a requeue: the order was already cancelled by ") {
		t.Errorf("status: want the entry's history, got %s", r)
	}
}
