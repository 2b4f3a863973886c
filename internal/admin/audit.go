package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/httpserve"
	"github.com/hibiken/asynq"
	"go.uber.org/zap"
)

// Operator actions on tasks, as the audit line (field action) and
// cancelworker_operator_actions_total{action} name them.
const (
	ActionDelete      = "delete"
	ActionArchive     = "archive"
	ActionRun         = "run"
	ActionCancel      = "cancel"
	ActionPauseQueue  = "pause_queue"
	ActionResumeQueue = "resume_queue"
	ActionDeleteQueue = "delete_queue"
	ActionRequeue     = "requeue"
	ActionPurge       = "purge"
)

// Results of an operator action.
const (
	ResultDone    = "done"
	ResultRefused = "refused"
	ResultFailed  = "failed"
)

// Observer is told of every operator action and its result, for metrics.
type Observer interface {
	OperatorAction(action, result string)
}

// RefusedHeader marks an answer of the admin server that refused an
// action of the monitoring UI; the script added to the UI's pages shows
// its text in a banner, since the UI itself shows nothing for a failure.
const RefusedHeader = "X-Cancelworker-Refused"

// auditIDsShown is the most task IDs one audit line lists; the count of
// all is in ids_total.
const auditIDsShown = 100

// operatorOf names who made r: the basic auth user, or "anonymous" and
// the address the request came from.
func operatorOf(r *http.Request) string {
	if user, _, ok := r.BasicAuth(); ok && user != "" {
		return user
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "anonymous@" + host
}

// auditor writes one info line per operator action, "operator action",
// with who, what and which tasks, and counts it.
type auditor struct {
	log *zap.Logger
	obs Observer // nil: none
}

// taskAction is one operator action on tasks.
type taskAction struct {
	Action string
	Via    string // "monitoring UI" or "dead-letter page"
	Queue  string
	State  string // the tasks' state: pending, scheduled, retry, archived, completed, active, aggregating
	Group  string // for aggregating tasks
	Scope  string // one, batch or all
	IDs    []string
}

func (a auditor) record(r *http.Request, act taskAction, result string, extra ...zap.Field) {
	if a.obs != nil {
		a.obs.OperatorAction(act.Action, result)
	}
	ids := act.IDs
	if len(ids) > auditIDsShown {
		ids = ids[:auditIDsShown]
	}
	fields := []zap.Field{
		zap.String("action", act.Action), zap.String("result", result), zap.String("user", operatorOf(r)), zap.String("via", act.Via),
		zap.String("remote", r.RemoteAddr),
	}
	if act.Queue != "" {
		fields = append(fields, zap.String("queue", act.Queue))
	}
	if act.State != "" {
		fields = append(fields, zap.String("task_state", act.State))
	}
	if act.Group != "" {
		fields = append(fields, zap.String("group", act.Group))
	}
	if act.Scope != "" {
		fields = append(fields, zap.String("scope", act.Scope))
	}
	if len(act.IDs) > 0 {
		fields = append(fields, zap.Strings("ids", ids), zap.Int("ids_total", len(act.IDs)))
	}
	a.log.Info("operator action", append(fields, extra...)...)
}

// apiGuard stands in front of the monitoring UI's API: every request
// that changes something is audited, and those that would drop an order
// without a trace are refused. In detail:
//
//   - delete, of a task in any state, one, a batch or all: refused (403),
//     with the way to do it that leaves a trace: archive a waiting task
//     (it then has a dead-letter entry), purge a dead-letter entry on the
//     dead-letter page or with `enqueue dlq purge` (which deletes its
//     archived task too); a completed task is the order's record and goes
//     by itself;
//   - archive of one task or a batch: passed on, then each archived task
//     gets its dead-letter entry at once, saying who archived it (archive
//     all is left to the worker's reconciler, within its interval);
//   - run, cancel, pause, resume, delete of a queue (asynq refuses a
//     queue that holds tasks): passed on and audited;
//   - anything else that is not a read: refused, as unknown.
type apiGuard struct {
	next  http.Handler
	store *dlq.Store
	insp  *asynq.Inspector
	audit auditor
}

// apiBodyMax bounds a batch request's body: asynqmon posts at most a page
// of task IDs.
const apiBodyMax = 1 << 20

func (g *apiGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead || !strings.HasPrefix(r.URL.Path, MonitoringPath+"api/") {
		g.next.ServeHTTP(w, r)
		return
	}
	act, err := parseAPIAction(r)
	if err != nil {
		g.audit.record(r, taskAction{Action: "unknown", Via: "monitoring UI"}, ResultRefused, zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
		refuse(w, http.StatusForbidden, "refused: "+err.Error())
		return
	}
	if act.Action == ActionDelete {
		g.audit.record(r, act, ResultRefused)
		refuse(w, http.StatusForbidden, deleteRefusal(act.State))
		return
	}
	rec := httpserve.NewStatusWriter(w)
	g.next.ServeHTTP(rec, r)
	result := ResultDone
	if rec.Status >= 300 {
		result = ResultFailed
	}
	var extra []zap.Field
	if rec.Status >= 300 {
		extra = append(extra, zap.Int("status", rec.Status))
	}
	if act.Action == ActionArchive && result == ResultDone && len(act.IDs) > 0 {
		filed := g.fileArchived(r, act)
		extra = append(extra, zap.Int("dead_lettered", filed))
	}
	g.audit.record(r, act, result, extra...)
}

// fileArchived files the dead-letter entry of each task act archived,
// saying who did, and returns how many it filed. What it cannot file now,
// the worker's reconciler files within its interval.
func (g *apiGuard) fileArchived(r *http.Request, act taskAction) int {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	why := fmt.Sprintf("archived by %s in the monitoring UI", operatorOf(r))
	n := 0
	for _, id := range act.IDs {
		_, filed, err := g.store.FileArchived(ctx, g.insp, act.Queue, id, why)
		if err != nil {
			g.audit.log.Warn("could not file the dead-letter entry of a task archived in the monitoring UI; the worker's reconciler files it", zap.String("task_id", id), zap.Error(err))
			continue
		}
		if filed {
			n++
		}
	}
	return n
}

// deleteRefusal says why a delete of tasks in state is refused and what
// to do instead.
func deleteRefusal(state string) string {
	const purge = "purge its dead-letter entry on the dead-letter page (" + DLQPath + ") or with `enqueue dlq purge`, which deletes the archived task too and keeps a trail"
	switch state {
	case "archived":
		return "refused: deleting an archived task here would leave its order's dead-letter entry without its task, or drop an order not yet filed; " + purge + "."
	case "completed":
		return "refused: a completed task is its order's record (it keeps the order from being cancelled twice, and answers enqueue status); it leaves by itself at the end of its retention."
	}
	return "refused: deleting a " + state + " task drops its order without a trace. Archive it instead (the worker then files a dead-letter entry), then " + purge + "."
}

// parseAPIAction reads the operator action of a request to the monitoring
// UI's API (asynqmon v0.7's routes), the task IDs of a batch included.
func parseAPIAction(r *http.Request) (taskAction, error) {
	act := taskAction{Via: "monitoring UI"}
	rest := strings.TrimPrefix(r.URL.Path, MonitoringPath+"api/")
	segs := strings.Split(rest, "/")
	if len(segs) < 2 || segs[0] != "queues" {
		return act, fmt.Errorf("%s %s is not an action the admin server knows", r.Method, r.URL.Path)
	}
	segs = segs[1:]
	if len(segs) == 1 { // the queue itself
		q := segs[0]
		switch {
		case r.Method == http.MethodDelete:
			act.Action, act.Queue = ActionDeleteQueue, q
		case r.Method == http.MethodPost && strings.HasSuffix(q, ":pause"):
			act.Action, act.Queue = ActionPauseQueue, strings.TrimSuffix(q, ":pause")
		case r.Method == http.MethodPost && strings.HasSuffix(q, ":resume"):
			act.Action, act.Queue = ActionResumeQueue, strings.TrimSuffix(q, ":resume")
		default:
			return act, fmt.Errorf("%s %s is not an action the admin server knows", r.Method, r.URL.Path)
		}
		return act, nil
	}
	act.Queue = segs[0]
	segs = segs[1:]
	if len(segs) >= 3 && segs[0] == "groups" {
		act.Group = segs[1]
		segs = segs[2:]
	}
	collection, op, hasOp := strings.Cut(segs[0], ":")
	state, ok := strings.CutSuffix(collection, "_tasks")
	if !ok || state == "" {
		return act, fmt.Errorf("%s %s is not an action the admin server knows", r.Method, r.URL.Path)
	}
	act.State = state
	switch {
	case len(segs) == 1 && hasOp:
		verb, all := strings.CutSuffix(op, "_all")
		if !all {
			var batch bool
			if verb, batch = strings.CutPrefix(op, "batch_"); !batch {
				return act, fmt.Errorf("%s %s is not an action the admin server knows", r.Method, r.URL.Path)
			}
			act.Scope = "batch"
			ids, err := batchIDs(r)
			if err != nil {
				return act, err
			}
			act.IDs = ids
		} else {
			act.Scope = "all"
		}
		act.Action = verb
	case len(segs) == 2 && r.Method == http.MethodDelete:
		act.Scope, act.Action, act.IDs = "one", ActionDelete, []string{segs[1]}
	case len(segs) == 2 && r.Method == http.MethodPost:
		i := strings.LastIndexByte(segs[1], ':')
		if i <= 0 {
			return act, fmt.Errorf("%s %s is not an action the admin server knows", r.Method, r.URL.Path)
		}
		act.Scope, act.Action, act.IDs = "one", segs[1][i+1:], []string{segs[1][:i]}
	default:
		return act, fmt.Errorf("%s %s is not an action the admin server knows", r.Method, r.URL.Path)
	}
	switch act.Action {
	case ActionDelete, ActionArchive, ActionRun, ActionCancel:
		return act, nil
	}
	return act, fmt.Errorf("%s %s is not an action the admin server knows", r.Method, r.URL.Path)
}

// batchIDs reads the task IDs of a batch request's body, {"task_ids":
// [...]}, and puts the body back for the UI's handler.
func batchIDs(r *http.Request) ([]string, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, apiBodyMax+1))
	if err != nil {
		return nil, fmt.Errorf("read the request: %w", err)
	}
	if len(body) > apiBodyMax {
		return nil, fmt.Errorf("the request's body is over %d bytes", apiBodyMax)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req struct {
		TaskIDs []string `json:"task_ids"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("task_ids: the body must be {\"task_ids\": [...]}: %w", err)
	}
	return req.TaskIDs, nil
}

// refuse answers status with text, marked as a refusal for the UI's
// banner.
func refuse(w http.ResponseWriter, status int, text string) {
	plain(w)
	w.Header().Set(RefusedHeader, "1")
	w.WriteHeader(status)
	fmt.Fprintln(w, text)
}
