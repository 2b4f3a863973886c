package worker

import (
	"context"
	"unsafe"

	"github.com/hibiken/asynq"

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

// IsDequeue reports whether cmd is asynq's dequeue script, sent as
// EVALSHA or EVAL.
func IsDequeue(cmd redis.Cmder) bool {
	args := cmd.Args()
	if name := cmd.Name(); (name != "evalsha" && name != "eval") || len(args) < 3 {
		return false
	}
	n, ok := args[2].(int)
	if !ok || len(args) < 3+n {
		return false
	}
	keys := make([]string, n)
	for i := range keys {
		if keys[i], ok = args[3+i].(string); !ok {
			return false
		}
	}
	return isDequeue(keys)
}

// ProcessGrowsStack runs w's handler on task in a goroutine of its own, as
// asynq does, with margin bytes of its stack already in use below the
// handler, and reports whether the goroutine's stack had to grow (it moved)
// beyond the size growStack gives it.
func ProcessGrowsStack(ctx context.Context, w *Worker, task *asynq.Task, margin int) (grew bool, err error) {
	grew = stackMoves(true, func() { err = processBelow(ctx, w.handler, task, margin) })
	return grew, err
}

// processBelow calls h.ProcessTask with at least margin bytes of stack used
// by its own frames (each one's 256-byte pad and its overhead: about 300
// bytes more than margin, rounded up to a frame).
//
//go:noinline
func processBelow(ctx context.Context, h *Handler, task *asynq.Task, margin int) error {
	if margin < 256 {
		return h.ProcessTask(ctx, task)
	}
	var pad [256]byte
	touch(pad[:])
	return processBelow(ctx, h, task, margin-len(pad))
}

// Fits8KiBMore reports whether a new goroutine's stack, after growStack if
// grow, holds 8 KiB more without growing: true when growStack gives more
// than 8 KiB, or the runtime starts goroutines on more already (it starts
// them on the average size it last saw, GODEBUG adaptivestackstart).
func Fits8KiBMore(grow bool) bool { return !stackMoves(grow, use8KiB) }

// stackMoves runs f in a goroutine of its own, after growStack if grow,
// and reports whether the goroutine's stack moved (grew) while f ran.
func stackMoves(grow bool, f func()) bool {
	moved := make(chan bool, 1)
	go func() {
		if grow {
			growStack()
		}
		var marker byte
		before := addr(&marker) // a call's result: not recomputed after the stack moves
		f()
		moved <- addr(&marker) != before
	}()
	return <-moved
}

//go:noinline
func use8KiB() {
	var pad [8 << 10]byte
	touch(pad[:])
}

//go:noinline
func addr(p *byte) uintptr { return uintptr(unsafe.Pointer(p)) }
