package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sendValid sends a valid, freshly signed request for order to provider.
func sendValid(ctx context.Context, t *testing.T, srv *httptest.Server, cfg Config, provider, order string) (reply, error) {
	t.Helper()
	if provider == provMeari {
		return post(ctx, srv, meariPath, nil, validMeariBody(t, cfg, order))
	}
	return post(ctx, srv, pandaPonPath, pandaPonHeaders(cfg), examplePandaPonBody(order))
}

// answerOf summarises a reply: "http 503 retry-after 2", "resultCode 1005",
// "code 200 data false", or "body <raw>" when the body is not the provider's
// JSON.
func answerOf(t *testing.T, provider string, r reply) string {
	t.Helper()
	if r.status != http.StatusOK {
		s := "http " + strconv.Itoa(r.status)
		if ra := r.header.Get("Retry-After"); ra != "" {
			s += " retry-after " + ra
		}
		return s
	}
	if provider == provMeari {
		if !bytes.HasPrefix(r.body, []byte(`{"resultCode"`)) {
			return "body " + string(r.body)
		}
		return "resultCode " + meariCode(t, r)
	}
	if !bytes.HasPrefix(r.body, []byte(`{"requestId"`)) {
		return "body " + string(r.body)
	}
	a := pandaPonAnswerOf(t, r)
	s := "code " + a.Code.String()
	if len(a.Data) > 0 {
		s += " data " + string(a.Data)
	}
	return s
}

func TestScript(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	tests := []struct {
		name          string
		provider      string
		steps         []Step
		want          []string // answers to consecutive valid requests
		wantOutcomes  []string
		wantCancelled bool
	}{
		{name: "unscripted meari succeeds", provider: provMeari,
			want: []string{"resultCode 1001", "resultCode 1001"}, wantOutcomes: []string{"ok", "ok"}, wantCancelled: true},
		{name: "unscripted pandapon succeeds", provider: provPandaPon,
			want: []string{"code 200 data true"}, wantOutcomes: []string{"ok"}, wantCancelled: true},
		{name: "1005 twice then ok, last repeats", provider: provMeari, steps: append(Times(2, MeariCode("1005")), OK()),
			want:          []string{"resultCode 1005", "resultCode 1005", "resultCode 1001", "resultCode 1001"},
			wantOutcomes:  []string{"resultCode 1005", "resultCode 1005", "ok", "ok"},
			wantCancelled: true},
		{name: "4001 repeats", provider: provMeari, steps: []Step{MeariCode("4001")},
			want: []string{"resultCode 4001", "resultCode 4001"}, wantOutcomes: []string{"resultCode 4001", "resultCode 4001"}},
		{name: "4002, 1003, 1023, 9999", provider: provMeari,
			steps: []Step{MeariCode("4002"), MeariCode("1003"), MeariCode("1023"), MeariCode("9999")},
			want:  []string{"resultCode 4002", "resultCode 1003", "resultCode 1023", "resultCode 9999"}},
		{name: "meari 1001 code counts as success", provider: provMeari, steps: []Step{MeariCode("1001")},
			want: []string{"resultCode 1001"}, wantCancelled: true},
		{name: "meari 503 then ok", provider: provMeari, steps: []Step{HTTPStatus(503), OK()},
			want: []string{"http 503", "resultCode 1001"}, wantOutcomes: []string{"http 503", "ok"}, wantCancelled: true},
		{name: "meari 400", provider: provMeari, steps: []Step{HTTPStatus(400)},
			want: []string{"http 400"}},
		{name: "meari 429 with Retry-After", provider: provMeari, steps: []Step{RetryAfter(429, 2*time.Second)},
			want: []string{"http 429 retry-after 2"}, wantOutcomes: []string{"http 429 retry-after 2s"}},
		{name: "Retry-After rounds up", provider: provPandaPon, steps: []Step{RetryAfter(503, 1500*time.Millisecond)},
			want: []string{"http 503 retry-after 2"}},
		{name: "meari bad body", provider: provMeari, steps: []Step{BadBody("<html>busy</html>")},
			want: []string{"body <html>busy</html>"}, wantOutcomes: []string{"bad body"}},
		{name: "pandapon refused", provider: provPandaPon, steps: []Step{PandaPonCode(200, &no)},
			want: []string{"code 200 data false"}, wantOutcomes: []string{"code 200 data false"}},
		{name: "pandapon 200 without data", provider: provPandaPon, steps: []Step{PandaPonCode(200, nil)},
			want: []string{"code 200"}},
		{name: "pandapon 429 then 401 then success", provider: provPandaPon,
			steps: []Step{PandaPonCode(429, nil), PandaPonCode(401, nil), PandaPonCode(200, &yes)},
			want:  []string{"code 429", "code 401", "code 200 data true"}, wantCancelled: true},
		{name: "pandapon 503", provider: provPandaPon, steps: []Step{HTTPStatus(503)},
			want: []string{"http 503"}},
		{name: "pandapon bad body", provider: provPandaPon, steps: []Step{BadBody(`{"code":200,"data":"yes"`)},
			want: []string{`body {"code":200,"data":"yes"`}},
		{name: "short slow then ok", provider: provMeari, steps: []Step{Slow(time.Millisecond, MeariCode("1005")), OK()},
			want: []string{"resultCode 1005", "resultCode 1001"}, wantOutcomes: []string{"slow 1ms, then resultCode 1005", "ok"}, wantCancelled: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			sb, srv := newTestServer(t, cfg)
			const order = "4242424242424242424"
			sb.Script(tc.provider, order, tc.steps...)
			var got []string
			for range tc.want {
				r, err := sendValid(t.Context(), t, srv, cfg, tc.provider, order)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, answerOf(t, tc.provider, r))
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("answers = %q, want %q", got, tc.want)
			}
			calls := sb.Calls(tc.provider, order)
			if len(calls) != len(tc.want) {
				t.Fatalf("Calls = %d, want %d", len(calls), len(tc.want))
			}
			for i, want := range tc.wantOutcomes {
				if calls[i].Outcome != want {
					t.Errorf("call %d Outcome = %q, want %q", i, calls[i].Outcome, want)
				}
			}
			if got := sb.Cancelled(tc.provider, order); got != tc.wantCancelled {
				t.Errorf("Cancelled = %v, want %v", got, tc.wantCancelled)
			}
		})
	}
}

