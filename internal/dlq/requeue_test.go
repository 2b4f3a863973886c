package dlq

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// longAgo is an old RequestedAt that Requeue must not carry over.
var longAgo = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// deadLetter enqueues t, archives it as the worker's failure would, and
// writes its entry, as the worker does when it gives up on a task.
func deadLetter(t *testing.T, rdb *redis.Client, s *Store, task *asynq.Task) Entry {
	t.Helper()
	res, err := tasks.NewEnqueuer(rdb, tasks.Shards{}).Enqueue(t.Context(), task, false)
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if err := insp.ArchiveTask(res.Queue, res.TaskID); err != nil {
		t.Fatalf("archive %s: %v", res.TaskID, err)
	}
	e, err := s.Put(t.Context(), Entry{
		ID:       res.TaskID,
		Provider: tasks.ProviderOf(task.Type()),
		TaskType: task.Type(),
		Queue:    res.Queue,
		Payload:  task.Payload(),
		Headers:  task.Headers(),
		Reason:   ReasonPermanent,
		Attempts: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestRequeue(t *testing.T) {
	t.Parallel()
	meari, err := tasks.NewMeariCancelTask(tasks.MeariCancel{SourceApp: 8, UserAccount: "test@123.com", OrderType: 1, OrderNum: "01582572KS0209053", RequestedAt: longAgo})
	if err != nil {
		t.Fatal(err)
	}
	panda, err := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: 2542285634920880794, CancelReason: "buyer <changed> mind", RequestedAt: longAgo})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		task      *asynq.Task
		requested func(payload []byte) (time.Time, error)
	}{
		{
			name: "meari",
			task: meari,
			requested: func(b []byte) (time.Time, error) {
				m, err := tasks.ParseMeariCancel(b)
				return m.RequestedAt, err
			},
		},
		{
			name: "pandapon",
			task: panda,
			requested: func(b []byte) (time.Time, error) {
				p, err := tasks.ParsePandaPonCancel(b)
				return p.RequestedAt, err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rdb := redistest.New(t).Client(t)
			s := New(rdb)
			e := deadLetter(t, rdb, s, tt.task)
			before := time.Now()

			res, err := Requeue(t.Context(), s, tasks.NewEnqueuer(rdb, tasks.Shards{}), e.ID, RequeueOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.TaskID != e.ID || res.Queue != e.Queue || !res.Replaced {
				t.Errorf("Requeue = %+v, want task %s on %s replacing the archived one", res, e.ID, e.Queue)
			}
			info, err := asynq.NewInspectorFromRedisClient(rdb).GetTaskInfo(e.Queue, e.ID)
			if err != nil {
				t.Fatal(err)
			}
			if info.State != asynq.TaskStatePending || info.Type != tt.task.Type() {
				t.Errorf("task %s is %s of type %s, want pending %s", e.ID, info.State, info.Type, tt.task.Type())
			}
			got, err := tt.requested(info.Payload)
			if err != nil {
				t.Fatalf("requeued payload: %v", err)
			}
			if got.Before(before.Add(-time.Second)) {
				t.Errorf("requeued requested_at = %s, want fresh (after %s)", got, before)
			}
			if strings.Contains(string(tt.task.Payload()), "2542285634920880794") && !strings.Contains(string(info.Payload), "2542285634920880794") {
				t.Errorf("requeued payload %s lost the order ID", info.Payload)
			}
			if _, err := s.Get(t.Context(), e.ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("entry after Requeue: Get error = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestRequeueKeepsEntry(t *testing.T) {
	t.Parallel()
	good := `{"order_id":2542285634920880794,"requested_at":"2020-01-01T00:00:00Z"}`
	tests := []struct {
		name string
		edit func(e *Entry)
		want string
	}{
		{name: "payload does not parse", edit: func(e *Entry) { e.Payload = json.RawMessage(`{"order_id":-1}`) }, want: "stored payload"},
		{name: "payload not JSON", edit: func(e *Entry) { e.Payload = json.RawMessage(`{"order_id":`) }, want: "stored payload"},
		{name: "unknown task type", edit: func(e *Entry) { e.TaskType = "order:cancel:other" }, want: `task_type: unknown type "order:cancel:other"`},
		{name: "payload of another order", edit: func(e *Entry) { e.ID = "pandapon:1" }, want: "payload is for task pandapon:2542285634920880794"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rdb := redistest.New(t).Client(t)
			s := New(rdb)
			e := Entry{ID: "pandapon:2542285634920880794", Provider: "pandapon", TaskType: tasks.TypePandaPonCancel, Queue: tasks.QueuePandaPon, Payload: json.RawMessage(good), Reason: ReasonBadPayload}
			tt.edit(&e)
			put, err := s.Put(t.Context(), e)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Requeue(t.Context(), s, tasks.NewEnqueuer(rdb, tasks.Shards{}), e.ID, RequeueOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), e.ID) {
				t.Fatalf("Requeue error = %v, want one naming %s and saying %q", err, e.ID, tt.want)
			}
			if got, err := s.Get(t.Context(), e.ID); err != nil || got.Seq != put.Seq {
				t.Errorf("entry after failed Requeue: %+v, %v; want it kept", got, err)
			}
			if n, err := rdb.Exists(t.Context(), "asynq:{"+tasks.QueuePandaPon+"}:pending").Result(); err != nil || n != 0 {
				t.Errorf("a task was enqueued by a failed Requeue")
			}
		})
	}
	t.Run("corrupt entry", func(t *testing.T) {
		t.Parallel()
		rdb := redistest.New(t).Client(t)
		s := New(rdb)
		if err := rdb.HSet(t.Context(), s.entriesKey(), "pandapon:5", "{oops").Err(); err != nil {
			t.Fatal(err)
		}
		_, err := Requeue(t.Context(), s, tasks.NewEnqueuer(rdb, tasks.Shards{}), "pandapon:5", RequeueOptions{})
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "pandapon:5") {
			t.Errorf("Requeue(corrupt) error = %v, want ErrCorrupt naming the entry", err)
		}
		if raw, _ := rdb.HGet(t.Context(), s.entriesKey(), "pandapon:5").Result(); raw != "{oops" {
			t.Errorf("corrupt entry after Requeue: %q, want it kept", raw)
		}
	})
	t.Run("missing entry", func(t *testing.T) {
		t.Parallel()
		rdb := redistest.New(t).Client(t)
		if _, err := Requeue(t.Context(), New(rdb), tasks.NewEnqueuer(rdb, tasks.Shards{}), "pandapon:5", RequeueOptions{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("Requeue(missing) error = %v, want ErrNotFound", err)
		}
	})
}

// TestRequeueKeepsHeaders requeues a task built with a retention of its
// own: the requeued task keeps it.
func TestRequeueKeepsHeaders(t *testing.T) {
	t.Parallel()
	rdb := redistest.New(t).Client(t)
	s := New(rdb)
	task, err := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: 77}, tasks.WithRetention(90*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	e := deadLetter(t, rdb, s, task)
	res, err := Requeue(t.Context(), s, tasks.NewEnqueuer(rdb, tasks.Shards{}), e.ID, RequeueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := asynq.NewInspectorFromRedisClient(rdb).GetTaskInfo(res.Queue, res.TaskID)
	if err != nil || info.Retention != 90*time.Minute || info.State != asynq.TaskStatePending {
		t.Errorf("requeued task: %+v, %v; want pending, with its 90m retention", info, err)
	}
}

// TestRequeueAcrossShards: an entry dead-lettered from the unsharded queue
// is requeued onto its shard once the provider is sharded, and its archived
// task on the old queue is dropped, so that the reconciler does not file it
// again.
func TestRequeueAcrossShards(t *testing.T) {
	t.Parallel()
	rdb := redistest.New(t).Client(t)
	s := New(rdb)
	task, err := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: 2542285634920880794})
	if err != nil {
		t.Fatal(err)
	}
	e := deadLetter(t, rdb, s, task) // on cancel:pandapon
	shards := tasks.Shards{PandaPon: 4}
	res, err := Requeue(t.Context(), s, tasks.NewEnqueuer(rdb, shards), e.ID, RequeueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := shards.Queue(tasks.ProviderPandaPon, e.ID); res.Queue != want || e.Queue != tasks.QueuePandaPon {
		t.Fatalf("requeued to %q from %q, want %q", res.Queue, e.Queue, want)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if info, err := insp.GetTaskInfo(res.Queue, e.ID); err != nil || info.State != asynq.TaskStatePending {
		t.Errorf("on the shard: %+v, %v", info, err)
	}
	if _, err := insp.GetTaskInfo(e.Queue, e.ID); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("the archived task on %s: %v, want gone", e.Queue, err)
	}
	if _, err := s.Get(t.Context(), e.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("entry after Requeue: %v, want gone", err)
	}
}
