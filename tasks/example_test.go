package tasks_test

import (
	"fmt"

	"github.com/cancelworker/cancelworker/tasks"
)

// A producer builds a task for the order and enqueues it with an Enqueuer
// (tasks.NewEnqueuer(redisClient, shards)); the same order enqueued again is
// reported as already queued.
func ExampleNewPandaPonCancelTask() {
	id, err := tasks.ParseOrderID("2542285634920880794")
	if err != nil {
		panic(err)
	}
	p := tasks.PandaPonCancel{OrderID: id, CancelReason: "buyer changed their mind"}
	task, err := tasks.NewPandaPonCancelTask(p)
	if err != nil {
		panic(err)
	}
	fmt.Println(task.Type(), p.TaskID())
	// Output: order:cancel:pandapon pandapon:2542285634920880794
}

func ExampleNewMeariCancelTask() {
	m := tasks.MeariCancel{SourceApp: 72, UserAccount: "test@123.com", OrderType: 1, OrderNum: "01582572KS0209053"}
	if _, err := tasks.NewMeariCancelTask(m); err != nil {
		panic(err)
	}
	fmt.Println(m.TaskID())

	_, err := tasks.NewMeariCancelTask(tasks.MeariCancel{SourceApp: 72, OrderType: 7})
	fmt.Println(err)
	// Output:
	// meari:72:1:01582572KS0209053
	// invalid cancellation: user_account: is required; order_type: must be 1 (cloud), 2 (ai) or 3 (flow4g), got 7; order_num: is required
}
