package admin

import (
	_ "embed"
	"encoding/json"
	"html"
	"net/http"
	"strconv"
	"strings"
)

// The admin server's pages are written here by hand rather than executed
// as html/template. A binary that can execute a template keeps every
// exported method of every type it links, since the linker cannot tell
// which ones a template calls: in the worker, go-redis's thousands of
// command methods, which nearly doubled its binary and its resident memory
// (docs/performance.md). Every value goes into a page through one of
// page's methods, each escaping it for where it stands; only constants go
// in through raw.

// The monitoring UI's frame, for the pages the admin server adds to it: the
// same white app bar with the Asynq logo, the same side navigation (Queues,
// Servers, Schedulers, Redis) and colours, drawn with plain HTML and CSS.
// The icons are the UI's own Material icons, inline.
var (
	//go:embed assets/dlq.css
	dlqCSS string
	//go:embed assets/index.css
	indexCSS string
	//go:embed assets/chrome.html
	chromeHTML string
	// logoSVG is the monitoring UI's logo, for the header the dead-letter
	// page shares with it.
	//
	//go:embed assets/asynqmon-logo.svg
	logoSVG string

	chrome = strings.NewReplacer("{monitoring}", MonitoringPath, "{dlq}", DLQPath, "{logo}", logoSVG).Replace(chromeHTML)
)

// page is an HTML page being written.
type page struct{ b strings.Builder }

// raw writes markup of this package's own: constants, never a value.
func (p *page) raw(ss ...string) {
	for _, s := range ss {
		p.b.WriteString(s)
	}
}

// text writes s as text, or as the value of a double-quoted attribute. A
// NUL becomes U+FFFD, as html/template writes it: a browser drops a NUL
// from text, so the page would show the value without it.
func (p *page) text(s string) {
	p.b.WriteString(strings.ReplaceAll(html.EscapeString(s), "\x00", "\uFFFD"))
}

// int writes n.
func (p *page) int(n int64) { p.b.WriteString(strconv.FormatInt(n, 10)) }

// url writes u as the value of a double-quoted href or action: a path on
// this server, or "#" for anything else (another scheme, another host, or
// a control character, which a browser drops before it reads the URL).
// The pages build every URL from this package's paths and url's escaping.
func (p *page) url(u string) {
	if !strings.HasPrefix(u, "/") || strings.HasPrefix(u, "//") || strings.HasPrefix(u, `/\`) ||
		strings.ContainsFunc(u, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		u = "#"
	}
	p.text(u)
}

// jsString writes s as a JavaScript string literal in a double-quoted
// attribute (an event handler): JSON's string, which escapes <, > and &
// and the line separators, then escaped for the attribute.
func (p *page) jsString(s string) {
	b, _ := json.Marshal(s) // a string always encodes
	p.text(string(b))
}

// head writes a page's head in the monitoring UI's look, up to its title.
func (p *page) head(title string) {
	p.raw("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n",
		"<link rel=\"icon\" type=\"image/png\" href=\"", MonitoringPath, "favicon.ico\">\n<style>\n", dlqCSS, "</style>\n<title>")
	p.text(title)
	p.raw("</title>\n</head>\n<body>\n", chrome, "<main>\n")
}

// foot ends what head began.
func (p *page) foot() { p.raw("</main>\n</body>\n</html>") }

// action writes f's button: a form that posts f, asking f.Confirm first
// unless f is already confirmed.
func (p *page) action(f *actionForm) {
	p.raw(`<form class="action" method="post" action="`)
	p.url(f.Path)
	p.raw(`"`)
	if !f.Confirmed {
		p.raw(` onsubmit="if(!window.confirm(`)
		p.jsString(f.Confirm)
		p.raw(`))return false;this.elements.confirmed.value='yes'"`)
	}
	p.raw(">")
	for _, id := range f.IDs {
		p.raw(`<input type="hidden" name="id" value="`)
		p.text(id)
		p.raw(`">`)
	}
	p.raw(`<input type="hidden" name="back" value="`)
	p.text(f.Back)
	p.raw(`"><input type="hidden" name="confirmed" value="`)
	if f.Confirmed {
		p.raw("yes")
	}
	p.raw(`"><button type="submit" class="btn`)
	if f.Danger {
		p.raw(" danger")
	}
	p.raw(`">`)
	p.text(f.Label)
	p.raw("</button></form>")
}

// link writes <a href="u">label</a>.
func (p *page) link(u, label string) {
	p.raw(`<a href="`)
	p.url(u)
	p.raw(`">`)
	p.text(label)
	p.raw("</a>")
}

// render writes page p with status.
func render(w http.ResponseWriter, status int, p *page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(p.b.String()))
}

