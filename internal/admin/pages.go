package admin

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
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

//go:embed templates/*.html
var templateFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"monitoring": func() string { return MonitoringPath },
	"dlqPath":    func() string { return DLQPath },
}).ParseFS(templateFS, "templates/*.html"))

// index links to every page.
func index(w http.ResponseWriter, _ *http.Request) {
	render(w, "index.html", nil)
}

// dlqPage lists the dead-letter queue, read-only: a provider filter and
// pages of entries, oldest first. Query parameters: provider (meari or
// pandapon; absent for all), page (from 1) and size (1 to PageSizeMax).
type dlqPage struct {
	store *dlq.Store
	log   *zap.Logger
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
	TaskURL     string // the task in the monitoring UI
}

type dlqView struct {
	Provider string
	Filters  []filterLink
	Archived []filterLink // each queue's archived tab in the UI
	Rows     []dlqRow
	Total    int64
	From, To int64
	Page     int
	Pages    int64
	PrevURL  string
	NextURL  string
}

func (p *dlqPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the dead-letter page is read-only: use GET", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	provider := q.Get("provider")
	if provider != "" && tasks.QueueFor(provider) == "" {
		http.Error(w, fmt.Sprintf("provider: must be one of %s, got %q", strings.Join(tasks.Providers(), ", "), provider), http.StatusBadRequest)
		return
	}
	page, err := intParam(q, "page", 1, 1, 1_000_000)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	size, err := intParam(q, "size", PageSizeDefault, 1, PageSizeMax)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	entries, total, err := p.store.List(ctx, dlq.ListOptions{Provider: provider, Offset: (page - 1) * size, Limit: size})
	if err != nil {
		p.log.Error("dead-letter page: cannot read the dead-letter queue", zap.Error(err))
		http.Error(w, "cannot read the dead-letter queue: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	link := func(prov string, page int) string {
		v := url.Values{}
		if prov != "" {
			v.Set("provider", prov)
		}
		if page > 1 {
			v.Set("page", strconv.Itoa(page))
		}
		if size != PageSizeDefault {
			v.Set("size", strconv.Itoa(size))
		}
		if len(v) == 0 {
			return DLQPath
		}
		return DLQPath + "?" + v.Encode()
	}

	view := dlqView{Provider: provider, Total: total, Page: page, Pages: (total + int64(size) - 1) / int64(size)}
	for _, prov := range append([]string{""}, tasks.Providers()...) {
		n := total
		if prov != provider {
			if n, err = p.store.Count(ctx, prov); err != nil {
				p.log.Error("dead-letter page: cannot count entries", zap.Error(err))
				http.Error(w, "cannot read the dead-letter queue: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		label := prov
		if prov == "" {
			label = "all"
		} else {
			q := tasks.QueueFor(prov)
			view.Archived = append(view.Archived, filterLink{Label: q, URL: MonitoringPath + "queues/" + url.PathEscape(q) + "?status=archived"})
		}
		view.Filters = append(view.Filters, filterLink{Label: label, URL: link(prov, 1), Count: n, Active: prov == provider})
	}
	for _, e := range entries {
		// html/template escapes markup, not the characters that reorder
		// or break what is printed around them.
		for _, f := range []*string{&e.Order, &e.Reason, &e.UpstreamCode, &e.Message, &e.Corrupt, &e.Raw} {
			*f = text.Printable(*f)
		}
		if e.Queue == "" {
			e.Queue = tasks.QueueFor(e.Provider) // a corrupt entry
		}
		view.Rows = append(view.Rows, dlqRow{
			Entry:       e,
			FirstFailed: stamp(e.FirstFailedAt),
			LastFailed:  stamp(e.LastFailedAt),
			TaskURL:     MonitoringPath + "queues/" + url.PathEscape(e.Queue) + "/tasks/" + url.PathEscape(e.ID),
		})
	}
	if len(entries) > 0 {
		view.From = int64((page-1)*size) + 1
		view.To = view.From + int64(len(entries)) - 1
	}
	if page > 1 {
		view.PrevURL = link(provider, min(page-1, max(int(view.Pages), 1)))
	}
	if int64(page) < view.Pages {
		view.NextURL = link(provider, page+1)
	}
	render(w, "dlq.html", view)
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

// render executes template name into a buffer first, so that a failure
// becomes a clean 500.
func render(w http.ResponseWriter, name string, data any) {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, data); err != nil {
		http.Error(w, "cannot render the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
}

// dlqLink is added to every HTML page of the monitoring UI: a button to the
// dead-letter page, which the UI itself knows nothing about.
const dlqLink = `<a id="cancelworker-dlq-link" href="` + DLQPath + `" style="position:fixed;right:24px;bottom:24px;z-index:2000;` +
	`padding:10px 18px;border-radius:20px;background:#c62828;color:#fff;font:500 14px Roboto,Helvetica,Arial,sans-serif;` +
	`text-decoration:none;box-shadow:0 2px 6px rgba(0,0,0,.3)">Dead-letter queue &rarr;</a>`

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
