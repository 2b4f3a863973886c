package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/intake"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
)

// runStdin runs args against the harness's Redis with stdin as the input.
func (h *harness) runStdin(stdin io.Reader, args ...string) result {
	h.t.Helper()
	var stdout, stderr bytes.Buffer
	args = append([]string{"--redis-url", h.srv.URL}, args...)
	code := runIO(h.t.Context(), args, stdin, &stdout, &stderr, func(k string) string { return h.env[k] })
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// writeFile writes content to a new file in t's temporary directory.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cancellations.jsonl")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mixedFile has valid lines, duplicates within the file, an order queued
// before (1111111111111111111), and invalid lines, the last line without
// a newline.
var mixedFile = strings.Join([]string{
	/* 1 */ `{"provider":"meari","userAccount":"u@x.com","orderType":1,"orderNum":"A1"}`,
	/* 2 */ ``,
	/* 3 */ `{"provider":"pandapon","orderId":2542285634920880794,"cancelReason":"customer asked"}`,
	/* 4 */ `{"provider":"pandapon","orderId":"2542285634920880794"}`,
	/* 5 */ `{"provider":"pandapon","orderId":1111111111111111111}`,
	/* 6 */ `{"provider":"meari","userAccount":"u@x.com","orderType":7,"orderNum":"A2"}`,
	/* 7 */ `{"provider":"meari",`,
	/* 8 */ "\t{\"provider\":\"meari\",\"userAccount\":\"u@x.com\",\"orderType\":3,\"orderNum\":\"B2\",\"sourceApp\":73}\r",
	/* 9 */ `{"provider":"pandapon","orderId":2.5e18,"remark":5}`,
	/* 10 */ `{"provider":"pandapon","orderId":4,"remark":"` + strings.Repeat("x", maxLineBytes) + `"}`,
	/* 11 */ `{"provider":"meari","userAccount":"u@x.com","orderType":1,"orderNum":"A1"}`,
	/* 12 */ `   `,
	/* 13 */ `{"provider":"pandapon","orderId":3}`,
}, "\n")

// mixedErrors are the line errors of mixedFile, in order.
var mixedErrors = []lineError{
	{Line: 6, Kind: "invalid", Field: "orderType", Problem: "must be 1 (cloud), 2 (ai) or 3 (flow4g), got 7"},
	{Line: 7, Kind: "invalid", Field: "", Problem: "is not valid JSON: unexpected end of input"},
	{Line: 9, Kind: "invalid", Field: "orderId", Problem: `must be a positive integer of decimal digits, got "2.5e18"`},
	{Line: 9, Kind: "invalid", Field: "remark", Problem: "must be a string, got a number"},
	{Line: 10, Kind: "invalid", Field: "", Problem: "is longer than 65536 bytes"},
}

func TestEnqueueFileMixed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		stdin bool
		json  bool
		extra []string
	}{
		{name: "path"},
		{name: "stdin", stdin: true},
		{name: "path, --json", json: true},
		{name: "stdin, --json, one at a time", stdin: true, json: true, extra: []string{"--concurrency", "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.mustRun(exitOK, "pandapon", "--order-id", "1111111111111111111")

			args := []string{"file"}
			if tt.json {
				args = append([]string{"--json"}, args...)
			}
			var r result
			if tt.stdin {
				r = h.runStdin(strings.NewReader(mixedFile), append(append(args, "-"), tt.extra...)...)
			} else {
				r = h.run(append(append(args, writeFile(t, mixedFile)), tt.extra...)...)
			}
			if r.code != exitFailure {
				t.Fatalf("want exit %d (invalid lines), got %s", exitFailure, r)
			}

			if tt.json {
				var sum fileSummary
				decodeJSON(t, r.stdout, &sum)
				want := fileSummary{Lines: 11, Enqueued: 4, AlreadyQueued: 3, Invalid: 4, Errors: mixedErrors}
				if sum.Lines != want.Lines || sum.Enqueued != want.Enqueued || sum.AlreadyQueued != want.AlreadyQueued ||
					sum.Invalid != want.Invalid || sum.Failed != 0 || sum.Stopped != "" || !slices.Equal(sum.Errors, want.Errors) {
					t.Errorf("--json summary:\nwant %+v\ngot  %+v", want, sum)
				}
				if strings.Contains(r.stderr, "line ") {
					t.Errorf("--json: want the line errors in the JSON only, got stderr %q", r.stderr)
				}
			} else {
				if want := "enqueued 4, already queued 3, invalid 4\n"; r.stdout != want {
					t.Errorf("stdout: want %q, got %q", want, r.stdout)
				}
				var want string
				for _, e := range mixedErrors {
					want += "enqueue file: " + e.String() + "\n"
				}
				if r.stderr != want {
					t.Errorf("stderr:\nwant %q\ngot  %q", want, r.stderr)
				}
			}

			// The valid lines are enqueued, the first of each order.
			for _, tc := range []struct{ queue, id, payload string }{
				{tasks.QueueMeari, "meari:72:1:A1", `"order_num":"A1"`},
				{tasks.QueueMeari, "meari:73:3:B2", `"source_app":73`},
				{tasks.QueuePandaPon, "pandapon:2542285634920880794", `"order_id":2542285634920880794,"cancel_reason":"customer asked"`},
				{tasks.QueuePandaPon, "pandapon:3", `"order_id":3,`},
				{tasks.QueuePandaPon, "pandapon:1111111111111111111", `"order_id":1111111111111111111,`},
			} {
				info := h.taskInfo(tc.queue, tc.id)
				if info.State != asynq.TaskStatePending || !strings.Contains(string(info.Payload), tc.payload) {
					t.Errorf("task %s: want pending with %s, got %s %s", tc.id, tc.payload, info.State, info.Payload)
				}
			}
			if n := h.queueSize(tasks.QueueMeari); n != 2 {
				t.Errorf("meari queue: want 2 tasks, got %d", n)
			}
			if n := h.queueSize(tasks.QueuePandaPon); n != 3 {
				t.Errorf("pandapon queue: want 3 tasks, got %d", n)
			}
		})
	}
}

