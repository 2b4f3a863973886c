package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// bigPayload is a PandaPon payload whose order ID does not fit a float64.
const bigPayload = `{"order_id":2542285634920880794,"cancel_reason":"buyer <changed> mind & left","requested_at":"2025-01-02T03:04:05.123456789Z"}`

func newStore(t *testing.T) (*Store, *redis.Client) {
	t.Helper()
	rdb := redistest.New(t).Client(t)
	return New(rdb), rdb
}

func entry(id, provider string, last time.Time) Entry {
	return Entry{
		ID:            id,
		Provider:      provider,
		Order:         strings.TrimPrefix(id, provider+":"),
		TaskType:      "order:cancel:" + provider,
		Queue:         "cancel:" + provider,
		Payload:       json.RawMessage(`{"order_id":1}`),
		Reason:        ReasonPermanent,
		Message:       "refused",
		Attempts:      1,
		FirstFailedAt: last,
		LastFailedAt:  last,
	}
}

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func TestPutGetRoundTrip(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t)
	in := Entry{
		ID:             "pandapon:2542285634920880794",
		Provider:       "pandapon",
		Order:          "2542285634920880794",
		TaskType:       "order:cancel:pandapon",
		Queue:          "cancel:pandapon",
		Payload:        json.RawMessage(bigPayload),
		Reason:         ReasonPermanent,
		UpstreamCode:   "200",
		Message:        "data: false",
		OutcomeUnknown: true,
		Attempts:       3,
		FirstFailedAt:  t0,
		LastFailedAt:   t0.Add(time.Minute).In(time.FixedZone("CST", 8*3600)),
	}
	put, err := s.Put(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	if put.Seq <= 0 {
		t.Errorf("Put set Seq %d, want > 0", put.Seq)
	}
	got, err := s.Get(t.Context(), in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Payload) != bigPayload {
		t.Errorf("payload = %s\nwant      %s", got.Payload, bigPayload)
	}
	want := in
	want.Seq = put.Seq
	want.LastFailedAt = in.LastFailedAt.UTC()
	if !equal(got, want) || !equal(put, want) {
		t.Errorf("Get = %+v\nPut = %+v\nwant  %+v", got, put, want)
	}
	// The prefix is honoured: every key lives under it.
	keys, err := rdb.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, PrefixDefault) {
			t.Errorf("key %q is outside %q", k, PrefixDefault)
		}
	}
	if _, err := s.Get(t.Context(), "pandapon:1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing) error = %v, want ErrNotFound", err)
	}
}

// equal compares entries, times by instant.
func equal(a, b Entry) bool {
	if !a.FirstFailedAt.Equal(b.FirstFailedAt) || !a.LastFailedAt.Equal(b.LastFailedAt) {
		return false
	}
	a.FirstFailedAt, a.LastFailedAt = b.FirstFailedAt, b.LastFailedAt
	return reflect.DeepEqual(a, b)
}

