package worker

// growStack grows the calling goroutine's stack to 16 KiB in one step.
//
// asynq runs each task in a goroutine of its own, which starts with a
// small stack (Go's default, or the average its collector last saw). The
// handler's path (the payload's decoding, the upstream call through
// fasthttp, the reply's encoding/json decoding, the log line) needs about
// 16 KiB, so each task's goroutine grew its stack several times, each
// time copying it and adjusting every frame on it, deeper each time: 5.7%
// of the worker's CPU at 0 ms / C=50 in a profile (runtime.newstack under
// the handler). Growing it once, here, where the stack is still shallow,
// costs one copy of a few frames and one clear of the pad. The pad is
// 12 KiB so that the stack grows to 16 KiB, the largest size each P keeps
// a cache of; a 16 KiB pad would need 32 KiB, which comes from the
// runtime's page heap instead.
//
//go:noinline
func growStack() {
	var pad [12 << 10]byte
	touch(pad[:])
}

// touch keeps pad on growStack's frame (it does not escape) without being
// inlined away.
//
//go:noinline
func touch(b []byte) { b[len(b)-1] = 0 }