func TestScriptReplacesAndClears(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	sb, srv := newTestServer(t, cfg)
	const order = "O-1"
	next := func() string {
		t.Helper()
		r, err := sendValid(t.Context(), t, srv, cfg, provMeari, order)
		if err != nil {
			t.Fatal(err)
		}
		return answerOf(t, provMeari, r)
	}
	sb.Script(provMeari, order, MeariCode("1005"), MeariCode("4001"))
	first := next()
	sb.Script(provMeari, order, MeariCode("4002"))
	second := next()
	sb.Script(provMeari, order)
	third := next()
	if got, want := []string{first, second, third}, []string{"resultCode 1005", "resultCode 4002", "resultCode 1001"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("answers = %q, want %q", got, want)
	}
}

func TestScriptPanicsOnMisuse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		provider string
		steps    []Step
	}{
		{name: "unknown provider", provider: "acme", steps: []Step{OK()}},
		{name: "unknown provider without steps", provider: "acme"},
		{name: "meari code for pandapon", provider: provPandaPon, steps: []Step{MeariCode("1005")}},
		{name: "pandapon code for meari", provider: provMeari, steps: []Step{PandaPonCode(429, nil)}},
		{name: "pandapon code inside slow for meari", provider: provMeari, steps: []Step{Slow(time.Second, PandaPonCode(429, nil))}},
		{name: "zero step", provider: provMeari, steps: []Step{{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sb := New(testConfig())
			defer func() {
				if recover() == nil {
					t.Errorf("Script(%q, ...) did not panic", tc.provider)
				}
			}()
			sb.Script(tc.provider, "1", tc.steps...)
		})
	}
}

func TestSlowHonoursContext(t *testing.T) {
	t.Parallel()
	for _, provider := range []string{provMeari, provPandaPon} {
		t.Run(provider, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			sb, srv := newTestServer(t, cfg)
			const order = "77"
			sb.Script(provider, order, Slow(time.Hour, OK()))

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				_, err := sendValid(ctx, t, srv, cfg, provider, order)
				errc <- err
			}()
			waitOrFail(t, sb.Called(provider, order), "the slow call")
			if sb.Cancelled(provider, order) {
				t.Error("Cancelled = true before the slow step finished")
			}
			cancel()
			select {
			case err := <-errc:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("client error = %v, want context.Canceled", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("client still waiting after its context was cancelled")
			}
			// Close waits for every handler: it returns only if the slow
			// step gave up its hour-long wait when the client went away.
			closed := make(chan struct{})
			go func() {
				srv.Close()
				close(closed)
			}()
			waitOrFail(t, closed, "the slow handler to return")
			if !sb.Cancelled(provider, order) {
				t.Error("Cancelled = false: the success after the slow wait must count even though the client had gone")
			}
			if calls := sb.Calls(provider, order); len(calls) != 1 || calls[0].Outcome != "slow 1h0m0s, then ok" {
				t.Errorf("calls = %+v, want one with Outcome %q", calls, "slow 1h0m0s, then ok")
			}
		})
	}
}

