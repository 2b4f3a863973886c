package worker_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/worker"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/cancelworker/cancelworker/retry"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const bigOrderID = "2542285634920880794"

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	endToEnd(t, workertest.Start(t))
}

// TestClusterEndToEnd runs the end-to-end table on a real Redis Cluster
// of three masters, both providers' tasks over three shards each, and
// checks that the shards the orders used sit on more than one master.
func TestClusterEndToEnd(t *testing.T) {
	t.Parallel()
	c := redistest.NewCluster(t)
	shards := tasks.Shards{Meari: 3, PandaPon: 3}
	r := workertest.Start(t, workertest.WithCluster(c, shards))
	t.Run("table", func(t *testing.T) { endToEnd(t, r) })
	t.Run("same order twice, one cancel", func(t *testing.T) {
		r.Sandbox.Script("meari", "DUP-C", sandbox.Slow(100*time.Millisecond, sandbox.OK()))
		first, second := r.EnqueueMeari(t, "DUP-C"), r.EnqueueMeari(t, "DUP-C")
		if first.AlreadyQueued || !second.AlreadyQueued || first.Queue != second.Queue {
			t.Fatalf("first %+v, second %+v", first, second)
		}
		r.WaitState(t, first, asynq.TaskStateCompleted)
		if again := r.EnqueueMeari(t, "DUP-C"); !again.AlreadyQueued || again.State != tasks.StateCompleted {
			t.Errorf("after completion: %+v", again)
		}
		if n := len(r.Sandbox.Calls("meari", "DUP-C")); n != 1 {
			t.Errorf("upstream cancels = %d, want 1", n)
		}
	})
	masters := map[string][]string{}
	cc := r.Client.(*redis.ClusterClient)
	for _, q := range shards.All() {
		if n, err := cc.Exists(t.Context(), "asynq:{"+q+"}:completed", "asynq:{"+q+"}:archived").Result(); err != nil || n == 0 {
			continue // no order landed there
		}
		m := c.MasterOf(t, cc, "{"+q+"}")
		masters[m] = append(masters[m], q)
	}
	if len(masters) < 2 {
		t.Errorf("the orders' queues sit on %d master(s): %v; want more than one", len(masters), masters)
	}
	t.Logf("queues by master: %v", masters)
}

