package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/text"
	"github.com/cancelworker/cancelworker/tasks"

	"github.com/cancelworker/cancelworker/internal/buildinfo"
	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/tracing"
	"github.com/cancelworker/cancelworker/internal/tracing/otlp"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// envSourceApp is read for --source-app's default; the flag wins.
const envSourceApp = "MEARI_SOURCE_APP"

const (
	// timeoutDefault bounds a whole command, Redis ping included.
	timeoutDefault = 30 * time.Second
	// pingTimeout bounds the Redis ping done before any work, so an
	// unreachable Redis fails fast.
	pingTimeout = 3 * time.Second
)

// app holds one invocation's flags, output streams and Redis client.
type app struct {
	stdin          io.Reader // read by "file -"
	stdout, stderr io.Writer
	getenv         func(string) string
	args           []string // the command line, for jsonRequested

	// Global flags. The Redis ones are the shared configuration's
	// (config.AddRedis), bound to cobra's flags.
	loader  *config.Loader
	redis   *config.RedisSection
	queues  *config.QueuesSection
	jsonOut bool
	timeout *textFlag

	// Resolved by checkGlobals.
	redisConn    config.RedisConn
	redisShown   string // the URL with its password redacted
	shards       tasks.Shards
	timeoutValue time.Duration

	rdb redis.UniversalClient // set by connect, closed by close
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "enqueue",
		Short: "Enqueue order cancellations for the cancel worker and inspect them",
		Long: `enqueue asks the cancel worker to cancel an order, shows where a cancellation
stands, and manages the dead-letter queue of orders the worker gave up on.

Enqueueing is idempotent per order: the task ID is derived from the order, so
enqueueing the same order again enqueues nothing, for as long as the task is
kept (7 days after it finishes), and says what that task is doing: "already
queued" or "already cancelled" (exit 0), "dead-lettered" or "archived" (exit
1: the order will not be cancelled as it stands). --force replaces the
order's task, whatever its state but running, and removes its dead-letter
entry; "enqueue dlq requeue" sends a dead-lettered order again as it was.

Environment:
  REDIS_URL          default for --redis-url (default ` + config.RedisURLDefault + `);
                     unlike the flag, it may hold a password
  REDIS_PASSWORD     the Redis password
  REDIS_PASSWORD_FILE  default for --redis-password-file
  REDIS_SENTINEL_ADDRS, REDIS_MASTER_NAME  Redis through Sentinel, instead
                     of REDIS_URL (--redis-sentinel-addrs, --redis-master-name;
                     REDIS_SENTINEL_PASSWORD(_FILE), REDIS_DB)
  MEARI_SOURCE_APP   default for --source-app

"enqueue serve" is a deprecated alias of the intake binary (cmd/intake),
kept for one release: run "intake" instead, with the same flags.

Exit codes:
  0  success, including "already queued" and "already cancelled"
  1  failure: Redis unreachable, an order dead-lettered or archived (not
     enqueued), not found, requeue failed, a file line invalid,
     dead-lettered or not enqueued
  2  usage error: unknown flag, missing or invalid value`,
		Example: `  enqueue meari --user-account test@123.com --order-type 1 --order-num 01582572KS0209053
  enqueue pandapon --order-id 2542285634920880794 --reason "customer asked"
  enqueue status pandapon 2542285634920880794
  enqueue file cancellations.jsonl
  enqueue dlq list --provider meari
  REDIS_PASSWORD_FILE=/run/secrets/redis enqueue --redis-url redis://redis.internal:6379/0 --json dlq list`,
		Version:           buildinfo.Read().String("enqueue"),
		Args:              cobra.NoArgs,
		RunE:              a.missingCommand,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{msg: err.Error()} })

	a.loader = config.NewLoader(a.getenv, nil)
	sec := config.AddEnqueueBinary(a.loader)
	a.redis, a.queues = sec.Redis, sec.Queues
	a.timeout = &textFlag{typ: "duration", value: timeoutDefault.String()}
	pf := root.PersistentFlags()
	pf.Var(a.redis.URL, a.redis.URL.Flag, "Redis to use, e.g. redis://host:6379/0, without a password (env REDIS_URL, which may hold one; default "+config.RedisURLDefault+")")
	pf.Var(a.redis.PasswordFile, a.redis.PasswordFile.Flag, "a file holding the Redis password (env REDIS_PASSWORD_FILE; or set REDIS_PASSWORD)")
	for _, st := range a.loader.Settings() {
		if pf.Lookup(st.Flag) == nil {
			pf.Var(st, st.Flag, st.Usage()) // Sentinel, Cluster, TLS, shards, the refused secrets
		}
	}
	for _, st := range []*config.Setting{a.redis.Password, a.redis.SentinelPassword} {
		_ = pf.MarkHidden(st.Flag) // refused: only says where a password goes
	}
	pf.BoolVar(&a.jsonOut, "json", false, "write machine-readable output: one JSON object or array on stdout")
	pf.Var(a.timeout, "timeout", "bound the whole command, Redis ping included (file: only when given)")

	root.AddCommand(a.meariCommand(), a.pandaponCommand(), a.fileCommand(), a.serveCommand(), a.statusCommand(), a.dlqCommand())
	return root
}

