package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/status"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
)

func (a *app) statusCommand() *cobra.Command {
	var (
		sourceApp  = &textFlag{typ: "int"}
		orderTypeF = &textFlag{typ: "int"}
		q          status.OrderQuery
		what       string // the order, as the not-found message names it
	)
	cmd := &cobra.Command{
		Use:   "status PROVIDER ORDER",
		Short: "Show where the cancellation of an order stands",
		Long: `Show where the cancellation of an order stands: pending, scheduled, active,
retry (with the next attempt's time and the last error), completed, archived,
dead-lettered (with the reason), or not found. Not found exits with 1.

PROVIDER is meari or pandapon. For meari, ORDER is the order number and the
task is named by --source-app (default MEARI_SOURCE_APP) and --order-type;
without --order-type, every order type (1, 2, 3) is looked up and those found
are shown (with --json, as an array). For pandapon, ORDER is the order ID.`,
		Example: `  enqueue status pandapon 2542285634920880794
  enqueue status meari 01582572KS0209053
  enqueue status meari 01582572KS0209053 --order-type 2 --source-app 72
  enqueue --json status pandapon 2542285634920880794`,
		Args: cobra.ArbitraryArgs,
	}
	f := cmd.Flags()
	f.Var(orderTypeF, "order-type", "meari only: 1 (cloud), 2 (ai) or 3 (flow4g); default: look up all three")
	f.Var(sourceApp, "source-app", "meari only: the Meari customer number (env "+envSourceApp+")")

	cmd.RunE = a.runE(func(p *problems, args []string) {
		if len(args) != 2 {
			p.add("<provider> <order>", "give exactly two arguments, the provider (%s) and the order, got %d", strings.Join(tasks.Providers(), " or "), len(args))
			return
		}
		provider, order := args[0], args[1]
		checkProvider(p, "<provider>", provider, false)
		switch provider {
		case tasks.ProviderMeari:
			q, what = a.meariQuery(p, order, sourceApp, orderTypeF)
		case tasks.ProviderPandaPon:
			if sourceApp.set {
				p.add("--source-app", "only applies to meari")
			}
			if orderTypeF.set {
				p.add("--order-type", "only applies to meari")
			}
			id, err := tasks.ParseOrderID(order)
			if err != nil {
				p.add("<order>", "%s", err.Error())
				return
			}
			q = status.OrderQuery{Provider: tasks.ProviderPandaPon, OrderID: id}
			what = "pandapon order " + id.String()
		}
	}, func(ctx context.Context, rdb redis.UniversalClient) error {
		all, err := status.LookupOrder(ctx, rdb, dlq.New(rdb), a.shards, q)
		if err != nil {
			return err
		}
		found := make([]status.Status, 0, len(all))
		for _, st := range all {
			if st.State != status.StateNotFound {
				found = append(found, st)
			}
		}
		var out any = found
		if !q.Scan() {
			out = all[0]
		}
		if err := a.out(out, func(w io.Writer) error {
			if len(found) == 0 {
				_, err := fmt.Fprintf(w, "not found: no task and no dead-letter entry for %s\n", what)
				return err
			}
			for i, st := range found {
				if i > 0 {
					fmt.Fprintln(w)
				}
				if err := writeStatus(w, st); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
		if len(found) == 0 {
			return &failure{err: fmt.Errorf("%s not found", what), reported: true}
		}
		return nil
	})
	return cmd
}

// meariQuery validates a Meari status query: one order type, or every
// type without --order-type (a scan).
func (a *app) meariQuery(p *problems, order string, sourceAppF, orderTypeF *textFlag) (q status.OrderQuery, what string) {
	q = status.OrderQuery{Provider: tasks.ProviderMeari, OrderNum: order}
	var sourceAppName string
	q.SourceApp, sourceAppName = a.sourceApp(p, sourceAppF)
	if orderTypeF.set {
		q.OrderType = orderType(p, orderTypeF, false)
	}
	_, err := q.TaskIDs()
	p.addValidation(err, map[string]string{
		"source_app": sourceAppName,
		"order_type": "--order-type",
		"order_num":  "<order>",
	})
	what = fmt.Sprintf("meari order %s (source app %d, order type %d)", order, q.SourceApp, q.OrderType)
	if q.Scan() {
		what = fmt.Sprintf("meari order %s (source app %d, order types 1, 2, 3)", order, q.SourceApp)
	}
	return q, what
}

// writeStatus writes st in words.
func writeStatus(w io.Writer, st status.Status) error {
	if _, err := fmt.Fprintf(w, "%s (queue %s): %s\n", st.TaskID, st.Queue, st.State); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "  %s:\t%s\n", k, v) }
	row("provider", cell(st.Provider, 0))
	row("order", cell(st.Order, 0))
	if st.NextAttemptAt != nil {
		row("next attempt at", formatTime(*st.NextAttemptAt))
	}
	if st.Retried > 0 {
		row("retried", strconv.Itoa(st.Retried))
	}
	if st.LastError != "" {
		row("last error", cell(st.LastError, 0))
	}
	if st.LastFailedAt != nil {
		row("last failed at", formatTime(*st.LastFailedAt))
	}
	if st.CompletedAt != nil {
		row("completed at", formatTime(*st.CompletedAt))
	}
	if e := st.DLQ; e != nil {
		reason := e.Reason
		if e.UpstreamCode != "" {
			reason += " (upstream code " + e.UpstreamCode + ")"
		}
		if st.State == status.StateDeadLettered {
			row("reason", cell(reason, 0))
			row("attempts", strconv.Itoa(e.Attempts))
			if e.OutcomeUnknown {
				row("outcome unknown", "an earlier attempt's outcome was unknown: the order may already be cancelled; check before acting")
			}
			row("next step", "enqueue dlq show "+e.ID+"; enqueue dlq requeue "+e.ID)
		} else {
			row("dead-letter entry", "also present ("+cell(reason, 0)+"): the task came back without a requeue; the entry goes when it succeeds")
		}
	}
	if tr := st.Trail; tr != nil && st.DLQ == nil {
		row("dead-letter history", cell(tr.String(), 0))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
