package main

import (
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/intake"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
)

func TestEnqueue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		args        []string
		env         map[string]string
		taskID      string
		queue       string
		taskType    string
		payloadHave []string // substrings of the payload bytes
	}{
		{
			name:        "meari, source app from the environment",
			args:        []string{"meari", "--user-account", "test@123.com", "--order-type", "1", "--order-num", "01582572KS0209053"},
			env:         map[string]string{envSourceApp: "72"},
			taskID:      "meari:72:1:01582572KS0209053",
			queue:       tasks.QueueMeari,
			taskType:    tasks.TypeMeariCancel,
			payloadHave: []string{`"source_app":72`, `"user_account":"test@123.com"`, `"order_type":1`, `"order_num":"01582572KS0209053"`},
		},
		{
			name:        "meari, the flag wins over the environment",
			args:        []string{"meari", "--source-app", "73", "--user-account", "u", "--order-type", "3", "--order-num", "N1"},
			env:         map[string]string{envSourceApp: "72"},
			taskID:      "meari:73:3:N1",
			queue:       tasks.QueueMeari,
			taskType:    tasks.TypeMeariCancel,
			payloadHave: []string{`"source_app":73`, `"order_type":3`},
		},
		{
			name:        "pandapon, 19-digit order ID kept exact",
			args:        []string{"pandapon", "--order-id", "2542285634920880794", "--reason", "customer asked", "--remark", "ticket 881"},
			taskID:      "pandapon:2542285634920880794",
			queue:       tasks.QueuePandaPon,
			taskType:    tasks.TypePandaPonCancel,
			payloadHave: []string{`"order_id":2542285634920880794`, `"cancel_reason":"customer asked"`, `"remark":"ticket 881"`},
		},
		{
			name:        "pandapon, largest int64",
			args:        []string{"pandapon", "--order-id", "9223372036854775807"},
			taskID:      "pandapon:9223372036854775807",
			queue:       tasks.QueuePandaPon,
			taskType:    tasks.TypePandaPonCancel,
			payloadHave: []string{`"order_id":9223372036854775807`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.env = tt.env

			r := h.mustRun(exitOK, tt.args...)
			if want := "enqueued " + tt.taskID + " on queue " + tt.queue + "\n"; r.stdout != want {
				t.Errorf("stdout: want %q, got %q", want, r.stdout)
			}
			info := h.taskInfo(tt.queue, tt.taskID)
			if info.Type != tt.taskType || info.State != asynq.TaskStatePending {
				t.Errorf("task: want a pending %s, got a %s %s", tt.taskType, info.State, info.Type)
			}
			for _, s := range tt.payloadHave {
				if !strings.Contains(string(info.Payload), s) {
					t.Errorf("payload %s: want %s in it", info.Payload, s)
				}
			}

			r = h.mustRun(exitOK, tt.args...)
			if want := "already queued " + tt.taskID + " (pending; no new task)\n"; r.stdout != want {
				t.Errorf("second enqueue, stdout: want %q, got %q", want, r.stdout)
			}
			if n := h.queueSize(tt.queue); n != 1 {
				t.Errorf("after two enqueues: want 1 task in %s, got %d", tt.queue, n)
			}

			r = h.mustRun(exitOK, append([]string{"--json"}, tt.args...)...)
			var out struct {
				Provider      string `json:"provider"`
				TaskID        string `json:"task_id"`
				Queue         string `json:"queue"`
				AlreadyQueued bool   `json:"already_queued"`
			}
			decodeJSON(t, r.stdout, &out)
			if out.TaskID != tt.taskID || out.Queue != tt.queue || !out.AlreadyQueued || out.Provider != tasks.ProviderOf(tt.taskType) {
				t.Errorf("--json: want %s on %s already queued, got %+v", tt.taskID, tt.queue, out)
			}
		})
	}
}

func TestEnqueueJSONKeepsOrderIDDigits(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.mustRun(exitOK, "--json", "pandapon", "--order-id", "2542285634920880794")
	if !strings.Contains(r.stdout, `"order": "2542285634920880794"`) || !strings.Contains(r.stdout, `"task_id": "pandapon:2542285634920880794"`) {
		t.Errorf("--json output lost the order ID's digits:\n%s", r.stdout)
	}
	var out map[string]any
	decodeJSON(t, r.stdout, &out)
	if out["already_queued"] != false {
		t.Errorf("already_queued: want false, got %v", out["already_queued"])
	}
}

