package worker

import (
	"sync"
	"time"
)

// The stages of a task that this process cancels, in order: where its time
// goes from the dequeue that took it to asynq's record of its completion,
// the upstream call being one of them. Reported to an Observer that is
// also a StageObserver (the metrics: cancelworker_task_stage_seconds).
const (
	// StageFetch is asynq's dequeue script, from sending it to its reply.
	StageFetch = "fetch"
	// StageDispatch is from the dequeue's reply to the handler's start:
	// asynq's processor handing the task to a goroutine.
	StageDispatch = "dispatch"
	// StagePrepare is from the handler's start to the upstream call:
	// decoding the payload, the wait of a task taken ahead for a call slot
	// (WORKER_PREFETCH), the rate limit and the breaker.
	StagePrepare = "prepare"
	// StageUpstream is the upstream call: sign, send, read the reply.
	StageUpstream = "upstream"
	// StageFinish is from the call's end to the handler's return: the log
	// line, the metrics, noting the success.
	StageFinish = "finish"
	// StageComplete is from the handler's return to the reply of asynq's
	// completion script (MarkAsComplete).
	StageComplete = "complete"
)

// Stages returns the stages in order.
func Stages() []string {
	return []string{StageFetch, StageDispatch, StagePrepare, StageUpstream, StageFinish, StageComplete}
}

// StageObserver receives the duration of each stage of each task this
// process completed.
type StageObserver interface {
	Stage(stage string, d time.Duration)
}

// stageClock times the tasks of this process through their stages:
// scriptWatch notes the fetch, the handler its own stages, scriptWatch the
// completion, which reports them all. A task that does not complete here
// (a failure, a deferral, a shutdown) is dropped. It is safe for
// concurrent use.
type stageClock struct {
	obs StageObserver
	now func() time.Time

	mu    sync.Mutex
	tasks map[string]*stageMarks
	added int // since the last sweep
}

// stageMarks are the moments of one task. The handler writes its marks
// without the lock: it alone has the task between its dispatch and its
// return, and asynq's processor receives the handler's result on a
// channel before it completes the task.
type stageMarks struct {
	sent, fetched, started, called, answered, returned time.Time
}

// stageSweepEvery is how many tasks go by between two sweeps of the marks
// of tasks that never completed here; stageKeep is how old those are
// when a sweep drops them.
const (
	stageSweepEvery = 4096
	stageKeep       = 10 * time.Minute
)

func newStageClock(obs StageObserver, now func() time.Time) *stageClock {
	return &stageClock{obs: obs, now: now, tasks: map[string]*stageMarks{}}
}

// fetched notes the dequeue of task id, sent at sent and answered at at.
func (c *stageClock) fetched(id string, sent, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tasks[id] = &stageMarks{sent: sent, fetched: at}
	if c.added++; c.added >= stageSweepEvery {
		c.added = 0
		for k, m := range c.tasks {
			if at.Sub(m.sent) > stageKeep {
				delete(c.tasks, k)
			}
		}
	}
}

// started returns the marks of task id, its start noted; nil when its
// dequeue was not seen (then nothing is timed).
func (c *stageClock) started(id string) *stageMarks {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	m := c.tasks[id]
	c.mu.Unlock()
	if m != nil {
		m.started = c.now()
	}
	return m
}

// returned notes the handler's return: ok says asynq will complete the
// task; otherwise its marks are dropped.
func (c *stageClock) returned(id string, m *stageMarks, ok bool) {
	if m == nil {
		return
	}
	if ok && !m.answered.IsZero() {
		m.returned = c.now()
		return
	}
	c.mu.Lock()
	delete(c.tasks, id)
	c.mu.Unlock()
}

// completed reports the stages of task id, whose completion asynq recorded
// at at.
func (c *stageClock) completed(id string, at time.Time) {
	c.mu.Lock()
	m := c.tasks[id]
	delete(c.tasks, id)
	c.mu.Unlock()
	if m == nil || m.returned.IsZero() {
		return
	}
	c.obs.Stage(StageFetch, m.fetched.Sub(m.sent))
	c.obs.Stage(StageDispatch, m.started.Sub(m.fetched))
	c.obs.Stage(StagePrepare, m.called.Sub(m.started))
	c.obs.Stage(StageUpstream, m.answered.Sub(m.called))
	c.obs.Stage(StageFinish, m.returned.Sub(m.answered))
	c.obs.Stage(StageComplete, at.Sub(m.returned))
}
