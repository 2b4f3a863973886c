package admin_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"
)

// TestCompactedTaskPage checks the monitoring UI's task page of a
// compacted completed task: asynqmon alone answers 500 WRONGTYPE (the key
// holds the compact integer, not asynq's hash); here it is a completed
// task saying it was compacted and how to see more, over the API and in
// Chromium.
func TestCompactedTaskPage(t *testing.T) {
	t.Parallel()
	r := newRig(t, config.Admin{})
	done := r.EnqueuePandaPon(t, "2542285634920880794", sandbox.OK())
	r.WaitState(t, done, asynq.TaskStateCompleted)
	if n, err := taskstore.New(r.RDB).Compact(t.Context(), done.Queue, 0, 10); err != nil || n != 1 {
		t.Fatalf("Compact: %d, %v", n, err)
	}
	api := "/monitoring/api/queues/" + url.PathEscape(done.Queue) + "/tasks/" + url.PathEscape(done.TaskID)
	code, body := get(t, r.base, api, "", "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s, want 200", api, code, body)
	}
	var task struct {
		ID, Queue, Type, State, Payload, Result string
		CompletedAt                             string `json:"completed_at"`
		TTL                                     int64  `json:"ttl_seconds"`
	}
	if err := json.Unmarshal([]byte(body), &task); err != nil {
		t.Fatal(err)
	}
	if task.ID != done.TaskID || task.Queue != done.Queue || task.Type != tasks.TypePandaPonCancel || task.State != "completed" ||
		task.CompletedAt == "" || task.TTL < int64((tasks.RetentionDefault-time.Hour).Seconds()) ||
		!strings.Contains(task.Result, "compacted") || !strings.Contains(task.Result, "`enqueue status pandapon 2542285634920880794`") {
		t.Errorf("compacted task: %+v", task)
	}
	// An order number with a '/', sent escaped.
	slash := r.EnqueueMeari(t, "A/B-1", sandbox.OK())
	r.WaitState(t, slash, asynq.TaskStateCompleted)
	if n, err := taskstore.New(r.RDB).Compact(t.Context(), slash.Queue, 0, 10); err != nil || n != 1 {
		t.Fatalf("Compact: %d, %v", n, err)
	}
	if code, body := get(t, r.base, "/monitoring/api/queues/"+url.PathEscape(slash.Queue)+"/tasks/"+url.PathEscape(slash.TaskID), "", ""); code != http.StatusOK ||
		!strings.Contains(body, "enqueue status meari A/B-1 --order-type 1") {
		t.Errorf("compacted task with a '/' in its order number: %d %s", code, body)
	}
	// A task that is not compacted is asynqmon's own answer.
	if code, body := get(t, r.base, "/monitoring/api/queues/"+url.PathEscape(done.Queue)+"/tasks/pandapon:1", "", ""); code != http.StatusNotFound {
		t.Errorf("GET of a task that does not exist: %d %s, want asynqmon's 404", code, body)
	}

	if testing.Short() {
		return
	}
	ctx := browser(t, 60*time.Second)
	err := chromedp.Do(ctx,
		chromedp.Navigate(r.base+"/monitoring/queues/"+done.Queue+"/tasks/"+done.TaskID),
		textIncludes(done.TaskID, "compacted: this order was cancelled at", "enqueue status pandapon 2542285634920880794"),
		screenshot(t, artifactDir(t), "compacted-task.png"),
	)
	if err != nil {
		failWithPage(t, ctx, err)
	}
}
