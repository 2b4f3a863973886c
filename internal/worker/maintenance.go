package worker

import (
	"context"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"go.uber.org/zap"
)

// Maintenance defaults: every worker runs both jobs, on the queues it
// serves; both are safe to run from several workers at once.
const (
	// MaintenanceIntervalDefault is how often the worker compacts
	// completed tasks and reconciles the archive with the dead-letter
	// queue.
	MaintenanceIntervalDefault = 15 * time.Second
	// CompactAfterDefault is how long a completed task is kept whole (and
	// listed in the monitoring UI's Completed tab) before it is compacted.
	CompactAfterDefault = config.CompactAfterDefault

	compactBatch   = 500
	reconcileBatch = 1000
	// reconcileOverlap re-reads this much of the archive already seen, for
	// clocks that disagree between workers (asynq stamps archive times
	// with the archiving worker's clock).
	reconcileOverlap = time.Minute
	// reconcileWholeEvery is how many passes go by between two that read
	// every archive whole, from its oldest task: a task archived by a
	// process whose clock is behind by more than reconcileOverlap lands
	// before the cursor, and only a whole read finds it (2 minutes at the
	// default interval; an archive holds at most 10,000 tasks, asynq's
	// cap, read in batches of reconcileBatch).
	reconcileWholeEvery = 8
)

// maintainer compacts completed tasks and files a dead-letter entry for
// every archived task that has none: a task archived by the monitoring
// UI's buttons, by asynq's own retry limit or after a handler panic left
// the queues without the worker's DLQ write, and the DLQ must hold every
// order that left without success.
type maintainer struct {
	log          *zap.Logger
	store        *taskstore.Store
	dlq          *dlq.Store
	insp         *asynq.Inspector
	obs          Observer
	queues       []string
	shards       tasks.Shards
	sweepAt      int // where the next sweep starts in the dead-letter queue
	interval     time.Duration
	compactAfter time.Duration
	cursors      map[string]cursor // queue → where the archive was reconciled up to
	passes       atomic.Int64      // completed passes, for tests
	// strays is when a queue of a served provider that this worker does
	// not serve (another shard count's) was last warned about.
	strays map[string]time.Time
}

// strayWarnEvery is how often a stray queue with tasks is warned about.
const strayWarnEvery = 5 * time.Minute

// cursor is a place in a queue's archive, ordered by archive time in whole
// seconds: the tasks archived at or after at, less the first skip of them.
type cursor struct {
	at   time.Time
	skip int
}

// run maintains until ctx ends, once at once and then every interval.
func (m *maintainer) run(ctx context.Context) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		m.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pass runs both jobs on every queue once, after moving any dead-letter
// entries an older version wrote (dlq.PrefixLegacy): the reconciler must
// not file an entry the old keys already hold.
func (m *maintainer) pass(ctx context.Context) {
	migrated := true
	if moved, dropped, err := m.dlq.Migrate(ctx); err != nil {
		migrated = false
		if ctx.Err() == nil {
			m.log.Warn("could not move the dead-letter entries of the old key layout; not reconciling until they are", zap.Error(err))
		}
	} else if moved+dropped > 0 {
		m.log.Info("moved dead-letter entries from the old key layout", zap.String("from", dlq.PrefixLegacy+"*"), zap.String("to", dlq.PrefixDefault+"*"),
			zap.Int("moved", moved), zap.Int("superseded", dropped))
	}
	if m.passes.Load()%reconcileWholeEvery == 0 {
		clear(m.cursors) // the first pass too: from each archive's oldest
	}
	for _, q := range m.queues {
		if n, err := m.compact(ctx, q); err != nil && ctx.Err() == nil {
			m.log.Warn("could not compact completed tasks", zap.String("queue", q), zap.Error(err))
		} else if n > 0 {
			m.log.Debug("compacted completed tasks", zap.String("queue", q), zap.Int("tasks", n))
		}
		if !migrated {
			continue
		}
		if err := m.reconcile(ctx, q); err != nil && ctx.Err() == nil {
			m.log.Warn("could not reconcile the archive with the dead-letter queue", zap.String("queue", q), zap.Error(err))
		}
	}
	if migrated {
		if err := m.settleClaims(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("could not settle the requeues interrupted midway", zap.Error(err))
		}
		if err := m.sweep(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("could not check dead-letter entries against their orders' tasks", zap.Error(err))
		}
	}
	m.checkStrays(ctx)
	m.passes.Add(1)
}