// missingCommand is the RunE of commands that only group subcommands.
func (a *app) missingCommand(cmd *cobra.Command, _ []string) error {
	names := make([]string, 0, len(cmd.Commands()))
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return &usageError{msg: "a command is required: one of " + strings.Join(names, ", ")}
}

// checkGlobals validates the global flags and resolves their defaults.
func (a *app) checkGlobals(p *problems) {
	a.loader.Resolve()
	conn := a.redis.Read(a.loader)
	a.shards = a.queues.Read(a.loader)
	for _, q := range a.loader.Problems() {
		p.add(q.Name, "%s", q.Problem)
	}
	a.redisConn, a.redisShown = conn, conn.Shown

	d, err := time.ParseDuration(a.timeout.value)
	switch {
	case err != nil:
		p.add("--timeout", "must be a duration such as 10s or 1m, got %q", text.Truncate(a.timeout.value, 40))
	case d <= 0:
		p.add("--timeout", "must be positive, got %s", d)
	default:
		a.timeoutValue = d
	}
}

// connect returns the Redis client, pinging it first with a short timeout.
func (a *app) connect(ctx context.Context) (redis.UniversalClient, error) {
	if a.rdb != nil {
		return a.rdb, nil
	}
	// The ping has a client of its own, without go-redis's retries, so that
	// an unreachable Redis fails at once; the work keeps the retries.
	pinger := a.redisConn.FailFast().NewClient()
	defer func() { _ = pinger.Close() }() // nothing is left to flush
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	// With Sentinels, first wait until they agree on the master: just after
	// a failover one may still name the old master (AwaitSentinels).
	a.redisConn.AwaitSentinels(pctx)
	if err := pinger.Ping(pctx).Err(); err != nil {
		return nil, fmt.Errorf("redis at %s is unreachable: %w", a.redisShown, err)
	}
	a.rdb = a.redisConn.NewClient()
	return a.rdb, nil
}

func (a *app) close() {
	if a.rdb != nil {
		_ = a.rdb.Close() // nothing is left to flush
	}
}

// runE returns a cobra RunE. It validates the global flags and, with check,
// the command's own flags and arguments, and reports every problem at once
// as a usage error. Otherwise it connects to Redis and runs do within
// --timeout. Errors from do are failures (exit 1) unless they are usage
// errors.
func (a *app) runE(check func(p *problems, args []string), do func(ctx context.Context, rdb redis.UniversalClient) error) func(*cobra.Command, []string) error {
	return a.runEBounded(true, check, do)
}

// runEStream is runE for commands whose length depends on their input,
// such as a file read from a pipe: --timeout bounds them only when given.
func (a *app) runEStream(check func(p *problems, args []string), do func(ctx context.Context, rdb redis.UniversalClient) error) func(*cobra.Command, []string) error {
	return a.runEBounded(false, check, do)
}

