package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/cancelworker/cancelworker/internal/intake"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
)

const (
	// workersDefault is --concurrency's default: the lines of a batch,
	// as many as tasks.Enqueuer sends in one round trip.
	workersDefault = 256
	// workersMax bounds --concurrency.
	workersMax = 1024
	// maxLineBytes is the longest line taken, line ending excluded; a
	// longer line is reported invalid and skipped.
	maxLineBytes = 64 << 10
	// maxJSONErrors is the most line errors listed by --json; the counts
	// stay exact.
	maxJSONErrors = 10000
)

// fileSummary is what enqueue file prints, with --json as is.
type fileSummary struct {
	// Lines counts the non-blank lines read.
	Lines         int `json:"lines"`
	Enqueued      int `json:"enqueued"`
	AlreadyQueued int `json:"already_queued"`
	// AlreadyCancelled counts the lines whose order's cancellation
	// already completed.
	AlreadyCancelled int `json:"already_cancelled"`
	// DeadLettered counts the lines whose order is dead-lettered or
	// archived: not enqueued, listed in Errors with kind "dead_lettered".
	DeadLettered int `json:"dead_lettered"`
	Invalid      int `json:"invalid"`
	Failed       int `json:"failed"`
	// Replaced counts the enqueued lines that replaced a task (--force).
	Replaced int `json:"replaced,omitempty"`
	// Stopped says why reading stopped before the end of the input.
	Stopped string `json:"stopped,omitempty"`
	// Errors lists the invalid and failed lines in line order, at most
	// maxJSONErrors of them; ErrorsOmitted counts the rest.
	Errors        []lineError `json:"errors"`
	ErrorsOmitted int         `json:"errors_omitted,omitempty"`
}

// lineError is one invalid or failed line.
type lineError struct {
	Line int `json:"line"`
	// Kind is "invalid" (nothing was tried), "failed" (the enqueue
	// failed) or "dead_lettered" (the order is dead-lettered or archived:
	// not enqueued; --force or dlq requeue sends it again).
	Kind string `json:"kind"`
	// Field is the item's JSON name for the field at fault, "" for the
	// line as a whole.
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

func (e lineError) String() string {
	if e.Field == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Problem)
	}
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Problem)
}

func (s *fileSummary) counts() string {
	out := fmt.Sprintf("enqueued %d", s.Enqueued)
	if s.Replaced > 0 {
		out += fmt.Sprintf(" (%d replaced)", s.Replaced)
	}
	out += fmt.Sprintf(", already queued %d", s.AlreadyQueued)
	if s.AlreadyCancelled > 0 {
		out += fmt.Sprintf(", already cancelled %d", s.AlreadyCancelled)
	}
	if s.DeadLettered > 0 {
		out += fmt.Sprintf(", dead-lettered %d", s.DeadLettered)
	}
	out += fmt.Sprintf(", invalid %d", s.Invalid)
	if s.Failed > 0 {
		out += fmt.Sprintf(", failed %d", s.Failed)
	}
	return out
}