// indexPage links to every page.
func indexPage() *page {
	p := &page{}
	p.raw("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>cancelworker admin</title>\n<style>\n", indexCSS, "</style>\n</head>\n<body>\n",
		"<h1>cancelworker admin</h1>\n<ul>\n",
		`<li><a href="`, MonitoringPath, `">Monitoring UI</a>: queues, tasks, retries and archived tasks (asynqmon)</li>`, "\n",
		`<li><a href="`, DLQPath, `">Dead-letter queue</a>: every order given up on, with its reason</li>`, "\n",
		`<li><a href="/metrics">Metrics</a> (Prometheus)</li>`, "\n",
		`<li><a href="/healthz">/healthz</a> and <a href="/readyz">/readyz</a></li>`, "\n",
		"</ul>\n</body>\n</html>")
	return p
}

// dlqHTML is the dead-letter page of v.
func dlqHTML(v dlqView) *page {
	p := &page{}
	q := v.Query
	p.head("Dead-letter queue · cancelworker")
	p.raw("<h1>Dead-letter queue</h1>\n<p class=\"muted\">Orders the worker gave up on, oldest first.")
	if v.ReadOnly {
		p.raw(" This page is read-only (ADMIN_READONLY): requeue or purge with <code>enqueue dlq</code>.")
	} else {
		p.raw(" Requeue puts an order back on its queue (the entry leaves once the task is queued); purge deletes the entry for good without cancelling the order. Both ask first.")
	}
	p.raw("\nArchived tasks in the monitoring UI:")
	for _, a := range v.Archived {
		p.raw(" ")
		p.link(a.URL, a.Label)
	}
	p.raw(".</p>")
	if n := v.Notice; n != nil {
		p.raw("\n<p id=\"notice\" role=\"status\"")
		if !n.OK() {
			p.raw(` class="warn"`)
		}
		p.raw(">")
		p.text(n.Text())
		p.raw("</p>")
	}

	p.raw("\n<form class=\"filter paper\" id=\"filter\" method=\"get\" action=\"", DLQPath, "\">\n",
		`<label>Provider<select name="provider"><option value="">all</option>`)
	for _, f := range v.Filters {
		if f.Label == "all" {
			continue
		}
		p.raw(`<option value="`)
		p.text(f.Label)
		p.raw(`"`)
		if f.Active {
			p.raw(" selected")
		}
		p.raw(">")
		p.text(f.Label)
		p.raw("</option>")
	}
	p.raw("</select></label>\n", `<label>Order (part of it, any case)<input type="search" name="order" value="`)
	p.text(q.Order)
	p.raw(`" maxlength="`, strconv.Itoa(orderFilterMax), `" placeholder="e.g. KS0209 or 2542285634920880794"></label>`, "\n",
		`<label>Reason<select name="reason"><option value="">any</option>`)
	for _, r := range v.Reasons {
		p.raw("<option")
		if r == q.Reason {
			p.raw(" selected")
		}
		p.raw(">")
		p.text(r)
		p.raw("</option>")
	}
	p.raw("</select></label>\n", `<label>Upstream code (exact)<input type="search" name="code" value="`)
	p.text(q.Code)
	p.raw(`" maxlength="`, strconv.Itoa(codeFilterMax), `" placeholder="e.g. 4001 or http_503"></label>`)
	if q.Size != PageSizeDefault {
		p.raw(`<input type="hidden" name="size" value="`)
		p.int(int64(q.Size))
		p.raw(`">`)
	}
	p.raw("\n<button type=\"submit\" class=\"btn primary\">Filter</button>")
	if v.ClearURL != "" {
		p.raw(` <a class="btn" id="clear" href="`)
		p.url(v.ClearURL)
		p.raw(`">Clear filters</a>`)
	}
	p.raw("\n</form>\n<nav class=\"chips\" id=\"filters\">")
	for _, f := range v.Filters {
		label := func() {
			p.text(f.Label)
			p.raw(" (")
			p.int(f.Count)
			p.raw(")")
		}
		if f.Active {
			p.raw(`<span class="active">`)
			label()
			p.raw("</span>")
		} else {
			p.raw(`<a href="`)
			p.url(f.URL)
			p.raw(`">`)
			label()
			p.raw("</a>")
		}
	}
	p.raw("</nav>\n")

	switch {
	case len(v.Rows) > 0:
		p.raw(`<p id="summary">Entries `)
		p.int(v.From)
		p.raw("–")
		p.int(v.To)
		p.raw(" of ")
		p.int(v.Total)
		for _, f := range []struct{ before, value, after string }{
			{", order containing “", q.Order, "”"}, {", reason ", q.Reason, ""}, {", upstream code ", q.Code, ""},
		} {
			if f.value != "" {
				p.raw(f.before)
				p.text(f.value)
				p.raw(f.after)
			}
		}
		p.raw(", page ")
		p.int(int64(q.Page))
		p.raw(" of ")
		p.int(v.Pages)
		p.raw(".</p>")
		if v.RequeueShown != nil || v.PurgeShown != nil {
			p.raw("\n<div class=\"bulk\">")
			for _, f := range []*actionForm{v.RequeueShown, v.PurgeShown} {
				if f != nil {
					p.action(f)
				}
			}
			p.raw("</div>")
		}
		p.raw("\n<div class=\"paper\">\n<table id=\"dlq\">\n<thead><tr>")
		if !v.ReadOnly {
			p.raw("<th>Actions</th>")
		}
		p.raw(`<th>Order <span class="muted">(provider, task ID)</span></th><th>Reason, upstream code</th><th class="num">Attempts</th><th>Last failed <span class="muted">(first)</span></th><th>Message</th></tr></thead>`,
			"\n<tbody>")
		for _, r := range v.Rows {
			p.row(r, v.ReadOnly)
		}
		p.raw("\n</tbody>\n</table>\n</div>")
	case v.Total > 0:
		p.raw(`<p id="summary">No entries on page `)
		p.int(int64(q.Page))
		p.raw("; there are ")
		p.int(v.Total)
		p.raw(" in ")
		p.int(v.Pages)
		p.raw(" pages.</p>")
	case q.narrowed():
		p.raw(`<p id="summary">No entries match these filters.</p>`)
	default:
		p.raw(`<p id="summary">The dead-letter queue is empty`)
		if q.Provider != "" {
			p.raw(" for ")
			p.text(q.Provider)
		}
		p.raw(".</p>")
	}
	p.raw("\n<nav id=\"pages\">")
	if v.PrevURL != "" {
		p.raw(`<a href="`)
		p.url(v.PrevURL)
		p.raw(`">&larr; previous</a>`)
	}
	if v.NextURL != "" {
		p.raw(`<a href="`)
		p.url(v.NextURL)
		p.raw(`">next &rarr;</a>`)
	}
	p.raw("</nav>\n")
	p.foot()
	return p
}