// sweepBatch is how many dead-letter entries one pass checks against
// their orders' tasks.
const sweepBatch = 200

// sweep checks the next sweepBatch dead-letter entries against their
// orders' tasks and removes those whose order has been cancelled since
// (its task completed after the entry was written), as a success does
// (dlq.Store.Resolve): for the successes the worker could not settle
// itself (killed within the quarter second that batches them, or Redis
// not answering), before the completed task, the record a requeue goes
// by, leaves at the end of its retention.
func (m *maintainer) sweep(ctx context.Context) error {
	entries, total, err := m.dlq.List(ctx, dlq.ListOptions{Offset: m.sweepAt, Limit: sweepBatch})
	if err != nil {
		return err
	}
	m.sweepAt += sweepBatch
	if int64(m.sweepAt) >= total {
		m.sweepAt = 0
	}
	var done []dlq.Done
	for _, e := range entries {
		if e.Corrupt != "" {
			continue
		}
		for _, q := range m.claimQueues(e) {
			task, err := m.store.Peek(ctx, q, e.ID)
			if err != nil {
				return err
			}
			if task.State == taskstore.StateCompleted && !task.CompletedAt.Before(e.LastFailedAt.Truncate(time.Second)) {
				// Whole seconds: a second later, so that the entry counts as
				// before it.
				done = append(done, dlq.Done{ID: e.ID, At: task.CompletedAt.Add(time.Second)})
				break
			}
		}
	}
	removed, err := m.dlq.Resolve(ctx, done)
	for _, e := range removed {
		m.obs.Resolved(e.Provider)
		m.log.Info("order cancelled since it was dead-lettered (its task completed): its dead-letter entry is removed",
			zap.String("provider", e.Provider), zap.String("order", e.Order), zap.String("task_id", e.ID), zap.Int64("entry_seq", e.Seq))
	}
	return err
}

// claimStale is how old a requeue's claim on a dead-letter entry must be
// for the maintenance to settle it: a requeue holds it for one enqueue,
// milliseconds.
const claimStale = time.Minute

// settleClaims settles the claims of requeues that died between their
// claim and their enqueue: the entry goes back unless the order's task
// got in (dlq.Store.SettleClaim).
func (m *maintainer) settleClaims(ctx context.Context) error {
	claims, err := m.dlq.StaleClaims(ctx, claimStale, reconcileBatch)
	if err != nil {
		return err
	}
	for _, c := range claims {
		state := ""
		for _, q := range m.claimQueues(c.Entry) {
			task, err := m.store.Peek(ctx, q, c.Entry.ID)
			if err != nil {
				return err
			}
			if task.State != "" && (state == "" || state == taskstore.StateArchived) {
				state = task.State
			}
		}
		restored, err := m.dlq.SettleClaim(ctx, c, state)
		if err != nil {
			return err
		}
		m.log.Warn("a requeue was interrupted between claiming a dead-letter entry and enqueueing its order: settled",
			zap.String("task_id", c.Entry.ID), zap.Time("claimed_at", c.At), zap.String("task_state", state), zap.Bool("entry_restored", restored))
	}
	return nil
}

// claimQueues returns where the task of a claimed entry may be: the queue
// it was dead-lettered from, and its queue under this worker's shards.
func (m *maintainer) claimQueues(e dlq.Entry) []string {
	qs := []string{}
	if e.Queue != "" {
		qs = append(qs, e.Queue)
	}
	if q := m.shards.Queue(e.Provider, e.ID); q != "" && !slices.Contains(qs, q) {
		qs = append(qs, q)
	}
	return qs
}

