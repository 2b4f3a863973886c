package intake

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/workertest"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/status"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

const testToken = "tok-7f3a9c1e5b2d4f60" // a test value, not a secret

// intakeEnv is one test's Redis and an httptest server with the Handler.
type intakeEnv struct {
	t    *testing.T
	rdb  *redis.Client
	insp *asynq.Inspector
	url  string
	h    *Handler
}

func newIntake(t *testing.T, o Options) *intakeEnv {
	t.Helper()
	rdb := redistest.New(t).Client(t)
	h := NewHandler(rdb, o)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &intakeEnv{t: t, rdb: rdb, insp: asynq.NewInspectorFromRedisClient(rdb), url: srv.URL, h: h}
}

// answer is one HTTP answer.
type answer struct {
	code   int
	header http.Header
	body   string
}

// request sends one request; token "" sends no Authorization header and
// contentType "" no Content-Type.
func (e *intakeEnv) request(method, path, token, contentType string, body io.Reader) answer {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if ct := resp.Header.Get("Content-Type"); method != http.MethodHead && ct != "application/json" {
		e.t.Errorf("%s %s: want a JSON answer, got Content-Type %q", method, path, ct)
	}
	return answer{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

// post posts body as JSON with token.
func (e *intakeEnv) post(token, body string) answer {
	e.t.Helper()
	return e.request(http.MethodPost, "/v1/cancellations", token, "application/json", strings.NewReader(body))
}

// decode parses the answer's body into v, strictly.
func (a answer) decode(t *testing.T, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(a.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("answer %d is not the expected JSON: %v\n%s", a.code, err, a.body)
	}
}

// problems returns the answer's errors as "index field: problem" lines.
func (a answer) problems(t *testing.T) []string {
	t.Helper()
	var eb ErrorBody
	a.decode(t, &eb)
	out := make([]string, len(eb.Errors))
	for i, e := range eb.Errors {
		idx := "-"
		if e.Index != nil {
			idx = string(rune('0' + *e.Index))
		}
		out[i] = idx + " " + e.Field + ": " + e.Problem
	}
	return out
}

// taskPayload returns the payload of task id in queue, failing the test if
// there is none.
func (e *intakeEnv) taskPayload(queue, id string) string {
	e.t.Helper()
	info, err := e.insp.GetTaskInfo(queue, id)
	if err != nil {
		e.t.Fatalf("task %s in %s: %v", id, queue, err)
	}
	return string(info.Payload)
}

// queueSize returns how many tasks queue holds.
func (e *intakeEnv) queueSize(queue string) int {
	e.t.Helper()
	// GetQueueInfo does not wrap asynq.ErrQueueNotFound: ask first.
	qs, err := e.insp.Queues()
	if err != nil {
		e.t.Fatalf("queues: %v", err)
	}
	if !slices.Contains(qs, queue) {
		return 0
	}
	qi, err := e.insp.GetQueueInfo(queue)
	if err != nil {
		e.t.Fatalf("queue %s: %v", queue, err)
	}
	return qi.Size + qi.Completed
}

const pandaItem = `{"provider":"pandapon","orderId":2542285634920880794}`

func TestAuth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		serverTok  string
		header     string // the Authorization header sent; "" for none
		method     string
		path       string
		want       int
		wantHeader string // the WWW-Authenticate header wanted
		host       string // the Host header sent; "" for the server's address
	}{
		{name: "no header", serverTok: testToken, method: http.MethodPost, path: "/v1/cancellations", want: http.StatusUnauthorized, wantHeader: `Bearer realm="cancelworker intake"`},
		{name: "wrong token", serverTok: testToken, header: "Bearer " + testToken + "x", method: http.MethodPost, path: "/v1/cancellations", want: http.StatusUnauthorized, wantHeader: `Bearer realm="cancelworker intake", error="invalid_token"`},
		{name: "token prefix", serverTok: testToken, header: "Bearer " + testToken[:8], method: http.MethodPost, path: "/v1/cancellations", want: http.StatusUnauthorized, wantHeader: `Bearer realm="cancelworker intake", error="invalid_token"`},
		{name: "basic scheme", serverTok: testToken, header: "Basic " + testToken, method: http.MethodPost, path: "/v1/cancellations", want: http.StatusUnauthorized, wantHeader: `Bearer realm="cancelworker intake"`},
		{name: "empty bearer", serverTok: testToken, header: "Bearer ", method: http.MethodPost, path: "/v1/cancellations", want: http.StatusUnauthorized, wantHeader: `Bearer realm="cancelworker intake"`},
		{name: "right token", serverTok: testToken, header: "Bearer " + testToken, method: http.MethodPost, path: "/v1/cancellations", want: http.StatusAccepted},
		{name: "right token, scheme in lower case", serverTok: testToken, header: "bearer " + testToken, method: http.MethodPost, path: "/v1/cancellations", want: http.StatusAccepted},
		{name: "status without a token", serverTok: testToken, method: http.MethodGet, path: "/v1/cancellations/pandapon/2542285634920880794", want: http.StatusUnauthorized, wantHeader: `Bearer realm="cancelworker intake"`},
		{name: "healthz needs no token", serverTok: testToken, method: http.MethodGet, path: "/healthz", want: http.StatusOK},
		{name: "readyz needs no token", serverTok: testToken, method: http.MethodGet, path: "/readyz", want: http.StatusOK},
		{name: "auth off", method: http.MethodPost, path: "/v1/cancellations", want: http.StatusAccepted},
		{name: "auth off, a token sent anyway", header: "Bearer whatever", method: http.MethodPost, path: "/v1/cancellations", want: http.StatusAccepted},
		{name: "auth off, localhost", host: "localhost:8081", method: http.MethodPost, path: "/v1/cancellations", want: http.StatusAccepted},
		{name: "auth off, DNS rebinding (foreign Host)", host: "evil.example:8081", method: http.MethodPost, path: "/v1/cancellations", want: http.StatusForbidden},
		{name: "auth off, foreign Host reading a status", host: "evil.example", method: http.MethodGet, path: "/v1/cancellations/pandapon/2542285634920880794", want: http.StatusForbidden},
		{name: "auth off, foreign Host, healthz", host: "evil.example", method: http.MethodGet, path: "/healthz", want: http.StatusOK},
		{name: "auth on, any Host: the token protects", serverTok: testToken, header: "Bearer " + testToken, host: "intake.internal", method: http.MethodPost, path: "/v1/cancellations", want: http.StatusAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newIntake(t, Options{Token: tt.serverTok})
			var body io.Reader
			if tt.method == http.MethodPost {
				body = strings.NewReader(pandaItem)
			}
			req, err := http.NewRequestWithContext(t.Context(), tt.method, e.url+tt.path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			if tt.host != "" {
				req.Host = tt.host
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("want %d, got %d: %s", tt.want, resp.StatusCode, b)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.wantHeader {
				t.Errorf("WWW-Authenticate: want %q, got %q", tt.wantHeader, got)
			}
			if strings.Contains(string(b), testToken) {
				t.Errorf("the answer shows the token: %s", b)
			}
			enqueued := e.queueSize(tasks.QueuePandaPon)
			if wantQueued := tt.want == http.StatusAccepted; (enqueued == 1) != wantQueued {
				t.Errorf("want enqueued %v, got %d tasks", wantQueued, enqueued)
			}
		})
	}
}

func TestPostBatch(t *testing.T) {
	t.Parallel()
	e := newIntake(t, Options{Token: testToken, Defaults: Defaults{SourceApp: 72}})
	// An order queued before the batch.
	if a := e.post(testToken, `{"provider":"meari","userAccount":"u@x.com","orderType":2,"orderNum":"B1"}`); a.code != http.StatusAccepted {
		t.Fatalf("first post: want 202, got %d %s", a.code, a.body)
	}
	a := e.post(testToken, `[
		{"provider":"meari","userAccount":"u@x.com","orderType":1,"orderNum":"A1"},
		{"provider":"pandapon","orderId":"2542285634920880794","cancelReason":"customer asked"},
		{"provider":"meari","userAccount":"u@x.com","orderType":2,"orderNum":"B1"},
		{"provider":"pandapon","orderId":2542285634920880794},
		{"provider":"meari","userAccount":"u@x.com","orderType":1,"orderNum":"A1","sourceApp":73}
	]`)
	if a.code != http.StatusAccepted {
		t.Fatalf("want 202, got %d %s", a.code, a.body)
	}
	var got AcceptedBody
	a.decode(t, &got)
	want := []ItemResult{
		{Index: 0, Provider: "meari", Order: "1:A1", TaskID: "meari:72:1:A1", Queue: tasks.QueueMeari, State: StateQueued},
		{Index: 1, Provider: "pandapon", Order: "2542285634920880794", TaskID: "pandapon:2542285634920880794", Queue: tasks.QueuePandaPon, State: StateQueued},
		{Index: 2, Provider: "meari", Order: "2:B1", TaskID: "meari:72:2:B1", Queue: tasks.QueueMeari, State: StateAlreadyQueued, AlreadyQueued: true},
		{Index: 3, Provider: "pandapon", Order: "2542285634920880794", TaskID: "pandapon:2542285634920880794", Queue: tasks.QueuePandaPon, State: StateAlreadyQueued, AlreadyQueued: true},
		{Index: 4, Provider: "meari", Order: "1:A1", TaskID: "meari:73:1:A1", Queue: tasks.QueueMeari, State: StateQueued},
	}
	if len(got.Results) != len(want) {
		t.Fatalf("want %d results, got %s", len(want), a.body)
	}
	for i := range want {
		if got.Results[i] != want[i] {
			t.Errorf("result %d: want %+v, got %+v", i, want[i], got.Results[i])
		}
	}
	if !strings.Contains(a.body, `"task_id":"pandapon:2542285634920880794"`) {
		t.Errorf("answer lost the order ID's digits: %s", a.body)
	}
	if n := e.queueSize(tasks.QueueMeari); n != 3 {
		t.Errorf("meari queue: want 3 tasks, got %d", n)
	}
	if p := e.taskPayload(tasks.QueuePandaPon, "pandapon:2542285634920880794"); !strings.Contains(p, `"cancel_reason":"customer asked"`) {
		t.Errorf("pandapon payload: want the first item's reason, got %s", p)
	}
}

func TestOrderIDReachesRedisExactly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		item   string
		digits string
	}{
		{name: "number", item: `{"provider":"pandapon","orderId":2542285634920880794}`, digits: "2542285634920880794"},
		{name: "string", item: `{"provider":"pandapon","orderId":"2542285634920880794"}`, digits: "2542285634920880794"},
		{name: "largest int64 as a number", item: `{"provider":"pandapon","orderId":9223372036854775807}`, digits: "9223372036854775807"},
		{name: "next to a float64 neighbour", item: `[{"provider":"pandapon","orderId":2542285634920880795}]`, digits: "2542285634920880795"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newIntake(t, Options{})
			if a := e.post("", tt.item); a.code != http.StatusAccepted {
				t.Fatalf("want 202, got %d %s", a.code, a.body)
			}
			p := e.taskPayload(tasks.QueuePandaPon, "pandapon:"+tt.digits)
			if !strings.Contains(p, `"order_id":`+tt.digits+`,`) {
				t.Errorf("payload: want \"order_id\":%s, got %s", tt.digits, p)
			}
		})
	}
}

func TestPostInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want []string // "index field: problem"
	}{
		{
			name: "several fields in several items",
			body: `[
				{"provider":"pandapon","orderId":1},
				{"provider":"meari","userAccount":" u","orderType":7,"orderNum":"N1"},
				{"provider":"pandapon","orderId":2.5e18,"remark":3},
				{"provider":"acme"},
				5
			]`,
			want: []string{
				"1 sourceApp: is required: no default source app is configured",
				"1 orderType: must be 1 (cloud), 2 (ai) or 3 (flow4g), got 7",
				"1 userAccount: must not start or end with white space",
				`2 orderId: must be a positive integer of decimal digits, got "2.5e18"`,
				"2 remark: must be a string, got a number",
				`3 provider: must be meari or pandapon, got "acme"`,
				"4 : must be a JSON object, got a number",
			},
		},
		{
			name: "text that is not text, beside a valid item",
			body: "[{\"provider\":\"pandapon\",\"orderId\":1}," +
				"{\"provider\":\"meari\",\"sourceApp\":72,\"userAccount\":\"a@b.c\",\"orderType\":1,\"orderNum\":\"N\xc3\x281\"}," +
				`{"provider":"meari","sourceApp":72,"userAccount":"\udfff@b.c","orderType":1,"orderNum":"N1"},` +
				`{"provider":"pandapon","orderId":2,"remark":"\u0000"}]`,
			want: []string{
				"1 orderNum: must be valid UTF-8: byte 0xC3 at offset 1 of the string as sent is not",
				`2 userAccount: must not contain a lone UTF-16 surrogate (\udfff): JSON text must be Unicode characters`,
				"3 remark: must not contain control characters, got U+0000",
			},
		},
		{name: "one item", body: `{"provider":"pandapon"}`, want: []string{"0 orderId: is required: the 1688 order ID, a JSON integer or a string of decimal digits"}},
		{name: "unknown field", body: `{"provider":"pandapon","orderId":1,"orderID":2}`, want: []string{"0 orderID: unknown field: " + knownFields}},
		{name: "not JSON", body: `{"provider":`, want: []string{"0 : is not valid JSON: unexpected end of input"}},
		{name: "array not JSON", body: `[{"provider":"pandapon","orderId":1},`, want: []string{"- : the body is not valid JSON: unexpected end of input"}},
		{name: "empty array", body: `[]`, want: []string{"- : the array is empty: send at least one item"}},
		{name: "empty body", body: ` `, want: []string{"- : the body is empty: send one item or an array of items"}},
		{name: "trailing data after the array", body: `[{"provider":"pandapon","orderId":1}] x`, want: []string{"- : the body is not valid JSON: trailing data after the array"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newIntake(t, Options{})
			a := e.post("", tt.body)
			if a.code != http.StatusBadRequest {
				t.Fatalf("want 400, got %d %s", a.code, a.body)
			}
			got := a.problems(t)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\nwant %q\ngot  %q", tt.want, got)
			}
			// The valid items are not enqueued either.
			if n := e.queueSize(tasks.QueuePandaPon) + e.queueSize(tasks.QueueMeari); n != 0 {
				t.Errorf("want nothing enqueued from an invalid batch, got %d tasks", n)
			}
		})
	}
}