func TestSlowDelaysTheAnswer(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	sb, srv := newTestServer(t, cfg)
	const (
		order = "SLOW-1"
		delay = 50 * time.Millisecond
	)
	sb.Script(provMeari, order, Slow(delay, MeariCode("1005")))
	start := time.Now()
	r, err := sendValid(t.Context(), t, srv, cfg, provMeari, order)
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed < delay {
		t.Errorf("answered after %s, want at least %s", elapsed, delay)
	}
	if got := answerOf(t, provMeari, r); got != "resultCode 1005" {
		t.Errorf("answer = %q, want resultCode 1005", got)
	}
}

func TestResetClosesTheConnection(t *testing.T) {
	t.Parallel()
	for _, provider := range []string{provMeari, provPandaPon} {
		t.Run(provider, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			sb, srv := newTestServer(t, cfg)
			const order = "88"
			sb.Script(provider, order, Reset(), OK())
			if _, err := sendValid(t.Context(), t, srv, cfg, provider, order); err == nil {
				t.Fatal("request answered, want a client-side error (reset or EOF)")
			}
			if sb.Cancelled(provider, order) {
				t.Error("Cancelled = true after a reset")
			}
			r, err := sendValid(t.Context(), t, srv, cfg, provider, order)
			if err != nil {
				t.Fatalf("request after the reset: %v", err)
			}
			if r.status != http.StatusOK {
				t.Errorf("status after the reset = %d, want 200", r.status)
			}
			calls := sb.Calls(provider, order)
			if len(calls) != 2 || calls[0].Outcome != "reset" || calls[1].Outcome != "ok" {
				t.Errorf("calls = %+v, want outcomes reset then ok", calls)
			}
		})
	}
}