func (a *app) runEBounded(bounded bool, check func(p *problems, args []string), do func(ctx context.Context, rdb redis.UniversalClient) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		var p problems
		a.checkGlobals(&p)
		if _, err := otlp.Check(a.getenv); err != nil {
			p.add("environment", "%v", err)
		}
		check(&p, args)
		if err := p.err(); err != nil {
			return err
		}
		ctx, cancel := cmd.Context(), context.CancelFunc(func() {})
		if bounded || a.timeout.set {
			ctx, cancel = context.WithTimeout(ctx, a.timeoutValue)
		}
		defer cancel()
		// A new trace per run, while the OTEL_* variables switch tracing on.
		stopTracing, err := otlp.Setup(ctx, "cancelworker-enqueue", a.getenv)
		if err != nil {
			return &failure{err: err}
		}
		defer func() {
			if err := stopTracing(); err != nil {
				fmt.Fprintf(a.stderr, "enqueue: %v\n", err)
			}
		}()
		var span trace.Span
		if tracing.Enabled() {
			ctx, span = tracing.Tracer().Start(ctx, cmd.CommandPath(), trace.WithNewRoot())
			defer span.End()
		}
		rdb, err := a.connect(ctx)
		if err != nil {
			return &failure{err: err}
		}
		err = do(ctx, rdb)
		if span != nil && err != nil {
			span.SetStatus(codes.Error, "failed")
		}
		var ue *usageError
		var f *failure
		switch {
		case err == nil, errors.As(err, &ue), errors.As(err, &f):
			return err
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
			return &failure{err: fmt.Errorf("%w (--timeout %s)", err, a.timeoutValue)}
		}
		return &failure{err: err}
	}
}

// finish reports err, if any, and returns the exit code.
func (a *app) finish(cmd *cobra.Command, err error) int {
	if err == nil {
		return exitOK
	}
	var ex *exited
	if errors.As(err, &ex) {
		return ex.code
	}
	code := exitUsage
	if !a.jsonOut {
		// The flag parser stops at the first bad flag, maybe before --json.
		a.jsonOut = jsonRequested(a.args)
	}
	var f *failure
	if errors.As(err, &f) {
		code = exitFailure
		if f.reported {
			return code
		}
	}
	path := "enqueue"
	if cmd != nil {
		path = cmd.CommandPath()
	}
	var probs []problem
	var ue *usageError
	if errors.As(err, &ue) {
		probs = ue.problems
	}
	for i := range probs {
		probs[i].Problem = a.redact(probs[i].Problem)
	}
	msg := a.redact(err.Error())
	if a.jsonOut {
		out := errorOutput{Error: msg, ExitCode: code, Problems: probs}
		if werr := writeJSON(a.stdout, out); werr != nil {
			fmt.Fprintf(a.stderr, "%s: write output: %v\n", path, werr)
		}
	}
	if len(probs) > 0 {
		for _, p := range probs {
			fmt.Fprintf(a.stderr, "%s: %s\n", path, p)
		}
	} else {
		fmt.Fprintf(a.stderr, "%s: %s\n", path, msg)
	}
	if code == exitUsage {
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", path)
	}
	return code
}

// jsonRequested reports whether args ask for --json before any "--".
func jsonRequested(args []string) bool {
	for _, s := range args {
		switch {
		case s == "--":
			return false
		case s == "--json":
			return true
		case strings.HasPrefix(s, "--json="):
			on, err := strconv.ParseBool(strings.TrimPrefix(s, "--json="))
			return err == nil && on
		}
	}
	return false
}

// redact replaces every secret read (never printed) in s.
func (a *app) redact(s string) string { return a.loader.Redact(s) }

// operator names who runs this command, for the trails and log lines that
// say who acted on a task: the login name and host, and the tool.
func (a *app) operator() string {
	name := a.getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		name = "unknown user"
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		name += "@" + h
	}
	return name + " (enqueue CLI)"
}

// errorOutput is the --json form of an error.
type errorOutput struct {
	Error    string    `json:"error"`
	ExitCode int       `json:"exit_code"`
	Problems []problem `json:"problems,omitempty"`
}

// out writes v as JSON with --json, and otherwise calls human.
func (a *app) out(v any, human func(w io.Writer) error) error {
	if a.jsonOut {
		return writeJSON(a.stdout, v)
	}
	return human(a.stdout)
}

// writeJSON writes v as indented JSON and a newline, without escaping HTML.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