func TestPostLimits(t *testing.T) {
	t.Parallel()
	items := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = `{"provider":"pandapon","orderId":` + string(rune('1'+i%9)) + `}`
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	big := `{"provider":"pandapon","orderId":1` + strings.Repeat(" ", MaxBodyDefault) + `}`
	tests := []struct {
		name        string
		contentType string
		body        io.Reader
		want        int
		wantProblem string
	}{
		{name: "body too big, length known", contentType: "application/json", body: strings.NewReader(big), want: http.StatusRequestEntityTooLarge, wantProblem: fmt.Sprintf("the body must be at most 1048576 bytes, got %d", len(big))},
		{name: "body too big, chunked", contentType: "application/json", body: io.MultiReader(strings.NewReader(big)), want: http.StatusRequestEntityTooLarge, wantProblem: "the body must be at most 1048576 bytes"},
		{name: "too many items", contentType: "application/json", body: strings.NewReader(items(MaxItemsDefault + 1)), want: http.StatusRequestEntityTooLarge, wantProblem: "at most 1000 items per request, got 1001"},
		{name: "as many items as allowed", contentType: "application/json", body: strings.NewReader(items(MaxItemsDefault)), want: http.StatusAccepted},
		{name: "text/plain", contentType: "text/plain", body: strings.NewReader(pandaItem), want: http.StatusUnsupportedMediaType, wantProblem: "Content-Type must be application/json"},
		{name: "form", contentType: "application/x-www-form-urlencoded", body: strings.NewReader(pandaItem), want: http.StatusUnsupportedMediaType, wantProblem: "Content-Type must be application/json"},
		{name: "no content type", body: strings.NewReader(pandaItem), want: http.StatusUnsupportedMediaType, wantProblem: "Content-Type must be application/json"},
		{name: "JSON with a charset", contentType: "application/json; charset=utf-8", body: strings.NewReader(pandaItem), want: http.StatusAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newIntake(t, Options{})
			a := e.request(http.MethodPost, "/v1/cancellations", "", tt.contentType, tt.body)
			if a.code != tt.want {
				t.Fatalf("want %d, got %d %s", tt.want, a.code, a.body)
			}
			if tt.wantProblem != "" {
				if got := a.problems(t); len(got) != 1 || got[0] != "- : "+tt.wantProblem {
					t.Errorf("errors: want %q, got %q", tt.wantProblem, got)
				}
			}
		})
	}
}

