package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/status"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
)

const (
	pandaponOrder = "2542285634920880794"
	pandaponID    = "pandapon:" + pandaponOrder
)

func TestStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup brings the order to the state under test.
		setup     func(h *harness)
		wantCode  int
		wantHuman []string // substrings of the human output
		wantState status.State
		check     func(t *testing.T, st status.Status)
	}{
		{
			name:      "pending",
			setup:     func(h *harness) { h.mustRun(exitOK, "pandapon", "--order-id", pandaponOrder) },
			wantCode:  exitOK,
			wantHuman: []string{pandaponID + " (queue cancel:pandapon): pending\n", "order:", pandaponOrder},
			wantState: status.StatePending,
		},
		{
			name: "retry",
			setup: func(h *harness) {
				h.mustRun(exitOK, "pandapon", "--order-id", pandaponOrder)
				h.process(tasks.QueuePandaPon, func() error { return errors.New("pandapon: code 503: busy") })
				h.waitState(tasks.QueuePandaPon, pandaponID, asynq.TaskStateRetry)
			},
			wantCode:  exitOK,
			wantHuman: []string{": retry\n", "next attempt at:", "last error:", "pandapon: code 503: busy", "retried:", "last failed at:"},
			wantState: status.StateRetry,
			check: func(t *testing.T, st status.Status) {
				if st.NextAttemptAt == nil || !st.NextAttemptAt.After(time.Now().Add(30*time.Minute)) {
					t.Errorf("next_attempt_at: want about an hour from now, got %v", st.NextAttemptAt)
				}
				if st.LastError != "pandapon: code 503: busy" {
					t.Errorf("last_error: want the handler's error, got %q", st.LastError)
				}
			},
		},
		{
			name: "completed",
			setup: func(h *harness) {
				h.mustRun(exitOK, "pandapon", "--order-id", pandaponOrder)
				h.process(tasks.QueuePandaPon, func() error { return nil })
				h.waitState(tasks.QueuePandaPon, pandaponID, asynq.TaskStateCompleted)
			},
			wantCode:  exitOK,
			wantHuman: []string{": completed\n", "completed at:"},
			wantState: status.StateCompleted,
		},
		{
			name: "dead-lettered",
			setup: func(h *harness) {
				h.putEntry(pandaponEntry(time.Now()))
			},
			wantCode:  exitOK,
			wantHuman: []string{": dead-lettered\n", "reason:", "permanent (upstream code 200)", "last error:", "upstream refused the cancel", "enqueue dlq requeue " + pandaponID},
			wantState: status.StateDeadLettered,
			check: func(t *testing.T, st status.Status) {
				if st.DLQ == nil || st.DLQ.Reason != dlq.ReasonPermanent || st.DLQ.ID != pandaponID {
					t.Errorf("dlq: want the permanent entry, got %+v", st.DLQ)
				}
			},
		},
		{
			name:      "not found",
			setup:     func(*harness) {},
			wantCode:  exitFailure,
			wantHuman: []string{"not found: no task and no dead-letter entry for pandapon order " + pandaponOrder + "\n"},
			wantState: status.StateNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			tt.setup(h)

			r := h.mustRun(tt.wantCode, "status", "pandapon", pandaponOrder)
			for _, s := range tt.wantHuman {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout: want %q in it, got:\n%s", s, r.stdout)
				}
			}
			if r.stderr != "" {
				t.Errorf("stderr: want nothing, got %q", r.stderr)
			}

			r = h.mustRun(tt.wantCode, "--json", "status", "pandapon", pandaponOrder)
			var st status.Status
			decodeJSON(t, r.stdout, &st)
			if st.State != tt.wantState || st.TaskID != pandaponID || st.Queue != tasks.QueuePandaPon || st.Order != pandaponOrder {
				t.Errorf("--json: want %s %s on %s, got %+v", tt.wantState, pandaponID, tasks.QueuePandaPon, st)
			}
			if tt.check != nil {
				tt.check(t, st)
			}
		})
	}
}

