package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/text"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
)

const (
	listLimitDefault = 20
	listLimitMax     = 1000
	// reasonWidth is the most bytes of a reason shown in the list table.
	reasonWidth = 40
)

func (a *app) dlqCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show, requeue and purge dead-lettered orders",
		Long: `The dead-letter queue holds one entry per order the worker gave up on: the
upstream refused the cancel for good, the retries ran out, or the task could
not be served. Entries stay until they are requeued or purged.`,
		Example: `  enqueue dlq list --provider pandapon
  enqueue dlq show pandapon:2542285634920880794
  enqueue dlq requeue pandapon:2542285634920880794
  enqueue dlq purge --all --provider meari --yes`,
		Args: cobra.NoArgs,
		RunE: a.missingCommand,
	}
	cmd.AddCommand(a.dlqListCommand(), a.dlqShowCommand(), a.dlqRequeueCommand(), a.dlqPurgeCommand())
	return cmd
}

// listOutput is what dlq list prints with --json.
type listOutput struct {
	Total   int64       `json:"total"`
	Offset  int         `json:"offset"`
	Limit   int         `json:"limit"`
	Entries []dlq.Entry `json:"entries"`
}

func (a *app) dlqListCommand() *cobra.Command {
	var (
		provider string
		limitF   = &textFlag{typ: "int", value: strconv.Itoa(listLimitDefault)}
		offsetF  = &textFlag{typ: "int", value: "0"}
		opts     dlq.ListOptions
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead-lettered orders, oldest first",
		Example: `  enqueue dlq list
  enqueue dlq list --provider meari --limit 50 --offset 50
  enqueue --json dlq list`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&provider, "provider", "", "only this provider's entries: "+strings.Join(tasks.Providers(), " or "))
	f.Var(limitF, "limit", fmt.Sprintf("show at most this many entries, 1 to %d", listLimitMax))
	f.Var(offsetF, "offset", "skip this many entries")

	cmd.RunE = a.runE(func(p *problems, _ []string) {
		checkProvider(p, "--provider", provider, true)
		opts.Provider = provider
		if n, ok := parseInt(p, "--limit", limitF); ok {
			if n < 1 || n > listLimitMax {
				p.add("--limit", "must be from 1 to %d, got %d", listLimitMax, n)
			}
			opts.Limit = int(n)
		}
		if n, ok := parseInt(p, "--offset", offsetF); ok {
			if n < 0 || n > 1<<31-1 {
				p.add("--offset", "must be from 0 to %d, got %d", 1<<31-1, n)
			}
			opts.Offset = int(n)
		}
	}, func(ctx context.Context, rdb redis.UniversalClient) error {
		entries, total, err := dlq.New(rdb).List(ctx, opts)
		if err != nil {
			return err
		}
		if entries == nil {
			entries = []dlq.Entry{}
		}
		out := listOutput{Total: total, Offset: opts.Offset, Limit: opts.Limit, Entries: entries}
		return a.out(out, func(w io.Writer) error { return writeList(w, out) })
	})
	return cmd
}

