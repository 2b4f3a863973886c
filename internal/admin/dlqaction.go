package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/tasks"
	"go.uber.org/zap"
)

// Dead-letter actions, as the dead-letter page's buttons post them.
const (
	actionRequeue = "requeued"
	actionPurge   = "purged"
)

const (
	// actionTimeout bounds one requeue or purge post: up to PageSizeMax
	// entries, a few Redis round trips each.
	actionTimeout = 30 * time.Second
	// actionBodyMax bounds the form of one post: PageSizeMax IDs and the
	// page to return to.
	actionBodyMax = 1 << 20
	// idMax is the longest entry ID accepted, in bytes.
	idMax = 512
)

// actionForm is one button of the dead-letter page: a form posting IDs to
// Path, after the browser's confirm() asks Confirm. Without JavaScript the
// form posts unconfirmed and dlqAction answers with a confirmation page,
// whose form is Confirmed.
type actionForm struct {
	Path      string
	IDs       []string
	Back      string // the page's query, to return to
	Label     string
	Confirm   string
	Danger    bool
	Confirmed bool
}

// dlqAction requeues (dlq.Requeue) or purges (Store.Purge) the entries a
// form of the dead-letter page posts, and redirects (303) back to the page
// it came from with the outcome. Form fields:
//
//	id         an entry ID; repeated, 1 to PageSizeMax of them
//	back       the dead-letter page's query to return to
//	confirmed  "yes" once the user confirmed; otherwise the answer is a
//	           page asking for that
//
// It refuses (403) when the admin server is read-only. Cross-site posts
// never reach it: the admin server's httpguard.SameOrigin refuses them.
type dlqAction struct {
	action   string // actionRequeue or actionPurge
	store    *dlq.Store
	enq      *tasks.Enqueuer
	log      *zap.Logger
	audit    auditor
	readOnly bool
}

func (a *dlqAction) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "use POST: the dead-letter page's buttons post here", http.StatusMethodNotAllowed)
		return
	}
	if a.readOnly {
		a.audit.record(r, taskAction{Action: map[string]string{actionRequeue: ActionRequeue, actionPurge: ActionPurge}[a.action], Via: "dead-letter page"}, ResultRefused)
		http.Error(w, "forbidden: the admin server is read-only (ADMIN_READONLY=true), so the dead-letter page cannot requeue or purge; use enqueue dlq requeue or enqueue dlq purge", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, actionBodyMax)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "cannot read the form: "+err.Error(), http.StatusBadRequest)
		return
	}
	ids, err := formIDs(r.PostForm["id"])
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	backValues, err := url.ParseQuery(r.PostForm.Get("back"))
	if err != nil {
		http.Error(w, "back: must be the dead-letter page's query: "+err.Error(), http.StatusBadRequest)
		return
	}
	back, err := parseDLQQuery(backValues)
	if err != nil {
		http.Error(w, "back: "+err.Error(), http.StatusBadRequest)
		return
	}
	if r.PostForm.Get("confirmed") != "yes" {
		a.confirmPage(w, ids, back)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), actionTimeout)
	defer cancel()
	log := a.log.With(zap.String("action", a.action))
	if user, _, ok := r.BasicAuth(); ok {
		log = log.With(zap.String("user", user))
	}
	by := operatorOf(r) + " (dead-letter page)"
	var out notice
	act := taskAction{Action: ActionRequeue, Via: "dead-letter page", Scope: "one", IDs: ids}
	if len(ids) > 1 {
		act.Scope = "batch"
	}
	if a.action == actionRequeue {
		out = a.requeue(ctx, log, by, ids)
	} else {
		act.Action = ActionPurge
		out = a.purge(ctx, log, by, ids)
	}
	result := ResultDone
	if out.Failed > 0 {
		result = ResultFailed
	}
	a.audit.record(r, act, result, zap.Int("acted_on", out.N), zap.Int("already_requeued", out.Already), zap.Int("stale_dropped", out.Stale), zap.Int("failed", out.Failed))
	v := back.encode()
	v.Set("done", out.Action)
	v.Set("n", strconv.Itoa(out.N))
	if out.Already > 0 {
		v.Set("already", strconv.Itoa(out.Already))
	}
	if out.Stale > 0 {
		v.Set("stale", strconv.Itoa(out.Stale))
	}
	if out.Failed > 0 {
		v.Set("failed", strconv.Itoa(out.Failed))
		v.Set("why", out.Why)
	}
	http.Redirect(w, r, DLQPath+"?"+v.Encode(), http.StatusSeeOther)
}

