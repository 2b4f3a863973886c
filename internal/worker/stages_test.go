package worker_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/worker"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/hibiken/asynq"
)

// stageEvents records the stages a worker reports, besides the events.
type stageEvents struct {
	events
	mu     sync.Mutex
	stages map[string][]time.Duration
}

func (s *stageEvents) Stage(stage string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stages == nil {
		s.stages = map[string][]time.Duration{}
	}
	s.stages[stage] = append(s.stages[stage], d)
}

func (s *stageEvents) count(stage string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.stages[stage])
}

// TestStagesTimed runs orders through a worker whose observer takes the
// stages: each completed task reports each stage once, the upstream call
// as long as the provider took, and a failed task none.
func TestStagesTimed(t *testing.T) {
	t.Parallel()
	ev := &stageEvents{}
	r := workertest.Start(t, workertest.WithObserver(ev))
	const n, slow = 20, 30 * time.Millisecond
	for i := range n {
		r.EnqueueMeari(t, fmt.Sprintf("STAGE-%02d", i), sandbox.Slow(slow, sandbox.OK()))
	}
	dead := r.EnqueueMeari(t, "STAGE-4001", sandbox.MeariCode("4001"))
	workertest.Wait(t, "every stage of every order reported", func() (bool, string) {
		done := true
		for _, st := range worker.Stages() {
			done = done && ev.count(st) >= n
		}
		return done, fmt.Sprint(ev.count(worker.StageComplete))
	})
	r.WaitState(t, dead, asynq.TaskStateArchived) // its handler has returned
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, st := range worker.Stages() {
		ds := ev.stages[st]
		if len(ds) != n {
			t.Errorf("stage %s reported %d times, want %d (the dead-lettered order not among them)", st, len(ds), n)
		}
		for _, d := range ds {
			switch {
			case d < 0 || d > 5*time.Second:
				t.Errorf("stage %s took %s", st, d)
			case st == worker.StageUpstream && d < slow:
				t.Errorf("the upstream stage took %s, less than the provider's %s", d, slow)
			}
		}
	}
}
