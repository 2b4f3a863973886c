package admin

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/text"
	"github.com/cancelworker/cancelworker/tasks"
	"go.uber.org/zap"
)

// Dead-letter page sizes, in entries: the default and the most the size
// parameter may ask for.
const (
	PageSizeDefault = 50
	PageSizeMax     = 500
)

// pageTimeout bounds the Redis reads of one dead-letter page.
const pageTimeout = 10 * time.Second

// index links to every page.
func index(w http.ResponseWriter, _ *http.Request) {
	render(w, http.StatusOK, indexPage())
}

// dlqPage lists the dead-letter queue, oldest first, in the monitoring UI's
// look: filters, pages of entries, and (unless readOnly) requeue and purge
// buttons that post to dlqAction. Query parameters: see parseDLQQuery and
// parseNotice.
type dlqPage struct {
	store    *dlq.Store
	log      *zap.Logger
	readOnly bool
	shards   tasks.Shards
}

type filterLink struct {
	Label  string
	URL    string
	Count  int64
	Active bool
}

type dlqRow struct {
	dlq.Entry
	FirstFailed string
	LastFailed  string
	TaskURL     string      // the task in the monitoring UI
	Requeue     *actionForm // nil when read-only or the entry is corrupt
	Purge       *actionForm // nil when read-only
}

type dlqView struct {
	Query    dlqQuery
	Reasons  []string
	ReadOnly bool
	Notice   *notice
	Filters  []filterLink // one per provider, and all
	Archived []filterLink // each queue's archived tab in the UI
	ClearURL string       // the page without the order, reason and code filters
	Rows     []dlqRow
	Total    int64
	From, To int64
	Pages    int64
	PrevURL  string
	NextURL  string
	// RequeueShown and PurgeShown act on every row shown; nil when
	// read-only or fewer than two rows qualify.
	RequeueShown, PurgeShown *actionForm
}