func TestPutNormalizes(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	now := t0.Add(time.Hour)
	s.nowFunc = func() time.Time { return now }
	tests := []struct {
		name  string
		edit  func(e *Entry)
		check func(t *testing.T, e Entry)
		err   string
	}{
		{name: "id required", edit: func(e *Entry) { e.ID = "" }, err: "id: is required"},
		{name: "provider required", edit: func(e *Entry) { e.Provider = "" }, err: "provider: is required"},
		{
			name: "payload not JSON is kept as a string",
			edit: func(e *Entry) { e.Payload = json.RawMessage(`{"order_id": 25422856349208807`) },
			check: func(t *testing.T, e Entry) {
				var s string
				if err := json.Unmarshal(e.Payload, &s); err != nil || s != `{"order_id": 25422856349208807` {
					t.Errorf("payload = %s, want the bytes as a JSON string", e.Payload)
				}
			},
		},
		{
			name:  "empty payload is null",
			edit:  func(e *Entry) { e.Payload = json.RawMessage{} },
			check: func(t *testing.T, e Entry) { assertEq(t, "payload", string(e.Payload), "null") },
		},
		{
			name: "message truncated",
			edit: func(e *Entry) { e.Message = strings.Repeat("é", MessageLimit) },
			check: func(t *testing.T, e Entry) {
				if len(e.Message) > MessageLimit || !strings.HasSuffix(e.Message, "…") || !strings.HasPrefix(e.Message, "éé") {
					t.Errorf("message of %d bytes, want at most %d ending in …", len(e.Message), MessageLimit)
				}
			},
		},
		{
			name: "zero times are now",
			edit: func(e *Entry) { e.FirstFailedAt, e.LastFailedAt = time.Time{}, time.Time{} },
			check: func(t *testing.T, e Entry) {
				if !e.FirstFailedAt.Equal(now) || !e.LastFailedAt.Equal(now) {
					t.Errorf("times = %s, %s; want both %s", e.FirstFailedAt, e.LastFailedAt, now)
				}
			},
		},
		{
			name: "zero first is last",
			edit: func(e *Entry) { e.FirstFailedAt = time.Time{} },
			check: func(t *testing.T, e Entry) {
				if !e.FirstFailedAt.Equal(t0) {
					t.Errorf("first_failed_at = %s, want %s", e.FirstFailedAt, t0)
				}
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := entry(fmt.Sprintf("meari:1:1:N%d", i), "meari", t0)
			tt.edit(&e)
			_, err := s.Put(t.Context(), e)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Put error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(t.Context(), e.ID)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, got)
		})
	}
}

func assertEq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestPutIdempotent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		first     Entry
		second    Entry
		wantFirst time.Time
	}{
		{
			name:      "earlier first failure kept",
			first:     entry("pandapon:7", "pandapon", t0),
			second:    withFirst(entry("pandapon:7", "pandapon", t0.Add(time.Hour)), t0.Add(30*time.Minute)),
			wantFirst: t0,
		},
		{
			name:      "earlier first failure in the second write wins",
			first:     entry("pandapon:7", "pandapon", t0),
			second:    withFirst(entry("pandapon:7", "pandapon", t0.Add(time.Hour)), t0.Add(-time.Hour)),
			wantFirst: t0.Add(-time.Hour),
		},
		{
			name:      "provider change moves the index",
			first:     entry("x:7", "meari", t0),
			second:    entry("x:7", "pandapon", t0.Add(time.Hour)),
			wantFirst: t0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t)
			a, err := s.Put(t.Context(), tt.first)
			if err != nil {
				t.Fatal(err)
			}
			tt.second.Reason = ReasonRetriesExhausted
			b, err := s.Put(t.Context(), tt.second)
			if err != nil {
				t.Fatal(err)
			}
			if b.Seq <= a.Seq {
				t.Errorf("second Seq %d not after first %d", b.Seq, a.Seq)
			}
			got, err := s.Get(t.Context(), tt.first.ID)
			if err != nil {
				t.Fatal(err)
			}
			assertEq(t, "seq", got.Seq, b.Seq)
			assertEq(t, "reason", got.Reason, ReasonRetriesExhausted)
			assertEq(t, "provider", got.Provider, tt.second.Provider)
			if !got.FirstFailedAt.Equal(tt.wantFirst) || !got.LastFailedAt.Equal(tt.second.LastFailedAt) {
				t.Errorf("times = %s, %s; want %s, %s", got.FirstFailedAt, got.LastFailedAt, tt.wantFirst, tt.second.LastFailedAt)
			}
			for _, p := range []string{"", "meari", "pandapon"} {
				want := int64(0)
				if p == "" || p == tt.second.Provider {
					want = 1
				}
				if n, err := s.Count(t.Context(), p); err != nil || n != want {
					t.Errorf("Count(%q) = %d, %v; want %d", p, n, err, want)
				}
			}
		})
	}
}

func withFirst(e Entry, first time.Time) Entry {
	e.FirstFailedAt = first
	return e
}

