package worker

import "context"

// MaintenancePasses returns how many passes w's maintainer has completed,
// for the external tests.
func MaintenancePasses(w *Worker) int64 { return w.maint.passes.Load() }

// ReconcileBatch is how many archived tasks one reconciler read takes.
const ReconcileBatch = reconcileBatch

// MarkRunningUnknown marks w's calls in flight, as w does at shutdown.
func MarkRunningUnknown(ctx context.Context, w *Worker) error {
	return w.handler.MarkRunningUnknown(ctx)
}