// TestEnqueueForce finishes an order's task in each way it can end, then
// enqueues the order again: without --force the command tells the truth
// (exit 0 only for an already cancelled order), with it the task is
// replaced, and a dead-letter entry goes with it.
func TestEnqueueForce(t *testing.T) {
	t.Parallel()
	const (
		id    = "pandapon:2542285634920880794"
		queue = tasks.QueuePandaPon
	)
	args := []string{"pandapon", "--order-id", "2542285634920880794"}
	archive := func(h *harness) {
		if err := h.insp.ArchiveTask(queue, id); err != nil {
			h.t.Fatalf("archive: %v", err)
		}
	}
	tests := []struct {
		name string
		// finish brings the enqueued task to its finished state.
		finish   func(h *harness)
		state    asynq.TaskState
		wantCode int
		wantOut  string // stdout without --force
		wantHint string // in stderr without --force
	}{
		{
			name:     "archived without an entry",
			finish:   archive,
			state:    asynq.TaskStateArchived,
			wantCode: exitFailure, wantOut: "archived " + id + " (no new task)\n", wantHint: "send it again with force",
		},
		{
			name: "dead-lettered",
			finish: func(h *harness) {
				archive(h)
				e := pandaponEntry(time.Now())
				e.OutcomeUnknown = true
				h.putEntry(e)
			},
			state:    asynq.TaskStateArchived,
			wantCode: exitFailure, wantOut: "dead-lettered " + id + " (permanent; no new task)\n", wantHint: "enqueue dlq requeue " + id,
		},
		{
			name:     "completed",
			finish:   func(h *harness) { h.process(queue, func() error { return nil }) },
			state:    asynq.TaskStateCompleted,
			wantCode: exitOK, wantOut: "already cancelled " + id + " (completed; no new task)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.mustRun(exitOK, args...)
			tt.finish(h)
			h.waitState(queue, id, tt.state)

			r := h.mustRun(tt.wantCode, args...)
			if r.stdout != tt.wantOut || !strings.Contains(r.stderr, tt.wantHint) {
				t.Errorf("without --force: want %q and %q on stderr, got %s", tt.wantOut, tt.wantHint, r)
			}
			if got := h.taskInfo(queue, id).State; got != tt.state {
				t.Errorf("without --force: want the task still %s, got %s", tt.state, got)
			}
			r = h.mustRun(tt.wantCode, append([]string{"--json"}, args...)...)
			var out intake.Submission
			decodeJSON(t, r.stdout, &out)
			if out.AlreadyQueued != true || out.Result.State != tt.state.String() {
				t.Errorf("--json without --force: %+v", out)
			}

			r = h.mustRun(exitOK, append(args, "--force")...)
			if want := "enqueued " + id + " on queue " + queue + " (replaced the earlier " + tt.state.String() + " task)\n"; r.stdout != want {
				t.Errorf("--force: want %q, got %q", want, r.stdout)
			}
			if tt.state != asynq.TaskStateCompleted {
				// With a server running, the new task may already be done.
				info := h.taskInfo(queue, id)
				if info.State != asynq.TaskStatePending {
					t.Errorf("--force: want the task pending, got %s", info.State)
				}
				if wantMark := tt.name == "dead-lettered"; tasks.PriorOutcomeUnknown(asynq.NewTaskWithHeaders(info.Type, nil, info.Headers)) != wantMark {
					t.Errorf("--force: the new task's prior-outcome-unknown mark is %v, want %v (from the entry)", !wantMark, wantMark)
				}
			}
			if n := h.queueSize(queue); n != 1 {
				t.Errorf("--force: want 1 task, got %d", n)
			}
			if ids := h.dlqIDs(); len(ids) != 0 {
				t.Errorf("--force: the dead-letter entry stayed: %v", ids)
			}
		})
	}
}

func TestEnqueueForceActive(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	args := []string{"meari", "--user-account", "u", "--order-type", "2", "--order-num", "A1"}
	h.mustRun(exitOK, args...)
	started, release := make(chan struct{}), make(chan struct{})
	h.process(tasks.QueueMeari, func() error {
		close(started)
		<-release
		return nil
	})
	t.Cleanup(func() { close(release) }) // before the server's shutdown: cleanups run last in, first out
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the task never started")
	}
	h.waitState(tasks.QueueMeari, "meari:72:2:A1", asynq.TaskStateActive)

	r := h.mustRun(exitFailure, append(args, "--force")...)
	if !strings.Contains(r.stderr, "being processed right now") {
		t.Errorf("stderr: want the active task named, got %q", r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("stdout: want nothing, got %q", r.stdout)
	}
}
