package intake

import (
	"context"
	"errors"
	"sync"

	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
)

// WorkersDefault is how many Enqueue calls a Pool keeps in flight when
// asked for zero or fewer. asynq enqueues one task per Lua script and has no
// batch enqueue, so throughput comes from overlapping the round trips.
const WorkersDefault = 32

// Target enqueues one task; *Submitter is one.
type Target interface {
	Submit(ctx context.Context, t *asynq.Task, force bool) (Submission, error)
}

var _ Target = (*Submitter)(nil)

// Outcome is what became of one submitted task.
type Outcome struct {
	Submission Submission
	// Err is the enqueue's failure: Redis unreachable, the context done,
	// or, with force, tasks.ErrActive.
	Err error
}

// Ticket is the claim on one submitted task's Outcome.
type Ticket struct {
	done chan struct{}
	out  Outcome
}

// Wait blocks until the task's enqueue has finished and returns its
// outcome. It may be called any number of times, from any goroutine.
func (t *Ticket) Wait() Outcome {
	<-t.done
	return t.out
}

// Pool enqueues tasks with up to a fixed number of Enqueue calls in flight
// over one Redis client, so that their round trips overlap. Callers keep
// the Tickets in submission order and Wait on them in that order to report
// outcomes in order. Tasks with the same task ID are enqueued one after
// the other, in submission order, so the first one submitted is the one
// enqueued and the later ones are "already queued", as they would be one
// at a time. A Pool is safe for concurrent use. Close it once the last
// task is submitted.
//
// Its workers are started as needed and live until Close, so that a task
// runs on a goroutine whose stack has already grown to what an enqueue
// needs, rather than growing a new one each time.
type Pool struct {
	enq   Target
	force bool
	slots chan struct{}
	jobs  chan job       // to an idle worker
	ended sync.WaitGroup // the workers, for the tests

	mu      sync.Mutex
	workers int                // started
	latest  map[string]*Ticket // task ID → the last ticket submitted for it, until it finishes
	failure firstFailure
}

// NewPool returns a Pool that enqueues through enq with up to workers calls
// in flight (WorkersDefault if workers < 1), force applying to every task,
// and to those of Cancellations with Force set.
func NewPool(enq Target, workers int, force bool) *Pool {
	if workers < 1 {
		workers = WorkersDefault
	}
	return &Pool{enq: enq, force: force, slots: make(chan struct{}, workers), jobs: make(chan job), latest: make(map[string]*Ticket)}
}

// job is one submitted task for a worker.
type job struct {
	ctx      context.Context
	c        Cancellation
	tk, prev *Ticket
}

// Submit starts enqueueing c's task and returns its Ticket. It blocks while
// the pool is full. If ctx is done first, the ticket's outcome is ctx's
// error and nothing is enqueued. It must not be called after Close.
func (p *Pool) Submit(ctx context.Context, c Cancellation) *Ticket {
	tk := &Ticket{done: make(chan struct{})}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		tk.out.Err = ctx.Err()
		close(tk.done)
		return tk
	}
	p.mu.Lock()
	prev := p.latest[c.TaskID]
	p.latest[c.TaskID] = tk
	start := false
	j := job{ctx: ctx, c: c, tk: tk, prev: prev}
	select {
	case p.jobs <- j: // an idle worker took it
		p.mu.Unlock()
		return tk
	default:
		if start = p.workers < cap(p.slots); start {
			p.workers++
		}
	}
	p.mu.Unlock()
	if start {
		p.ended.Add(1)
		go p.work(j)
	} else {
		// Every worker is started and this task holds a slot, so one of
		// them has given its slot back and is on its way to take the next.
		p.jobs <- j
	}
	return tk
}

// Close lets the workers end once their tasks are done. Tickets already
// handed out are still settled.
func (p *Pool) Close() { close(p.jobs) }

// work runs j, then whatever is handed to it, until Close.
func (p *Pool) work(j job) {
	defer p.ended.Done()
	for ok := true; ok; j, ok = <-p.jobs {
		p.run(j.ctx, j.c, j.tk, j.prev)
	}
}

func (p *Pool) run(ctx context.Context, c Cancellation, tk, prev *Ticket) {
	defer func() { <-p.slots }()
	if prev != nil {
		// The same order is ahead of this one: let it settle first. Its
		// slot was taken before this one's, so it can always finish.
		prev.Wait()
	}
	sub, err := p.enq.Submit(ctx, c.Task, p.force || c.Force)
	tk.out = Outcome{Submission: sub, Err: err}
	p.mu.Lock()
	if p.latest[c.TaskID] == tk {
		delete(p.latest, c.TaskID)
	}
	p.mu.Unlock()
	p.failure.note(err)
	close(tk.done)
}

// Err returns the first failure that was not about one order alone (Redis
// unreachable, the context done), or nil. A caller streaming many tasks
// stops submitting once it is set: the next ones would fail the same way.
func (p *Pool) Err() error { return p.failure.get() }

// firstFailure keeps the first enqueue failure that was not about one
// order alone: any but tasks.ErrActive. It is safe for concurrent use.
type firstFailure struct {
	mu  sync.Mutex
	err error
}

func (f *firstFailure) note(err error) {
	if err == nil || errors.Is(err, tasks.ErrActive) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *firstFailure) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}