// row writes one entry's row of the dead-letter page.
func (p *page) row(r dlqRow, readOnly bool) {
	p.raw("\n<tr data-id=\"")
	p.text(r.ID)
	p.raw(`"`)
	if r.Corrupt != "" {
		p.raw(` class="corrupt"`)
	}
	p.raw(">")
	if !readOnly {
		p.raw(`<td class="actions">`)
		for _, f := range []*actionForm{r.Requeue, r.Purge} {
			if f != nil {
				p.action(f)
			}
		}
		p.raw("</td>")
	}
	p.raw(`<td class="order"><a href="`)
	p.url(r.TaskURL)
	p.raw(`">`)
	if r.Corrupt != "" {
		p.text(r.ID)
		p.raw(`</a><br><span class="muted small">`)
		p.text(r.Provider)
		p.raw(`</span></td><td colspan="4" class="msg"><strong>corrupt entry:</strong> `)
		p.text(r.Corrupt)
		p.raw("; stored: <code>")
		p.text(r.Raw)
		p.raw("</code> (check the order by hand, then purge it)</td></tr>")
		return
	}
	p.text(r.Order)
	p.raw(`</a><br><span class="muted small">`)
	p.text(r.Provider)
	p.raw(` · <span class="id">`)
	p.text(r.ID)
	p.raw(`</span></span></td><td><span class="reason">`)
	p.text(r.Reason)
	p.raw("</span>")
	if r.UpstreamCode != "" {
		p.raw(` <code class="code">`)
		p.text(r.UpstreamCode)
		p.raw("</code>")
	}
	if r.OutcomeUnknown {
		p.raw(`<br><span class="unknown" title="an earlier attempt may have cancelled the order: check before acting">outcome unknown</span>`)
	}
	p.raw(`</td><td class="num">`)
	p.int(int64(r.Attempts))
	p.raw(`</td><td class="nowrap">`)
	p.text(r.LastFailed)
	if r.FirstFailed != r.LastFailed {
		p.raw(`<br><span class="muted">`)
		p.text(r.FirstFailed)
		p.raw("</span>")
	}
	p.raw(`</td><td class="msg"><div class="clamp" title="`)
	p.text(r.Message)
	p.raw(`">`)
	p.text(r.Message)
	p.raw("</div></td></tr>")
}

// confirmHTML is the confirmation page of v.
func confirmHTML(v confirmView) *page {
	p := &page{}
	p.head("Confirm · Dead-letter queue · cancelworker")
	p.raw("<h1>Dead-letter queue</h1>\n<p id=\"question\">")
	p.text(v.Question)
	p.raw("</p>\n<ul id=\"ids\">")
	for _, id := range v.IDs {
		p.raw("<li><code>")
		p.text(id)
		p.raw("</code></li>")
	}
	p.raw("</ul>\n<p>")
	p.action(v.Form)
	p.raw(` <a class="btn" href="`)
	p.url(v.BackURL)
	p.raw("\">Cancel</a></p>\n")
	p.foot()
	return p
}
