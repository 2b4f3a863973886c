// Package status tells where one order's cancellation stands: waiting,
// running, retrying, done, or dead-lettered, from asynq and the DLQ store.
package status

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// State is where a task stands.
type State string

// States reported by Lookup.
const (
	StatePending      State = "pending"       // waiting for a worker
	StateScheduled    State = "scheduled"     // waiting for its time
	StateActive       State = "active"        // being processed
	StateRetry        State = "retry"         // failed, waiting for its next attempt
	StateCompleted    State = "completed"     // cancelled; kept for its retention
	StateDeadLettered State = "dead-lettered" // given up on: see Status.DLQ
	StateArchived     State = "archived"      // archived by asynq or by hand, not in the DLQ
	StateNotFound     State = "not found"     // unknown, or finished and past its retention
)

// Status describes one task. Pointer fields are nil when they do not apply.
type Status struct {
	Provider string `json:"provider"`
	Order    string `json:"order"`
	TaskID   string `json:"task_id"`
	Queue    string `json:"queue"`
	State    State  `json:"state"`
	// NextAttemptAt is when a scheduled or retrying task runs next.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	// LastError is the last failure's error text: the DLQ entry's message
	// when dead-lettered or when asynq has none, else asynq's last error.
	LastError    string     `json:"last_error,omitempty"`
	LastFailedAt *time.Time `json:"last_failed_at,omitempty"`
	// Retried is how many times asynq retried the task.
	Retried     int        `json:"retried"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	// DLQ is the task's dead-letter entry, with its reason, if it has one.
	DLQ *dlq.Entry `json:"dlq,omitempty"`
	// Trail is what became of the order's last dead-letter entry, once it
	// left the queue (requeued, purged, settled by a success), within its
	// retention.
	Trail *dlq.Trail `json:"dlq_trail,omitempty"`
}

// Lookup returns the status of task taskID in queue; queue "" means the
// task's queue under shards, for the provider named by the ID's prefix,
// and then, if the task is not there and the provider is sharded, its
// unsharded queue (where tasks enqueued before sharding wait). A task with
// a DLQ entry
// is dead-lettered when asynq has it archived or no longer has it; when
// asynq has it waiting, running or completed (after a requeue), that state
// is reported, with the entry still in DLQ. store may be nil.
//
// A completed task that the worker has compacted (see package taskstore) is
// reported from its compact form: completed, with its completion time and
// retry count, and no payload.
func Lookup(ctx context.Context, rdb redis.UniversalClient, store *dlq.Store, shards tasks.Shards, taskID, queue string) (Status, error) {
	if taskID == "" {
		return Status{}, errors.New("status: task_id: is required")
	}
	provider, _, _ := tasks.ParseTaskID(taskID)
	if queue != "" || shards.Of(provider) == 1 {
		return lookup(ctx, rdb, store, shards, taskID, queue)
	}
	st, err := lookup(ctx, rdb, store, shards, taskID, "")
	if err != nil || st.State != StateNotFound {
		return st, err
	}
	if old, err := lookup(ctx, rdb, store, shards, taskID, tasks.QueueFor(provider)); err != nil || old.State != StateNotFound {
		return old, err
	}
	return st, nil
}

// lookup is Lookup in one queue.
func lookup(ctx context.Context, rdb redis.UniversalClient, store *dlq.Store, shards tasks.Shards, taskID, queue string) (Status, error) {
	provider, order, _ := tasks.ParseTaskID(taskID)
	given := queue != ""
	if !given {
		queue = shards.Queue(provider, taskID)
	}
	st := Status{Provider: provider, Order: order, TaskID: taskID, Queue: queue, State: StateNotFound}

	if store != nil {
		e, err := store.Get(ctx, taskID)
		switch {
		case errors.Is(err, dlq.ErrNotFound):
			tr, ok, err := store.Trail(ctx, taskID)
			if err != nil {
				return Status{}, fmt.Errorf("status %s: %w", taskID, err)
			}
			if ok {
				st.Trail = &tr
			}
		case err != nil:
			return Status{}, fmt.Errorf("status %s: %w", taskID, err)
		default:
			st.DLQ = &e
			if e.Provider != "" {
				st.Provider = e.Provider
			}
			if e.Order != "" {
				st.Order = e.Order
			}
			if !given && e.Queue != "" {
				st.Queue = e.Queue // where it was dead-lettered from
			}
			st.State = StateDeadLettered
			st.LastError = e.Message
			st.LastFailedAt = timePtr(e.LastFailedAt)
		}
	}
	if st.Queue == "" {
		return st, nil
	}

	info, err := readTask(ctx, rdb, &st, taskID)
	if err != nil || info == nil {
		return st, err
	}
	st.Retried = info.Retried
	if p, o := tasks.OrderOf(info.Type, info.Payload); o != "" {
		st.Provider, st.Order = p, o
	}
	switch info.State {
	case asynq.TaskStateArchived:
		if st.DLQ == nil {
			st.State = StateArchived
		}
	case asynq.TaskStatePending:
		st.State = StatePending
	case asynq.TaskStateScheduled:
		st.State = StateScheduled
		st.NextAttemptAt = timePtr(info.NextProcessAt)
	case asynq.TaskStateRetry:
		st.State = StateRetry
		st.NextAttemptAt = timePtr(info.NextProcessAt)
	case asynq.TaskStateActive:
		st.State = StateActive
	case asynq.TaskStateCompleted:
		st.State = StateCompleted
		st.CompletedAt = timePtr(info.CompletedAt)
	default:
		st.State = State(info.State.String())
	}
	if st.State != StateDeadLettered && info.LastErr != "" {
		st.LastError = info.LastErr
		st.LastFailedAt = timePtr(info.LastFailedAt)
	}
	return st, nil
}

// readTask reads the task of st from asynq. A compacted completed task,
// which asynq's Inspector cannot read, is put in st (completed, its time
// and retry count) and no info is returned; so is a missing task (st is
// left not found). A task compacted between the two reads is read again.
func readTask(ctx context.Context, rdb redis.UniversalClient, st *Status, taskID string) (*asynq.TaskInfo, error) {
	ts, insp := taskstore.New(rdb), asynq.NewInspectorFromRedisClient(rdb)
	var lastErr error
	for range 2 {
		task, err := ts.Peek(ctx, st.Queue, taskID)
		switch {
		case err != nil:
			return nil, fmt.Errorf("status %s: %w", taskID, err)
		case task.State == "":
			return nil, nil
		case task.Compact:
			st.State, st.Retried, st.CompletedAt = StateCompleted, task.Retried, timePtr(task.CompletedAt)
			return nil, nil
		}
		info, err := insp.GetTaskInfo(st.Queue, taskID)
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
			return nil, nil
		case err == nil:
			return info, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("status %s: %w", taskID, lastErr)
}

// timePtr returns &t, or nil for the zero time.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// OrderQuery names an order to look up, as the CLI and the HTTP intake
// take it: a Meari order by customer, number and type (OrderType 0: each
// of the three types), a PandaPon order by its ID.
type OrderQuery struct {
	Provider string
	// Meari.
	SourceApp int64
	OrderNum  string
	OrderType int
	// PandaPon.
	OrderID tasks.OrderID
}

// Scan reports whether q names more than one task: a Meari order of any
// type.
func (q OrderQuery) Scan() bool { return q.Provider == tasks.ProviderMeari && q.OrderType == 0 }

// TaskIDs returns the IDs of the tasks q names, or the *tasks.ValidationError
// of its Meari fields (source_app, order_type, order_num).
func (q OrderQuery) TaskIDs() ([]string, error) {
	switch q.Provider {
	case tasks.ProviderMeari:
		// The account is not part of the task ID; Validate wants one.
		m := tasks.MeariCancel{SourceApp: q.SourceApp, UserAccount: "-", OrderNum: q.OrderNum, OrderType: max(q.OrderType, 1)}
		if err := m.Validate(); err != nil {
			return nil, err
		}
		types := []int{q.OrderType}
		if q.Scan() {
			types = []int{1, 2, 3}
		}
		ids := make([]string, 0, len(types))
		for _, t := range types {
			m.OrderType = t
			ids = append(ids, m.TaskID())
		}
		return ids, nil
	case tasks.ProviderPandaPon:
		return []string{tasks.PandaPonCancel{OrderID: q.OrderID}.TaskID()}, nil
	}
	return nil, fmt.Errorf("status: provider: must be %s, got %q", strings.Join(tasks.Providers(), " or "), q.Provider)
}

// LookupOrder looks up every task q names (Lookup) and returns their
// statuses in order type order, those not found included (StateNotFound).
func LookupOrder(ctx context.Context, rdb redis.UniversalClient, store *dlq.Store, shards tasks.Shards, q OrderQuery) ([]Status, error) {
	ids, err := q.TaskIDs()
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(ids))
	for _, id := range ids {
		st, err := Lookup(ctx, rdb, store, shards, id, "")
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}
