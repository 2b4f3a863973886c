package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/httpserve"
	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/redis/go-redis/v9"
)

// compactedView answers the monitoring UI's task page for a compacted
// completed task, which asynq's Inspector cannot read (the key holds one
// integer, not asynq's hash: asynqmon would answer 500 WRONGTYPE). It
// answers in asynqmon's own task format, saying what is kept and where to
// look; every other task goes on to asynqmon.
type compactedView struct {
	next  http.Handler
	rdb   redis.UniversalClient
	store *taskstore.Store
}

// taskPagePrefix is the path of asynqmon's task API before the queue.
const taskPagePrefix = MonitoringPath + "api/queues/"

func (v compactedView) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	queue, id, ok := taskPageOf(r)
	if !ok {
		v.next.ServeHTTP(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	task, err := v.store.Peek(ctx, queue, id)
	if err != nil || !task.Compact {
		v.next.ServeHTTP(w, r)
		return
	}
	ttl, _ := v.rdb.TTL(ctx, taskstore.TaskKey(queue, id)).Result()
	note := compactedNote(id, task.CompletedAt)
	httpserve.WriteJSON(w, http.StatusOK, asynqmonTask{
		ID: id, Queue: queue, Type: tasks.TypeFor(providerOfID(id)),
		Payload: note, State: "completed", Retried: task.Retried,
		CompletedAt: task.CompletedAt.Format(time.RFC3339), Result: note, TTL: int64(max(ttl, 0).Seconds()),
	})
}

// taskPageOf returns the queue and task ID of a GET of asynqmon's task
// API (.../api/queues/{queue}/tasks/{id}).
func taskPageOf(r *http.Request) (queue, id string, ok bool) {
	if r.Method != http.MethodGet {
		return "", "", false
	}
	// The escaped path: an order number may hold a '/', sent as %2F.
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), taskPagePrefix)
	if !ok {
		return "", "", false
	}
	q, i, ok := strings.Cut(rest, "/tasks/")
	if !ok || strings.Contains(q, "/") || strings.Contains(i, "/") {
		return "", "", false
	}
	queue, err1 := url.PathUnescape(q)
	id, err2 := url.PathUnescape(i)
	if err1 != nil || err2 != nil || queue == "" || id == "" {
		return "", "", false
	}
	return queue, id, true
}

// providerOfID returns the provider a task ID names, "" for none.
func providerOfID(id string) string {
	p, _, _ := tasks.ParseTaskID(id)
	return p
}

// compactedNote says what a compacted task keeps and how to see more.
func compactedNote(id string, completedAt time.Time) string {
	how := "`enqueue status`"
	switch f := strings.Split(id, ":"); {
	case len(f) == 4 && f[0] == tasks.ProviderMeari:
		how = fmt.Sprintf("`enqueue status meari %s --order-type %s --source-app %s`", f[3], f[2], f[1])
	case len(f) == 2 && f[0] == tasks.ProviderPandaPon:
		how = "`enqueue status pandapon " + f[1] + "`"
	}
	return fmt.Sprintf("compacted: this order was cancelled at %s; only that time and the retry count are kept until the retention ends (dedupe and status still answer). Its payload is no longer in Redis: %s shows the order's status and dead-letter history.",
		completedAt.Format(time.RFC3339), how)
}

// asynqmonTask is asynqmon's JSON form of a task (its taskInfo).
type asynqmonTask struct {
	ID            string `json:"id"`
	Queue         string `json:"queue"`
	Type          string `json:"type"`
	Payload       string `json:"payload"`
	State         string `json:"state"`
	MaxRetry      int    `json:"max_retry"`
	Retried       int    `json:"retried"`
	LastErr       string `json:"error_message"`
	LastFailedAt  string `json:"last_failed_at"`
	Timeout       int    `json:"timeout_seconds"`
	Deadline      string `json:"deadline"`
	NextProcessAt string `json:"next_process_at"`
	CompletedAt   string `json:"completed_at"`
	Result        string `json:"result"`
	TTL           int64  `json:"ttl_seconds"`
}
