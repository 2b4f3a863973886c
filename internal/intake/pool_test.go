package intake

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
)

// fakeEnqueuer is an in-memory Target: the first task of an ID is
// enqueued, later ones are already queued. Calls for IDs in hold block
// until their channel is closed; calls for IDs in fail return that error.
type fakeEnqueuer struct {
	hold map[string]chan struct{}
	fail map[string]error

	mu        sync.Mutex
	queued    map[string]bool
	inFlight  map[string]int // task ID → calls in flight
	total     int            // calls in flight, all IDs
	maxTotal  int
	overlap   bool // two calls for one ID were in flight at once
	entered   chan string
	callOrder []string
}

func newFake() *fakeEnqueuer {
	return &fakeEnqueuer{
		hold: map[string]chan struct{}{}, fail: map[string]error{},
		queued: map[string]bool{}, inFlight: map[string]int{}, entered: make(chan string, 1000),
	}
}

func (f *fakeEnqueuer) Submit(ctx context.Context, t *asynq.Task, _ bool) (Submission, error) {
	id := string(t.Payload()) // the tests put the task ID in the payload
	f.mu.Lock()
	f.total++
	f.maxTotal = max(f.maxTotal, f.total)
	if f.inFlight[id]++; f.inFlight[id] > 1 {
		f.overlap = true
	}
	f.callOrder = append(f.callOrder, id)
	hold := f.hold[id]
	f.mu.Unlock()
	f.entered <- id
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.total--
	f.inFlight[id]--
	if err := f.fail[id]; err != nil {
		return Submission{}, err
	}
	if err := ctx.Err(); err != nil {
		return Submission{}, err
	}
	res := Submission{Result: tasks.Result{TaskID: id, Queue: "q", AlreadyQueued: f.queued[id]}, State: StateQueued}
	if res.AlreadyQueued {
		res.State = StateAlreadyQueued
	}
	f.queued[id] = true
	return res, nil
}

func cancellation(id string) Cancellation {
	return Cancellation{TaskID: id, Task: asynq.NewTask("test", []byte(id))}
}

// waitEntered waits until n calls have entered Enqueue.
func waitEntered(t *testing.T, f *fakeEnqueuer, n int) {
	t.Helper()
	for range n {
		select {
		case <-f.entered:
		case <-time.After(5 * time.Second):
			t.Fatalf("fewer than %d calls entered Enqueue", n)
		}
	}
}

func TestPoolOrderAndBound(t *testing.T) {
	t.Parallel()
	const workers, n = 4, 50
	f := newFake()
	gate := make(chan struct{})
	for i := range workers {
		f.hold[fmt.Sprint("id", i)] = gate
	}
	p := NewPool(f, workers, false)
	t.Cleanup(p.Close)
	tickets := make(chan *Ticket, n)
	go func() {
		defer close(tickets)
		for i := range n {
			tickets <- p.Submit(t.Context(), cancellation(fmt.Sprint("id", i)))
		}
	}()
	// The first calls hold every slot: no more can start until released.
	waitEntered(t, f, workers)
	f.mu.Lock()
	started := len(f.callOrder)
	f.mu.Unlock()
	if started != workers {
		t.Fatalf("with %d slots held, want %d calls started, got %d", workers, workers, started)
	}
	close(gate)
	i := 0
	for tk := range tickets {
		out := tk.Wait()
		if want := fmt.Sprint("id", i); out.Err != nil || out.Submission.TaskID != want {
			t.Fatalf("ticket %d: want %s, got %+v", i, want, out)
		}
		i++
	}
	if i != n {
		t.Fatalf("want %d outcomes, got %d", n, i)
	}
	if f.maxTotal > workers {
		t.Errorf("want at most %d calls in flight, saw %d", workers, f.maxTotal)
	}
	if p.Err() != nil {
		t.Errorf("Err: want nil, got %v", p.Err())
	}
}

