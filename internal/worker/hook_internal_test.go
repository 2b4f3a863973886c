package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// TestScriptWatch runs a real asynq server on a watched client, pipelined
// (the default) or not: the task it dequeues is held from the dequeue on,
// until its run ends.
func TestScriptWatch(t *testing.T) {
	t.Parallel()
	for _, pipeline := range []bool{true, false} {
		t.Run(fmt.Sprintf("pipeline=%v", pipeline), func(t *testing.T) {
			t.Parallel()
			testScriptWatch(t, pipeline)
		})
	}
}

func testScriptWatch(t *testing.T, pipeline bool) {
	rdb := redistest.New(t).Client(t)
	seen := newSeenRing()
	client, err := asynqClient(rdb, pipeline)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := client.(*redis.AutoPipeliner); ok != pipeline {
		t.Fatalf("asynqClient(pipeline %v) gave a %T", pipeline, client)
	}
	client = watchedClient{UniversalClient: client, watch: scriptWatch{seen: seen, now: time.Now}}
	task, err := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: 42})
	if err != nil {
		t.Fatal(err)
	}
	res, err := tasks.NewEnqueuer(rdb, tasks.Shards{}).Enqueue(t.Context(), task, false)
	if err != nil {
		t.Fatal(err)
	}
	if held, _ := seen.state(res.TaskID, time.Now()); held {
		t.Fatal("held before any dequeue")
	}
	entered, release := make(chan struct{}), make(chan struct{})
	srv := asynq.NewServerFromRedisClient(client, asynq.Config{Queues: map[string]int{res.Queue: 1}, Concurrency: 1, LogLevel: asynq.FatalLevel})
	if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		close(entered)
		<-release
		seen.end(id, time.Now())
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the task never ran")
	}
	if held, _ := seen.state(res.TaskID, time.Now()); !held {
		t.Error("not held while its run goes on: the hook missed the dequeue")
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		held, lately := seen.state(res.TaskID, time.Now())
		if !held && lately {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the run: held %v, lately %v; want false, true", held, lately)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
