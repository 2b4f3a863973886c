package admin_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/admin"
	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// rowIDs returns the entry IDs a dead-letter page lists, in order.
func rowIDs(body string) []string {
	var ids []string
	for _, m := range regexp.MustCompile(`<tr data-id="([^"]+)"`).FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

// meariEntry returns a dead-letter entry for Meari order orderNum whose
// payload requeues, failed at minute i of a fixed day.
func meariEntry(t *testing.T, i int, orderNum, reason, code string) dlq.Entry {
	t.Helper()
	m := tasks.MeariCancel{SourceApp: workertest.SourceApp, UserAccount: "test@123.com", OrderType: 1, OrderNum: orderNum}
	task, err := tasks.NewMeariCancelTask(m)
	if err != nil {
		t.Fatal(err)
	}
	return dlq.Entry{ID: m.TaskID(), Provider: tasks.ProviderMeari, Order: m.OrderRef(), TaskType: task.Type(), Queue: tasks.QueueMeari,
		Payload: task.Payload(), Reason: reason, UpstreamCode: code, Attempts: 1,
		LastFailedAt: time.Date(2026, 3, 1, 12, i, 0, 0, time.UTC)}
}

// pandaPonEntry is meariEntry for a PandaPon order.
func pandaPonEntry(t *testing.T, i int, orderID, reason, code string) dlq.Entry {
	t.Helper()
	id, err := tasks.ParseOrderID(orderID)
	if err != nil {
		t.Fatal(err)
	}
	p := tasks.PandaPonCancel{OrderID: id, CancelReason: "test"}
	task, err := tasks.NewPandaPonCancelTask(p)
	if err != nil {
		t.Fatal(err)
	}
	return dlq.Entry{ID: p.TaskID(), Provider: tasks.ProviderPandaPon, Order: p.OrderRef(), TaskType: task.Type(), Queue: tasks.QueuePandaPon,
		Payload: task.Payload(), Reason: reason, UpstreamCode: code, Attempts: 1,
		LastFailedAt: time.Date(2026, 3, 1, 12, i, 0, 0, time.UTC)}
}

func putAll(t *testing.T, store *dlq.Store, entries ...dlq.Entry) {
	t.Helper()
	for _, e := range entries {
		if _, err := store.Put(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
}

// noRedirect is a client that returns redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// postForm posts form to base+path as a page of base does (same origin)
// unless header says otherwise, and returns the status, the Location
// header and the body.
func postForm(t *testing.T, base, path string, form url.Values, header map[string]string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if header == nil {
		header = map[string]string{"Origin": base, "Sec-Fetch-Site": "same-origin"}
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// confirmed is the form a page's button posts once confirm() said yes.
func confirmed(back string, ids ...string) url.Values {
	return url.Values{"id": ids, "back": {back}, "confirmed": {"yes"}}
}

// TestDLQPageFilters lists the entries each combination of the order,
// reason and code filters with the provider filter and pages selects, and
// checks that a bad value of any parameter is a 400 naming it.
func TestDLQPageFilters(t *testing.T) {
	t.Parallel()
	_, hs, rdb := newServer(t, admin.Options{Config: config.Admin{Addr: "127.0.0.1:0"}})
	store := dlq.New(rdb)
	entries := []dlq.Entry{
		meariEntry(t, 0, "01582572KS0209053", dlq.ReasonPermanent, "4001"),
		meariEntry(t, 1, "01582572KS0209054", dlq.ReasonRetriesExhausted, "1005"),
		meariEntry(t, 2, "99999999ZZ0000001", dlq.ReasonPermanent, "4002"),
		pandaPonEntry(t, 3, "2542285634920880794", dlq.ReasonPermanent, "200"),
		pandaPonEntry(t, 4, "2542285634920880795", dlq.ReasonMaxAge, "http_503"),
		pandaPonEntry(t, 5, "1111111111111111111", dlq.ReasonRetriesExhausted, "http_503"),
	}
	putAll(t, store, entries...)
	id := func(i int) string { return entries[i].ID }

	tests := []struct {
		name  string
		query string
		ids   []string
		also  []string // in the body too
	}{
		{name: "no filter", query: "", ids: []string{id(0), id(1), id(2), id(3), id(4), id(5)}},
		{name: "order part, any case", query: "?order=ks0209", ids: []string{id(0), id(1)},
			also: []string{"all (2)", "meari (2)", "pandapon (0)", `order containing “ks0209”`, "Clear filters"}},
		{name: "whole order", query: "?order=1:01582572KS0209053", ids: []string{id(0)}},
		{name: "PandaPon order ID", query: "?order=2542285634920880795", ids: []string{id(4)}},
		{name: "order part spanning providers", query: "?order=25422856", ids: []string{id(3), id(4)}},
		{name: "order, spaces trimmed", query: "?order=+KS0209054+", ids: []string{id(1)}},
		{name: "reason", query: "?reason=permanent", ids: []string{id(0), id(2), id(3)}, also: []string{"all (3)", "meari (2)", "pandapon (1)"}},
		{name: "reason with a space", query: "?reason=retries+exhausted", ids: []string{id(1), id(5)}},
		{name: "reason and provider", query: "?reason=permanent&provider=pandapon", ids: []string{id(3)},
			also: []string{`<span class="active">pandapon (1)</span>`, `href="/monitoring/dlq?provider=meari&amp;reason=permanent"`}},
		{name: "order and reason", query: "?order=KS0209&reason=permanent", ids: []string{id(0)}},
		{name: "upstream code", query: "?code=http_503", ids: []string{id(4), id(5)}},
		{name: "code and reason", query: "?code=http_503&reason=max+age+exceeded", ids: []string{id(4)}},
		{name: "filters and pages", query: "?reason=permanent&size=2&page=2", ids: []string{id(3)},
			also: []string{"Entries 3–3 of 3", "page 2 of 2", `href="/monitoring/dlq?reason=permanent&amp;size=2"`}},
		{name: "filters, first page", query: "?reason=permanent&size=2", ids: []string{id(0), id(2)},
			also: []string{`href="/monitoring/dlq?page=2&amp;reason=permanent&amp;size=2"`}},
		{name: "no match", query: "?order=nope", ids: nil, also: []string{"No entries match these filters."}},
		{name: "filters past the last page", query: "?reason=permanent&page=3", ids: nil, also: []string{"No entries on page 3; there are 3 in 1 pages."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, body := get(t, hs.URL, admin.DLQPath+tt.query, "", "")
			if code != http.StatusOK {
				t.Fatalf("GET %s: %d\n%s", tt.query, code, body)
			}
			if got := rowIDs(body); !slices.Equal(got, tt.ids) {
				t.Errorf("GET %s lists %q, want %q", tt.query, got, tt.ids)
			}
			contains(t, "page", body, tt.also...)
		})
	}

	bad := []struct{ query, want string }{
		{"?reason=bogus", `reason: must be one of "permanent", "retries exhausted"`},
		{"?reason=Permanent", `reason: must be one of`},
		{"?order=" + strings.Repeat("x", 129), "order: must be at most 128 printable characters"},
		{"?order=a%00b", "order: must be at most 128 printable characters"},
		{"?order=%E2%80%AEevil", "order: must be at most 128 printable characters"},
		{"?code=" + strings.Repeat("9", 65), "code: must be at most 64 printable characters"},
		{"?provider=acme&order=x", `provider: must be one of meari, pandapon, got "acme"`},
		{"?order=x&page=0", "page: must be an integer from 1"},
		{"?reason=permanent&size=abc", `size: must be an integer from 1 to 500, got "abc"`},
		{"?order=a&order=b", "order: is given 2 times: give it once"},
		{"?page=1&size=10&page=2", "page: is given 2 times: give it once"},
		{"?done=purged&n=1&n=2", "n: is given 2 times: give it once"},
		{"?done=deleted", `done: must be "requeued" or "purged", got "deleted"`},
		{"?done=requeued&n=-1", "n: must be an integer from 0 to 500"},
		{"?done=purged&failed=x", "failed: must be an integer from 0 to 500"},
		{"?done=purged&failed=1&why=%3Cb%3Ehi", `why: must be one of active, gone, corrupt, error, got "<b>hi"`},
	}
	for _, b := range bad {
		code, body := get(t, hs.URL, admin.DLQPath+b.query, "", "")
		if code != http.StatusBadRequest || !strings.Contains(body, b.want) {
			t.Errorf("GET %s: %d %q, want 400 with %q", b.query, code, body, b.want)
		}
	}
}

// TestDLQPageActions drives the buttons of the writable page against a real
// worker: an order dead-lettered by a Meari 4001 is requeued and then
// cancelled, another is purged (its archived task too), each post redirects
// back to the filtered page with the outcome, and what cannot be done is
// said, not dropped.
func TestDLQPageActions(t *testing.T) {
	t.Parallel()
	r := newRig(t, config.Admin{})
	again := r.EnqueueMeari(t, "ACT-REQUEUE", sandbox.MeariCode("4001"), sandbox.OK())
	drop := r.EnqueueMeari(t, "ACT-PURGE", sandbox.MeariCode("4001"))
	r.WaitState(t, again, asynq.TaskStateArchived)
	r.WaitState(t, drop, asynq.TaskStateArchived)

	code, body := get(t, r.base, admin.DLQPath+"?order=ACT-", "", "")
	if ids := rowIDs(body); code != 200 || !slices.Equal(slices.Sorted(slices.Values(ids)), []string{drop.TaskID, again.TaskID}) {
		t.Fatalf("GET page: %d, rows %q, want both entries\n%s", code, rowIDs(body), body)
	}
	contains(t, "page", body,
		`action="/monitoring/dlq/requeue"`, `action="/monitoring/dlq/purge"`, "Requeue all 2 shown", "Purge all 2 shown",
		`onsubmit="if(!window.confirm(&#34;Requeue order 1:ACT-REQUEUE (meari)?`,
		`<input type="hidden" name="back" value="order=ACT-">`)

	// Unconfirmed (no JavaScript): a confirmation page, nothing done.
	code, _, body = postForm(t, r.base, admin.DLQRequeuePath, url.Values{"id": {again.TaskID}, "back": {"order=ACT-"}}, nil)
	if code != 200 {
		t.Fatalf("unconfirmed requeue: %d\n%s", code, body)
	}
	contains(t, "confirmation page", body, "Requeue 1 entry?", again.TaskID, `name="confirmed" value="yes"`, `href="/monitoring/dlq?order=ACT-">Cancel`)
	if _, err := r.DLQ.Get(t.Context(), again.TaskID); err != nil {
		t.Fatalf("after the unconfirmed post: %v; want the entry kept", err)
	}

	// Requeue: 303 back to the filtered page; the entry goes, the order is
	// cancelled.
	code, loc, body := postForm(t, r.base, admin.DLQRequeuePath, confirmed("order=ACT-", again.TaskID), nil)
	if code != http.StatusSeeOther || loc != admin.DLQPath+"?done=requeued&n=1&order=ACT-" {
		t.Fatalf("requeue: %d Location %q, want 303 to the page with done=requeued&n=1\n%s", code, loc, body)
	}
	r.WaitState(t, again, asynq.TaskStateCompleted)
	if !r.Sandbox.Cancelled(tasks.ProviderMeari, "ACT-REQUEUE") {
		t.Error("the requeued order was not cancelled upstream")
	}
	if _, err := r.DLQ.Get(t.Context(), again.TaskID); !errors.Is(err, dlq.ErrNotFound) {
		t.Errorf("requeued entry: %v, want ErrNotFound", err)
	}
	code, body = get(t, r.base, loc, "", "")
	if code != 200 || !slices.Equal(rowIDs(body), []string{drop.TaskID}) {
		t.Fatalf("page after requeue: %d, rows %q", code, rowIDs(body))
	}
	contains(t, "page after requeue", body, `<p id="notice" role="status">Requeued 1 entry.</p>`)

	// Purge: the entry and its archived task go; the order is not called.
	calls := len(r.Sandbox.Calls(tasks.ProviderMeari, "ACT-PURGE"))
	code, loc, _ = postForm(t, r.base, admin.DLQPurgePath, confirmed("", drop.TaskID), nil)
	if code != http.StatusSeeOther || loc != admin.DLQPath+"?done=purged&n=1" {
		t.Fatalf("purge: %d Location %q", code, loc)
	}
	if _, err := r.DLQ.Get(t.Context(), drop.TaskID); !errors.Is(err, dlq.ErrNotFound) {
		t.Errorf("purged entry: %v, want ErrNotFound", err)
	}
	if _, err := r.Inspector.GetTaskInfo(drop.Queue, drop.TaskID); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("purged entry's archived task: %v, want ErrTaskNotFound", err)
	}
	if n := len(r.Sandbox.Calls(tasks.ProviderMeari, "ACT-PURGE")); n != calls {
		t.Errorf("purge called the upstream: %d calls, had %d", n, calls)
	}
	_, body = get(t, r.base, loc, "", "")
	contains(t, "page after purge", body, "Purged 1 entry.", "The dead-letter queue is empty.")

	// Gone meanwhile (another tab): said, not hidden.
	code, loc, _ = postForm(t, r.base, admin.DLQRequeuePath, confirmed("", drop.TaskID), nil)
	if code != http.StatusSeeOther || loc != admin.DLQPath+"?done=requeued&failed=1&n=0&why=gone" {
		t.Fatalf("requeue of a gone entry: %d Location %q", code, loc)
	}
	_, body = get(t, r.base, loc, "", "")
	contains(t, "page", body, `<p id="notice" role="status" class="warn">1 entry could not be requeued (no longer in the dead-letter queue`)
	code, loc, _ = postForm(t, r.base, admin.DLQPurgePath, confirmed("", drop.TaskID, again.TaskID), nil)
	if code != http.StatusSeeOther || loc != admin.DLQPath+"?done=purged&failed=2&n=0&why=gone" {
		t.Fatalf("purge of gone entries: %d Location %q", code, loc)
	}

	// A corrupt entry is not requeued; it is kept and the page says why.
	bad := "meari:72:1:CORRUPT"
	if err := r.RDB.HSet(t.Context(), dlq.PrefixDefault+"entries", bad, `{"id":"meari:72:1:CORRUPT","provider":"meari","attempts":"x"}`).Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"by_time", "by_time:meari"} {
		if err := r.RDB.ZAdd(t.Context(), dlq.PrefixDefault+k, redis.Z{Score: 1, Member: bad}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	_, body = get(t, r.base, admin.DLQPath, "", "")
	if strings.Contains(body, `name="id" value="`+bad+`"><input type="hidden" name="back" value=""><input type="hidden" name="confirmed" value=""><button type="submit" class="btn">Requeue`) {
		t.Error("the corrupt entry has a requeue button")
	}
	contains(t, "page", body, "Purge the corrupt entry "+bad+" for good?")
	_, loc, _ = postForm(t, r.base, admin.DLQRequeuePath, confirmed("", bad), nil)
	if loc != admin.DLQPath+"?done=requeued&failed=1&n=0&why=corrupt" {
		t.Fatalf("requeue of a corrupt entry: Location %q", loc)
	}
	if _, err := r.DLQ.Get(t.Context(), bad); err != nil {
		t.Fatalf("corrupt entry after a refused requeue: %v; want it kept", err)
	}
	_, loc, _ = postForm(t, r.base, admin.DLQPurgePath, confirmed("", bad), nil)
	if loc != admin.DLQPath+"?done=purged&n=1" {
		t.Fatalf("purge of a corrupt entry: Location %q", loc)
	}

	// Requests that are not the page's forms.
	for _, tt := range []struct {
		name string
		form url.Values
		want string
	}{
		{"no id", url.Values{"confirmed": {"yes"}}, "id: give at least one dead-letter entry ID"},
		{"empty id", url.Values{"id": {""}, "confirmed": {"yes"}}, "id: must be an entry ID of 1 to 512 bytes"},
		{"too many", url.Values{"id": slices.Repeat([]string{"x"}, 501), "confirmed": {"yes"}}, "id: at most 500 entries at once, got 501"},
		{"bad back", confirmed("reason=bogus", "x"), `back: reason: must be one of`},
	} {
		if code, _, body := postForm(t, r.base, admin.DLQRequeuePath, tt.form, nil); code != 400 || !strings.Contains(body, tt.want) {
			t.Errorf("%s: %d %q, want 400 with %q", tt.name, code, body, tt.want)
		}
	}
	if code, body := get(t, r.base, admin.DLQRequeuePath, "", ""); code != http.StatusMethodNotAllowed || !strings.Contains(body, "use POST") {
		t.Errorf("GET %s: %d %q, want 405", admin.DLQRequeuePath, code, body)
	}
}

// TestDLQPageBulkActions checks the "all shown" buttons: they act on the
// rows of the page shown, no others.
func TestDLQPageBulkActions(t *testing.T) {
	t.Parallel()
	_, hs, rdb := newServer(t, admin.Options{Config: config.Admin{Addr: "127.0.0.1:0"}})
	store := dlq.New(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	t.Cleanup(func() { insp.Close() })
	e := []dlq.Entry{
		meariEntry(t, 0, "BULK-1", dlq.ReasonPermanent, "4001"),
		meariEntry(t, 1, "BULK-2", dlq.ReasonPermanent, "4001"),
		meariEntry(t, 2, "BULK-3", dlq.ReasonPermanent, "4001"),
		pandaPonEntry(t, 3, "2542285634920880794", dlq.ReasonPermanent, "200"),
	}
	putAll(t, store, e...)

	// The first page of two meari entries: its bulk form holds those two.
	_, body := get(t, hs.URL, admin.DLQPath+"?provider=meari&size=2", "", "")
	if !strings.Contains(body, "Requeue all 2 shown") {
		t.Fatalf("page lacks the bulk requeue button:\n%s", body)
	}
	code, loc, _ := postForm(t, hs.URL, admin.DLQRequeuePath, confirmed("provider=meari&size=2", e[0].ID, e[1].ID), nil)
	if code != http.StatusSeeOther || loc != admin.DLQPath+"?done=requeued&n=2&provider=meari&size=2" {
		t.Fatalf("bulk requeue: %d Location %q", code, loc)
	}
	left, err := store.IDs(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(left, []string{e[2].ID, e[3].ID}) {
		t.Fatalf("after the bulk requeue the DLQ holds %q, want %q", left, []string{e[2].ID, e[3].ID})
	}
	for _, x := range e[:2] {
		info, err := insp.GetTaskInfo(tasks.QueueMeari, x.ID)
		if err != nil || info.State != asynq.TaskStatePending {
			t.Errorf("requeued %s: %v, %v; want a pending task", x.ID, info, err)
		}
	}
	_, body = get(t, hs.URL, loc, "", "")
	contains(t, "page", body, "Requeued 2 entries.")

	code, loc, _ = postForm(t, hs.URL, admin.DLQPurgePath, confirmed("", e[2].ID, e[3].ID), nil)
	if code != http.StatusSeeOther || loc != admin.DLQPath+"?done=purged&n=2" {
		t.Fatalf("bulk purge: %d Location %q", code, loc)
	}
	if n, err := store.Count(t.Context(), ""); err != nil || n != 0 {
		t.Fatalf("after the bulk purge: %d entries, %v; want 0", n, err)
	}
}

// TestDLQPageReadOnly checks that a read-only admin server shows no buttons
// and refuses the posts with a 403 that says why, changing nothing.
func TestDLQPageReadOnly(t *testing.T) {
	t.Parallel()
	_, hs, rdb := newServer(t, admin.Options{Config: config.Admin{Addr: "127.0.0.1:0", ReadOnly: true}})
	store := dlq.New(rdb)
	e := []dlq.Entry{meariEntry(t, 0, "RO-1", dlq.ReasonPermanent, "4001"), meariEntry(t, 1, "RO-2", dlq.ReasonPermanent, "4001")}
	putAll(t, store, e...)

	code, body := get(t, hs.URL, admin.DLQPath, "", "")
	if code != 200 || len(rowIDs(body)) != 2 {
		t.Fatalf("GET page: %d, rows %q", code, rowIDs(body))
	}
	contains(t, "read-only page", body, "This page is read-only (ADMIN_READONLY)", `id="sidenav"`, `id="filter"`)
	for _, lack := range []string{"<form class=\"action\"", "/monitoring/dlq/requeue", "/monitoring/dlq/purge", "Requeue", ">Purge", "confirm("} {
		if strings.Contains(body, lack) {
			t.Errorf("read-only page holds %q", lack)
		}
	}
	for _, path := range []string{admin.DLQRequeuePath, admin.DLQPurgePath} {
		for _, form := range []url.Values{confirmed("", e[0].ID, e[1].ID), {"id": {e[0].ID}}} {
			code, _, body := postForm(t, hs.URL, path, form, nil)
			if code != http.StatusForbidden || !strings.Contains(body, "read-only (ADMIN_READONLY=true)") {
				t.Errorf("POST %s %v: %d %q, want 403 naming ADMIN_READONLY", path, form, code, body)
			}
		}
	}
	if ids, err := store.IDs(t.Context(), ""); err != nil || len(ids) != 2 {
		t.Fatalf("after the refused posts: %q, %v; want both entries", ids, err)
	}

	// A read-only server needs no Enqueuer; a writable one does.
	rdbOpt := config.RedisConn{Mode: config.RedisSingle, Single: &redis.Options{Addr: "127.0.0.1:1"}}
	if _, err := admin.New(admin.Options{Config: config.Admin{Addr: "127.0.0.1:0", ReadOnly: true}, Redis: rdbOpt, DLQ: store, Logger: zap.NewNop()}); err != nil {
		t.Errorf("read-only admin.New without Enqueuer: %v", err)
	}
	if _, err := admin.New(admin.Options{Config: config.Admin{Addr: "127.0.0.1:0"}, Redis: rdbOpt, DLQ: store, Logger: zap.NewNop()}); err == nil || !strings.Contains(err.Error(), "Enqueuer is required") {
		t.Errorf("writable admin.New without Enqueuer: %v, want an error naming Enqueuer", err)
	}
}

// TestDLQActionsCrossSiteRefused replays a page on another site (and a
// DNS-rebinding one) posting the buttons' forms: each is refused and the
// entries stay, with no task enqueued; the page's own post still works.
func TestDLQActionsCrossSiteRefused(t *testing.T) {
	t.Parallel()
	_, hs, rdb := newServer(t, admin.Options{Config: config.Admin{Addr: "127.0.0.1:0"}})
	store := dlq.New(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	t.Cleanup(func() { insp.Close() })
	e := meariEntry(t, 0, "CSRF-DLQ", dlq.ReasonPermanent, "4001")
	putAll(t, store, e)
	before, err := store.Get(t.Context(), e.ID)
	if err != nil {
		t.Fatal(err)
	}
	port := portOf(strings.TrimPrefix(hs.URL, "http://"))
	attacks := []struct {
		name   string
		header map[string]string
	}{
		{"form post from another site", map[string]string{"Origin": "https://evil.example"}},
		{"fetch from another site", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}},
		{"another port of this host", map[string]string{"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"}},
		{"fetch metadata only, cross-site", map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"no Origin and no fetch metadata", map[string]string{}},
		{"DNS rebinding", map[string]string{"Origin": "http://evil.example:" + port, "Sec-Fetch-Site": "same-origin", "Host": "evil.example:" + port}},
	}
	for _, path := range []string{admin.DLQRequeuePath, admin.DLQPurgePath} {
		for _, a := range attacks {
			code, _, body := postForm(t, hs.URL, path, confirmed("", e.ID), a.header)
			if code != http.StatusForbidden || !strings.Contains(body, "forbidden:") {
				t.Errorf("%s to %s: %d %q, want 403", a.name, path, code, body)
			}
		}
	}
	after, err := store.Get(t.Context(), e.ID)
	if err != nil || after.Seq != before.Seq {
		t.Fatalf("entry after the attacks: seq %d, %v; want it untouched (seq %d)", after.Seq, err, before.Seq)
	}
	if info, err := insp.GetQueueInfo(tasks.QueueMeari); err == nil && info.Size != 0 {
		t.Fatalf("after the attacks the meari queue holds %d tasks, want 0", info.Size)
	}

	// The page's own post.
	if code, loc, _ := postForm(t, hs.URL, admin.DLQRequeuePath, confirmed("", e.ID), nil); code != http.StatusSeeOther || loc != admin.DLQPath+"?done=requeued&n=1" {
		t.Fatalf("same-origin requeue: %d Location %q", code, loc)
	}
	if info, err := insp.GetTaskInfo(tasks.QueueMeari, e.ID); err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("requeued task: %v, %v; want pending", info, err)
	}
}

// TestDLQPageLook checks the frame the page shares with the monitoring UI:
// the app bar with the UI's logo and the navigation to the UI's pages, all
// inline (no asset from elsewhere).
func TestDLQPageLook(t *testing.T) {
	t.Parallel()
	_, hs, _ := newServer(t, admin.Options{Config: config.Admin{Addr: "127.0.0.1:0"}})
	code, body := get(t, hs.URL, admin.DLQPath, "", "")
	if code != 200 {
		t.Fatalf("GET page: %d", code)
	}
	contains(t, "page", body, `<header id="appbar">`, `<svg fill="none" viewBox="0 0 1663 397"`, "Copyright (c) 2021 Kentaro Hibino",
		`<a href="/monitoring/" title="Queues">`, `<a href="/monitoring/servers" title="Servers">`, `<a href="/monitoring/schedulers" title="Schedulers">`, `<a href="/monitoring/redis" title="Redis">`,
		`<a href="/monitoring/dlq" aria-current="page" title="Dead letters">`, ">Queues</a>", ">Servers</a>", ">Schedulers</a>", ">Redis</a>", ">Dead letters</a>")
	for _, ext := range []string{"https://", "http://", "<script"} {
		if strings.Contains(strings.ReplaceAll(body, `xmlns="http://www.w3.org/2000/svg"`, ""), ext) {
			t.Errorf("page holds %q: it must not load anything from elsewhere", ext)
		}
	}
	// The navigation's targets are the UI's pages.
	for _, p := range []string{"/monitoring/servers", "/monitoring/schedulers", "/monitoring/redis"} {
		if code, body := get(t, hs.URL, p, "", ""); code != 200 || !strings.Contains(body, "Asynq - Monitoring") {
			t.Errorf("GET %s: %d, want the UI's page", p, code)
		}
	}
}

// TestBrowserDLQRequeue loads the dead-letter page in a real Chromium,
// finds the monitoring UI's header and navigation, clicks an entry's
// requeue button, accepts the confirm() dialog, and sees the entry gone and
// the order cancelled.
func TestBrowserDLQRequeue(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	t.Parallel()
	ctx := browser(t, 90*time.Second)
	dir := artifactDir(t)
	r := newRig(t, config.Admin{})
	dead := r.EnqueueMeari(t, "BROWSER-REQUEUE", sandbox.MeariCode("4001"), sandbox.OK())
	other := r.EnqueueMeari(t, "BROWSER-STAYS", sandbox.MeariCode("4001"))
	r.WaitState(t, dead, asynq.TaskStateArchived)
	r.WaitState(t, other, asynq.TaskStateArchived)

	// Accept each confirm() the page asks, and note its question.
	questions := make(chan string, 4)
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dialogs := chromedp.Events(dctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			questions <- ev.Message
			if _, err := chromedp.Call(dctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true}); err != nil {
				return
			}
		}
	}()

	row := func(id string) string { return `tr[data-id="` + id + `"]` }
	err := chromedp.Do(ctx,
		chromedp.Navigate(r.base+admin.DLQPath),
		chromedp.WaitVisible(chromedp.CSS("header#appbar svg")),
		chromedp.WaitVisible(chromedp.CSS(`#sidenav a[href="/monitoring/servers"]`)),
		chromedp.WaitVisible(chromedp.CSS(row(dead.TaskID))),
		textIncludes("Queues", "Servers", "Schedulers", "Redis", "Dead letters", "BROWSER-REQUEUE", "BROWSER-STAYS"),
		screenshot(t, dir, "dlq-page-buttons.png"),
		chromedp.Click(chromedp.CSS(row(dead.TaskID)+" td.actions button")),
		chromedp.WaitNotPresent(chromedp.CSS(row(dead.TaskID))),
		chromedp.WaitVisible(chromedp.CSS("#notice")),
		textIncludes("Requeued 1 entry.", "BROWSER-STAYS"),
		screenshot(t, dir, "dlq-page-requeued.png"),
	)
	if err != nil {
		failWithPage(t, ctx, err)
	}
	select {
	case q := <-questions:
		if !strings.HasPrefix(q, "Requeue order 1:BROWSER-REQUEUE (meari)?") {
			t.Errorf("the dialog asked %q", q)
		}
	default:
		t.Error("no confirm dialog opened")
	}
	r.WaitState(t, dead, asynq.TaskStateCompleted)
	if _, err := r.DLQ.Get(t.Context(), dead.TaskID); !errors.Is(err, dlq.ErrNotFound) {
		t.Errorf("requeued entry: %v, want ErrNotFound", err)
	}
	if _, err := r.DLQ.Get(t.Context(), other.TaskID); err != nil {
		t.Errorf("the other entry: %v, want it kept", err)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if want := r.base + admin.DLQPath + "?done=requeued&n=1"; loc != want {
		t.Errorf("after the requeue the browser is at %s, want %s", loc, want)
	}
}

// pageLayout is what TestBrowserDLQPageLook measures in the page.
type pageLayout struct {
	AppBar         float64  `json:"appbar"`         // the app bar's height
	NavCurrent     string   `json:"navCurrent"`     // the highlighted navigation entry
	TableOverflow  float64  `json:"tableOverflow"`  // the table's width beyond its frame
	PageOverflow   float64  `json:"pageOverflow"`   // the page's width beyond the window
	Rows           int      `json:"rows"`           // entry rows shown
	TallestRow     float64  `json:"tallestRow"`     // the tallest entry row's height
	SmallestFont   float64  `json:"smallestFont"`   // the table's smallest text, px
	Headers        []string `json:"headers"`        // the table's column headers
	FilterFields   int      `json:"filterFields"`   // the filter form's fields
	NextPage       bool     `json:"nextPage"`       // a link to the next page
	MainLeft       float64  `json:"mainLeft"`       // where the content starts: right of the navigation
	NavRight       float64  `json:"navRight"`       // where the navigation ends
	ButtonsInRow   bool     `json:"buttonsInRow"`   // each row's buttons side by side
	UnknownVisible bool     `json:"unknownVisible"` // the outcome-unknown mark is shown
}

const measureLayout = `(() => {
  const r = e => e.getBoundingClientRect();
  const frame = document.querySelector("table#dlq").parentElement;
  const rows = [...document.querySelectorAll("table#dlq tbody tr")];
  let smallest = 1e9;
  for (const el of document.querySelectorAll("table#dlq *")) {
    if (el.childNodes.length && [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) {
      smallest = Math.min(smallest, parseFloat(getComputedStyle(el).fontSize));
    }
  }
  const current = document.querySelector("#sidenav a[aria-current=page]");
  const unknown = document.querySelector("table#dlq .unknown");
  return {
    appbar: r(document.querySelector("header#appbar")).height,
    navCurrent: current ? current.innerText.trim() : "",
    tableOverflow: frame.scrollWidth - frame.clientWidth,
    pageOverflow: document.documentElement.scrollWidth - window.innerWidth,
    rows: rows.length,
    tallestRow: Math.max(...rows.map(tr => r(tr).height)),
    smallestFont: smallest,
    headers: [...document.querySelectorAll("table#dlq thead th")].map(th => th.innerText.trim()),
    filterFields: document.querySelectorAll("form#filter select, form#filter input[type=search]").length,
    nextPage: !!document.querySelector("nav#pages a[href*='page=2']"),
    mainLeft: r(document.querySelector("main h1")).left,
    navRight: r(document.querySelector("#sidenav")).right,
    buttonsInRow: rows.every(tr => { const b = [...tr.querySelectorAll("td.actions button")]; return b.length < 2 || Math.abs(r(b[0]).top - r(b[1]).top) < 2; }),
    unknownVisible: !!unknown && r(unknown).width > 0,
  };
})()`

// TestBrowserDLQPageLook renders a page of dead letters in Chromium at a
// laptop's width (1280×800) and a narrow window's (1024×768), saves each
// as a screenshot (TEST_ARTIFACTS keeps them), and checks that it reads
// as part of the monitoring UI: its app bar and navigation with Dead
// letters highlighted, the content beside the navigation, the filters and
// the pagination; a table that fits its frame with no sideways scrolling,
// rows kept short by long messages wrapping, text no smaller than 12 px,
// and the outcome-unknown mark shown.
func TestBrowserDLQPageLook(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	t.Parallel()
	ctx := browser(t, 90*time.Second)
	dir := artifactDir(t)
	_, hs, rdb := newServer(t, admin.Options{Config: config.Admin{Addr: "127.0.0.1:0"}})
	store := dlq.New(rdb)
	base := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	long := "meari: transient 1005: resultCode 1005: the service is busy, try again later; " + strings.Repeat("upstream said more than fits on one line ", 4)
	for i := range 14 {
		provider, order, e := "meari", fmt.Sprintf("1:01582572KS02090%02d", i), dlq.Entry{Reason: dlq.ReasonRetriesExhausted, UpstreamCode: "1005", Message: long}
		if i%3 == 1 {
			provider, order = "pandapon", fmt.Sprintf("25422856349208807%02d", i)
			e = dlq.Entry{Reason: dlq.ReasonPermanent, UpstreamCode: "200", Message: "pandapon: permanent 200: the order cannot be cancelled: it was paid", OutcomeUnknown: i == 4}
		}
		e.ID, e.Provider, e.Order = provider+":"+order, provider, order
		e.TaskType, e.Queue, e.Payload = "order:cancel:"+provider, "cancel:"+provider, []byte(`{}`)
		e.Attempts = 1 + i%4
		e.FirstFailedAt, e.LastFailedAt = base.Add(time.Duration(i)*time.Minute), base.Add(time.Duration(i)*time.Minute+90*time.Second)
		if _, err := store.Put(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	for _, vp := range []struct{ w, h int64 }{{1280, 800}, {1024, 768}} {
		var got pageLayout
		err := chromedp.Do(ctx,
			chromedp.EmulateViewport(vp.w, vp.h),
			chromedp.Navigate(hs.URL+admin.DLQPath+"?size=10"),
			chromedp.WaitVisible(chromedp.CSS("table#dlq")),
			screenshot(t, dir, fmt.Sprintf("dlq-page-%dx%d.png", vp.w, vp.h)),
			chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
				var err error
				got, err = chromedp.Evaluate[pageLayout](measureLayout)(ctx, target)
				return err
			}),
		)
		if err != nil {
			failWithPage(t, ctx, err)
		}
		t.Logf("%d×%d: %+v", vp.w, vp.h, got)
		wantHeaders := []string{"Actions", "Order (provider, task ID)", "Reason, upstream code", "Attempts", "Last failed (first)", "Message"}
		switch {
		case got.AppBar < 48 || got.AppBar > 80:
			t.Errorf("%d×%d: the app bar is %.0f px high, want the UI's 64", vp.w, vp.h, got.AppBar)
		case got.NavCurrent != "Dead letters":
			t.Errorf("%d×%d: the navigation highlights %q, want Dead letters", vp.w, vp.h, got.NavCurrent)
		case got.MainLeft < got.NavRight:
			t.Errorf("%d×%d: the content starts at %.0f px, under the navigation (to %.0f px)", vp.w, vp.h, got.MainLeft, got.NavRight)
		}
		if got.TableOverflow > 0 || got.PageOverflow > 0 {
			t.Errorf("%d×%d: the table is %.0f px wider than its frame, the page %.0f px wider than the window: want no sideways scrolling", vp.w, vp.h, got.TableOverflow, got.PageOverflow)
		}
		if got.Rows != 10 || !got.NextPage {
			t.Errorf("%d×%d: %d rows and next page %v, want 10 rows of 14 and a link to page 2", vp.w, vp.h, got.Rows, got.NextPage)
		}
		if got.TallestRow > 140 {
			t.Errorf("%d×%d: the tallest row is %.0f px high: a long message should wrap in a wide column, not stretch the row", vp.w, vp.h, got.TallestRow)
		}
		if got.SmallestFont < 12 {
			t.Errorf("%d×%d: the table has text at %.0f px, want at least 12", vp.w, vp.h, got.SmallestFont)
		}
		if !slices.Equal(got.Headers, wantHeaders) {
			t.Errorf("%d×%d: headers %q, want %q", vp.w, vp.h, got.Headers, wantHeaders)
		}
		if got.FilterFields != 4 || !got.ButtonsInRow || !got.UnknownVisible {
			t.Errorf("%d×%d: %d filter fields (want 4), buttons side by side %v, outcome unknown shown %v", vp.w, vp.h, got.FilterFields, got.ButtonsInRow, got.UnknownVisible)
		}
	}
}
