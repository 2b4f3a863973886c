package main

import (
	"context"
	"fmt"
	"io"

	"github.com/cancelworker/cancelworker/internal/intake"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
)

const forceUsage = "replace an existing task for this order (pending, scheduled, retrying, completed, archived or dead-lettered; never one being processed)"

func (a *app) meariCommand() *cobra.Command {
	var (
		sourceApp   = &textFlag{typ: "int"}
		orderTypeF  = &textFlag{typ: "int"}
		userAccount string
		orderNum    string
		force       bool
		m           tasks.MeariCancel
	)
	cmd := &cobra.Command{
		Use:   "meari --user-account ACCOUNT --order-type TYPE --order-num NUM",
		Short: "Enqueue the cancellation of a Meari SDKV4 order",
		Long: `Enqueue the cancellation of a Meari SDKV4 order on queue ` + tasks.QueueMeari + `
(or the order's shard of it, with --meari-queue-shards above 1).

The task ID is meari:<source-app>:<order-type>:<order-num>. If a task for the
same order exists, nothing new is enqueued, unless --force is given, and the
command says what that task is doing: "already queued" or "already
cancelled" (exit 0), "dead-lettered" or "archived" (exit 1, with the way on).`,
		Example: `  enqueue meari --user-account test@123.com --order-type 1 --order-num 01582572KS0209053
  MEARI_SOURCE_APP=72 enqueue meari --user-account test@123.com --order-type 2 --order-num A1 --force
  enqueue --json meari --source-app 72 --user-account test@123.com --order-type 3 --order-num A1`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&userAccount, "user-account", "", "the end user's account, e.g. test@123.com (required)")
	f.Var(orderTypeF, "order-type", "1 (cloud), 2 (ai) or 3 (flow4g) (required)")
	f.StringVar(&orderNum, "order-num", "", "the order number, e.g. 01582572KS0209053 (required)")
	f.Var(sourceApp, "source-app", "the Meari customer number (env "+envSourceApp+")")
	f.BoolVar(&force, "force", false, forceUsage)

	cmd.RunE = a.runE(func(p *problems, _ []string) {
		var sourceAppName string
		m.SourceApp, sourceAppName = a.sourceApp(p, sourceApp)
		m.UserAccount = userAccount
		m.OrderType = orderType(p, orderTypeF, true)
		m.OrderNum = orderNum
		p.addValidation(m.Validate(), map[string]string{
			"source_app":   sourceAppName,
			"user_account": "--user-account",
			"order_type":   "--order-type",
			"order_num":    "--order-num",
		})
	}, func(ctx context.Context, rdb redis.UniversalClient) error {
		t, err := tasks.NewMeariCancelTask(m)
		if err != nil {
			return fmt.Errorf("build task: %w", err)
		}
		return a.enqueue(ctx, rdb, t, tasks.ProviderMeari, m.OrderRef(), force)
	})
	return cmd
}

func (a *app) pandaponCommand() *cobra.Command {
	var (
		orderID string
		reason  string
		remark  string
		force   bool
		pc      tasks.PandaPonCancel
	)
	cmd := &cobra.Command{
		Use:   "pandapon --order-id ID",
		Short: "Enqueue the cancellation of a PandaPon 1688 order before payment",
		Long: `Enqueue the cancellation of a PandaPon 1688 order, before payment, on queue
` + tasks.QueuePandaPon + ` (or the order's shard of it, with --pandapon-queue-shards above 1).

The task ID is pandapon:<order-id>. The order ID is read as decimal digits and
kept exact (it does not fit a float64). If a task for the same order exists,
nothing new is enqueued, unless --force is given, and the command says what
that task is doing: "already queued" or "already cancelled" (exit 0),
"dead-lettered" or "archived" (exit 1, with the way on).`,
		Example: `  enqueue pandapon --order-id 2542285634920880794
  enqueue pandapon --order-id 2542285634920880794 --reason "customer asked" --remark "ticket 881"
  enqueue pandapon --order-id 2542285634920880794 --force`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&orderID, "order-id", "", "the 1688 order ID, decimal digits (required)")
	f.StringVar(&reason, "reason", "", "the cancel reason sent upstream (optional)")
	f.StringVar(&remark, "remark", "", "the remark sent upstream (optional)")
	f.BoolVar(&force, "force", false, forceUsage)

	cmd.RunE = a.runE(func(p *problems, _ []string) {
		id, err := tasks.ParseOrderID(orderID)
		if err != nil {
			p.add("--order-id", "%s", err.Error())
		}
		pc = tasks.PandaPonCancel{OrderID: id, CancelReason: reason, Remark: remark}
		p.addValidation(pc.Validate(), map[string]string{
			"order_id":      "--order-id",
			"cancel_reason": "--reason",
			"remark":        "--remark",
		})
	}, func(ctx context.Context, rdb redis.UniversalClient) error {
		t, err := tasks.NewPandaPonCancelTask(pc)
		if err != nil {
			return fmt.Errorf("build task: %w", err)
		}
		return a.enqueue(ctx, rdb, t, tasks.ProviderPandaPon, pc.OrderRef(), force)
	})
	return cmd
}

// enqueueOutput is what the enqueue commands print.
type enqueueOutput struct {
	Provider string `json:"provider"`
	Order    string `json:"order"`
	intake.Submission
}

// enqueue enqueues t and prints what became of it. An order that is
// dead-lettered or archived, and so was not enqueued, is a failure (exit
// 1), with the way on in the message.
func (a *app) enqueue(ctx context.Context, rdb redis.UniversalClient, t *asynq.Task, provider, order string, force bool) error {
	sub, err := intake.NewSubmitter(rdb, a.shards, a.operator()).Submit(ctx, t, force)
	if err != nil {
		return err
	}
	if err := a.out(enqueueOutput{Provider: provider, Order: order, Submission: sub}, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, describeSubmission(sub))
		return err
	}); err != nil {
		return err
	}
	if !sub.Settled() {
		if !a.jsonOut {
			fmt.Fprintf(a.stderr, "enqueue: %s not enqueued: %s\n", sub.TaskID, sub.Hint)
		}
		return &failure{err: fmt.Errorf("%s is %s: %s", sub.TaskID, sub.State, sub.Hint), reported: true}
	}
	return nil
}

// describeSubmission says in words what Submit did.
func describeSubmission(s intake.Submission) string {
	switch s.State {
	case intake.StateAlreadyQueued:
		return fmt.Sprintf("already queued %s (%s; no new task)", s.TaskID, s.Result.State)
	case intake.StateAlreadyCancelled:
		return fmt.Sprintf("already cancelled %s (completed; no new task)", s.TaskID)
	case intake.StateDeadLettered:
		return fmt.Sprintf("dead-lettered %s (%s; no new task)", s.TaskID, s.DLQReason)
	case intake.StateArchived:
		return fmt.Sprintf("archived %s (no new task)", s.TaskID)
	}
	out := describeResult(s.Result)
	if s.Hint != "" {
		out += "; " + s.Hint
	}
	return out
}

// describeResult says in words what Enqueue did.
func describeResult(r tasks.Result) string {
	switch {
	case r.AlreadyQueued:
		return fmt.Sprintf("already queued %s (no new task)", r.TaskID)
	case r.Replaced:
		return fmt.Sprintf("enqueued %s on queue %s (replaced the earlier %s task)", r.TaskID, r.Queue, r.State)
	}
	return fmt.Sprintf("enqueued %s on queue %s", r.TaskID, r.Queue)
}
