package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/hibiken/asynq"
)

const bigID = "2542285634920880794"

func TestMeariValidate(t *testing.T) {
	t.Parallel()
	ok := MeariCancel{SourceApp: 72, UserAccount: "a@b.c", OrderType: 2, OrderNum: "N1"}
	tests := []struct {
		name  string
		edit  func(*MeariCancel)
		field string
		want  string
	}{
		{name: "source_app zero", edit: func(m *MeariCancel) { m.SourceApp = 0 }, field: "source_app", want: "must be a positive integer"},
		{name: "user_account empty", edit: func(m *MeariCancel) { m.UserAccount = "" }, field: "user_account", want: "is required"},
		{name: "user_account too long", edit: func(m *MeariCancel) { m.UserAccount = strings.Repeat("a", 129) }, field: "user_account", want: "at most 128 bytes"},
		{name: "user_account spaces", edit: func(m *MeariCancel) { m.UserAccount = " a" }, field: "user_account", want: "white space"},
		{name: "user_account control", edit: func(m *MeariCancel) { m.UserAccount = "a\nb" }, field: "user_account", want: "control characters"},
		{name: "user_account C1 control", edit: func(m *MeariCancel) { m.UserAccount = "a\u009bb" }, field: "user_account", want: "control characters, got U+009B"},
		{name: "user_account bidi override", edit: func(m *MeariCancel) { m.UserAccount = "evil\u202Egpj.exe@b.c" }, field: "user_account", want: "bidirectional or line-separator characters, got U+202E"},
		{name: "user_account bidi isolate", edit: func(m *MeariCancel) { m.UserAccount = "a\u2067b" }, field: "user_account", want: "got U+2067"},
		{name: "user_account line separator", edit: func(m *MeariCancel) { m.UserAccount = "a\u2028b" }, field: "user_account", want: "got U+2028"},
		{name: "order_num bidi mark", edit: func(m *MeariCancel) { m.OrderNum = "N\u200F1" }, field: "order_num", want: "got U+200F"},
		{name: "user_account bad utf8", edit: func(m *MeariCancel) { m.UserAccount = "a\xffb" }, field: "user_account", want: "must be valid UTF-8: byte 0xFF at offset 1 is not"},
		{name: "order_num cut sequence", edit: func(m *MeariCancel) { m.OrderNum = "N1\xe2\x82" }, field: "order_num", want: "byte 0xE2 at offset 2"},
		{name: "order_num replacement character", edit: func(m *MeariCancel) { m.OrderNum = "N\uFFFD1" }, field: "order_num", want: "must not contain U+FFFD"},
		{name: "user_account NUL", edit: func(m *MeariCancel) { m.UserAccount = "a\x00b" }, field: "user_account", want: "control characters, got U+0000"},
		{name: "order_type low", edit: func(m *MeariCancel) { m.OrderType = 0 }, field: "order_type", want: "must be 1 (cloud), 2 (ai) or 3 (flow4g), got 0"},
		{name: "order_type high", edit: func(m *MeariCancel) { m.OrderType = 4 }, field: "order_type", want: "got 4"},
		{name: "order_num empty", edit: func(m *MeariCancel) { m.OrderNum = "" }, field: "order_num", want: "is required"},
		{name: "order_num colon", edit: func(m *MeariCancel) { m.OrderNum = "a:b" }, field: "order_num", want: "must not contain ':'"},
		{name: "order_num too long", edit: func(m *MeariCancel) { m.OrderNum = strings.Repeat("1", 65) }, field: "order_num", want: "at most 64 bytes"},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid payload: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := ok
			tt.edit(&m)
			err := m.Validate()
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate() = %v, want a ValidationError", err)
			}
			if len(ve.Fields) != 1 || ve.Fields[0].Field != tt.field || !strings.Contains(ve.Fields[0].Problem, tt.want) {
				t.Fatalf("Validate() = %v, want one problem on %s containing %q", err, tt.field, tt.want)
			}
		})
	}
}

func TestPandaPonValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		p     PandaPonCancel
		field string
	}{
		{name: "order_id zero", p: PandaPonCancel{}, field: "order_id"},
		{name: "order_id negative", p: PandaPonCancel{OrderID: -5}, field: "order_id"},
		{name: "reason too long", p: PandaPonCancel{OrderID: 1, CancelReason: strings.Repeat("x", 513)}, field: "cancel_reason"},
		{name: "remark control", p: PandaPonCancel{OrderID: 1, Remark: "a\x00"}, field: "remark"},
		{name: "remark bad utf8", p: PandaPonCancel{OrderID: 1, Remark: "\xc3("}, field: "remark"},
		{name: "reason replacement character", p: PandaPonCancel{OrderID: 1, CancelReason: "x\uFFFD"}, field: "cancel_reason"},
		{name: "remark bidi", p: PandaPonCancel{OrderID: 1, Remark: "a\u202Db"}, field: "remark"},
		{name: "reason bidi", p: PandaPonCancel{OrderID: 1, CancelReason: "\u2066x"}, field: "cancel_reason"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var ve *ValidationError
			if err := tt.p.Validate(); !errors.As(err, &ve) || ve.Fields[0].Field != tt.field {
				t.Fatalf("Validate() = %v, want a problem on %s", err, tt.field)
			}
		})
	}
}

func TestOrderIDJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     string // "" for an error
	}{
		{name: "bare integer", in: bigID, want: bigID},
		{name: "string", in: `"` + bigID + `"`, want: bigID},
		{name: "float", in: bigID + ".0"},
		{name: "exponent", in: "2.542285634920880794e18"},
		{name: "negative", in: "-1"},
		{name: "zero", in: "0"},
		{name: "overflow", in: "9223372036854775808"},
		{name: "max int64", in: "9223372036854775807", want: "9223372036854775807"},
		{name: "letters", in: `"12a"`},
		{name: "empty string", in: `""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var id OrderID
			err := json.Unmarshal([]byte(tt.in), &id)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("Unmarshal(%s) = %s, want an error", tt.in, id)
				}
				if !strings.Contains(err.Error(), "order_id") {
					t.Fatalf("error %q does not name order_id", err)
				}
				return
			}
			if err != nil || id.String() != tt.want {
				t.Fatalf("Unmarshal(%s) = %s, %v; want %s", tt.in, id, err, tt.want)
			}
			b, _ := json.Marshal(id)
			if string(b) != tt.want {
				t.Fatalf("Marshal = %s, want the bare integer %s", b, tt.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, payload string }{
		{name: "not JSON", payload: `{`},
		{name: "unknown field", payload: `{"order_id":1,"extra":true}`},
		{name: "trailing data", payload: `{"order_id":1}{}`},
		{name: "float id", payload: `{"order_id":1.5}`},
		{name: "invalid", payload: `{"order_id":0}`},
	}
	for _, tt := range tests {
		if _, err := ParsePandaPonCancel([]byte(tt.payload)); !errors.Is(err, ErrPayload) {
			t.Errorf("%s: ParsePandaPonCancel = %v, want ErrPayload", tt.name, err)
		}
	}
}

func FuzzParsePandaPonCancel(f *testing.F) {
	f.Add([]byte(`{"order_id":` + bigID + `,"cancel_reason":"不想要了","requested_at":"2026-01-02T03:04:05Z"}`))
	f.Add([]byte(`{"order_id":"` + bigID + `"}`))
	f.Add([]byte(`{"order_id":1e3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePandaPonCancel(b)
		if err != nil {
			return
		}
		// A decoded payload round-trips exactly.
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := ParsePandaPonCancel(out)
		if err != nil || q.OrderID != p.OrderID || q.CancelReason != p.CancelReason || q.Remark != p.Remark || !q.RequestedAt.Equal(p.RequestedAt) {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", p, out, q, err)
		}
		if !bytes.Contains(out, []byte(`"order_id":`+p.OrderID.String())) {
			t.Fatalf("order_id not written as a bare integer: %s", out)
		}
	})
}

func FuzzParseMeariCancel(f *testing.F) {
	f.Add([]byte(`{"source_app":72,"user_account":"a@b.c","order_type":1,"order_num":"X1","requested_at":"2026-01-02T03:04:05Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMeariCancel(b)
		if err != nil {
			return
		}
		out, _ := json.Marshal(m)
		if q, err := ParseMeariCancel(out); err != nil || q.TaskID() != m.TaskID() {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", m, out, q, err)
		}
	})
}

func TestEnqueueIdempotentAndForce(t *testing.T) {
	t.Parallel()
	rdb := redistest.New(t).Client(t)
	enq := NewEnqueuer(rdb, Shards{})
	insp := asynq.NewInspectorFromRedisClient(rdb)
	id, _ := ParseOrderID(bigID)
	build := func() *asynq.Task {
		task, err := NewPandaPonCancelTask(PandaPonCancel{OrderID: id}, WithRetention(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return task
	}
	first, err := enq.Enqueue(t.Context(), build(), false)
	if err != nil || first.AlreadyQueued || first.TaskID != "pandapon:"+bigID || first.Queue != QueuePandaPon {
		t.Fatalf("first = %+v, %v", first, err)
	}
	second, err := enq.Enqueue(t.Context(), build(), false)
	if err != nil || !second.AlreadyQueued {
		t.Fatalf("second = %+v, %v; want already queued", second, err)
	}
	info, err := insp.GetTaskInfo(QueuePandaPon, first.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(info.Payload, []byte(`"order_id":`+bigID)) || info.Retention != time.Hour || info.MaxRetry != MaxRetry {
		t.Fatalf("stored task: payload %s retention %s max retry %d", info.Payload, info.Retention, info.MaxRetry)
	}
	if err := insp.ArchiveTask(QueuePandaPon, first.TaskID); err != nil {
		t.Fatal(err)
	}
	again, err := enq.Enqueue(t.Context(), build(), false)
	if err != nil || !again.AlreadyQueued || again.State != StateArchived {
		t.Fatalf("enqueue of an archived order = %+v, %v; want already queued, state archived", again, err)
	}
	forced, err := enq.Enqueue(t.Context(), build(), true)
	if err != nil || forced.AlreadyQueued || !forced.Replaced || forced.State != StateArchived {
		t.Fatalf("forced = %+v, %v; want a replaced archived task", forced, err)
	}
	info, err = insp.GetTaskInfo(QueuePandaPon, first.TaskID)
	if err != nil || info.State != asynq.TaskStatePending || info.Retention != time.Hour {
		t.Fatalf("after force: %v, %v; want pending, with its retention", info, err)
	}
}

func TestHeadersAndRebuild(t *testing.T) {
	t.Parallel()
	id, _ := ParseOrderID(bigID)
	plain, err := NewPandaPonCancelTask(PandaPonCancel{OrderID: id, Remark: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if len(plain.Headers()) != 0 || PriorOutcomeUnknown(plain) {
		t.Errorf("a default task has headers %v", plain.Headers())
	}
	marked, err := Rebuild(plain, WithPriorOutcomeUnknown(), WithRetention(90*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !PriorOutcomeUnknown(marked) || marked.Headers()[HeaderRetention] != "5400" || !bytes.Equal(marked.Payload(), plain.Payload()) {
		t.Errorf("rebuilt task: headers %v, payload %s", marked.Headers(), marked.Payload())
	}
	again, err := Rebuild(marked)
	if err != nil || !PriorOutcomeUnknown(again) || again.Headers()[HeaderRetention] != "5400" {
		t.Errorf("a rebuilt task loses its options: %v, %v", again.Headers(), err)
	}
	bad := asynq.NewTaskWithHeaders(TypePandaPonCancel, plain.Payload(), map[string]string{HeaderRetention: "soon"})
	if _, err := Rebuild(bad); err == nil || !strings.Contains(err.Error(), HeaderRetention) {
		t.Errorf("Rebuild with a bad retention header: %v", err)
	}
	// The enqueued task carries them.
	rdb := redistest.New(t).Client(t)
	res, err := NewEnqueuer(rdb, Shards{}).Enqueue(t.Context(), marked, false)
	if err != nil {
		t.Fatal(err)
	}
	info, err := asynq.NewInspectorFromRedisClient(rdb).GetTaskInfo(res.Queue, res.TaskID)
	if err != nil || info.Headers[HeaderPriorOutcomeUnknown] != "1" || info.Retention != 90*time.Minute || info.Timeout != TimeoutDefault {
		t.Errorf("enqueued task: %+v, %v", info, err)
	}
}

func TestParseTaskID(t *testing.T) {
	m := MeariCancel{SourceApp: 72, UserAccount: "u@x.com", OrderType: 2, OrderNum: "01582572KS0209053"}
	p := PandaPonCancel{OrderID: 2542285634920880794}
	for _, tt := range []struct {
		id, provider, order string
		ok                  bool
	}{
		{m.TaskID(), ProviderMeari, m.OrderRef(), true},
		{p.TaskID(), ProviderPandaPon, p.OrderRef(), true},
		{"meari:72", ProviderMeari, "", false},
		{"pandapon:", ProviderPandaPon, "", false},
		{"other:1", "", "", false},
		{"", "", "", false},
	} {
		provider, order, ok := ParseTaskID(tt.id)
		if provider != tt.provider || order != tt.order || ok != tt.ok {
			t.Errorf("ParseTaskID(%q) = %q, %q, %v; want %q, %q, %v", tt.id, provider, order, ok, tt.provider, tt.order, tt.ok)
		}
	}
}

// TestParseKeepsOldDamagedText checks that a PandaPon task enqueued before
// the constructors refused U+FFFD still parses when only its free text
// holds one, while the constructor refuses it.
func TestParseKeepsOldDamagedText(t *testing.T) {
	t.Parallel()
	p, err := ParsePandaPonCancel([]byte(`{"order_id":7,"cancel_reason":"caf\ufffd","remark":"x\ufffd"}`))
	if err != nil || p.OrderID != 7 || p.CancelReason != "caf\uFFFD" {
		t.Fatalf("ParsePandaPonCancel = %+v, %v; want it parsed", p, err)
	}
	if _, err := NewPandaPonCancelTask(p); err == nil || !strings.Contains(err.Error(), "cancel_reason: must not contain U+FFFD") {
		t.Errorf("NewPandaPonCancelTask = %v; want U+FFFD refused", err)
	}
	if _, err := ParseMeariCancel([]byte(`{"source_app":72,"user_account":"a@b.c","order_type":1,"order_num":"N\ufffd1"}`)); !errors.Is(err, ErrPayload) {
		t.Errorf("a Meari order number with U+FFFD names no order: %v, want refused", err)
	}
}