func (p *dlqPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the dead-letter page only shows entries: use GET (requeue and purge post to "+DLQRequeuePath+" and "+DLQPurgePath+")", http.StatusMethodNotAllowed)
		return
	}
	q, err := parseDLQQuery(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	note, err := parseNotice(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	entries, total, counts, err := p.list(ctx, q)
	if err != nil {
		p.log.Error("dead-letter page: cannot read the dead-letter queue", zap.Error(err))
		http.Error(w, "cannot read the dead-letter queue: "+err.Error(), http.StatusServiceUnavailable)
		return
	}

	view := dlqView{Query: q, Reasons: dlq.Reasons(), ReadOnly: p.readOnly, Notice: note, Total: total,
		Pages: (total + int64(q.Size) - 1) / int64(q.Size)}
	back := q.encode().Encode()
	for _, prov := range append([]string{""}, tasks.Providers()...) {
		label := prov
		if prov == "" {
			label = "all"
		} else {
			for _, qn := range p.shards.Queues(prov) {
				view.Archived = append(view.Archived, filterLink{Label: qn, URL: MonitoringPath + "queues/" + url.PathEscape(qn) + "?status=archived"})
			}
		}
		view.Filters = append(view.Filters, filterLink{Label: label, URL: q.with(prov, 1).url(), Count: counts[prov], Active: prov == q.Provider})
	}
	if q.narrowed() {
		view.ClearURL = dlqQuery{Provider: q.Provider, Page: 1, Size: q.Size}.url()
	}
	var requeueIDs, purgeIDs []string
	for _, e := range entries {
		// The page escapes markup, not the characters that reorder or
		// break what is printed around them.
		for _, f := range []*string{&e.Order, &e.Reason, &e.UpstreamCode, &e.Message, &e.Corrupt, &e.Raw} {
			*f = text.Printable(*f)
		}
		if e.Queue == "" {
			e.Queue = p.shards.Queue(e.Provider, e.ID) // a corrupt entry
		}
		row := dlqRow{
			Entry:       e,
			FirstFailed: stamp(e.FirstFailedAt),
			LastFailed:  stamp(e.LastFailedAt),
			TaskURL:     MonitoringPath + "queues/" + url.PathEscape(e.Queue) + "/tasks/" + url.PathEscape(e.ID),
		}
		if !p.readOnly {
			row.Purge = &actionForm{Path: DLQPurgePath, IDs: []string{e.ID}, Back: back, Label: "Purge", Danger: true, Confirm: purgeQuestion(e)}
			purgeIDs = append(purgeIDs, e.ID)
			if e.Corrupt == "" {
				row.Requeue = &actionForm{Path: DLQRequeuePath, IDs: []string{e.ID}, Back: back, Label: "Requeue", Confirm: requeueQuestion(e)}
				requeueIDs = append(requeueIDs, e.ID)
			}
		}
		view.Rows = append(view.Rows, row)
	}
	if len(requeueIDs) > 1 {
		view.RequeueShown = &actionForm{Path: DLQRequeuePath, IDs: requeueIDs, Back: back,
			Label:   fmt.Sprintf("Requeue all %d shown", len(requeueIDs)),
			Confirm: fmt.Sprintf("Requeue the %d entries shown? Their cancellations are tried again and the entries leave the dead-letter queue.", len(requeueIDs))}
	}
	if len(purgeIDs) > 1 {
		view.PurgeShown = &actionForm{Path: DLQPurgePath, IDs: purgeIDs, Back: back, Danger: true,
			Label:   fmt.Sprintf("Purge all %d shown", len(purgeIDs)),
			Confirm: fmt.Sprintf("Purge the %d entries shown for good? Their orders are not cancelled.", len(purgeIDs))}
	}
	if len(entries) > 0 {
		view.From = int64((q.Page-1)*q.Size) + 1
		view.To = view.From + int64(len(entries)) - 1
	}
	if q.Page > 1 {
		view.PrevURL = q.with(q.Provider, min(q.Page-1, max(int(view.Pages), 1))).url()
	}
	if int64(q.Page) < view.Pages {
		view.NextURL = q.with(q.Provider, q.Page+1).url()
	}
	render(w, http.StatusOK, dlqHTML(view))
}

// list returns the page of entries q asks for, the number of entries
// matching q, and the number matching q's order, reason and code filters
// per provider ("" for all). Without those filters it reads only the page
// from Redis; with them it reads every entry and filters here, as the store
// indexes entries by time alone.
func (p *dlqPage) list(ctx context.Context, q dlqQuery) ([]dlq.Entry, int64, map[string]int64, error) {
	offset := (q.Page - 1) * q.Size
	counts := map[string]int64{}
	if !q.narrowed() {
		entries, total, err := p.store.List(ctx, dlq.ListOptions{Provider: q.Provider, Offset: offset, Limit: q.Size})
		if err != nil {
			return nil, 0, nil, err
		}
		counts[q.Provider] = total
		for _, prov := range append([]string{""}, tasks.Providers()...) {
			if prov == q.Provider {
				continue
			}
			if counts[prov], err = p.store.Count(ctx, prov); err != nil {
				return nil, 0, nil, err
			}
		}
		return entries, total, counts, nil
	}
	all, _, err := p.store.List(ctx, dlq.ListOptions{})
	if err != nil {
		return nil, 0, nil, err
	}
	var matched []dlq.Entry
	for _, e := range all {
		if !q.matches(e) {
			continue
		}
		counts[""]++
		counts[e.Provider]++
		if q.Provider == "" || e.Provider == q.Provider {
			matched = append(matched, e)
		}
	}
	total := int64(len(matched))
	if offset >= len(matched) {
		return nil, total, counts, nil
	}
	return matched[offset:min(offset+q.Size, len(matched))], total, counts, nil
}

// requeueQuestion is what the requeue button of e asks before it posts.
func requeueQuestion(e dlq.Entry) string {
	s := fmt.Sprintf("Requeue order %s (%s)? Its cancellation is tried again and the entry leaves the dead-letter queue.", e.Order, e.Provider)
	if e.OutcomeUnknown {
		s += " An earlier attempt's outcome was unknown: the order may already be cancelled."
	}
	return s
}

// purgeQuestion is what the purge button of e asks before it posts.
func purgeQuestion(e dlq.Entry) string {
	if e.Corrupt != "" {
		return fmt.Sprintf("Purge the corrupt entry %s for good? Check its order by hand first.", e.ID)
	}
	return fmt.Sprintf("Purge the entry of order %s (%s) for good? The order is not cancelled.", e.Order, e.Provider)
}

// Longest order and upstream code filters accepted, in bytes.
const (
	orderFilterMax = 128
	codeFilterMax  = 64
)

// dlqQuery is what a dead-letter page shows, from its query parameters:
//
//	provider  meari or pandapon; absent for all
//	order     part of the order (Entry.Order), any case: "KS0209" finds
//	          Meari's "1:01582572KS0209053"
//	reason    one of dlq.Reasons, exactly
//	code      the upstream code (Entry.UpstreamCode), exactly: "4001", "http_503"
//	page      from 1
//	size      entries per page, 1 to PageSizeMax
type dlqQuery struct {
	Provider string
	Order    string
	Reason   string
	Code     string
	Page     int
	Size     int
}

// parseDLQQuery reads a dlqQuery from v, with an error naming the first
// parameter whose value is not allowed.
func parseDLQQuery(v url.Values) (dlqQuery, error) {
	if err := onlyOnce(v, "provider", "order", "reason", "code", "page", "size"); err != nil {
		return dlqQuery{}, err
	}
	q := dlqQuery{
		Provider: v.Get("provider"),
		Order:    strings.TrimSpace(v.Get("order")),
		Reason:   v.Get("reason"),
		Code:     strings.TrimSpace(v.Get("code")),
	}
	if q.Provider != "" && tasks.QueueFor(q.Provider) == "" {
		return q, fmt.Errorf("provider: must be one of %s, got %q", strings.Join(tasks.Providers(), ", "), q.Provider)
	}
	if err := textParam("order", q.Order, orderFilterMax); err != nil {
		return q, err
	}
	if q.Reason != "" && !slices.Contains(dlq.Reasons(), q.Reason) {
		return q, fmt.Errorf("reason: must be one of %s, got %q", quoteAll(dlq.Reasons()), q.Reason)
	}
	if err := textParam("code", q.Code, codeFilterMax); err != nil {
		return q, err
	}
	var err error
	if q.Page, err = intParam(v, "page", 1, 1, 1_000_000); err != nil {
		return q, err
	}
	if q.Size, err = intParam(v, "size", PageSizeDefault, 1, PageSizeMax); err != nil {
		return q, err
	}
	return q, nil
}

// onlyOnce reports the first of keys given more than once in v: which of
// the values was meant cannot be known.
func onlyOnce(v url.Values, keys ...string) error {
	for _, k := range keys {
		if n := len(v[k]); n > 1 {
			return fmt.Errorf("%s: is given %d times: give it once", k, n)
		}
	}
	return nil
}

// textParam checks the text query parameter name: at most limit bytes of
// printable UTF-8.
func textParam(name, v string, limit int) error {
	if len(v) > limit || text.Printable(v) != v {
		return fmt.Errorf("%s: must be at most %d printable characters, got %q", name, limit, text.Truncate(v, limit))
	}
	return nil
}

// quoteAll returns ss quoted and comma-separated.
func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// narrowed reports whether q filters by order, reason or code.
func (q dlqQuery) narrowed() bool { return q.Order != "" || q.Reason != "" || q.Code != "" }

// matches reports whether e passes q's order, reason and code filters (not
// its provider). A corrupt entry passes none.
func (q dlqQuery) matches(e dlq.Entry) bool {
	if e.Corrupt != "" {
		return !q.narrowed()
	}
	return (q.Order == "" || strings.Contains(strings.ToLower(e.Order), strings.ToLower(q.Order))) &&
		(q.Reason == "" || e.Reason == q.Reason) &&
		(q.Code == "" || e.UpstreamCode == q.Code)
}

// with returns q for provider's entries, at page.
func (q dlqQuery) with(provider string, page int) dlqQuery {
	q.Provider, q.Page = provider, page
	return q
}

// encode returns q's parameters that differ from the defaults.
func (q dlqQuery) encode() url.Values {
	v := url.Values{}
	for _, kv := range [][2]string{{"provider", q.Provider}, {"order", q.Order}, {"reason", q.Reason}, {"code", q.Code}} {
		if kv[1] != "" {
			v.Set(kv[0], kv[1])
		}
	}
	if q.Page > 1 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	if q.Size != PageSizeDefault && q.Size != 0 {
		v.Set("size", strconv.Itoa(q.Size))
	}
	return v
}

// url returns the dead-letter page that shows q.
func (q dlqQuery) url() string {
	v := q.encode()
	if len(v) == 0 {
		return DLQPath
	}
	return DLQPath + "?" + v.Encode()
}

// intParam reads the integer query parameter name: def when absent, an
// error naming it when not an integer from lo to hi.
func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s: must be an integer from %d to %d, got %q", name, lo, hi, v)
	}
	return n, nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// dlqLink is added to every HTML page of the monitoring UI: a button to the
