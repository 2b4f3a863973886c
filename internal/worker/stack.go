package worker

// growStack grows the calling goroutine's stack to 8 KiB in one step.
//
// asynq runs each task in a goroutine of its own, which starts with a
// small stack (Go's default, 2 KiB, or the average its collector last
// saw). The handler's success path (the payload's decoding, the upstream
// call through fasthttp, the reply's decoding, the log line) needs about
// 7 KiB, so each task's goroutine grew its stack twice, each time copying
// it and adjusting every frame on it: 5.7% of the worker's CPU at 0 ms /
// C=50 in a profile (runtime.newstack under the handler). Growing it once,
// here, where the stack is still shallow, costs one copy of a few frames
// and one clear of the pad.
//
// The pad is 4 KiB, which makes the runtime double a 2 KiB stack until it
// holds the pad and its guard: 8 KiB. The path as the worker runs it by
// default (fasthttp, tracing off) is kept under that, with 1 KiB to spare
// (TestSuccessFitsItsStack): the failure paths, the
// providers' request and reply code and the net/http branch are out of
// line, so that what is on the stack during the call is only what the
// call needs. A task in flight then holds 8 KiB of stack, not 16: at a
// concurrency of 200, 1.6 MB less, and about as much less heap, which the
// collector paces with the stacks.
//
//go:noinline
func growStack() {
	var pad [4 << 10]byte
	touch(pad[:])
}

// touch keeps pad on growStack's frame (it does not escape) without being
// inlined away.
//
//go:noinline
func touch(b []byte) { b[len(b)-1] = 0 }