func TestEnqueueFileValid(t *testing.T) {
	t.Parallel()
	const n = 2500
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"provider":"pandapon","orderId":%d}`+"\n", 1000000000000000000+i)
	}
	h := newHarness(t)
	path := writeFile(t, b.String())

	r := h.mustRun(exitOK, "file", path)
	if want := "enqueued 2500, already queued 0, invalid 0\n"; r.stdout != want {
		t.Errorf("stdout: want %q, got %q", want, r.stdout)
	}
	// Not a terminal: plain progress lines every 1000 lines (and maybe
	// every 2 seconds).
	for _, want := range []string{
		"enqueue file: 1000 lines: enqueued ",
		"enqueue file: 2000 lines: enqueued ",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr: want a progress line %q, got %q", want, r.stderr)
		}
	}
	if n := h.queueSize(tasks.QueuePandaPon); n != 2500 {
		t.Errorf("want 2500 tasks, got %d", n)
	}

	r = h.mustRun(exitOK, "file", path)
	if want := "enqueued 0, already queued 2500, invalid 0\n"; r.stdout != want {
		t.Errorf("again: want %q, got %q", want, r.stdout)
	}

	r = h.mustRun(exitOK, "--json", "file", path, "--force")
	var sum fileSummary
	decodeJSON(t, r.stdout, &sum)
	if sum.Enqueued != n || sum.Replaced != n || sum.AlreadyQueued != 0 || sum.Lines != n || len(sum.Errors) != 0 {
		t.Errorf("--force: want %d enqueued, all replaced, got %+v", n, sum)
	}
	if n := h.queueSize(tasks.QueuePandaPon); n != 2500 {
		t.Errorf("after --force: want 2500 tasks, got %d", n)
	}
}

func TestEnqueueFileEmpty(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.runStdin(strings.NewReader("\n\n  \n"), "--json", "file", "-")
	if r.code != exitOK {
		t.Fatalf("want exit 0, got %s", r)
	}
	if want := "{\n  \"lines\": 0,\n  \"enqueued\": 0,\n  \"already_queued\": 0,\n  \"already_cancelled\": 0,\n  \"dead_lettered\": 0,\n  \"invalid\": 0,\n  \"failed\": 0,\n  \"errors\": []\n}\n"; r.stdout != want {
		t.Errorf("stdout: want %q, got %q", want, r.stdout)
	}
}

// failingEnqueuer enqueues PandaPon orders below from through next and
// fails the others with err, as a Redis that went down at order from
// would.
type failingEnqueuer struct {
	next intake.Target
	from tasks.OrderID
	err  error

	mu     sync.Mutex
	failed bool // a SubmitMany call has failed an order
	after  int  // SubmitMany calls made after that
}

func (f *failingEnqueuer) Submit(ctx context.Context, t *asynq.Task, force bool) (intake.Submission, error) {
	p, err := tasks.ParsePandaPonCancel(t.Payload())
	if err != nil {
		return intake.Submission{}, err
	}
	if p.OrderID >= f.from {
		return intake.Submission{}, f.err
	}
	return f.next.Submit(ctx, t, force)
}

// SubmitMany is Submit for each task, its own way: it fails the orders
// from on, and sends the others on to next together.
func (f *failingEnqueuer) SubmitMany(ctx context.Context, ts []*asynq.Task) []intake.Outcome {
	f.mu.Lock()
	if f.failed {
		f.after++
	}
	f.mu.Unlock()
	outs := make([]intake.Outcome, len(ts))
	var pass []*asynq.Task
	var at []int
	for i, t := range ts {
		p, err := tasks.ParsePandaPonCancel(t.Payload())
		switch {
		case err != nil:
			outs[i].Err = err
		case p.OrderID >= f.from:
			outs[i].Err = f.err
			f.mu.Lock()
			f.failed = true
			f.mu.Unlock()
		default:
			pass, at = append(pass, t), append(at, i)
		}
	}
	for j, out := range f.next.(intake.BatchTarget).SubmitMany(ctx, pass) {
		outs[at[j]] = out
	}
	return outs
}

// TestEnqueueFileStopsWhenRedisFails runs the file through batches (the
// default) and through a pool of single enqueues (as with --force, whose
// target here enqueues without it).
func TestEnqueueFileStopsWhenRedisFails(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"batches", "pool"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			down := errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
			f := &failingEnqueuer{next: intake.NewSubmitter(h.srv.Client(t), tasks.Shards{}, "test"), from: 100, err: down}
			if path == "pool" {
				testStopsWhenRedisFails(t, struct{ intake.Target }{f}, down) // no SubmitMany
				return
			}
			testStopsWhenRedisFails(t, f, down)
			// The batches read after the failure are reported failed
			// unsent, not each sent to wait out a failing Redis.
			if f.after != 0 {
				t.Errorf("%d batches sent after the first failure, want none", f.after)
			}
		})
	}
}

func testStopsWhenRedisFails(t *testing.T, enq intake.Target, down error) {
	const n = 500
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `{"provider":"pandapon","orderId":%d}`+"\n", i)
	}
	var stderr bytes.Buffer
	a := &app{stdout: io.Discard, stderr: &stderr, getenv: func(string) string { return "" }}
	sum := a.enqueueFile(t.Context(), enq, strings.NewReader(b.String()), -1, fileOptions{workers: 4})

	if !strings.HasPrefix(sum.Stopped, "stopped after line ") || !strings.Contains(sum.Stopped, down.Error()) {
		t.Errorf("stopped: want the Redis failure named, got %q", sum.Stopped)
	}
	if sum.Lines >= n || sum.Lines < 100 {
		t.Errorf("want reading to stop soon after line 100, read %d lines", sum.Lines)
	}
	if sum.Enqueued != 99 || sum.Failed != sum.Lines-99 || sum.Invalid != 0 {
		t.Errorf("want lines 1 to 99 enqueued and the rest read failed, got %+v", sum)
	}
	if len(sum.Errors) == 0 || sum.Errors[0] != (lineError{Line: 100, Kind: "failed", Problem: "not enqueued: " + down.Error()}) {
		t.Errorf("first error: want line 100 failed, got %+v", sum.Errors)
	}
	for i, e := range sum.Errors {
		if e.Line != 100+i {
			t.Errorf("errors out of line order: %+v", sum.Errors)
			break
		}
	}
	if !strings.Contains(stderr.String(), "enqueue file: line 100: not enqueued: "+down.Error()+"\n") ||
		!strings.Contains(stderr.String(), "enqueue file: stopped after line ") {
		t.Errorf("stderr: want line 100 and the stop reported, got %q", stderr.String())
	}
}

func TestLineReader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		max     int
		want    []string // "!" for a line too long
		wantOff int64
	}{
		{name: "newlines", in: "a\nbb\n", max: 4, want: []string{"a", "bb"}, wantOff: 5},
		{name: "no final newline", in: "a\nbb", max: 4, want: []string{"a", "bb"}, wantOff: 4},
		{name: "CRLF", in: "a\r\nbb\r\n", max: 4, want: []string{"a", "bb"}, wantOff: 7},
		{name: "byte order mark on the first line", in: "\uFEFFa\n\uFEFFb\n", max: 8, want: []string{"a", "\uFEFFb"}, wantOff: 10},
		{name: "exactly max", in: "abcd\nabcd\r\n", max: 4, want: []string{"abcd", "abcd"}, wantOff: 11},
		{name: "max plus one, in the buffer", in: "abcde\nx\n", max: 4, want: []string{"!", "x"}, wantOff: 8},
		{name: "far past max", in: strings.Repeat("y", 50) + "\nx\n" + strings.Repeat("z", 30), max: 4, want: []string{"!", "x", "!"}, wantOff: 83},
		{name: "empty", in: "", max: 4, want: nil},
		{name: "blank lines kept", in: "\n\n", max: 4, want: []string{"", ""}, wantOff: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lr := newLineReader(strings.NewReader(tt.in), tt.max)
			var got []string
			for {
				line, tooLong, err := lr.next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if tooLong {
					got = append(got, "!")
				} else {
					got = append(got, string(line))
				}
				if lr.n != len(got) {
					t.Errorf("line number: want %d, got %d", len(got), lr.n)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("lines: want %q, got %q", tt.want, got)
			}
			if lr.offset != tt.wantOff {
				t.Errorf("offset: want %d, got %d", tt.wantOff, lr.offset)
			}
		})
	}
}

func TestBarProgress(t *testing.T) {
	t.Parallel()
	for _, size := range []int64{-1, 1000} {
		var buf bytes.Buffer
		p := newBarProgress(&buf, size)
		sum := &fileSummary{Lines: 10, Enqueued: 9, Invalid: 1}
		p.update(sum, 500)
		p.print(func(w io.Writer) { fmt.Fprintln(w, "enqueue file: line 3: oops") })
		p.tick(sum)
		p.done(sum)
		if !strings.Contains(buf.String(), "10 lines: enqueued 9, already queued 0, invalid 1") || !strings.Contains(buf.String(), "line 3: oops\n") {
			t.Errorf("size %d: want the counts and the message drawn, got %q", size, buf.String())
		}
	}
}

// TestEnqueueFileTellsTheTruth checks that lines whose orders are
// dead-lettered or already cancelled are counted as such, the first a
// failure with the way on, and that a line's "force" replaces its order.
func TestEnqueueFileTellsTheTruth(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mustRun(exitOK, "pandapon", "--order-id", "1001")
	h.mustRun(exitOK, "pandapon", "--order-id", "1002")
	h.mustRun(exitOK, "meari", "--user-account", "u@x.com", "--order-type", "1", "--order-num", "A1")
	if err := h.insp.ArchiveTask(tasks.QueuePandaPon, "pandapon:1001"); err != nil {
		t.Fatal(err)
	}
	e := pandaponEntry(time.Now())
	e.ID, e.Order, e.Payload = "pandapon:1001", "1001", []byte(`{"order_id":1001}`)
	h.putEntry(e)
	h.process(tasks.QueuePandaPon, func() error { return nil })
	h.waitState(tasks.QueuePandaPon, "pandapon:1002", asynq.TaskStateCompleted)

	path := writeFile(t, `{"provider":"pandapon","orderId":1001}
{"provider":"pandapon","orderId":1002}
{"provider":"meari","userAccount":"u@x.com","orderType":1,"orderNum":"A1"}
{"provider":"pandapon","orderId":1001,"force":true}
`)
	r := h.mustRun(exitFailure, "file", path)
	if want := "enqueued 1 (1 replaced), already queued 1, already cancelled 1, dead-lettered 1, invalid 0\n"; r.stdout != want {
		t.Errorf("stdout: want %q, got %q", want, r.stdout)
	}
	if !strings.Contains(r.stderr, "line 1: pandapon:1001: the order is in the dead-letter queue (permanent); send it again with force, or requeue it with `enqueue dlq requeue pandapon:1001`") {
		t.Errorf("stderr: want line 1 explained, got %q", r.stderr)
	}
	if ids := h.dlqIDs(); len(ids) != 0 {
		t.Errorf("the forced order's dead-letter entry stayed: %v", ids)
	}
}

// TestEnqueueFileInvalidLinesAfterAValidOne has one valid line followed by
// more invalid lines than the summary's queue holds: the valid line's
// batch must go out without waiting to be full, or the run never ends.
func TestEnqueueFileInvalidLinesAfterAValidOne(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var b strings.Builder
	b.WriteString(`{"provider":"pandapon","orderId":7}` + "\n")
	for range 50 {
		b.WriteString(`{"provider":"pandapon"}` + "\n")
	}
	b.WriteString(`{"provider":"pandapon","orderId":8}` + "\n")
	a := &app{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	done := make(chan *fileSummary, 1)
	go func() {
		done <- a.enqueueFile(t.Context(), intake.NewSubmitter(h.srv.Client(t), tasks.Shards{}, "test"), strings.NewReader(b.String()), -1, fileOptions{workers: 4})
	}()
	select {
	case sum := <-done:
		if sum.Lines != 52 || sum.Enqueued != 2 || sum.Invalid != 50 || sum.Stopped != "" {
			t.Errorf("summary: %+v, want 2 enqueued and 50 invalid of 52 lines", sum)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("enqueue file did not finish: the valid line's batch never went out")
	}
}

// TestEnqueueFileFromAPipeDoesNotWait writes one line and the start of
// the next to enqueue file's input and waits, with the pipe open: the
// whole line must be enqueued before the rest of the next one comes.
func TestEnqueueFileFromAPipeDoesNotWait(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pr, pw := io.Pipe()
	t.Cleanup(func() { _ = pw.Close() })
	a := &app{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	done := make(chan *fileSummary, 1)
	go func() {
		done <- a.enqueueFile(t.Context(), intake.NewSubmitter(h.srv.Client(t), tasks.Shards{}, "test"), pr, -1, fileOptions{workers: 256})
	}()
	if _, err := io.WriteString(pw, `{"provider":"pandapon","orderId":9}`+"\n"+`{"provider":"pand`); err != nil {
		t.Fatal(err)
	}
	rdb := h.srv.Client(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := rdb.LLen(t.Context(), "asynq:{"+tasks.QueuePandaPon+"}:pending").Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the line written to the pipe was not enqueued while the pipe stayed open")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := io.WriteString(pw, `apon","orderId":10}`+"\n"); err != nil {
		t.Fatal(err)
	}
	_ = pw.Close()
	if sum := <-done; sum.Enqueued != 2 || sum.Lines != 2 {
		t.Errorf("summary: %+v", sum)
	}
}
