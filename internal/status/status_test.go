package status

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

const (
	pandaID  = "pandapon:2542285634920880794"
	pandaRef = "2542285634920880794"
	meariID  = "meari:8:1:01582572KS0209053"
	meariRef = "1:01582572KS0209053"
)

// env is one test's Redis, as the worker and the CLI see it.
type env struct {
	rdb   *redis.Client
	insp  *asynq.Inspector
	store *dlq.Store
	enq   *tasks.Enqueuer
}

func newEnv(t *testing.T) (*env, *redistest.Server) {
	t.Helper()
	srv := redistest.New(t)
	rdb := srv.Client(t)
	return &env{
		rdb:   rdb,
		insp:  asynq.NewInspectorFromRedisClient(rdb),
		store: dlq.New(rdb),
		enq:   tasks.NewEnqueuer(rdb, tasks.Shards{}),
	}, srv
}

func pandaTask(t *testing.T, id tasks.OrderID) *asynq.Task {
	t.Helper()
	task, err := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: id})
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func (e *env) enqueue(t *testing.T, task *asynq.Task) {
	t.Helper()
	if _, err := e.enq.Enqueue(t.Context(), task, false); err != nil {
		t.Fatal(err)
	}
}

func (e *env) archive(t *testing.T, queue, id string) {
	t.Helper()
	if err := e.insp.ArchiveTask(queue, id); err != nil {
		t.Fatalf("archive %s: %v", id, err)
	}
}

func (e *env) deadLetter(t *testing.T, id string) dlq.Entry {
	t.Helper()
	entry, err := e.store.Put(t.Context(), dlq.Entry{
		ID: id, Provider: tasks.ProviderPandaPon, Order: pandaRef,
		TaskType: tasks.TypePandaPonCancel, Queue: tasks.QueuePandaPon,
		Reason: dlq.ReasonPermanent, UpstreamCode: "200", Message: "data: false",
	})
	if err != nil {
		t.Fatal(err)
	}
	return entry
}

func TestLookupWithoutWorker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		setup    func(t *testing.T, e *env)
		id       string
		queue    string
		want     Status
		nextIn   time.Duration // NextAttemptAt about now + nextIn; 0: nil
		wantDLQ  bool
		wantDesc string
	}{
		{
			name:  "pending",
			setup: func(t *testing.T, e *env) { e.enqueue(t, pandaTask(t, 2542285634920880794)) },
			id:    pandaID,
			want:  Status{Provider: "pandapon", Order: pandaRef, TaskID: pandaID, Queue: tasks.QueuePandaPon, State: StatePending},
		},
		{
			name: "meari pending, queue from the ID",
			setup: func(t *testing.T, e *env) {
				task, err := tasks.NewMeariCancelTask(tasks.MeariCancel{SourceApp: 8, UserAccount: "test@123.com", OrderType: 1, OrderNum: "01582572KS0209053"})
				if err != nil {
					t.Fatal(err)
				}
				e.enqueue(t, task)
			},
			id:   meariID,
			want: Status{Provider: "meari", Order: meariRef, TaskID: meariID, Queue: tasks.QueueMeari, State: StatePending},
		},
		{
			name: "scheduled",
			setup: func(t *testing.T, e *env) {
				c := asynq.NewClientFromRedisClient(e.rdb)
				if _, err := c.EnqueueContext(t.Context(), pandaTask(t, 2542285634920880794), asynq.ProcessIn(time.Hour)); err != nil {
					t.Fatal(err)
				}
			},
			id:     pandaID,
			queue:  tasks.QueuePandaPon,
			want:   Status{Provider: "pandapon", Order: pandaRef, TaskID: pandaID, Queue: tasks.QueuePandaPon, State: StateScheduled},
			nextIn: time.Hour,
		},
		{
			name: "archived",
			setup: func(t *testing.T, e *env) {
				e.enqueue(t, pandaTask(t, 2542285634920880794))
				e.archive(t, tasks.QueuePandaPon, pandaID)
			},
			id:   pandaID,
			want: Status{Provider: "pandapon", Order: pandaRef, TaskID: pandaID, Queue: tasks.QueuePandaPon, State: StateArchived},
		},
		{
			name: "dead-lettered wins over archived",
			setup: func(t *testing.T, e *env) {
				e.enqueue(t, pandaTask(t, 2542285634920880794))
				e.deadLetter(t, pandaID)
				e.archive(t, tasks.QueuePandaPon, pandaID)
			},
			id:      pandaID,
			want:    Status{Provider: "pandapon", Order: pandaRef, TaskID: pandaID, Queue: tasks.QueuePandaPon, State: StateDeadLettered, LastError: "data: false"},
			wantDLQ: true,
		},
		{
			name:    "dead-lettered after asynq trimmed its archive",
			setup:   func(t *testing.T, e *env) { e.deadLetter(t, pandaID) },
			id:      pandaID,
			want:    Status{Provider: "pandapon", Order: pandaRef, TaskID: pandaID, Queue: tasks.QueuePandaPon, State: StateDeadLettered, LastError: "data: false"},
			wantDLQ: true,
		},
		{
			name: "requeued but entry not yet removed",
			setup: func(t *testing.T, e *env) {
				e.deadLetter(t, pandaID)
				e.enqueue(t, pandaTask(t, 2542285634920880794))
			},
			id:      pandaID,
			want:    Status{Provider: "pandapon", Order: pandaRef, TaskID: pandaID, Queue: tasks.QueuePandaPon, State: StatePending, LastError: "data: false"},
			wantDLQ: true,
		},
		{
			name:  "not found",
			setup: func(t *testing.T, e *env) { e.enqueue(t, pandaTask(t, 1)) },
			id:    pandaID,
			want:  Status{Provider: "pandapon", Order: pandaRef, TaskID: pandaID, Queue: tasks.QueuePandaPon, State: StateNotFound},
		},
		{
			name:  "not found, queue never used",
			setup: func(t *testing.T, e *env) {},
			id:    meariID,
			want:  Status{Provider: "meari", Order: meariRef, TaskID: meariID, Queue: tasks.QueueMeari, State: StateNotFound},
		},
		{
			name:  "not found, provider unknown",
			setup: func(t *testing.T, e *env) {},
			id:    "other:1",
			want:  Status{TaskID: "other:1", State: StateNotFound},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, _ := newEnv(t)
			tt.setup(t, e)
			got, err := Lookup(t.Context(), e.rdb, e.store, tasks.Shards{}, tt.id, tt.queue)
			if err != nil {
				t.Fatal(err)
			}
			if (got.DLQ != nil) != tt.wantDLQ {
				t.Errorf("DLQ = %+v, want present = %v", got.DLQ, tt.wantDLQ)
			}
			if got.DLQ != nil && (got.DLQ.ID != tt.id || got.DLQ.Reason != dlq.ReasonPermanent) {
				t.Errorf("DLQ = %+v, want the entry of %s with its reason", got.DLQ, tt.id)
			}
			if tt.wantDLQ && got.LastFailedAt == nil {
				t.Errorf("LastFailedAt is nil, want the entry's")
			}
			checkNext(t, got.NextAttemptAt, tt.nextIn)
			got.DLQ, got.NextAttemptAt, got.LastFailedAt = nil, nil, nil
			if got != tt.want {
				t.Errorf("Lookup(%s) = %+v\nwant %+v", tt.id, got, tt.want)
			}
		})
	}
}