// writeList writes the entries as a table and a total line.
func writeList(w io.Writer, out listOutput) error {
	if len(out.Entries) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPROVIDER\tORDER\tREASON\tUPSTREAM CODE\tATTEMPTS\tLAST FAILED")
		for _, e := range out.Entries {
			reason := e.Reason
			if e.OutcomeUnknown {
				reason += " (outcome unknown)"
			}
			if e.Corrupt != "" {
				reason = "CORRUPT: " + e.Corrupt
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n",
				cell(e.ID, 0), cell(e.Provider, 0), cell(e.Order, 0), cell(reason, reasonWidth),
				cell(e.UpstreamCode, 0), e.Attempts, formatTime(e.LastFailedAt))
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	var err error
	switch {
	case out.Total == 0:
		_, err = fmt.Fprintln(w, "total: 0 entries")
	case len(out.Entries) == 0:
		_, err = fmt.Fprintf(w, "total: %d entries (none from offset %d)\n", out.Total, out.Offset)
	default:
		_, err = fmt.Fprintf(w, "total: %d entries (showing %d-%d)\n", out.Total, out.Offset+1, out.Offset+len(out.Entries))
	}
	return err
}

// cell makes s fit one table cell: control and bidirectional characters
// become spaces,
// empty becomes "-", and with width > 0 it is cut to width bytes.
func cell(s string, width int) string {
	s = text.Printable(s)
	if s == "" {
		return "-"
	}
	if width > 0 {
		s = text.Truncate(s, width)
	}
	return s
}

// plural returns "1 entry" or "n entries".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// formatTime writes t in UTC as RFC 3339, or "-" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func (a *app) dlqShowCommand() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show every field of one dead-letter entry, payload included",
		Example: `  enqueue dlq show meari:72:1:01582572KS0209053
  enqueue --json dlq show pandapon:2542285634920880794`,
		Args: cobra.ArbitraryArgs,
	}
	cmd.RunE = a.runE(func(p *problems, args []string) {
		switch len(args) {
		case 0:
			p.add("<id>", "is required: the entry ID, as shown by dlq list")
		case 1:
			id = args[0]
		default:
			p.add("<id>", "give exactly one entry ID, got %d arguments", len(args))
		}
	}, func(ctx context.Context, rdb redis.UniversalClient) error {
		e, err := dlq.New(rdb).Get(ctx, id)
		if errors.Is(err, dlq.ErrNotFound) {
			return fmt.Errorf("dlq entry %q not found", id)
		}
		if err != nil {
			return err
		}
		return a.out(e, func(w io.Writer) error { return writeEntry(w, e) })
	})
	return cmd
}

// writeEntry writes every field of e, the payload indented.
func writeEntry(w io.Writer, e dlq.Entry) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("id", cell(e.ID, 0))
	if e.Corrupt != "" {
		row("provider", cell(e.Provider, 0))
		row("corrupt", cell(e.Corrupt, 0)+": the stored entry does not decode; check the order by hand, then purge it")
		row("stored", cell(e.Raw, 0))
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	row("provider", cell(e.Provider, 0))
	row("order", cell(e.Order, 0))
	row("task type", cell(e.TaskType, 0))
	row("queue", cell(e.Queue, 0))
	row("reason", cell(e.Reason, 0))
	row("upstream code", cell(e.UpstreamCode, 0))
	row("message", cell(e.Message, 0))
	if e.OutcomeUnknown {
		row("outcome unknown", "yes: an earlier attempt's outcome was unknown, the order may already be cancelled; check before acting")
	} else {
		row("outcome unknown", "no")
	}
	row("attempts", strconv.Itoa(e.Attempts))
	row("first failed at", formatTime(e.FirstFailedAt))
	row("last failed at", formatTime(e.LastFailedAt))
	row("seq", strconv.FormatInt(e.Seq, 10))
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	payload := "-"
	if len(e.Payload) > 0 {
		var buf bytes.Buffer
		if err := json.Indent(&buf, e.Payload, "  ", "  "); err != nil {
			payload = string(e.Payload)
		} else {
			payload = buf.String()
		}
	}
	_, err := fmt.Fprintf(w, "payload:\n  %s\n", payload)
	return err
}

// selection is the entries a requeue or purge acts on: IDs given as
// arguments, or --all with an optional --provider.
type selection struct {
	ids      []string
	all      bool
	provider string
}

func (s *selection) flags(cmd *cobra.Command, verb string) {
	f := cmd.Flags()
	f.BoolVar(&s.all, "all", false, verb+" every entry (of --provider, if given)")
	f.StringVar(&s.provider, "provider", "", "with --all, only this provider's entries: "+strings.Join(tasks.Providers(), " or "))
}

func (s *selection) check(p *problems, args []string) {
	s.ids = args
	switch {
	case s.all && len(args) > 0:
		p.add("--all", "cannot be combined with entry IDs (got %d)", len(args))
	case !s.all && len(args) == 0:
		p.add("<id>", "give one or more entry IDs, or --all")
	}
	if s.provider != "" && !s.all {
		p.add("--provider", "only applies with --all")
	}
	checkProvider(p, "--provider", s.provider, true)
	for _, id := range args {
		if id == "" {
			p.add("<id>", "must not be empty")
			break
		}
	}
}