func TestCalledAndWaitCalls(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	sb, srv := newTestServer(t, cfg)
	const order = "WAIT-1"
	called := sb.Called(provMeari, order)
	select {
	case <-called:
		t.Fatal("Called closed before any call")
	default:
	}

	const n = 3
	errc := make(chan error, n)
	for range n {
		go func() {
			_, err := sendValid(t.Context(), t, srv, cfg, provMeari, order)
			errc <- err
		}()
	}
	waitOrFail(t, called, "Called")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	calls, err := sb.WaitCalls(ctx, provMeari, order, n)
	if err != nil {
		t.Fatalf("WaitCalls: %v", err)
	}
	if len(calls) < n {
		t.Fatalf("WaitCalls returned %d calls, want %d", len(calls), n)
	}
	for range n {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	// Called for an order already called is closed at once.
	waitOrFail(t, sb.Called(provMeari, order), "Called after the calls")
	if got := sb.TotalCalls(); got != n {
		t.Errorf("TotalCalls = %d, want %d", got, n)
	}
}

func TestWaitCallsStopsWithContext(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	sb, srv := newTestServer(t, cfg)
	if _, err := sendValid(t.Context(), t, srv, cfg, provPandaPon, "5"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls, err := sb.WaitCalls(ctx, provPandaPon, "5", 2)
	if !errors.Is(err, context.Canceled) || len(calls) != 1 {
		t.Fatalf("WaitCalls = %d calls, %v; want 1 call and context.Canceled", len(calls), err)
	}
	if !strings.Contains(err.Error(), "got 1 of 2 calls") {
		t.Errorf("error = %q, want it to say how many calls came", err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	sb, srv := newTestServer(t, cfg)
	const (
		shared  = "9000000000000000001"
		workers = 16
		each    = 4
		failing = 10 // scripted failures on the shared order
	)
	for _, p := range []string{provMeari, provPandaPon} {
		if p == provMeari {
			sb.Script(p, shared, append(Times(failing, MeariCode("1005")), OK())...)
		} else {
			sb.Script(p, shared, append(Times(failing, PandaPonCode(429, nil)), OK())...)
		}
	}

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		answers = map[string]int{}
	)
	errc := make(chan error, 2*workers*each)
	for w := range workers {
		for _, p := range []string{provMeari, provPandaPon} {
			wg.Go(func() {
				for i := range each {
					order := shared
					if i%2 == 1 {
						order = fmt.Sprintf("%d%03d", w+1, i)
					}
					r, err := sendValid(t.Context(), t, srv, cfg, p, order)
					if err != nil {
						errc <- err
						return
					}
					mu.Lock()
					answers[p+" "+order+" "+answerOf(t, p, r)]++
					mu.Unlock()
					_ = sb.Calls(p, order)
					_ = sb.Cancelled(p, order)
				}
			})
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if got, want := sb.TotalCalls(), 2*workers*each; got != want {
		t.Errorf("TotalCalls = %d, want %d", got, want)
	}
	// Each scripted step is consumed exactly once, however the calls race.
	sharedCalls := workers * each / 2
	for _, c := range []struct{ key string }{
		{provMeari + " " + shared + " resultCode 1005"},
		{provPandaPon + " " + shared + " code 429"},
	} {
		if got := answers[c.key]; got != failing {
			t.Errorf("%q answered %d times, want %d", c.key, got, failing)
		}
	}
	for _, p := range []string{provMeari, provPandaPon} {
		if got := len(sb.Calls(p, shared)); got != sharedCalls {
			t.Errorf("Calls(%s, shared) = %d, want %d", p, got, sharedCalls)
		}
		if !sb.Cancelled(p, shared) {
			t.Errorf("Cancelled(%s, shared) = false", p)
		}
	}
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, path string
		wantStatus         int
	}{
		{name: "unknown path", method: http.MethodPost, path: "/v3/third/sdk/order/create", wantStatus: http.StatusNotFound},
		{name: "root", method: http.MethodGet, path: "/", wantStatus: http.StatusNotFound},
		{name: "meari GET", method: http.MethodGet, path: meariPath, wantStatus: http.StatusMethodNotAllowed},
		{name: "pandapon PUT", method: http.MethodPut, path: pandaPonPath, wantStatus: http.StatusMethodNotAllowed},
		{name: "trailing slash", method: http.MethodPost, path: pandaPonPath + "/", wantStatus: http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sb, srv := newTestServer(t, testConfig())
			req, err := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.path, strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("%s %s = %d, want %d", tc.method, tc.path, resp.StatusCode, tc.wantStatus)
			}
			if tc.wantStatus == http.StatusMethodNotAllowed && !strings.Contains(resp.Header.Get("Allow"), http.MethodPost) {
				t.Errorf("Allow = %q, want POST", resp.Header.Get("Allow"))
			}
			if got := sb.TotalCalls(); got != 0 {
				t.Errorf("TotalCalls = %d, want 0: routing errors are not calls", got)
			}
		})
	}
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	sb, srv := newTestServer(t, cfg)
	body := append(examplePandaPonBody(bigOrderID), bytes.Repeat([]byte(" "), maxBody)...)
	r := mustPost(t, srv, pandaPonPath, pandaPonHeaders(cfg), body)
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", r.status)
	}
	calls := sb.Calls(provPandaPon, "")
	if len(calls) != 1 || !strings.Contains(calls[0].Reject, "larger than") {
		t.Fatalf("calls = %d, want one rejected as too large", len(calls))
	}
}

func TestInvalidConfig(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Meari.SignMode = "alphabetical"
	cfg.Meari.TimestampFormat = "unix"
	_, _, _, err := Start(cfg)
	if err == nil {
		t.Fatal("Start accepted an invalid config")
	}
	for _, field := range []string{"Meari.SignMode", "Meari.TimestampFormat"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("New did not panic on an invalid config")
		}
	}()
	New(cfg)
}

func TestStart(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	sb, srv, base, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Errorf("base URL = %q, want http://127.0.0.1:<port>", base)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+meariPath, bytes.NewReader(validMeariBody(t, cfg, "S-1")))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !sb.Cancelled(provMeari, "S-1") {
		t.Errorf("status %d, Cancelled %v; want 200 and true", resp.StatusCode, sb.Cancelled(provMeari, "S-1"))
	}
}