func checkNext(t *testing.T, next *time.Time, in time.Duration) {
	t.Helper()
	switch {
	case in == 0 && next != nil:
		t.Errorf("NextAttemptAt = %s, want nil", next)
	case in == 0:
	case next == nil:
		t.Errorf("NextAttemptAt is nil, want about %s from now", in)
	case time.Until(*next) > in || time.Until(*next) < in-time.Minute:
		t.Errorf("NextAttemptAt = %s, want about %s from now", next, in)
	}
}

func TestLookupErrors(t *testing.T) {
	t.Parallel()
	e, _ := newEnv(t)
	if _, err := Lookup(t.Context(), e.rdb, e.store, tasks.Shards{}, "", ""); err == nil || !strings.Contains(err.Error(), "task_id") {
		t.Errorf("Lookup(\"\") error = %v, want one naming task_id", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Lookup(ctx, e.rdb, e.store, tasks.Shards{}, pandaID, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Lookup with a cancelled context: error = %v, want context.Canceled", err)
	}
	// Without a store, asynq alone answers.
	if got, err := Lookup(t.Context(), e.rdb, nil, tasks.Shards{}, pandaID, ""); err != nil || got.State != StateNotFound {
		t.Errorf("Lookup without store = %+v, %v; want not found", got, err)
	}
}

// quiet drops asynq's logs.
type quiet struct{}

func (quiet) Debug(...any) {}
func (quiet) Info(...any)  {}
func (quiet) Warn(...any)  {}
func (quiet) Error(...any) {}
func (quiet) Fatal(...any) {}

// TestLookupWithWorker runs a real asynq server to reach the states only
// processing produces: active, retry and completed.
func TestLookupWithWorker(t *testing.T) {
	t.Parallel()
	e, srv := newEnv(t)
	const (
		orderActive    = 1001
		orderRetry     = 1002
		orderCompleted = 1003
	)
	started, release := make(chan struct{}), make(chan struct{})
	worker := asynq.NewServer(srv.ConnOpt(), asynq.Config{
		Concurrency:              3,
		Queues:                   map[string]int{tasks.QueuePandaPon: 1},
		RetryDelayFunc:           func(int, error, *asynq.Task) time.Duration { return time.Hour },
		TaskCheckInterval:        10 * time.Millisecond,
		DelayedTaskCheckInterval: 10 * time.Millisecond,
		ShutdownTimeout:          5 * time.Second,
		Logger:                   quiet{},
	})
	handler := asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		p, err := tasks.ParsePandaPonCancel(task.Payload())
		if err != nil {
			return err
		}
		switch p.OrderID {
		case orderActive:
			close(started)
			select {
			case <-release:
			case <-ctx.Done():
			}
		case orderRetry:
			return errors.New("upstream said try later")
		}
		return nil
	})
	if err := worker.Start(handler); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(worker.Shutdown)
	t.Cleanup(func() { close(release) }) // runs first: lets the active task end
	for _, id := range []tasks.OrderID{orderActive, orderRetry, orderCompleted} {
		e.enqueue(t, pandaTask(t, id))
	}

	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker never started the task")
	}
	tests := []struct {
		name      string
		id        string
		want      State
		lastError string
		retried   int
		nextIn    time.Duration
		completed bool
	}{
		{name: "active", id: "pandapon:1001", want: StateActive},
		{name: "retry", id: "pandapon:1002", want: StateRetry, lastError: "upstream said try later", retried: 1, nextIn: time.Hour},
		{name: "completed", id: "pandapon:1003", want: StateCompleted, completed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := waitState(t, e, tt.id, tt.want)
			if got.LastError != tt.lastError || got.Retried != tt.retried || (got.CompletedAt != nil) != tt.completed {
				t.Errorf("Lookup(%s) = %+v; want last error %q, retried %d, completed at set = %v", tt.id, got, tt.lastError, tt.retried, tt.completed)
			}
			if (got.LastFailedAt != nil) != (tt.lastError != "") {
				t.Errorf("LastFailedAt = %v, want set = %v", got.LastFailedAt, tt.lastError != "")
			}
			checkNext(t, got.NextAttemptAt, tt.nextIn)
			if got.Provider != tasks.ProviderPandaPon || got.Order != strings.TrimPrefix(tt.id, "pandapon:") || got.DLQ != nil {
				t.Errorf("Lookup(%s) = %+v; want the pandapon order, no DLQ entry", tt.id, got)
			}
		})
	}
	t.Run("completed, compacted", func(t *testing.T) {
		waitState(t, e, "pandapon:1003", StateCompleted)
		if n, err := taskstore.New(e.rdb).Compact(t.Context(), tasks.QueuePandaPon, 0, 10); err != nil || n != 1 {
			t.Fatalf("Compact = %d, %v; want 1", n, err)
		}
		got, err := Lookup(t.Context(), e.rdb, e.store, tasks.Shards{}, "pandapon:1003", "")
		if err != nil || got.State != StateCompleted || got.CompletedAt == nil || time.Since(*got.CompletedAt) > time.Minute ||
			got.Provider != tasks.ProviderPandaPon || got.Order != "1003" {
			t.Errorf("Lookup of a compacted task = %+v, %v; want completed with its time", got, err)
		}
	})
}