func TestMethodsAndPaths(t *testing.T) {
	t.Parallel()
	e := newIntake(t, Options{Token: testToken})
	tests := []struct {
		name      string
		method    string
		path      string
		want      int
		wantAllow string
	}{
		{name: "GET the collection", method: http.MethodGet, path: "/v1/cancellations", want: http.StatusMethodNotAllowed, wantAllow: "POST"},
		{name: "PUT the collection", method: http.MethodPut, path: "/v1/cancellations", want: http.StatusMethodNotAllowed, wantAllow: "POST"},
		{name: "DELETE an order", method: http.MethodDelete, path: "/v1/cancellations/pandapon/1", want: http.StatusMethodNotAllowed, wantAllow: "GET, HEAD"},
		{name: "POST healthz", method: http.MethodPost, path: "/healthz", want: http.StatusMethodNotAllowed, wantAllow: "GET, HEAD"},
		{name: "unknown path", method: http.MethodGet, path: "/v2/cancellations", want: http.StatusNotFound},
		{name: "too deep", method: http.MethodGet, path: "/v1/cancellations/pandapon/1/x", want: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := e.request(tt.method, tt.path, testToken, "application/json", nil)
			if a.code != tt.want {
				t.Fatalf("want %d, got %d %s", tt.want, a.code, a.body)
			}
			if got := a.header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow: want %q, got %q", tt.wantAllow, got)
			}
			if got := a.problems(t); len(got) != 1 {
				t.Errorf("want one problem, got %q", got)
			}
		})
	}
}