// checkStrays warns about queues of the providers this worker serves that
// it does not serve and that hold tasks: the shards of another
// MEARI_QUEUE_SHARDS or PANDAPON_QUEUE_SHARDS, which an enqueuer or an
// earlier configuration still uses. Their tasks wait until a worker with
// that count serves them.
func (m *maintainer) checkStrays(ctx context.Context) {
	all, err := m.insp.Queues()
	if err != nil || ctx.Err() != nil {
		return
	}
	providers := map[string]bool{}
	for _, q := range m.queues {
		if p, _, ok := tasks.ProviderOfQueue(q); ok {
			providers[p] = true
		}
	}
	for _, q := range all {
		p, _, ok := tasks.ProviderOfQueue(q)
		if !ok || !providers[p] || slices.Contains(m.queues, q) || time.Since(m.strays[q]) < strayWarnEvery {
			continue
		}
		info, err := m.insp.GetQueueInfo(q)
		if err != nil {
			continue
		}
		waiting := info.Pending + info.Scheduled + info.Retry + info.Aggregating
		if waiting == 0 {
			continue
		}
		if m.strays == nil {
			m.strays = map[string]time.Time{}
		}
		m.strays[q] = time.Now()
		m.log.Warn("a queue of a served provider holds tasks this worker does not serve: an enqueuer or an earlier configuration uses another shard count; give every worker and enqueuer the same MEARI_QUEUE_SHARDS and PANDAPON_QUEUE_SHARDS, or run a worker with the old count until the queue is empty",
			zap.String("queue", q), zap.String("provider", p), zap.Int("waiting", waiting), zap.Strings("served", m.queues))
	}
}

// compact compacts queue's completed tasks older than compactAfter.
func (m *maintainer) compact(ctx context.Context, queue string) (int, error) {
	total := 0
	for ctx.Err() == nil {
		n, err := m.store.Compact(ctx, queue, m.compactAfter, compactBatch)
		total += n
		if err != nil || n < compactBatch {
			return total, err
		}
	}
	return total, ctx.Err()
}

// reconcile files an entry for each task archived in queue since the last
// pass that has none. It pages by archive time and, within one second (an
// "archive all" gives thousands of tasks the same time), by position.
func (m *maintainer) reconcile(ctx context.Context, queue string) error {
	for ctx.Err() == nil {
		c := m.cursors[queue]
		archived, err := m.store.ArchivedSince(ctx, queue, c.at, c.skip, reconcileBatch)
		if err != nil || len(archived) == 0 {
			return err
		}
		ids := make([]string, len(archived))
		for i, a := range archived {
			ids[i] = a.ID
		}
		missing, err := m.dlq.Missing(ctx, ids)
		if err != nil {
			return err
		}
		for _, id := range missing {
			if err := m.file(ctx, queue, id); err != nil {
				return err
			}
		}
		last := archived[len(archived)-1].At
		switch {
		case len(archived) < reconcileBatch:
			// Caught up: next time, look back a little.
			m.cursors[queue] = cursor{at: last.Add(-reconcileOverlap)}
			return nil
		case last.Equal(c.at):
			// The whole batch within the cursor's second: step past it.
			m.cursors[queue] = cursor{at: c.at, skip: c.skip + len(archived)}
		default:
			same := 0
			for _, a := range archived {
				if a.At.Equal(last) {
					same++
				}
			}
			m.cursors[queue] = cursor{at: last, skip: same}
		}
	}
	return ctx.Err()
}

// file writes the dead-letter entry of archived task id, if it still
// has none.
func (m *maintainer) file(ctx context.Context, queue, id string) error {
	e, filed, err := m.dlq.FileArchived(ctx, m.insp, queue, id, "archived without a dead-letter entry (the monitoring UI, asynq's retry limit or a handler panic)")
	if err != nil || !filed {
		return err
	}
	m.obs.Reconciled(e.Provider)
	m.log.Warn("archived task had no dead-letter entry: filed one",
		zap.String("provider", e.Provider), zap.String("order", e.Order), zap.String("task_id", id), zap.String("queue", queue),
		zap.Bool("outcome_unknown", e.OutcomeUnknown))
	return nil
}

// sortedQueues returns the queue names of queues in order.
func sortedQueues(queues map[string]int) []string {
	return slices.Sorted(maps.Keys(queues))
}
