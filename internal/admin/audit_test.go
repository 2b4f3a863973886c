package admin_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/admin"
	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// apiCall makes a same-origin request to the monitoring UI's API, as the
// UI's page does, with basic auth, and returns the status, body and
// refusal header.
func apiCall(t *testing.T, r *rig, method, path, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, r.base+"/monitoring/api/"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", r.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("ops", "ops-password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get(admin.RefusedHeader)
}

// TestMonitoringUIActions drives the monitoring UI's API as an operator
// would: every delete is refused with a 403 that says what to do instead
// and removes nothing; an archive files the dead-letter entry at once,
// naming who; a run passes; each action is one audit line with who, what
// and which tasks, and counted in cancelworker_operator_actions_total.
func TestMonitoringUIActions(t *testing.T) {
	t.Parallel()
	r := newRig(t, config.Admin{User: "ops", Password: "ops-password"})
	q := tasks.QueueMeari
	// A task in each state: completed, archived (dead-lettered), retrying
	// (for an hour), and then, the queue paused, four pending.
	done := r.EnqueueMeari(t, "UI-DONE", sandbox.OK())
	dead := r.EnqueueMeari(t, "UI-DEAD", sandbox.MeariCode("4001"))
	retrying := r.EnqueueMeari(t, "UI-RETRY", sandbox.RetryAfter(503, time.Hour))
	r.WaitState(t, done, asynq.TaskStateCompleted)
	r.WaitState(t, dead, asynq.TaskStateArchived)
	r.WaitState(t, retrying, asynq.TaskStateRetry)
	if err := r.Inspector.PauseQueue(q); err != nil { // the tasks stay put
		t.Fatal(err)
	}
	var pending []tasks.Result
	for i := range 4 {
		pending = append(pending, r.EnqueueMeari(t, fmt.Sprintf("UI-%d", i), sandbox.OK()))
	}

	for _, tc := range []struct {
		name, method, path, body, want string
	}{
		{"delete one pending", "DELETE", "queues/" + q + "/pending_tasks/" + pending[0].TaskID, "", "Archive it instead"},
		{"delete a batch", "POST", "queues/" + q + "/pending_tasks:batch_delete", `{"task_ids":["` + pending[0].TaskID + `","` + pending[1].TaskID + `"]}`, "Archive it instead"},
		{"delete all pending", "DELETE", "queues/" + q + "/pending_tasks:delete_all", "", "drops its order without a trace"},
		{"delete all retrying", "DELETE", "queues/" + q + "/retry_tasks:delete_all", "", "drops its order without a trace"},
		{"delete all scheduled", "DELETE", "queues/" + q + "/scheduled_tasks:delete_all", "", "drops its order without a trace"},
		{"delete all archived", "DELETE", "queues/" + q + "/archived_tasks:delete_all", "", "purge its dead-letter entry on the dead-letter page"},
		{"delete an archived one", "DELETE", "queues/" + q + "/archived_tasks/" + dead.TaskID, "", "purge its dead-letter entry on the dead-letter page"},
		{"delete a retrying one", "DELETE", "queues/" + q + "/retry_tasks/" + retrying.TaskID, "", "Archive it instead"},
		{"delete a completed one", "DELETE", "queues/" + q + "/completed_tasks/" + done.TaskID, "", "its order's record"},
		{"delete all completed", "DELETE", "queues/" + q + "/completed_tasks:delete_all", "", "its order's record"},
		{"an unknown write", "POST", "queues/" + q + "/pending_tasks:frobnicate_all", "", "not an action the admin server knows"},
	} {
		code, body, refused := apiCall(t, r, tc.method, tc.path, tc.body)
		if code != http.StatusForbidden || refused != "1" || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d (refused header %q) %q; want 403 saying %q", tc.name, code, refused, body, tc.want)
		}
	}
	info, err := r.Inspector.GetQueueInfo(q)
	if err != nil || info.Pending != 4 || info.Archived != 1 || info.Retry != 1 || info.Completed != 1 {
		t.Fatalf("after the refused deletes: %+v, %v; want 4 pending, 1 archived, 1 retrying, 1 completed", info, err)
	}

	// Archive one and a batch: each gets its entry at once, naming who.
	if code, body, _ := apiCall(t, r, "POST", "queues/"+q+"/pending_tasks/"+pending[0].TaskID+":archive", ""); code >= 300 {
		t.Fatalf("archive one: %d %s", code, body)
	}
	if code, body, _ := apiCall(t, r, "POST", "queues/"+q+"/pending_tasks:batch_archive", `{"task_ids":["`+pending[1].TaskID+`","`+pending[2].TaskID+`"]}`); code >= 300 {
		t.Fatalf("archive a batch: %d %s", code, body)
	}
	for _, p := range pending[:3] {
		e, err := r.DLQ.Get(t.Context(), p.TaskID)
		if err != nil || e.Reason != dlq.ReasonArchived || !strings.HasPrefix(e.Message, "archived by ops in the monitoring UI") || e.LastFailedAt.IsZero() {
			t.Errorf("entry of %s after the archive: %+v, %v; want reason archived, by ops", p.TaskID, e, err)
		}
	}
	// Run one from the archive, resume the queue: both pass.
	if code, body, _ := apiCall(t, r, "POST", "queues/"+q+"/archived_tasks/"+pending[0].TaskID+":run", ""); code >= 300 {
		t.Fatalf("run: %d %s", code, body)
	}
	if code, body, _ := apiCall(t, r, "POST", "queues/"+q+":resume", ""); code >= 300 {
		t.Fatalf("resume: %d %s", code, body)
	}
	r.WaitState(t, pending[0], asynq.TaskStateCompleted)
	r.WaitState(t, pending[3], asynq.TaskStateCompleted)
	// The archived and run task's success removed its entry.
	workertest.Wait(t, "the run task's entry removed", func() (bool, string) {
		_, err := r.DLQ.Get(t.Context(), pending[0].TaskID)
		return errors.Is(err, dlq.ErrNotFound), fmt.Sprint(err)
	})

	// One audit line per action, with who, what and which tasks.
	lines := r.Logs.FilterMessage("operator action").All()
	byAction := map[string]int{}
	for _, l := range lines {
		f := l.ContextMap()
		if f["user"] != "ops" || f["via"] != "monitoring UI" {
			t.Errorf("audit line %v: want user ops via the monitoring UI", f)
		}
		byAction[fmt.Sprint(f["action"], "/", f["result"])]++
	}
	want := map[string]int{"delete/refused": 10, "unknown/refused": 1, "archive/done": 2, "run/done": 1, "resume_queue/done": 1}
	if fmt.Sprint(byAction) != fmt.Sprint(want) {
		t.Errorf("audit lines by action/result %v, want %v", byAction, want)
	}
	for _, l := range lines {
		if f := l.ContextMap(); f["action"] == "archive" && f["scope"] == "batch" {
			if fmt.Sprint(f["ids"]) != fmt.Sprint([]any{pending[1].TaskID, pending[2].TaskID}) || f["dead_lettered"] != int64(2) {
				t.Errorf("batch archive audit line %v: want both IDs, 2 dead-lettered", f)
			}
		}
	}
	_, body := get(t, r.base, admin.MetricsPath, "ops", "ops-password")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	// Every known action and result is there from the start, at zero.
	counted := map[string]float64{}
	all := series(t, fams, "cancelworker_operator_actions_total")
	if _, ok := all["action=purge,result=failed"]; !ok {
		t.Errorf("cancelworker_operator_actions_total lacks the series of an action not taken: %v", all)
	}
	for k, v := range all {
		if v != 0 {
			counted[k] = v
		}
	}
	equal(t, "cancelworker_operator_actions_total", counted, map[string]float64{
		"action=delete,result=refused": 10, "action=other,result=refused": 1, "action=archive,result=done": 2,
		"action=run,result=done": 1, "action=resume_queue,result=done": 1,
	})
}