// waitState waits until Lookup finds id in state want.
func waitState(t *testing.T, e *env, id string, want State) Status {
	t.Helper()
	var got Status
	workertest.Wait(t, fmt.Sprintf("%s to be %s", id, want), func() (bool, string) {
		var err error
		if got, err = Lookup(t.Context(), e.rdb, e.store, tasks.Shards{}, id, ""); err != nil {
			t.Fatal(err)
		}
		return got.State == want, string(got.State)
	})
	return got
}

func TestOrderQueryTaskIDs(t *testing.T) {
	for _, tt := range []struct {
		name string
		q    OrderQuery
		want []string
		scan bool
	}{
		{"meari, every type", OrderQuery{Provider: tasks.ProviderMeari, SourceApp: 72, OrderNum: "N1"}, []string{"meari:72:1:N1", "meari:72:2:N1", "meari:72:3:N1"}, true},
		{"meari, one type", OrderQuery{Provider: tasks.ProviderMeari, SourceApp: 72, OrderNum: "N1", OrderType: 2}, []string{"meari:72:2:N1"}, false},
		{"pandapon", OrderQuery{Provider: tasks.ProviderPandaPon, OrderID: 2542285634920880794}, []string{"pandapon:2542285634920880794"}, false},
	} {
		ids, err := tt.q.TaskIDs()
		if err != nil || !slices.Equal(ids, tt.want) || tt.q.Scan() != tt.scan {
			t.Errorf("%s: TaskIDs = %v, %v, Scan %v; want %v, scan %v", tt.name, ids, err, tt.q.Scan(), tt.want, tt.scan)
		}
	}
	_, err := OrderQuery{Provider: tasks.ProviderMeari, SourceApp: 72, OrderNum: "a:b"}.TaskIDs()
	var ve *tasks.ValidationError
	if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "order_num" {
		t.Errorf("an order number with ':' gave %v, want a validation error on order_num", err)
	}
	if _, err := (OrderQuery{Provider: "acme"}).TaskIDs(); err == nil || !strings.Contains(err.Error(), "provider") {
		t.Errorf("an unknown provider gave %v", err)
	}
}