// formIDs checks the posted entry IDs and returns them without repeats.
func formIDs(posted []string) ([]string, error) {
	if len(posted) == 0 {
		return nil, errors.New("id: give at least one dead-letter entry ID")
	}
	if len(posted) > PageSizeMax {
		return nil, fmt.Errorf("id: at most %d entries at once, got %d", PageSizeMax, len(posted))
	}
	ids := make([]string, 0, len(posted))
	for _, id := range posted {
		if id == "" || len(id) > idMax {
			return nil, fmt.Errorf("id: must be an entry ID of 1 to %d bytes, got %d bytes", idMax, len(id))
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// requeue requeues each of ids with dlq.Requeue, which claims the entry
// first, so that of two requeues at once exactly one puts it back, and
// never replaces a live task of the order.
func (a *dlqAction) requeue(ctx context.Context, log *zap.Logger, by string, ids []string) notice {
	out := notice{Action: actionRequeue}
	for _, id := range ids {
		res, err := dlq.Requeue(ctx, a.store, a.enq, id, dlq.RequeueOptions{By: by})
		switch {
		case errors.Is(err, dlq.ErrAlreadyRequeued):
			log.Info("dead-letter page: already requeued by another requeue", zap.String("id", id))
			out.Already++
		case err != nil:
			why := whyOf(err)
			log.Warn("dead-letter page: cannot requeue", zap.String("id", id), zap.String("why", why), zap.Error(err))
			if out.Failed == 0 {
				out.Why = why
			}
			out.Failed++
		case res.Trail == dlq.TrailAlreadyQueued || res.Trail == dlq.TrailAlreadyCancelled:
			log.Info("dead-letter page: the order's task was live; dropped the stale entry", zap.String("id", id), zap.String("task_state", res.State),
				zap.Time("completed_at", res.CompletedAt))
			out.Stale++
		default:
			log.Info("dead-letter page: requeued", zap.String("id", id), zap.String("queue", res.Queue), zap.String("replaced_state", res.State))
			out.N++
		}
	}
	return out
}

// purge deletes the entries of ids with Store.Purge.
func (a *dlqAction) purge(ctx context.Context, log *zap.Logger, by string, ids []string) notice {
	out := notice{Action: actionPurge}
	n, err := a.store.Purge(ctx, by, ids...)
	out.N = n
	if err != nil {
		log.Error("dead-letter page: cannot purge", zap.Int("purged", n), zap.Strings("ids", ids), zap.Error(err))
		out.Failed, out.Why = len(ids)-n, whyError
		return out
	}
	log.Info("dead-letter page: purged", zap.Int("purged", n), zap.Strings("ids", ids))
	if n < len(ids) {
		out.Failed, out.Why = len(ids)-n, whyGone
	}
	return out
}

// Why an entry could not be requeued or purged, as the page's notice names
// it.
const (
	whyActive  = "active"
	whyGone    = "gone"
	whyCorrupt = "corrupt"
	whyError   = "error"
)

var whyText = map[string]string{
	whyActive:  "a task for the order is being processed right now; try again when it finishes",
	whyGone:    "no longer in the dead-letter queue (requeued or purged meanwhile)",
	whyCorrupt: "the stored entry is corrupt: check the order by hand, then purge it",
	whyError:   "see the admin server's log; the entries were kept",
}

// whyOf classifies an error of dlq.Requeue.
func whyOf(err error) string {
	switch {
	case errors.Is(err, tasks.ErrActive):
		return whyActive
	case errors.Is(err, dlq.ErrNotFound):
		return whyGone
	case errors.Is(err, dlq.ErrCorrupt):
		return whyCorrupt
	}
	return whyError
}

// notice is the outcome of an action, shown as one line on the page the
// action redirects to. Its parameters are counts and codes, never text, so
// that a link cannot make the page say anything else:
//
//	done     requeued or purged
//	n        how many entries it acted on
//	already  how many another requeue had taken first (not failures)
//	stale    how many it dropped because the order's task was live
//	         (already queued or cancelled)
//	failed   how many it could not act on
//	why      why the first of those failed: active, gone, corrupt or error
type notice struct {
	Action                    string
	N, Already, Stale, Failed int
	Why                       string
}

// parseNotice reads the notice of v, nil when v has no done parameter, with
// an error naming the first parameter whose value is not allowed.
func parseNotice(v url.Values) (*notice, error) {
	if err := onlyOnce(v, "done", "why", "n", "failed", "already", "stale"); err != nil {
		return nil, err
	}
	n := notice{Action: v.Get("done"), Why: v.Get("why")}
	switch n.Action {
	case "":
		return nil, nil
	case actionRequeue, actionPurge:
	default:
		return nil, fmt.Errorf("done: must be %q or %q, got %q", actionRequeue, actionPurge, n.Action)
	}
	var err error
	if n.N, err = intParam(v, "n", 0, 0, PageSizeMax); err != nil {
		return nil, err
	}
	if n.Failed, err = intParam(v, "failed", 0, 0, PageSizeMax); err != nil {
		return nil, err
	}
	if n.Already, err = intParam(v, "already", 0, 0, PageSizeMax); err != nil {
		return nil, err
	}
	if n.Stale, err = intParam(v, "stale", 0, 0, PageSizeMax); err != nil {
		return nil, err
	}
	if _, ok := whyText[n.Why]; n.Failed > 0 && !ok {
		return nil, fmt.Errorf("why: must be one of active, gone, corrupt, error, got %q", n.Why)
	}
	return &n, nil
}

// Text is the notice as one sentence, such as "Requeued 2 entries." or
// "Requeued 1 entry; 1 could not be requeued (first: ...)."
func (n notice) Text() string {
	verb := "requeued"
	if n.Action == actionPurge {
		verb = "purged"
	}
	var also string
	if n.Already > 0 {
		also += fmt.Sprintf("; %d already requeued by another requeue", n.Already)
	}
	if n.Stale > 0 {
		also += fmt.Sprintf("; %d dropped, their orders already queued or cancelled (no new task)", n.Stale)
	}
	if n.Failed == 0 {
		return fmt.Sprintf("%s %s%s.", capitalize(verb), entries(n.N), also)
	}
	if also != "" {
		return fmt.Sprintf("%s %s%s; %d could not be %s (%s%s).", capitalize(verb), entries(n.N), also, n.Failed, verb, map[bool]string{true: "first: ", false: ""}[n.Failed > 1], whyText[n.Why])
	}
	first := ""
	if n.Failed > 1 {
		first = "first: "
	}
	if n.N == 0 {
		return fmt.Sprintf("%s could not be %s (%s%s).", capitalize(entries(n.Failed)), verb, first, whyText[n.Why])
	}
	return fmt.Sprintf("%s %s; %d could not be %s (%s%s).", capitalize(verb), entries(n.N), n.Failed, verb, first, whyText[n.Why])
}

// OK reports whether every entry was acted on.
func (n notice) OK() bool { return n.Failed == 0 }

// entries returns "1 entry" or "n entries".
func entries(n int) string {
	if n == 1 {
		return "1 entry"
	}
	return strconv.Itoa(n) + " entries"
}

func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// confirmView is the confirmation page a post without confirmed=yes gets:
// the no-JavaScript fallback of the buttons' confirm().
type confirmView struct {
	Question string
	IDs      []string
	Form     *actionForm
	BackURL  string
}

func (a *dlqAction) confirmPage(w http.ResponseWriter, ids []string, back dlqQuery) {
	v := confirmView{IDs: ids, BackURL: back.url()}
	form := &actionForm{IDs: ids, Back: back.encode().Encode(), Confirmed: true}
	if a.action == actionRequeue {
		v.Question = fmt.Sprintf("Requeue %s? Their cancellations are tried again and the entries leave the dead-letter queue.", entries(len(ids)))
		form.Path, form.Label = DLQRequeuePath, "Requeue "+entries(len(ids))
	} else {
		v.Question = fmt.Sprintf("Purge %s for good? Their orders are not cancelled.", entries(len(ids)))
		form.Path, form.Label, form.Danger = DLQPurgePath, "Purge "+entries(len(ids)), true
	}
	v.Form = form
	render(w, http.StatusOK, confirmHTML(v))
}
