package worker

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// MaintenancePasses returns how many passes w's maintainer has completed,
// for the external tests.
func MaintenancePasses(w *Worker) int64 { return w.maint.passes.Load() }

// ReconcileBatch is how many archived tasks one reconciler read takes.
const ReconcileBatch = reconcileBatch

// MarkRunningUnknown marks w's calls in flight, as w does at shutdown.
func MarkRunningUnknown(ctx context.Context, w *Worker) error {
	return w.handler.MarkRunningUnknown(ctx)
}

// IsDequeue reports whether cmd is asynq's dequeue script.
func IsDequeue(cmd redis.Cmder) bool { return isDequeue(cmd) }