// resolve returns the IDs selected.
func (s *selection) resolve(ctx context.Context, store *dlq.Store) ([]string, error) {
	if !s.all {
		return s.ids, nil
	}
	return store.IDs(ctx, s.provider)
}

// requeueOutput is what became of one entry.
type requeueOutput struct {
	ID string `json:"id"`
	// Outcome is requeued, already_queued or already_cancelled (the
	// order's task was found live; the stale entry was dropped),
	// already_requeued (another requeue took the entry first), or failed.
	Outcome string `json:"outcome"`
	dlq.Requeued
	Error string `json:"error,omitempty"`
}

// Outcomes of one entry of dlq requeue.
const (
	outcomeAlreadyRequeued = "already_requeued"
	outcomeFailed          = "failed"
)

func (a *app) dlqRequeueCommand() *cobra.Command {
	var (
		sel   selection
		force bool
	)
	cmd := &cobra.Command{
		Use:   "requeue ID... | --all [--provider P] [--force]",
		Short: "Put dead-lettered orders back on their queue",
		Long: `Put dead-lettered orders back on their queue and remove their entries.

The task is rebuilt from the stored payload, with the retry policy's clock
restarted, in place of the order's archived task. Each entry is claimed
first, so that of two requeues at once exactly one puts it back and the other
says "already requeued". An order whose task is waiting, running, retrying or
completed (brought back another way, such as the monitoring UI's Run) is not
sent again: the entry was stale and is dropped, and the command says what it
found ("already queued", "already cancelled at ..."). --force replaces such a
task all the same, never one being processed: the order may then be
cancelled twice. An entry whose payload no longer parses is kept.

Every entry is tried; the exit code is 1 if any could not be requeued (an
entry another requeue took first is not a failure).`,
		Example: `  enqueue dlq requeue pandapon:2542285634920880794
  enqueue dlq requeue meari:72:1:A1 meari:72:2:A1
  enqueue dlq requeue --all --provider meari`,
		Args: cobra.ArbitraryArgs,
	}
	sel.flags(cmd, "requeue")
	cmd.Flags().BoolVar(&force, "force", false, "replace the order's task whatever its state (pending, retrying, completed), never one being processed; the order may be cancelled twice")
	cmd.RunE = a.runE(sel.check, func(ctx context.Context, rdb redis.UniversalClient) error {
		store := dlq.New(rdb)
		ids, err := sel.resolve(ctx, store)
		if err != nil {
			return err
		}
		enq := tasks.NewEnqueuer(rdb, a.shards)
		opts := dlq.RequeueOptions{Force: force, By: a.operator()}
		results := make([]requeueOutput, 0, len(ids))
		counts := map[string]int{}
		for _, id := range ids {
			res, err := dlq.Requeue(ctx, store, enq, id, opts)
			r := requeueOutput{ID: id, Outcome: res.Trail, Requeued: res}
			var already *dlq.AlreadyRequeuedError
			switch {
			case errors.As(err, &already):
				r.Outcome, r.Error = outcomeAlreadyRequeued, a.redact(err.Error())
				if !a.jsonOut {
					fmt.Fprintf(a.stdout, "already requeued %s: %s\n", id, a.redact(already.Detail()))
				}
			case err != nil:
				r.Outcome, r.Error = outcomeFailed, a.redact(err.Error())
				if !a.jsonOut {
					fmt.Fprintf(a.stderr, "enqueue dlq requeue: %s\n", r.Error)
				}
			case !a.jsonOut:
				fmt.Fprintf(a.stdout, "%s\n", describeRequeued(id, res))
				if res.Note != "" {
					fmt.Fprintf(a.stderr, "enqueue dlq requeue: %s: %s\n", id, res.Note)
				}
			}
			if r.Outcome == dlq.TrailReplaced {
				r.Outcome = dlq.TrailRequeued
			}
			counts[r.Outcome]++
			results = append(results, r)
		}
		if a.jsonOut {
			if err := writeJSON(a.stdout, results); err != nil {
				return err
			}
		} else if len(ids) == 0 {
			fmt.Fprintln(a.stdout, "nothing to requeue: the dead-letter queue is empty")
		} else {
			fmt.Fprintf(a.stdout, "%d requeued, %d already requeued by another requeue, %d dropped as already queued, %d dropped as already cancelled, %d failed\n",
				counts[dlq.TrailRequeued], counts[outcomeAlreadyRequeued], counts[dlq.TrailAlreadyQueued], counts[dlq.TrailAlreadyCancelled], counts[outcomeFailed])
		}
		if failed := counts[outcomeFailed]; failed > 0 {
			if !a.jsonOut {
				fmt.Fprintf(a.stderr, "enqueue dlq requeue: %d of %d entries could not be requeued\n", failed, len(ids))
			}
			return &failure{err: fmt.Errorf("%d of %d entries could not be requeued", failed, len(ids)), reported: true}
		}
		return nil
	})
	return cmd
}

