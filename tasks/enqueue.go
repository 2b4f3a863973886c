package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/cancelworker/cancelworker/internal/tracing"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Task states as Result.State names them: asynq's, for the task that held
// the order's task ID.
const (
	StatePending   = taskstore.StatePending
	StateActive    = taskstore.StateActive
	StateScheduled = taskstore.StateScheduled
	StateRetry     = taskstore.StateRetry
	StateArchived  = taskstore.StateArchived
	StateCompleted = taskstore.StateCompleted
)

// Result says what Enqueue did with a task.
type Result struct {
	TaskID string `json:"task_id"`
	Queue  string `json:"queue"`
	// AlreadyQueued is true when a task for the same order already existed
	// and nothing new was enqueued. State says what that task is doing:
	// an archived one (dead-lettered) or a completed one (cancelled) is
	// not "queued" in the everyday sense.
	AlreadyQueued bool `json:"already_queued"`
	// Replaced is true when force replaced an existing task for the same
	// order, whose state State gives.
	Replaced bool `json:"replaced,omitempty"`
	// State is the state of the task that held the order's task ID before
	// this call (StatePending, StateRetry, StateCompleted, StateArchived,
	// ...), or "" when there was none.
	State string `json:"task_state,omitempty"`
	// CompletedAt is when that task completed, when State is
	// StateCompleted and Requeue found it.
	CompletedAt time.Time `json:"completed_at,omitzero"`
}

// ErrActive is returned by a forced Enqueue while a task for the same order
// is being processed: replacing it could send the cancel twice at once.
var ErrActive = errors.New("a task for this order is being processed right now; try again when it finishes")

// Enqueuer enqueues cancellation tasks idempotently. It is safe for
// concurrent use. It holds no connections of its own: the caller closes the
// Redis client given to NewEnqueuer.
type Enqueuer struct {
	store  *taskstore.Store
	batch  *batcher
	shards Shards
}

// NewEnqueuer returns an Enqueuer that talks to Redis through rdb and puts
// each task on its queue among shards. The caller keeps ownership of rdb.
func NewEnqueuer(rdb redis.UniversalClient, shards Shards) *Enqueuer {
	store := taskstore.New(rdb)
	return &Enqueuer{store: store, batch: &batcher{store: store}, shards: shards}
}

// Shards returns the queue layout e enqueues to.
func (e *Enqueuer) Shards() Shards { return e.shards }

// Enqueue enqueues t, built by NewMeariCancelTask or NewPandaPonCancelTask,
// in one round trip, shared with the other Enqueue calls of this Enqueuer
// in flight at the same moment (a pipeline). If a task for the same order
// exists, it enqueues nothing, reports AlreadyQueued with that task's
// State, and returns a nil error. With force it replaces that task instead, atomically: if Redis
// fails, the old task is still there. A task being processed is never
// replaced (ErrActive).
func (e *Enqueuer) Enqueue(ctx context.Context, t *asynq.Task, force bool) (Result, error) {
	m, err := wire(t, e.shards)
	if err != nil {
		return Result{}, fmt.Errorf("enqueue %s: %w", t.Type(), err)
	}
	ctx, span := startSend(ctx, &m)
	res, err := e.enqueue(ctx, m, force)
	endSend(span, res, err)
	return res, err
}

// EnqueueBatch is Enqueue without force for each of ts, in order, with
// results[i] and errs[i] for ts[i]: the tasks go out in round trips of up
// to batchMax each, one after the other, on the calling goroutine, so a
// caller with many tasks at hand pays no handoff per task. A task later in
// ts for the order of an earlier one finds it there (AlreadyQueued), as
// it would one Enqueue after the other. If ctx ends before a round trip is
// sent, its tasks and the later ones get ctx's error and are not
// enqueued; once sent, a round trip's answer is read (bounded by the Redis
// client's timeouts), so that no task that may be enqueued is reported as
// not enqueued.
func (e *Enqueuer) EnqueueBatch(ctx context.Context, ts []*asynq.Task) (results []Result, errs []error) {
	results, errs = make([]Result, len(ts)), make([]error, len(ts))
	ms := make([]taskstore.Message, 0, min(len(ts), batchMax))
	idx := make([]int, 0, cap(ms))
	spans := make([]trace.Span, 0, cap(ms))
	flush := func() {
		defer func() { ms, idx, spans = ms[:0], idx[:0], spans[:0] }()
		if len(ms) == 0 {
			return
		}
		var rs []taskstore.EnqueueResult
		if err := ctx.Err(); err == nil {
			rs = e.store.EnqueueMany(context.WithoutCancel(ctx), ms)
		} else {
			rs = make([]taskstore.EnqueueResult, len(ms))
			for j := range rs {
				rs[j].Err = err
			}
		}
		for j, i := range idx {
			results[i], errs[i] = resultOf(ms[j], rs[j])
			endSend(spans[j], results[i], errs[i])
		}
	}
	for i, t := range ts {
		m, err := wire(t, e.shards)
		if err != nil {
			errs[i] = fmt.Errorf("enqueue %s: %w", t.Type(), err)
			continue
		}
		_, span := startSend(ctx, &m)
		ms, idx, spans = append(ms, m), append(idx, i), append(spans, span)
		if len(ms) == batchMax {
			flush()
		}
	}
	flush()
	return results, errs
}