func TestPoolSameOrderInSubmissionOrder(t *testing.T) {
	t.Parallel()
	f := newFake()
	gate := make(chan struct{})
	f.hold["dup"] = gate
	p := NewPool(f, 8, false)
	t.Cleanup(p.Close)
	first := p.Submit(t.Context(), cancellation("dup"))
	waitEntered(t, f, 1)
	second := p.Submit(t.Context(), cancellation("dup"))
	others := []*Ticket{p.Submit(t.Context(), cancellation("a")), p.Submit(t.Context(), cancellation("b"))}
	for _, tk := range others {
		if out := tk.Wait(); out.Err != nil || out.Submission.AlreadyQueued {
			t.Fatalf("other order: want enqueued, got %+v", out)
		}
	}
	close(gate)
	if out := first.Wait(); out.Err != nil || out.Submission.AlreadyQueued {
		t.Errorf("first of the same order: want enqueued, got %+v", out)
	}
	if out := second.Wait(); out.Err != nil || !out.Submission.AlreadyQueued {
		t.Errorf("second of the same order: want already queued, got %+v", out)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.overlap {
		t.Error("two enqueues of the same order were in flight at once")
	}
}

func TestPoolErr(t *testing.T) {
	t.Parallel()
	down := errors.New("redis: connection refused")
	tests := []struct {
		name    string
		fail    error
		wantErr error
	}{
		{name: "a Redis failure stops the stream", fail: down, wantErr: down},
		{name: "an order being processed is that order's problem", fail: fmt.Errorf("force enqueue x: %w", tasks.ErrActive)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			f.fail["x"] = tt.fail
			p := NewPool(f, 2, true)
			t.Cleanup(p.Close)
			if out := p.Submit(t.Context(), cancellation("x")).Wait(); !errors.Is(out.Err, tt.fail) {
				t.Fatalf("outcome: want %v, got %+v", tt.fail, out)
			}
			if out := p.Submit(t.Context(), cancellation("y")).Wait(); out.Err != nil {
				t.Fatalf("next order: want enqueued, got %v", out.Err)
			}
			if got := p.Err(); !errors.Is(got, tt.wantErr) || (tt.wantErr == nil && got != nil) {
				t.Errorf("Err: want %v, got %v", tt.wantErr, got)
			}
		})
	}
}

func TestPoolSubmitContextDone(t *testing.T) {
	t.Parallel()
	f := newFake()
	gate := make(chan struct{})
	f.hold["held"] = gate
	p := NewPool(f, 1, false)
	t.Cleanup(p.Close)
	held := p.Submit(t.Context(), cancellation("held"))
	waitEntered(t, f, 1)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if out := p.Submit(ctx, cancellation("late")).Wait(); !errors.Is(out.Err, context.Canceled) {
		t.Errorf("submit on a full pool with ctx done: want context.Canceled, got %+v", out)
	}
	close(gate)
	if out := held.Wait(); out.Err != nil {
		t.Errorf("the held order: want enqueued, got %v", out.Err)
	}
}

// TestPoolWorkersAreKept checks that the pool starts no more workers than
// it has slots however many tasks pass through it, and that they end once
// it is closed.
func TestPoolWorkersAreKept(t *testing.T) {
	t.Parallel()
	f := newFake()
	p := NewPool(f, 3, false)
	var tickets []*Ticket
	for i := range 300 {
		tickets = append(tickets, p.Submit(t.Context(), cancellation(fmt.Sprint("id", i))))
		if i%7 == 0 {
			tickets[i].Wait() // sometimes idle, sometimes full
		}
	}
	for i, tk := range tickets {
		if out := tk.Wait(); out.Err != nil || out.Submission.TaskID != fmt.Sprint("id", i) {
			t.Fatalf("ticket %d: %+v", i, out)
		}
	}
	p.mu.Lock()
	started := p.workers
	p.mu.Unlock()
	if started < 1 || started > 3 {
		t.Errorf("%d workers started for 300 tasks, want 1 to 3", started)
	}
	p.Close()
	ended := make(chan struct{})
	go func() { p.ended.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the workers did not end within 5 s of Close")
	}
}