// describeRequeued says in words what Requeue did with entry id.
func describeRequeued(id string, r dlq.Requeued) string {
	switch r.Trail {
	case dlq.TrailAlreadyCancelled:
		return fmt.Sprintf("already cancelled %s at %s: dropped the stale entry (no new task)", id, formatTime(r.CompletedAt))
	case dlq.TrailAlreadyQueued:
		return fmt.Sprintf("already queued %s (%s): dropped the stale entry (no new task)", id, r.State)
	}
	return "requeued " + id + ": " + describeResult(r.Result)
}

// purgeOutput is what dlq purge prints with --json.
type purgeOutput struct {
	Purged   int      `json:"purged"`
	NotFound []string `json:"not_found"`
}

func (a *app) dlqPurgeCommand() *cobra.Command {
	var (
		sel selection
		yes bool
	)
	cmd := &cobra.Command{
		Use:   "purge ID... | --all [--provider P] --yes",
		Short: "Delete dead-letter entries for good",
		Long: `Delete dead-letter entries for good, without requeueing their orders.
--yes is required. Naming an ID that has no entry is a failure (exit 1); the
other IDs are still purged.`,
		Example: `  enqueue dlq purge pandapon:2542285634920880794 --yes
  enqueue dlq purge --all --provider meari --yes`,
		Args: cobra.ArbitraryArgs,
	}
	sel.flags(cmd, "purge")
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm that the entries are deleted for good (required)")
	cmd.RunE = a.runE(func(p *problems, args []string) {
		sel.check(p, args)
		if !yes {
			p.add("--yes", "is required: purge deletes entries for good")
		}
	}, func(ctx context.Context, rdb redis.UniversalClient) error {
		store := dlq.New(rdb)
		ids, err := sel.resolve(ctx, store)
		if err != nil {
			return err
		}
		out := purgeOutput{NotFound: []string{}}
		if !sel.all {
			// Name the IDs that have no entry: Purge only counts them.
			present := ids[:0:0]
			for _, id := range ids {
				_, err := store.Get(ctx, id)
				switch {
				case errors.Is(err, dlq.ErrNotFound):
					out.NotFound = append(out.NotFound, id)
				case err != nil:
					return err
				default:
					present = append(present, id)
				}
			}
			ids = present
		}
		if len(ids) > 0 {
			out.Purged, err = store.Purge(ctx, a.operator(), ids...)
			if err != nil {
				return fmt.Errorf("purged %d entries, then: %w", out.Purged, err)
			}
		}
		if err := a.out(out, func(w io.Writer) error {
			for _, id := range out.NotFound {
				fmt.Fprintf(a.stderr, "enqueue dlq purge: dlq entry %q not found\n", id)
			}
			_, err := fmt.Fprintf(w, "purged %s\n", plural(out.Purged, "entry", "entries"))
			return err
		}); err != nil {
			return err
		}
		if len(out.NotFound) > 0 {
			return &failure{err: fmt.Errorf("%d entries not found", len(out.NotFound)), reported: true}
		}
		return nil
	})
	return cmd
}