func TestStatusMeari(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, typ := range []string{"1", "3"} {
		h.mustRun(exitOK, "meari", "--user-account", "u@x.com", "--order-type", typ, "--order-num", "A1")
	}

	// Without --order-type: every type found.
	r := h.mustRun(exitOK, "status", "meari", "A1")
	for _, s := range []string{"meari:72:1:A1 (queue cancel:meari): pending\n", "meari:72:3:A1 (queue cancel:meari): pending\n"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout: want %q in it, got:\n%s", s, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "meari:72:2:A1") {
		t.Errorf("stdout: want order type 2 left out, got:\n%s", r.stdout)
	}
	r = h.mustRun(exitOK, "--json", "status", "meari", "A1")
	var all []status.Status
	decodeJSON(t, r.stdout, &all)
	if len(all) != 2 || all[0].TaskID != "meari:72:1:A1" || all[1].TaskID != "meari:72:3:A1" || all[0].Order != "1:A1" {
		t.Errorf("--json: want types 1 and 3, got %+v", all)
	}

	// With --order-type and --source-app.
	r = h.mustRun(exitOK, "--json", "status", "meari", "A1", "--order-type", "3")
	var one status.Status
	decodeJSON(t, r.stdout, &one)
	if one.TaskID != "meari:72:3:A1" || one.State != status.StatePending {
		t.Errorf("--order-type 3 --json: want meari:72:3:A1 pending, got %+v", one)
	}
	r = h.mustRun(exitFailure, "status", "meari", "A1", "--order-type", "2")
	if want := "not found: no task and no dead-letter entry for meari order A1 (source app 72, order type 2)\n"; r.stdout != want {
		t.Errorf("--order-type 2: want %q, got %q", want, r.stdout)
	}
	r = h.mustRun(exitFailure, "status", "meari", "A1", "--source-app", "73")
	if !strings.Contains(r.stdout, "source app 73, order types 1, 2, 3") {
		t.Errorf("--source-app 73: want not found for every type, got %q", r.stdout)
	}
	r = h.mustRun(exitFailure, "--json", "status", "meari", "B2")
	decodeJSON(t, r.stdout, &all)
	if len(all) != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("--json, nothing found: want [], got %s", r.stdout)
	}
}

// putEntry stores e in the harness's dead-letter queue.
func (h *harness) putEntry(e dlq.Entry) dlq.Entry {
	h.t.Helper()
	e, err := dlq.New(h.srv.Client(h.t)).Put(h.t.Context(), e)
	if err != nil {
		h.t.Fatalf("dlq put: %v", err)
	}
	return e
}

func pandaponEntry(at time.Time) dlq.Entry {
	return dlq.Entry{
		ID:           pandaponID,
		Provider:     tasks.ProviderPandaPon,
		Order:        pandaponOrder,
		TaskType:     tasks.TypePandaPonCancel,
		Queue:        tasks.QueuePandaPon,
		Payload:      []byte(`{"order_id":2542285634920880794,"cancel_reason":"customer asked","requested_at":"2026-01-02T03:04:05Z"}`),
		Reason:       dlq.ReasonPermanent,
		UpstreamCode: "200",
		Message:      "upstream refused the cancel (data false)",
		Attempts:     1,
		LastFailedAt: at,
	}
}

func meariEntry(typ, num, code, reason string, at time.Time) dlq.Entry {
	return dlq.Entry{
		ID:           "meari:72:" + typ + ":" + num,
		Provider:     tasks.ProviderMeari,
		Order:        typ + ":" + num,
		TaskType:     tasks.TypeMeariCancel,
		Queue:        tasks.QueueMeari,
		Payload:      []byte(`{"source_app":72,"user_account":"u@x.com","order_type":` + typ + `,"order_num":"` + num + `","requested_at":"2026-01-02T03:04:05Z"}`),
		Reason:       reason,
		UpstreamCode: code,
		Message:      "resultCode " + code,
		Attempts:     8,
		LastFailedAt: at,
	}
}