func (a *app) fileCommand() *cobra.Command {
	var (
		sourceApp = &textFlag{typ: "int"}
		workersF  = &textFlag{typ: "int", value: strconv.Itoa(workersDefault)}
		force     bool
		path      string
		defaults  intake.Defaults
		workers   int
	)
	cmd := &cobra.Command{
		Use:   "file PATH|-",
		Short: "Enqueue many cancellations from a JSON Lines file or stdin",
		Long: `Enqueue the cancellations in a JSON Lines file, one item per line, or read
them from stdin with "-":

  {"provider":"meari","userAccount":"a@b.c","orderType":1,"orderNum":"N1"}
  {"provider":"meari","userAccount":"a@b.c","orderType":2,"orderNum":"N2","sourceApp":73}
  {"provider":"pandapon","orderId":2542285634920880794,"cancelReason":"...","remark":"..."}

sourceApp defaults to --source-app (MEARI_SOURCE_APP). orderId is a JSON
integer or a string of digits, kept exact. Blank lines are skipped; a line
longer than 64 KiB is invalid. Unknown fields are invalid.

Each valid line is enqueued as "enqueue meari" or "enqueue pandapon" would
(orders that have a task already are counted, not replaced, unless --force
or the line's "force": true; a dead-lettered or archived order is reported
on its line with the way on, and makes the exit code 1). An
invalid line is reported with its line number and the field at fault, and
the other lines are still enqueued. The lines go out in batches of up to
--concurrency, one round trip each (with --force, up to --concurrency
replaces at once); results are reported in line order, and an order given twice
is enqueued by its first line (the later ones are already queued). If Redis
fails, reading stops (the lines in flight are reported); running the same
file again is safe.

Progress goes to stderr: a progress bar on a terminal, otherwise a line every
1000 lines or 2 seconds. The summary goes to stdout:
  enqueued N, already queued N[, already cancelled N][, dead-lettered N], invalid N[, failed N]
--json prints it as one object with the line errors. The exit code is 1 if
any line was invalid, dead-lettered or failed. --timeout bounds the run only when given.`,
		Example: `  enqueue file cancellations.jsonl
  producer | enqueue file - --source-app 72
  enqueue --json file cancellations.jsonl > summary.json`,
		Args: cobra.ArbitraryArgs,
	}
	f := cmd.Flags()
	f.Var(sourceApp, "source-app", "the Meari customer number for lines without sourceApp (env "+envSourceApp+")")
	f.Var(workersF, "concurrency", fmt.Sprintf("lines per round trip to Redis (with --force, replaces at once), 1 to %d", workersMax))
	f.BoolVar(&force, "force", false, "for every line: "+forceUsage)

	cmd.RunE = a.runEStream(func(p *problems, args []string) {
		switch len(args) {
		case 0:
			p.add("<path>", `is required: a JSON Lines file, or "-" for stdin`)
		case 1:
			path = args[0]
			checkPath(p, path)
		default:
			p.add("<path>", "give exactly one file, got %d arguments", len(args))
		}
		defaults.SourceApp = a.sourceAppDefault(p, sourceApp)
		if n, ok := parseInt(p, "--concurrency", workersF); ok {
			if n < 1 || n > workersMax {
				p.add("--concurrency", "must be from 1 to %d, got %d", workersMax, n)
			}
			workers = int(n)
		}
		a.redisConn = a.redisConn.WithMinPool(workers)
	}, func(ctx context.Context, rdb redis.UniversalClient) error {
		in, size, err := a.openInput(path)
		if err != nil {
			return err
		}
		defer func() { _ = in.Close() }() // read only
		sum := a.enqueueFile(ctx, intake.NewSubmitter(rdb, a.shards, a.operator()), in, size, fileOptions{defaults: defaults, workers: workers, force: force})
		if err := a.out(sum, func(w io.Writer) error {
			_, err := fmt.Fprintln(w, sum.counts())
			return err
		}); err != nil {
			return err
		}
		if sum.Stopped != "" || sum.Invalid > 0 || sum.Failed > 0 || sum.DeadLettered > 0 {
			return &failure{err: errors.New(sum.counts()), reported: true}
		}
		return nil
	})
	return cmd
}

// checkPath adds a problem unless path is "-" or a file that exists.
func checkPath(p *problems, path string) {
	if path == "-" {
		return
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		p.add("<path>", "no such file: %s", path)
	case err != nil:
		p.add("<path>", "%v", err)
	case fi.IsDir():
		p.add("<path>", "is a directory: %s", path)
	}
}

// openInput opens path, or stdin for "-", and returns its size when it is
// a regular file, else -1.
func (a *app) openInput(path string) (io.ReadCloser, int64, error) {
	if path == "-" {
		size := int64(-1)
		if f, ok := a.stdin.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
				size = fi.Size()
			}
			if isTerminal(f) {
				fmt.Fprintln(a.stderr, "enqueue file: reading JSON Lines from the terminal; end with Ctrl-D")
			}
		}
		return io.NopCloser(a.stdin), size, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("open %s: %w", path, err)
	}
	size := int64(-1)
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	return f, size, nil
}

// fileOptions configure enqueueFile.
type fileOptions struct {
	defaults intake.Defaults
	workers  int
	force    bool
}

// fileLine is one line of the input on its way to the summary.
type fileLine struct {
	n      int   // line number, from 1
	offset int64 // bytes read through the end of this line
	errs   []intake.FieldError
	ticket *intake.Ticket // nil for an invalid line
}

// enqueueFile reads JSON Lines from in (size bytes, or -1 if unknown),
// enqueues each valid line (in batches, or with force through a pool of
// workers), reports the invalid and failed lines on stderr (not with
// --json) in line order, shows progress on stderr, and returns the
// summary.
func (a *app) enqueueFile(ctx context.Context, enq intake.Target, in io.Reader, size int64, o fileOptions) *fileSummary {
	// Without --force the lines go out in batches of up to --concurrency,
	// one pipelined round trip each, the next batch read and decoded
	// while one is out; with it each line is a replace of its own, up to
	// --concurrency at once.
	var sink lineSink
	if b, ok := enq.(intake.BatchTarget); ok && !o.force {
		sink = intake.NewStream(b, o.workers)
	} else {
		sink = intake.NewPool(enq, o.workers, o.force)
	}
	lines := make(chan fileLine, 2*o.workers)
	var stopped string // set by the reader before it closes lines
	go func() {
		defer close(lines)
		stopped = readLines(ctx, in, o.defaults, sink, lines)
		sink.Close()
	}()

	sum := &fileSummary{Errors: []lineError{}}
	prog := a.newProgress(size)
	record := func(e lineError) {
		e.Problem = a.redact(e.Problem)
		if len(sum.Errors) < maxJSONErrors {
			sum.Errors = append(sum.Errors, e)
		} else {
			sum.ErrorsOmitted++
		}
		if !a.jsonOut {
			prog.print(func(w io.Writer) { fmt.Fprintf(w, "enqueue file: %s\n", e) })
		}
	}
	tick := time.NewTicker(progressInterval)
	defer tick.Stop()
	for {
		var l fileLine
		var ok bool
		select {
		case l, ok = <-lines:
		case <-tick.C:
			prog.tick(sum)
			continue
		}
		if !ok {
			break
		}
		sum.Lines++
		if l.ticket == nil {
			sum.Invalid++ // once per line, whatever the number of fields at fault
			for _, fe := range l.errs {
				record(lineError{Line: l.n, Kind: "invalid", Field: fe.Field, Problem: fe.Problem})
			}
			prog.update(sum, l.offset)
			continue
		}
		out := l.ticket.Wait()
		switch {
		case out.Err != nil:
			sum.Failed++
			record(lineError{Line: l.n, Kind: "failed", Problem: "not enqueued: " + out.Err.Error()})
		case out.Submission.State == intake.StateAlreadyCancelled:
			sum.AlreadyCancelled++
		case !out.Submission.Settled():
			sum.DeadLettered++
			record(lineError{Line: l.n, Kind: "dead_lettered", Problem: out.Submission.TaskID + ": " + out.Submission.Hint})
		case out.Submission.AlreadyQueued:
			sum.AlreadyQueued++
		default:
			sum.Enqueued++
			if out.Submission.Replaced {
				sum.Replaced++
			}
		}
		prog.update(sum, l.offset)
	}
	prog.done(sum)
	sum.Stopped = a.redact(stopped)
	if stopped != "" && !a.jsonOut {
		fmt.Fprintf(a.stderr, "enqueue file: %s\n", sum.Stopped)
	}
	return sum
}