// endToEnd runs the table of upstream answers through r's worker.
func endToEnd(t *testing.T, r *workertest.Rig) {
	no := false
	tests := []struct {
		name      string
		provider  string
		order     string
		steps     []sandbox.Step
		wantCalls int
		wantState asynq.TaskState
		wantDLQ   string // reason, "" for none
		wantCode  string
	}{
		{name: "meari success", provider: "meari", order: "OK-1", steps: []sandbox.Step{sandbox.OK()}, wantCalls: 1, wantState: asynq.TaskStateCompleted},
		{name: "meari 1005 twice then success", provider: "meari", order: "T-1005", steps: append(sandbox.Times(2, sandbox.MeariCode("1005")), sandbox.OK()), wantCalls: 3, wantState: asynq.TaskStateCompleted},
		{name: "meari 4001 dead-lettered", provider: "meari", order: "P-4001", steps: []sandbox.Step{sandbox.MeariCode("4001")}, wantCalls: 1, wantState: asynq.TaskStateArchived, wantDLQ: dlq.ReasonPermanent, wantCode: "4001"},
		{name: "meari 4002 dead-lettered", provider: "meari", order: "P-4002", steps: []sandbox.Step{sandbox.MeariCode("4002")}, wantCalls: 1, wantState: asynq.TaskStateArchived, wantDLQ: dlq.ReasonPermanent, wantCode: "4002"},
		{name: "meari 1003 dead-lettered", provider: "meari", order: "P-1003", steps: []sandbox.Step{sandbox.MeariCode("1003")}, wantCalls: 1, wantState: asynq.TaskStateArchived, wantDLQ: dlq.ReasonPermanent, wantCode: "1003"},
		{name: "meari HTTP 503 retried", provider: "meari", order: "T-503", steps: []sandbox.Step{sandbox.HTTPStatus(503), sandbox.OK()}, wantCalls: 2, wantState: asynq.TaskStateCompleted},
		{name: "meari connection reset retried", provider: "meari", order: "T-RESET", steps: []sandbox.Step{sandbox.Reset(), sandbox.OK()}, wantCalls: 2, wantState: asynq.TaskStateCompleted},
		{name: "meari unknown code retried until exhausted", provider: "meari", order: "T-9999", steps: []sandbox.Step{sandbox.MeariCode("9999")}, wantCalls: 5, wantState: asynq.TaskStateArchived, wantDLQ: dlq.ReasonRetriesExhausted, wantCode: "9999"},
		{name: "pandapon success, 19-digit id", provider: "pandapon", order: bigOrderID, steps: []sandbox.Step{sandbox.OK()}, wantCalls: 1, wantState: asynq.TaskStateCompleted},
		{name: "pandapon 503 then success", provider: "pandapon", order: "2542285634920880001", steps: []sandbox.Step{sandbox.HTTPStatus(503), sandbox.OK()}, wantCalls: 2, wantState: asynq.TaskStateCompleted},
		{name: "pandapon reset then success", provider: "pandapon", order: "2542285634920880002", steps: []sandbox.Step{sandbox.Reset(), sandbox.OK()}, wantCalls: 2, wantState: asynq.TaskStateCompleted},
		{name: "pandapon refused", provider: "pandapon", order: "2542285634920880003", steps: []sandbox.Step{sandbox.PandaPonCode(200, &no)}, wantCalls: 1, wantState: asynq.TaskStateArchived, wantDLQ: dlq.ReasonPermanent, wantCode: "200"},
		{name: "pandapon body 429 retried", provider: "pandapon", order: "2542285634920880004", steps: []sandbox.Step{sandbox.PandaPonCode(429, nil), sandbox.OK()}, wantCalls: 2, wantState: asynq.TaskStateCompleted},
		{name: "pandapon other code dead-lettered", provider: "pandapon", order: "2542285634920880005", steps: []sandbox.Step{sandbox.PandaPonCode(404, nil)}, wantCalls: 1, wantState: asynq.TaskStateArchived, wantDLQ: dlq.ReasonPermanent, wantCode: "404"},
		{name: "pandapon bad body retried", provider: "pandapon", order: "2542285634920880006", steps: []sandbox.Step{sandbox.BadBody("<html>oops</html>"), sandbox.OK()}, wantCalls: 2, wantState: asynq.TaskStateCompleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r.Sandbox.Script(tt.provider, tt.order, tt.steps...)
			var res tasks.Result
			if tt.provider == "meari" {
				res = r.EnqueueMeari(t, tt.order)
			} else {
				res = r.EnqueuePandaPon(t, tt.order)
			}
			info := r.WaitState(t, res, tt.wantState)
			calls := r.Sandbox.Calls(tt.provider, tt.order)
			if len(calls) != tt.wantCalls {
				t.Errorf("upstream calls = %d, want %d", len(calls), tt.wantCalls)
			}
			for _, c := range calls {
				if c.Reject != "" {
					t.Errorf("sandbox rejected a call: %s", c.Reject)
				}
			}
			e, err := r.DLQ.Get(t.Context(), res.TaskID)
			switch {
			case tt.wantDLQ == "" && !errors.Is(err, dlq.ErrNotFound):
				t.Errorf("DLQ entry %+v (err %v), want none", e, err)
			case tt.wantDLQ != "" && err != nil:
				t.Errorf("DLQ entry: %v, want reason %q", err, tt.wantDLQ)
			case tt.wantDLQ != "":
				if e.Reason != tt.wantDLQ || e.UpstreamCode != tt.wantCode || e.Attempts != tt.wantCalls || e.Provider != tt.provider {
					t.Errorf("DLQ entry reason=%q code=%q attempts=%d provider=%q, want %q %q %d %q",
						e.Reason, e.UpstreamCode, e.Attempts, e.Provider, tt.wantDLQ, tt.wantCode, tt.wantCalls, tt.provider)
				}
				if !bytes.Equal(e.Payload, info.Payload) {
					t.Errorf("DLQ payload %s, want the task's %s", e.Payload, info.Payload)
				}
				if e.OutcomeUnknown {
					t.Errorf("DLQ entry marked outcome unknown without an unknown attempt")
				}
			}
		})
	}
}