func TestPutConcurrent(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	const writers = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seqs = map[int64]bool{}
	)
	for i := range writers {
		wg.Go(func() {
			e := withFirst(entry("meari:1:1:A", "meari", t0.Add(time.Duration(i)*time.Minute)), t0.Add(time.Duration(writers-i)*time.Second))
			put, err := s.Put(context.Background(), e)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seqs[put.Seq] {
				t.Errorf("Seq %d given twice", put.Seq)
			}
			seqs[put.Seq] = true
		})
	}
	wg.Wait()
	if n, err := s.Count(t.Context(), ""); err != nil || n != 1 {
		t.Fatalf("Count = %d, %v; want 1", n, err)
	}
	got, err := s.Get(t.Context(), "meari:1:1:A")
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(time.Second); !got.FirstFailedAt.Equal(want) {
		t.Errorf("first_failed_at = %s, want the earliest, %s", got.FirstFailedAt, want)
	}
	if !seqs[got.Seq] {
		t.Errorf("stored Seq %d was not returned by any Put", got.Seq)
	}
}

func TestRemove(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		id      string
		seq     func(put Entry) int64
		removed bool
	}{
		{name: "current seq", id: "meari:1:1:A", seq: func(e Entry) int64 { return e.Seq }, removed: true},
		{name: "stale seq", id: "meari:1:1:A", seq: func(e Entry) int64 { return e.Seq - 1 }},
		{name: "missing id", id: "meari:1:1:B", seq: func(e Entry) int64 { return e.Seq }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t)
			if _, err := s.Put(t.Context(), entry("meari:1:1:A", "meari", t0)); err != nil {
				t.Fatal(err)
			}
			// A second write makes the first Seq stale.
			put, err := s.Put(t.Context(), entry("meari:1:1:A", "meari", t0.Add(time.Minute)))
			if err != nil {
				t.Fatal(err)
			}
			ok, err := s.Remove(t.Context(), tt.id, tt.seq(put))
			if err != nil || ok != tt.removed {
				t.Fatalf("Remove = %v, %v; want %v", ok, err, tt.removed)
			}
			_, err = s.Get(t.Context(), "meari:1:1:A")
			if gone := errors.Is(err, ErrNotFound); gone != tt.removed {
				t.Errorf("after Remove, Get error = %v; want gone = %v", err, tt.removed)
			}
			want := int64(1)
			if tt.removed {
				want = 0
			}
			for _, p := range []string{"", "meari"} {
				if n, err := s.Count(t.Context(), p); err != nil || n != want {
					t.Errorf("Count(%q) = %d, %v; want %d", p, n, err, want)
				}
			}
		})
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	// Written out of time order; two share a time, ordered by ID.
	puts := []Entry{
		entry("pandapon:3", "pandapon", t0.Add(3*time.Minute)),
		entry("meari:1:1:A", "meari", t0.Add(1*time.Minute)),
		entry("pandapon:2", "pandapon", t0.Add(2*time.Minute)),
		entry("meari:1:1:B", "meari", t0.Add(2*time.Minute)),
		entry("meari:1:1:C", "meari", t0.Add(4*time.Minute)),
	}
	for _, e := range puts {
		if _, err := s.Put(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		opt   ListOptions
		want  []string
		total int64
	}{
		{name: "all", want: []string{"meari:1:1:A", "meari:1:1:B", "pandapon:2", "pandapon:3", "meari:1:1:C"}, total: 5},
		{name: "provider", opt: ListOptions{Provider: "pandapon"}, want: []string{"pandapon:2", "pandapon:3"}, total: 2},
		{name: "page", opt: ListOptions{Offset: 1, Limit: 2}, want: []string{"meari:1:1:B", "pandapon:2"}, total: 5},
		{name: "provider page", opt: ListOptions{Provider: "meari", Offset: 2, Limit: 5}, want: []string{"meari:1:1:C"}, total: 3},
		{name: "past the end", opt: ListOptions{Offset: 5, Limit: 1}, total: 5},
		{name: "unknown provider", opt: ListOptions{Provider: "nope"}, total: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, total, err := s.List(t.Context(), tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			ids := make([]string, len(got))
			for i, e := range got {
				ids[i] = e.ID
			}
			if fmt.Sprint(ids) != fmt.Sprint(tt.want) || total != tt.total {
				t.Errorf("List(%+v) = %v, %d; want %v, %d", tt.opt, ids, total, tt.want, tt.total)
			}
		})
	}
	if ids, err := s.IDs(t.Context(), "meari"); err != nil || fmt.Sprint(ids) != "[meari:1:1:A meari:1:1:B meari:1:1:C]" {
		t.Errorf("IDs(meari) = %v, %v", ids, err)
	}
	if _, _, err := s.List(t.Context(), ListOptions{Offset: -1}); err == nil {
		t.Error("List with a negative offset succeeded")
	}
}