// lineSink takes the valid lines' tasks: an intake.Stream or Pool.
type lineSink interface {
	Submit(ctx context.Context, c intake.Cancellation) *intake.Ticket
	Err() error
	Close()
}

// readLines reads in line by line, decodes each non-blank line, submits
// the valid ones to sink and sends every line to out, in order. Before a
// read that may wait for its input (a pipe, a terminal: no whole line
// buffered), it flushes a sink that batches, so that no line waits for
// the next. It returns why it stopped before the end of in, or "" if it
// read it all.
func readLines(ctx context.Context, in io.Reader, d intake.Defaults, sink lineSink, out chan<- fileLine) string {
	lr := newLineReader(in, maxLineBytes)
	flusher, _ := sink.(interface{ Flush() })
	for {
		if flusher != nil && !lr.lineReady() {
			flusher.Flush()
		}
		if err := sink.Err(); err != nil {
			return fmt.Sprintf("stopped after line %d: %v; the lines after it were not read (running the file again is safe: queued orders are reported as already queued)", lr.n, err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Sprintf("stopped after line %d: %v; the lines after it were not read", lr.n, err)
		}
		line, tooLong, err := lr.next()
		if errors.Is(err, io.EOF) {
			return ""
		}
		if err != nil {
			return fmt.Sprintf("stopped at line %d: read: %v", lr.n, err)
		}
		l := fileLine{n: lr.n, offset: lr.offset}
		switch {
		case tooLong:
			l.errs = []intake.FieldError{{Problem: fmt.Sprintf("is longer than %d bytes", maxLineBytes)}}
		case len(bytes.TrimSpace(line)) == 0:
			continue
		default:
			c, errs := intake.Decode(line, d)
			if len(errs) > 0 {
				l.errs = errs
			} else {
				l.ticket = sink.Submit(ctx, c)
			}
		}
		// The summary reads every line to the end, in order; when it is
		// behind, it may be waiting for a line of the batch being filled.
		select {
		case out <- l:
		default:
			if flusher != nil {
				flusher.Flush()
			}
			out <- l
		}
	}
}

// lineReader splits its input into lines of at most max bytes, line
// ending excluded, without failing on longer ones.
type lineReader struct {
	r      *bufio.Reader
	max    int
	n      int   // the number of the line last returned, from 1
	offset int64 // bytes read so far
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, max+2), max: max} // room for "\r\n"
}

// lineReady reports whether a whole line is buffered, so that next need
// not wait for its input.
func (lr *lineReader) lineReady() bool {
	b, _ := lr.r.Peek(lr.r.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

// next returns the next line without its line ending, valid until the
// next call; tooLong means the line was longer than max and was skipped.
// It returns io.EOF after the last line.
func (lr *lineReader) next() (line []byte, tooLong bool, err error) {
	b, err := lr.r.ReadSlice('\n')
	lr.offset += int64(len(b))
	if len(b) == 0 && errors.Is(err, io.EOF) {
		return nil, false, io.EOF
	}
	lr.n++
	if errors.Is(err, bufio.ErrBufferFull) {
		for errors.Is(err, bufio.ErrBufferFull) {
			b, err = lr.r.ReadSlice('\n')
			lr.offset += int64(len(b))
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, false, err
		}
		return nil, true, nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, err
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if lr.n == 1 {
		b = bytes.TrimPrefix(b, []byte("\uFEFF")) // a byte order mark
	}
	if len(b) > lr.max {
		return nil, true, nil
	}
	return b, false, nil
}