func TestPandaPonOrderIDByteExact(t *testing.T) {
	t.Parallel()
	r := workertest.Start(t)
	res := r.EnqueuePandaPon(t, bigOrderID)
	calls := r.WaitCalls(t, "pandapon", bigOrderID, 1)
	r.WaitState(t, res, asynq.TaskStateCompleted)
	if !bytes.Contains(calls[0].Body, []byte(`"orderId":`+bigOrderID+`,`)) {
		t.Fatalf("upstream body %s does not carry orderId %s byte for byte", calls[0].Body, bigOrderID)
	}
	if res.TaskID != "pandapon:"+bigOrderID {
		t.Fatalf("task ID %s", res.TaskID)
	}
}

func TestAuthRetriedNeverDeadLettered(t *testing.T) {
	t.Parallel()
	r := workertest.Start(t, workertest.WithPolicy(retry.Policy{InitialInterval: 20 * time.Millisecond, MaxInterval: 50 * time.Millisecond, MaxAttempts: 2, AuthInterval: 30 * time.Millisecond, MaxAge: time.Hour}))
	// More auth failures than the budget of 2 attempts: they must not count.
	r.Sandbox.Script("meari", "AUTH-1", append(sandbox.Times(4, sandbox.MeariCode("1023")), sandbox.OK())...)
	no := 401
	r.Sandbox.Script("pandapon", "2542285634920880010", append(sandbox.Times(3, sandbox.PandaPonCode(no, nil)), sandbox.OK())...)
	m := r.EnqueueMeari(t, "AUTH-1")
	p := r.EnqueuePandaPon(t, "2542285634920880010")
	for _, res := range []tasks.Result{m, p} {
		info := r.WaitState(t, res, asynq.TaskStateCompleted)
		if info.Retried != 0 {
			t.Errorf("%s: asynq counted %d failures; auth failures must not count", res.TaskID, info.Retried)
		}
		if _, err := r.DLQ.Get(t.Context(), res.TaskID); !errors.Is(err, dlq.ErrNotFound) {
			t.Errorf("%s: dead-lettered for auth failures (err %v)", res.TaskID, err)
		}
	}
	if got := len(r.Sandbox.Calls("meari", "AUTH-1")); got != 5 {
		t.Errorf("meari calls = %d, want 5", got)
	}
	// Each rejection is a warning; the error is the breaker's, once per
	// opening: every rejection here comes from a probe of a breaker the
	// last one opened, so 7 openings.
	if n := r.Logs.FilterLevelExact(zapcore.WarnLevel).FilterField(zap.String("class", "auth")).Len(); n != 7 {
		t.Errorf("warn-level auth lines = %d, want 7 (one per rejected attempt)", n)
	}
	if n := r.Logs.FilterLevelExact(zapcore.ErrorLevel).FilterField(zap.String("class", "auth")).Len(); n != 0 {
		t.Errorf("error-level auth lines per task = %d, want 0", n)
	}
	opened := r.Logs.FilterLevelExact(zapcore.ErrorLevel).FilterMessageSnippet("circuit breaker open: the provider rejects our credentials").Len()
	if opened != 7 {
		t.Errorf("error-level breaker openings for auth = %d, want 7", opened)
	}
	// At debug level each rejection also says what was signed, never the
	// secret.
	signed := r.Logs.FilterLevelExact(zapcore.DebugLevel).FilterMessage("what was signed (the secret is not shown)").All()
	want := map[string]string{"meari": "partnerKey=pk-test&", "pandapon": "access-key=ak-test&nonce-str="}
	seen := map[string]int{}
	for _, e := range signed {
		fields := e.ContextMap()
		provider, _ := fields["provider"].(string)
		s, _ := fields["string_to_sign"].(string)
		seen[provider]++
		if !strings.Contains(s, want[provider]) || strings.Contains(s, "secret") || fields["sign_mode"] == "" {
			t.Errorf("%s: debug line %v", provider, fields)
		}
	}
	if seen["meari"] != 4 || seen["pandapon"] != 3 {
		t.Errorf("debug lines of what was signed: %v, want 4 meari and 3 pandapon", seen)
	}
}