func TestPurge(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	for _, e := range []Entry{entry("meari:1:1:A", "meari", t0), entry("pandapon:2", "pandapon", t0), entry("pandapon:3", "pandapon", t0)} {
		if _, err := s.Put(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.Purge(t.Context(), "test", "pandapon:2", "meari:1:1:A", "pandapon:2", "missing")
	if err != nil || n != 2 {
		t.Fatalf("Purge = %d, %v; want 2", n, err)
	}
	for p, want := range map[string]int64{"": 1, "meari": 0, "pandapon": 1} {
		if got, err := s.Count(t.Context(), p); err != nil || got != want {
			t.Errorf("Count(%q) = %d, %v; want %d", p, got, err, want)
		}
	}
	if n, err := s.Purge(t.Context(), "test"); err != nil || n != 0 {
		t.Errorf("Purge() = %d, %v; want 0", n, err)
	}
}

// TestManyEntries checks that the store keeps more entries than asynq's
// archive would (10,000), and lists them in one go.
func TestManyEntries(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	const n, workers = 12000, 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				e := entry(fmt.Sprintf("pandapon:%d", 1_000_000+i), "pandapon", t0.Add(time.Duration(i)*time.Second))
				if _, err := s.Put(context.Background(), e); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if got, err := s.Count(t.Context(), ""); err != nil || got != n {
		t.Fatalf("Count = %d, %v; want %d", got, err, n)
	}
	list, total, err := s.List(t.Context(), ListOptions{})
	if err != nil || total != n || len(list) != n {
		t.Fatalf("List = %d entries, total %d, %v; want %d", len(list), total, err, n)
	}
	for i, e := range list {
		if want := fmt.Sprintf("pandapon:%d", 1_000_000+i); e.ID != want {
			t.Fatalf("List[%d] = %s, want %s", i, e.ID, want)
		}
	}
	ids, err := s.IDs(t.Context(), "pandapon")
	if err != nil || len(ids) != n {
		t.Fatalf("IDs = %d, %v; want %d", len(ids), err, n)
	}
	if got, err := s.Purge(t.Context(), "test", ids...); err != nil || got != n {
		t.Fatalf("Purge = %d, %v; want %d", got, err, n)
	}
	if got, err := s.Count(t.Context(), "pandapon"); err != nil || got != 0 {
		t.Errorf("Count after Purge = %d, %v; want 0", got, err)
	}
}

// corrupt stores raw as the entry of id, indexed at last, as a bug, a
// hand edit or an older release might have left it.
func corrupt(t *testing.T, s *Store, rdb *redis.Client, id, provider, raw string, last time.Time) {
	t.Helper()
	ctx := t.Context()
	score := float64(last.UnixMilli())
	if err := rdb.HSet(ctx, s.entriesKey(), id, raw).Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{s.indexKey(""), s.indexKey(provider)} {
		if err := rdb.ZAdd(ctx, k, redis.Z{Score: score, Member: id}).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCorruptEntry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, raw, want string
	}{
		{name: "not JSON", raw: "{not json \xff" + strings.Repeat("x", 400), want: "invalid character"},
		{name: "wrong field type", raw: `{"id":"meari:72:1:BAD","provider":"meari","attempts":"three"}`, want: "cannot unmarshal string"},
		{name: "another ID", raw: `{"id":"meari:72:1:OTHER","provider":"meari"}`, want: `it holds the ID "meari:72:1:OTHER"`},
		{name: "no provider", raw: `{"id":"meari:72:1:BAD"}`, want: "it has no provider"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, rdb := newStore(t)
			ctx := t.Context()
			for i, id := range []string{"meari:72:1:A", "meari:72:1:C"} {
				if _, err := s.Put(ctx, entry(id, "meari", t0.Add(time.Duration(2*i)*time.Minute))); err != nil {
					t.Fatal(err)
				}
			}
			const bad = "meari:72:1:BAD"
			corrupt(t, s, rdb, bad, "meari", tt.raw, t0.Add(time.Minute))

			// List keeps the good entries and shows the bad one in its place.
			got, total, err := s.List(ctx, ListOptions{Provider: "meari"})
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if total != 3 || len(got) != 3 || got[0].ID != "meari:72:1:A" || got[1].ID != bad || got[2].ID != "meari:72:1:C" {
				t.Fatalf("List = %d entries of %d: %+v", len(got), total, got)
			}
			if got[0].Corrupt != "" || got[2].Corrupt != "" || got[2].Reason != ReasonPermanent {
				t.Errorf("good entries marked corrupt or emptied: %+v, %+v", got[0], got[2])
			}
			c := got[1]
			if !strings.Contains(c.Corrupt, tt.want) || c.Provider != "meari" || len(c.Raw) > RawShown+len("…") || !utf8.ValidString(c.Raw) || c.Raw == "" {
				t.Errorf("corrupt entry = %+v; want Corrupt containing %q, provider meari, valid Raw of at most %d bytes", c, tt.want, RawShown)
			}
			if g, err := s.Get(ctx, bad); err != nil || g.Corrupt != c.Corrupt {
				t.Errorf("Get = %+v, %v; want the corrupt entry", g, err)
			}

			// A worker dead-lettering the same task again replaces it.
			e := entry(bad, "meari", t0.Add(3*time.Minute))
			put, err := s.Put(ctx, e)
			if err != nil {
				t.Fatalf("Put over a corrupt entry: %v", err)
			}
			if g, err := s.Get(ctx, bad); err != nil || g.Corrupt != "" || g.Seq != put.Seq || g.Reason != ReasonPermanent {
				t.Fatalf("after Put: %+v, %v", g, err)
			}

			// Purge deletes a corrupt entry and its index rows.
			corrupt(t, s, rdb, bad, "meari", tt.raw, t0.Add(time.Minute))
			n, err := s.Purge(ctx, "test", bad)
			if err != nil || n != 1 {
				t.Fatalf("Purge = %d, %v; want 1", n, err)
			}
			if total, _ := s.Count(ctx, "meari"); total != 2 {
				t.Errorf("after Purge: %d meari entries, want 2", total)
			}
			if all, _ := s.Count(ctx, ""); all != 2 {
				t.Errorf("after Purge: %d entries, want 2", all)
			}
		})
	}
}

// TestPutKeepsOutcomeUnknown writes an entry marked outcome unknown, then
// the same ID again unmarked, as a later run (the UI's "Run") whose record
// has expired would: the mark stays.
func TestPutKeepsOutcomeUnknown(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	e := entry("pandapon:9", "pandapon", t0)
	e.OutcomeUnknown = true
	if _, err := s.Put(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	e.OutcomeUnknown = false
	e.LastFailedAt = t0.Add(time.Hour)
	if _, err := s.Put(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(t.Context(), e.ID); err != nil || !got.OutcomeUnknown {
		t.Errorf("after an unmarked Put: %+v, %v; want the mark kept", got, err)
	}
}

// TestReasonsListsEveryConstant holds Reasons to the Reason constants
// declared in dlq.go, so that a new reason is offered by the dead-letter
// page's filter too.
func TestReasonsListsEveryConstant(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "dlq.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			for _, name := range spec.(*ast.ValueSpec).Names {
				if strings.HasPrefix(name.Name, "Reason") {
					declared = append(declared, name.Name)
				}
			}
		}
	}
	values := map[string]string{
		"ReasonPermanent": ReasonPermanent, "ReasonRetriesExhausted": ReasonRetriesExhausted, "ReasonMaxAge": ReasonMaxAge,
		"ReasonBadPayload": ReasonBadPayload, "ReasonMisconfigured": ReasonMisconfigured, "ReasonArchived": ReasonArchived,
	}
	var want []string
	for _, name := range declared {
		v, ok := values[name]
		if !ok {
			t.Fatalf("constant %s is not in this test's table: add it here and to Reasons", name)
		}
		want = append(want, v)
	}
	if got := Reasons(); !slices.Equal(got, want) {
		t.Fatalf("Reasons() = %q, want the declared constants %q", got, want)
	}
}