// dead-letter page, which the UI itself knows nothing about, and a banner
// that shows the text of an action the admin server refused (RefusedHeader):
// the UI itself shows nothing when an action fails.
const dlqLink = `<a id="cancelworker-dlq-link" href="` + DLQPath + `" style="position:fixed;right:24px;bottom:24px;z-index:2000;` +
	`padding:10px 18px;border-radius:20px;background:#c62828;color:#fff;font:500 14px Roboto,Helvetica,Arial,sans-serif;` +
	`text-decoration:none;box-shadow:0 2px 6px rgba(0,0,0,.3)">Dead-letter queue &rarr;</a>` +
	`<div id="cancelworker-refused" role="alert" style="display:none;position:fixed;left:50%;top:72px;transform:translateX(-50%);z-index:2100;` +
	`max-width:760px;padding:12px 44px 12px 16px;border-radius:4px;background:#fdecea;color:#611a15;font:14px/1.5 Roboto,Helvetica,Arial,sans-serif;` +
	`box-shadow:0 2px 6px rgba(0,0,0,.3)"><span></span><button type="button" aria-label="Close" style="position:absolute;right:8px;top:6px;` +
	`border:0;background:none;color:inherit;font-size:20px;cursor:pointer">&times;</button></div>` +
	`<script>(function(){var b=document.getElementById("cancelworker-refused");` +
	`b.querySelector("button").onclick=function(){b.style.display="none"};` +
	`var send=XMLHttpRequest.prototype.send;XMLHttpRequest.prototype.send=function(){` +
	`this.addEventListener("load",function(){if(this.status===403&&this.getResponseHeader("` + RefusedHeader + `")){` +
	`b.querySelector("span").textContent=this.responseText;b.style.display="block"}});return send.apply(this,arguments)}})();</script>`