func TestSameOrderTwiceOneCancel(t *testing.T) {
	t.Parallel()
	r := workertest.Start(t)
	r.Sandbox.Script("meari", "DUP-1", sandbox.Slow(100*time.Millisecond, sandbox.OK()))
	first := r.EnqueueMeari(t, "DUP-1")
	second := r.EnqueueMeari(t, "DUP-1")
	if first.AlreadyQueued || !second.AlreadyQueued || first.TaskID != second.TaskID {
		t.Fatalf("first %+v, second %+v: want one task, second already queued", first, second)
	}
	r.WaitState(t, first, asynq.TaskStateCompleted)
	// Within the retention window a finished order is still "already queued".
	if third := r.EnqueueMeari(t, "DUP-1"); !third.AlreadyQueued {
		t.Fatalf("after completion: %+v, want already queued", third)
	}
	if got := len(r.Sandbox.Calls("meari", "DUP-1")); got != 1 {
		t.Fatalf("upstream cancels = %d, want 1", got)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	r := workertest.Start(t)
	r.Sandbox.Script("pandapon", "2542285634920880020", sandbox.RetryAfter(429, time.Second), sandbox.OK())
	res := r.EnqueuePandaPon(t, "2542285634920880020")
	calls := r.WaitCalls(t, "pandapon", "2542285634920880020", 2)
	r.WaitState(t, res, asynq.TaskStateCompleted)
	// The fast policy alone would retry within 100ms.
	if gap := calls[1].At.Sub(calls[0].At); gap < time.Second {
		t.Fatalf("retried after %s, want at least the 1s Retry-After", gap)
	}
}

func TestUnknownOutcomeThenPermanent(t *testing.T) {
	t.Parallel()
	r := workertest.Start(t)
	// A reset after the request was sent: it may have cancelled the order, and
	// the retry is then answered "not found".
	r.Sandbox.Script("meari", "AMB-1", sandbox.Reset(), sandbox.MeariCode("4001"))
	res := r.EnqueueMeari(t, "AMB-1")
	r.WaitState(t, res, asynq.TaskStateArchived)
	e, err := r.DLQ.Get(t.Context(), res.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if !e.OutcomeUnknown || e.Reason != dlq.ReasonPermanent || e.Attempts != 2 {
		t.Fatalf("entry %+v: want outcome_unknown, permanent, 2 attempts", e)
	}
}

func TestBadPayloadDeadLettered(t *testing.T) {
	t.Parallel()
	r := workertest.Start(t)
	c := asynq.NewClientFromRedisClient(r.RDB)
	tests := []struct {
		name, id, typ, queue, payload, reason string
	}{
		{name: "not JSON", id: "meari:bad:1", typ: tasks.TypeMeariCancel, queue: tasks.QueueMeari, payload: `{not json`, reason: dlq.ReasonBadPayload},
		{name: "float order id", id: "pandapon:bad:2", typ: tasks.TypePandaPonCancel, queue: tasks.QueuePandaPon, payload: `{"order_id":2.542285634920880794e18}`, reason: dlq.ReasonBadPayload},
		{name: "other customer", id: "meari:73:1:X", typ: tasks.TypeMeariCancel, queue: tasks.QueueMeari, payload: `{"source_app":73,"user_account":"a","order_type":1,"order_num":"X"}`, reason: dlq.ReasonMisconfigured},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := c.Enqueue(asynq.NewTask(tt.typ, []byte(tt.payload)), asynq.TaskID(tt.id), asynq.Queue(tt.queue), asynq.MaxRetry(5)); err != nil {
				t.Fatal(err)
			}
			r.WaitState(t, tasks.Result{TaskID: tt.id, Queue: tt.queue}, asynq.TaskStateArchived)
			e, err := r.DLQ.Get(t.Context(), tt.id)
			if err != nil {
				t.Fatal(err)
			}
			got := string(e.Payload)
			if !json.Valid([]byte(tt.payload)) {
				// The store keeps bytes that are not JSON as a JSON string.
				if err := json.Unmarshal(e.Payload, &got); err != nil {
					t.Fatalf("payload %s: %v", e.Payload, err)
				}
			}
			if e.Reason != tt.reason || got != tt.payload {
				t.Fatalf("entry reason %q payload %s, want %q and the original bytes", e.Reason, e.Payload, tt.reason)
			}
		})
	}
	if n := r.Sandbox.TotalCalls(); n != 0 {
		t.Fatalf("undecodable tasks reached the upstream %d times", n)
	}
}