func (e *Enqueuer) enqueue(ctx context.Context, m taskstore.Message, force bool) (Result, error) {
	if !force {
		return resultOf(m, e.batch.enqueue(ctx, m))
	}
	res := Result{TaskID: m.ID, Queue: m.Queue}
	// A marked attempt record lives as long as a finished task would be
	// kept, at least taskstore.RecordTTLFloor.
	old, err := e.store.Replace(ctx, m, m.Retention)
	if errors.Is(err, taskstore.ErrActive) {
		return Result{}, fmt.Errorf("force enqueue %s: %w", m.ID, ErrActive)
	}
	if err != nil {
		return Result{}, err
	}
	res.Replaced, res.State = old != "", old
	return res, nil
}

// resultOf is what an enqueue without force of m that r answered did.
func resultOf(m taskstore.Message, r taskstore.EnqueueResult) (Result, error) {
	if r.Err != nil {
		return Result{}, r.Err
	}
	return Result{TaskID: m.ID, Queue: m.Queue, AlreadyQueued: !r.Enqueued, State: r.Existing}, nil
}

// Requeue enqueues t, rebuilt from a dead-lettered task, in one atomic
// step: in place of the order's archived task, or as a new task when the
// order has none. A task for the order that is waiting, running, retrying
// or completed is left as it is, never replaced: Requeue reports
// AlreadyQueued with its State (and, for a completed one, CompletedAt), so
// that the order is not cancelled twice. With force it replaces any task
// of the order but an active one (ErrActive), as Enqueue with force.
func (e *Enqueuer) Requeue(ctx context.Context, t *asynq.Task, force bool) (Result, error) {
	if force {
		return e.Enqueue(ctx, t, true)
	}
	m, err := wire(t, e.shards)
	if err != nil {
		return Result{}, fmt.Errorf("requeue %s: %w", t.Type(), err)
	}
	ctx, span := startSend(ctx, &m)
	res, err := e.requeue(ctx, m)
	endSend(span, res, err)
	return res, err
}

func (e *Enqueuer) requeue(ctx context.Context, m taskstore.Message) (Result, error) {
	old, replaced, err := e.store.ReplaceIf(ctx, m, m.Retention, func(old taskstore.Task) bool {
		return old.State == "" || old.State == StateArchived
	})
	if err != nil {
		return Result{}, err
	}
	res := Result{TaskID: m.ID, Queue: m.Queue, State: old.State}
	if !replaced {
		res.AlreadyQueued, res.CompletedAt = true, old.CompletedAt
		return res, nil
	}
	res.Replaced = old.State != ""
	return res, nil
}

// startSend starts the producer span of enqueueing m, while tracing is on,
// and puts its trace context in m's headers, for the worker's spans to
// follow. nil when tracing is off.
func startSend(ctx context.Context, m *taskstore.Message) (context.Context, trace.Span) {
	if !tracing.Enabled() {
		return ctx, nil
	}
	ctx, span := tracing.Tracer().Start(ctx, "send "+m.Queue, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "asynq"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", m.Queue),
			attribute.String("messaging.message.id", m.ID),
		))
	m.Headers = tracing.Inject(ctx, m.Headers)
	return ctx, span
}

// endSend ends the producer span with what the enqueue did.
func endSend(span trace.Span, res Result, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, "enqueue failed")
	}
	span.SetAttributes(attribute.Bool("cancelworker.already_queued", res.AlreadyQueued), attribute.Bool("cancelworker.replaced", res.Replaced))
	span.End()
}