// withDLQLink serves next, and adds dlqLink before </body> of the HTML
// pages it serves. API calls and static assets pass straight through.
func withDLQLink(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if r.Method != http.MethodGet || strings.HasPrefix(p, MonitoringPath+"api/") || strings.HasPrefix(p, MonitoringPath+"static/") {
			next.ServeHTTP(w, r)
			return
		}
		rec := &captureWriter{header: http.Header{}, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		body := rec.body.Bytes()
		ct := rec.header.Get("Content-Type")
		if ct == "" {
			ct = http.DetectContentType(body)
			rec.header.Set("Content-Type", ct)
		}
		if strings.HasPrefix(ct, "text/html") {
			if i := bytes.LastIndex(body, []byte("</body>")); i >= 0 {
				body = append(body[:i:i], append([]byte(dlqLink), body[i:]...)...)
			}
		}
		for k, vs := range rec.header {
			w.Header()[k] = vs
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.status)
		_, _ = w.Write(body)
	})
}

// captureWriter buffers a response.
type captureWriter struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (c *captureWriter) Header() http.Header { return c.header }

func (c *captureWriter) WriteHeader(status int) {
	if !c.wroteHeader {
		c.status, c.wroteHeader = status, true
	}
}

func (c *captureWriter) Write(b []byte) (int, error) {
	c.wroteHeader = true
	return c.body.Write(b)
}