func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	r := workertest.Start(t)
	r.Sandbox.Script("meari", "LOG-1", sandbox.MeariCode("1005"), sandbox.MeariCode("4001"))
	r.Sandbox.Script("pandapon", "2542285634920880030", sandbox.PandaPonCode(401, nil), sandbox.OK())
	r.WaitState(t, r.EnqueueMeari(t, "LOG-1"), asynq.TaskStateArchived)
	r.WaitState(t, r.EnqueuePandaPon(t, "2542285634920880030"), asynq.TaskStateCompleted)
	var all strings.Builder
	for _, e := range r.Logs.All() {
		all.WriteString(e.Message)
		for k, v := range e.ContextMap() {
			fmt.Fprintf(&all, " %s=%v", k, v)
		}
		all.WriteString("\n")
	}
	for _, secret := range []string{"ps-test-secret", "as-test-secret"} {
		if strings.Contains(all.String(), secret) {
			t.Fatalf("a log line holds a secret")
		}
	}
	for _, sig := range collectSignatures(r.Sandbox) {
		if strings.Contains(all.String(), sig) {
			t.Fatalf("a log line holds a request signature")
		}
	}
	// One line per attempt outcome, with the fixed keys.
	lines := r.Logs.FilterField(zap.String("order", "1:LOG-1")).All()
	if len(lines) != 2 {
		t.Fatalf("meari LOG-1: %d log lines, want 2 (one per attempt)", len(lines))
	}
	for _, k := range []string{"provider", "order", "task_id", "attempt", "class", "upstream_code", "latency_ms"} {
		if _, ok := lines[1].ContextMap()[k]; !ok {
			t.Errorf("log line %q lacks key %q", lines[1].Message, k)
		}
	}
}

func collectSignatures(sb *sandbox.Sandbox) []string {
	var sigs []string
	for _, c := range sb.Calls("pandapon", "2542285634920880030") {
		sigs = append(sigs, c.Header.Get("signature"))
	}
	for _, c := range sb.Calls("meari", "LOG-1") {
		if i := bytes.Index(c.Body, []byte(`"signature":"`)); i >= 0 {
			rest := c.Body[i+len(`"signature":"`):]
			if j := bytes.IndexByte(rest, '"'); j > 0 {
				sigs = append(sigs, string(rest[:j]))
			}
		}
	}
	return sigs
}

// TestDequeuers runs the worker as three asynq servers sharing a
// concurrency of 7: each is registered with its share, together they serve
// every order once, and a short poll interval has an idle worker pick a
// task up at once.
func TestDequeuers(t *testing.T) {
	t.Parallel()
	r := workertest.Start(t, workertest.WithConcurrency(7), func(r *workertest.Rig) {
		r.Options.Run.Dequeuers = 3
		r.Options.Run.PollInterval = 10 * time.Millisecond
	})
	var shares []int
	workertest.Wait(t, "3 asynq servers registered", func() (bool, string) {
		servers, err := r.Inspector.Servers()
		if err != nil {
			t.Fatal(err)
		}
		shares = shares[:0]
		for _, s := range servers {
			shares = append(shares, s.Concurrency)
		}
		return len(shares) == 3, fmt.Sprintf("%d servers", len(shares))
	})
	slices.Sort(shares)
	if !slices.Equal(shares, []int{2, 2, 3}) {
		t.Errorf("concurrency shares %v, want [2 2 3]", shares)
	}
	var results []tasks.Result
	for i := range 30 {
		results = append(results, r.EnqueueMeari(t, fmt.Sprintf("DQ%02d", i)))
	}
	for i, res := range results {
		r.WaitState(t, res, asynq.TaskStateCompleted)
		if calls := r.Sandbox.Calls(tasks.ProviderMeari, fmt.Sprintf("DQ%02d", i)); len(calls) != 1 {
			t.Errorf("order DQ%02d: %d upstream calls, want 1", i, len(calls))
		}
	}
}

// TestWeights: every provider gets the same share of the fetches however
// many queues its shards make.
func TestWeights(t *testing.T) {
	t.Parallel()
	got := worker.Weights(tasks.Shards{Meari: 3}, []string{tasks.ProviderMeari, tasks.ProviderPandaPon})
	want := map[string]int{"cancel:meari:0": 1, "cancel:meari:1": 1, "cancel:meari:2": 1, tasks.QueueMeari: 1, tasks.QueuePandaPon: 4}
	if !maps.Equal(got, want) {
		t.Errorf("Weights = %v, want %v", got, want)
	}
	got = worker.Weights(tasks.Shards{}, []string{tasks.ProviderPandaPon})
	if !maps.Equal(got, map[string]int{tasks.QueuePandaPon: 1}) {
		t.Errorf("Weights unsharded = %v", got)
	}
}