func TestGetStatus(t *testing.T) {
	t.Parallel()
	e := newIntake(t, Options{Token: testToken, Defaults: Defaults{SourceApp: 72}})
	if a := e.post(testToken, `[`+pandaItem+`,{"provider":"meari","userAccount":"u","orderType":2,"orderNum":"M1"},{"provider":"meari","userAccount":"u","orderType":3,"orderNum":"M1"}]`); a.code != http.StatusAccepted {
		t.Fatalf("post: want 202, got %d %s", a.code, a.body)
	}
	tests := []struct {
		name     string
		path     string
		want     int
		wantIDs  []string // found task IDs; one without scan
		scan     bool
		problems []string
	}{
		{name: "pandapon found", path: "/v1/cancellations/pandapon/2542285634920880794", want: http.StatusOK, wantIDs: []string{"pandapon:2542285634920880794"}},
		{name: "pandapon not found", path: "/v1/cancellations/pandapon/2542285634920880795", want: http.StatusNotFound,
			problems: []string{"- : not found: no task and no dead-letter entry for pandapon order 2542285634920880795"}},
		{name: "meari, every order type", path: "/v1/cancellations/meari/M1", want: http.StatusOK, scan: true, wantIDs: []string{"meari:72:2:M1", "meari:72:3:M1"}},
		{name: "meari, one order type", path: "/v1/cancellations/meari/M1?orderType=3", want: http.StatusOK, wantIDs: []string{"meari:72:3:M1"}},
		{name: "meari, another source app", path: "/v1/cancellations/meari/M1?sourceApp=73", want: http.StatusNotFound,
			problems: []string{"- : not found: no task and no dead-letter entry for meari order M1"}},
		{name: "meari, order type not found", path: "/v1/cancellations/meari/M1?orderType=1", want: http.StatusNotFound,
			problems: []string{"- : not found: no task and no dead-letter entry for meari order M1"}},
		{name: "bad query", path: "/v1/cancellations/meari/M:1?orderType=cloud&sourceApp=x&limit=3", want: http.StatusBadRequest, problems: []string{
			"- limit: unknown query parameter: only orderType and sourceApp (meari) are taken",
			`- sourceApp: must be a positive integer, got "x"`,
			`- orderType: must be 1 (cloud), 2 (ai) or 3 (flow4g), got "cloud"`,
			"- order: must not contain ':'",
		}},
		{name: "repeated query parameters", path: "/v1/cancellations/meari/M1?orderType=1&orderType=2&sourceApp=72&sourceApp=72", want: http.StatusBadRequest, problems: []string{
			"- orderType: is given 2 times: give it once",
			"- sourceApp: is given 2 times: give it once",
		}},
		{name: "pandapon, bad order ID and meari parameters", path: "/v1/cancellations/pandapon/25e18?orderType=1", want: http.StatusBadRequest, problems: []string{
			"- orderType: only applies to meari",
			`- order: must be a positive integer of decimal digits, got "25e18"`,
		}},
		{name: "unknown provider", path: "/v1/cancellations/acme/1", want: http.StatusBadRequest, problems: []string{`- provider: must be meari or pandapon, got "acme"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := e.request(http.MethodGet, tt.path, testToken, "", nil)
			if a.code != tt.want {
				t.Fatalf("want %d, got %d %s", tt.want, a.code, a.body)
			}
			if tt.problems != nil {
				if got := a.problems(t); strings.Join(got, "\n") != strings.Join(tt.problems, "\n") {
					t.Errorf("errors:\nwant %q\ngot  %q", tt.problems, got)
				}
				return
			}
			var got []status.Status
			if tt.scan {
				a.decode(t, &got)
			} else {
				var st status.Status
				a.decode(t, &st)
				got = []status.Status{st}
			}
			if len(got) != len(tt.wantIDs) {
				t.Fatalf("want %d statuses, got %s", len(tt.wantIDs), a.body)
			}
			for i, st := range got {
				if st.TaskID != tt.wantIDs[i] || st.State != status.StatePending {
					t.Errorf("status %d: want %s pending, got %s %s", i, tt.wantIDs[i], st.TaskID, st.State)
				}
			}
		})
	}
}

func TestMeariStatusNeedsASourceApp(t *testing.T) {
	t.Parallel()
	e := newIntake(t, Options{})
	a := e.request(http.MethodGet, "/v1/cancellations/meari/M1", "", "", nil)
	if a.code != http.StatusBadRequest {
		t.Fatalf("want 400, got %d %s", a.code, a.body)
	}
	if got := a.problems(t); len(got) != 1 || got[0] != "- sourceApp: is required: no default source app is configured" {
		t.Errorf("errors: got %q", got)
	}
}

// closedRedis returns a client for a loopback address nothing listens on.
func closedRedis(t *testing.T) *redis.Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestRedisDown(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(NewHandler(closedRedis(t), Options{}))
	t.Cleanup(srv.Close)
	e := &intakeEnv{t: t, url: srv.URL}
	tests := []struct {
		name    string
		do      func() answer
		want    int
		wantSub string
	}{
		{name: "healthz", do: func() answer { return e.request(http.MethodGet, "/healthz", "", "", nil) }, want: http.StatusOK, wantSub: `{"status":"ok"}`},
		{name: "readyz", do: func() answer { return e.request(http.MethodGet, "/readyz", "", "", nil) }, want: http.StatusServiceUnavailable, wantSub: `"status":"unavailable","reason":"redis: `},
		{name: "post", do: func() answer { return e.post("", `[`+pandaItem+`]`) }, want: http.StatusServiceUnavailable, wantSub: `{"errors":[{"index":0,"field":"","problem":"not enqueued: `},
		{name: "status", do: func() answer {
			return e.request(http.MethodGet, "/v1/cancellations/pandapon/2542285634920880794", "", "", nil)
		}, want: http.StatusServiceUnavailable, wantSub: `"problem":"status lookup failed: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := tt.do()
			if a.code != tt.want || !strings.Contains(a.body, tt.wantSub) {
				t.Errorf("want %d with %s, got %d %s", tt.want, tt.wantSub, a.code, a.body)
			}
		})
	}
}

// TestPostTellsTheTruth posts orders that are dead-lettered, archived and
// already cancelled: each item's state says which, nothing is enqueued for
// them, and "force": true replaces the dead-lettered one, its entry going
// with it.
func TestPostTellsTheTruth(t *testing.T) {
	t.Parallel()
	e := newIntake(t, Options{Token: testToken})
	const (
		dead     = `{"provider":"pandapon","orderId":1001}`
		archived = `{"provider":"pandapon","orderId":1002}`
		done     = `{"provider":"pandapon","orderId":1003}`
	)
	for _, item := range []string{dead, archived, done} {
		if a := e.post(testToken, item); a.code != http.StatusAccepted {
			t.Fatalf("first post: %d %s", a.code, a.body)
		}
	}
	for _, id := range []string{"pandapon:1001", "pandapon:1002"} {
		if err := e.insp.ArchiveTask(tasks.QueuePandaPon, id); err != nil {
			t.Fatal(err)
		}
	}
	store := dlq.New(e.rdb)
	if _, err := store.Put(t.Context(), dlq.Entry{ID: "pandapon:1001", Provider: "pandapon", Order: "1001", TaskType: tasks.TypePandaPonCancel,
		Queue: tasks.QueuePandaPon, Payload: []byte(`{"order_id":1001}`), Reason: dlq.ReasonPermanent, OutcomeUnknown: true}); err != nil {
		t.Fatal(err)
	}
	// Complete the third with a real asynq server.
	srv := asynq.NewServerFromRedisClient(e.rdb, asynq.Config{Queues: map[string]int{tasks.QueuePandaPon: 1}, TaskCheckInterval: 10 * time.Millisecond, LogLevel: asynq.FatalLevel})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	workertest.WaitState(t, e.insp, tasks.QueuePandaPon, "pandapon:1003", asynq.TaskStateCompleted)
	srv.Shutdown() // the forced task stays pending

	a := e.post(testToken, "["+dead+","+archived+","+done+`,{"provider":"pandapon","orderId":1001,"force":true}]`)
	if a.code != http.StatusAccepted {
		t.Fatalf("want 202, got %d %s", a.code, a.body)
	}
	var got AcceptedBody
	a.decode(t, &got)
	if len(got.Results) != 4 {
		t.Fatalf("want 4 results: %s", a.body)
	}
	want := []struct {
		state, reason, hint string
		already, replaced   bool
	}{
		{state: StateDeadLettered, reason: dlq.ReasonPermanent, hint: "enqueue dlq requeue pandapon:1001", already: true},
		{state: StateArchived, hint: "force", already: true},
		{state: StateAlreadyCancelled, already: true},
		{state: StateQueued, replaced: true},
	}
	for i, w := range want {
		r := got.Results[i]
		if r.State != w.state || r.DLQReason != w.reason || !strings.Contains(r.Hint, w.hint) || r.AlreadyQueued != w.already || r.Replaced != w.replaced {
			t.Errorf("result %d: %+v; want state %s, reason %q, hint with %q, already queued %v, replaced %v", i, r, w.state, w.reason, w.hint, w.already, w.replaced)
		}
	}
	if _, err := store.Get(t.Context(), "pandapon:1001"); !errors.Is(err, dlq.ErrNotFound) {
		t.Errorf("the forced order's dead-letter entry: %v, want gone", err)
	}
	info, err := e.insp.GetTaskInfo(tasks.QueuePandaPon, "pandapon:1001")
	if err != nil || info.State != asynq.TaskStatePending || info.Headers[tasks.HeaderPriorOutcomeUnknown] != "1" {
		t.Errorf("the forced task: %+v, %v; want pending, marked prior outcome unknown", info, err)
	}
	if info, err := e.insp.GetTaskInfo(tasks.QueuePandaPon, "pandapon:1002"); err != nil || info.State != asynq.TaskStateArchived {
		t.Errorf("the archived task: %+v, %v; want it left archived", info, err)
	}
	if a := e.post(testToken, `{"provider":"pandapon","orderId":1,"force":"yes"}`); a.code != http.StatusBadRequest || !strings.Contains(a.body, `"field":"force","problem":"must be true or false, got \"yes\""`) {
		t.Errorf("bad force: %d %s", a.code, a.body)
	}
}

// TestInFlightLimit checks that past MaxInFlight requests, a request is
// answered 503 with Retry-After at once, and served again once one ends.
func TestInFlightLimit(t *testing.T) {
	t.Parallel()
	e := newIntake(t, Options{MaxInFlight: 1})
	// The first request holds its slot while its body has not arrived:
	// its headers and half its body, by hand.
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	half := len(pandaItem) / 2
	if _, err := fmt.Fprintf(conn, "POST /v1/cancellations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(pandaItem), pandaItem[:half]); err != nil {
		t.Fatal(err)
	}
	// Probe only once that request holds the slot: a probe sent earlier
	// could take the slot first and make the held request the one turned
	// away.
	deadline := time.Now().Add(10 * time.Second)
	for len(e.h.slots) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the held request never took its slot")
		}
		time.Sleep(2 * time.Millisecond)
	}
	busy := e.post("", pandaItem)
	if busy.code != http.StatusServiceUnavailable || busy.header.Get("Retry-After") != "1" ||
		!strings.Contains(busy.body, "busy: 1 requests are being served (INTAKE_MAX_INFLIGHT)") {
		t.Fatalf("with the one slot taken: %d %v %s; want 503, Retry-After 1 and why", busy.code, busy.header, busy.body)
	}
	if a := e.request(http.MethodGet, "/healthz", "", "", nil); a.code != http.StatusOK {
		t.Errorf("/healthz while busy: %d, want 200 (not limited)", a.code)
	}
	if _, err := io.WriteString(conn, pandaItem[half:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("the request that held the slot: %d", resp.StatusCode)
	}
	if a := e.post("", `{"provider":"pandapon","orderId":2}`); a.code != http.StatusAccepted {
		t.Errorf("after the slot is free: %d %s, want 202", a.code, a.body)
	}
}

// TestProblemsAreCapped checks that an answer lists at most MaxProblems
// problems and counts the rest, across items.
func TestProblemsAreCapped(t *testing.T) {
	t.Parallel()
	e := newIntake(t, Options{})
	items := make([]string, 300)
	for i := range items {
		items[i] = `{"provider":"pandapon","orderId":0,"x":1}` // two problems each
	}
	a := e.post("", "["+strings.Join(items, ",")+"]")
	got := a.problems(t)
	if a.code != http.StatusBadRequest || len(got) != MaxProblems+1 || got[MaxProblems] != "- : and 500 more problems: the first 100 are listed" {
		t.Fatalf("%d, %d problems, the last %q; want 400, %d problems and a count", a.code, len(got), got[len(got)-1], MaxProblems+1)
	}
	// One item of 121 unknown keys: the item's own count of those it left
	// out is added to the answer's.
	var b strings.Builder
	b.WriteString(`{"provider":"pandapon","orderId":1`)
	for i := range 121 {
		fmt.Fprintf(&b, `,"k%d":1`, i)
	}
	a = e.post("", b.String()+"}")
	got = a.problems(t)
	if a.code != http.StatusBadRequest || len(got) != MaxProblems+1 || got[MaxProblems] != "- : and 21 more problems: the first 100 are listed" {
		t.Fatalf("%d, %d problems, the last %q; want 400, %d problems and the count of 21 more", a.code, len(got), got[len(got)-1], MaxProblems+1)
	}
}
