package admin

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"golang.org/x/net/html"
)

// hostile are values an entry may hold (the order, the upstream's message)
// or a query may carry, each trying to leave its place in the page.
var hostile = []string{
	`"><script>alert(1)</script>`,
	`' onmouseover='alert(1)`,
	"</p></main><img src=x onerror=alert(1)>",
	"a\u2028b\u2029c</script>&amp;",
	`\"));alert(1);//`,
	"a NUL\x00byte", // shown as U+FFFD, which a browser shows; it drops a NUL
}

// shown is what a page shows of s: a NUL as U+FFFD.
func shown(s string) string { return strings.ReplaceAll(s, "\x00", "\uFFFD") }

// parsed is what a browser's tokenizer makes of a page.
type parsed struct {
	tags  []string            // start tags, in order
	attrs map[string][]string // attribute values by key
	text  string              // all text, decoded
}

func parse(t *testing.T, s string) parsed {
	t.Helper()
	p := parsed{attrs: map[string][]string{}}
	z := html.NewTokenizer(strings.NewReader(s))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return p
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			p.tags = append(p.tags, tok.Data)
			for _, a := range tok.Attr {
				p.attrs[a.Key] = append(p.attrs[a.Key], a.Val)
			}
		case html.TextToken:
			p.text += string(z.Text())
		}
	}
}

// TestPagesEscape: every hostile value, wherever the pages print it, comes
// out as the same text or attribute value it went in as: no element,
// attribute or script of its own, every link on this server, and each
// button's question one JavaScript string that decodes to it.
func TestPagesEscape(t *testing.T) {
	for i, h := range hostile {
		e := dlq.Entry{ID: "id" + h, Provider: "meari" + h, Order: "order" + h, Reason: "reason" + h, UpstreamCode: "code" + h,
			Message: "message" + h, Attempts: 3, OutcomeUnknown: true, FirstFailedAt: time.Unix(1, 0), LastFailedAt: time.Unix(2, 0)}
		corrupt := dlq.Entry{ID: "cid" + h, Provider: "pandapon", Corrupt: "corrupt" + h, Raw: "raw" + h}
		q := dlqQuery{Provider: "meari", Order: "q-order" + h, Reason: "q-reason" + h, Code: "q-code" + h, Page: 2, Size: 7}
		form := func(id string) *actionForm {
			return &actionForm{Path: DLQRequeuePath, IDs: []string{id}, Back: "back" + h, Label: "label" + h, Confirm: "confirm" + h}
		}
		v := dlqView{
			Query: q, Reasons: []string{"r" + h}, Notice: &notice{Action: actionRequeue, N: 1},
			Filters:  []filterLink{{Label: "all", URL: "/monitoring/dlq?x=" + h, Count: 2}, {Label: "meari" + h, URL: "/monitoring/dlq?provider=" + h, Active: true}},
			Archived: []filterLink{{Label: "archived" + h, URL: "javascript:alert(1)" + h}},
			ClearURL: "//evil.example/" + h,
			Rows: []dlqRow{
				{Entry: e, FirstFailed: "first" + h, LastFailed: "last" + h, TaskURL: "/monitoring/queues/x/tasks/" + h, Requeue: form("r"), Purge: form("p")},
				{Entry: corrupt, TaskURL: `/\evil.example`, Purge: form("c")},
			},
			Total: 9, From: 8, To: 9, Pages: 2, PrevURL: "/\t/evil.example/" + h, NextURL: "https://evil.example/",
			RequeueShown: form("all"),
		}
		pages := map[string]*page{
			"dead-letter": dlqHTML(v),
			"confirm":     confirmHTML(confirmView{Question: "question" + h, IDs: []string{"x" + h}, Form: form("x"), BackURL: "/monitoring/dlq?" + h}),
		}
		for name, pg := range pages {
			out := pg.b.String()
			got := parse(t, out)
			for _, tag := range got.tags {
				switch tag {
				case "script", "img", "iframe", "object", "embed":
					t.Errorf("%d, %s page: a <%s> element:\n%s", i, name, tag, out)
				}
			}
			for key, vals := range got.attrs {
				switch key {
				case "onmouseover", "onerror", "src":
					t.Errorf("%d, %s page: an attribute %s=%q", i, name, key, vals)
				case "href", "action":
					for _, u := range vals {
						if !strings.HasPrefix(u, "/") && u != "#" || strings.HasPrefix(u, "//") || strings.HasPrefix(u, `/\`) || strings.ContainsAny(u, "\t\n\r") {
							t.Errorf("%d, %s page: %s %q leaves this server", i, name, key, u)
						}
					}
				case "onsubmit":
					for _, js := range vals {
						q, ok := strings.CutPrefix(js, "if(!window.confirm(")
						q, ok2 := strings.CutSuffix(q, "))return false;this.elements.confirmed.value='yes'")
						var s string
						if !ok || !ok2 || json.Unmarshal([]byte(q), &s) != nil || !strings.HasPrefix(s, "confirm") || strings.TrimPrefix(s, "confirm") != h {
							t.Errorf("%d, %s page: onsubmit %q does not ask %q in one string", i, name, js, "confirm"+h)
						}
					}
				}
			}
			var want []string
			if name == "dead-letter" {
				want = []string{"order" + h, "meari" + h, "id" + h, "reason" + h, "code" + h, "message" + h, "first" + h, "last" + h,
					"corrupt" + h, "raw" + h, "q-order" + h, "archived" + h, "label" + h, "r" + h}
				for k, v := range map[string]string{"title": "message" + h, "data-id": "id" + h, "value": "q-code" + h} {
					if !slices.Contains(got.attrs[k], shown(v)) {
						t.Errorf("%d: attribute %s lacks its value: %q", i, k, got.attrs[k])
					}
				}
			} else {
				want = []string{"question" + h, "x" + h, "label" + h}
			}
			for _, w := range want {
				if !strings.Contains(got.text, shown(w)) {
					t.Errorf("%d, %s page: the text lacks %q", i, name, w)
				}
			}
		}
	}
}
