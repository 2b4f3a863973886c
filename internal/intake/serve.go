package intake

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cancelworker/cancelworker/internal/buildinfo"
	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/httpserve"
	"github.com/cancelworker/cancelworker/internal/tracing/otlp"
	"go.uber.org/zap"
)

// Exit codes of Main.
const (
	ExitOK      = 0
	ExitFailure = 1 // could not listen, or stopped on an error
	ExitUsage   = 2 // a bad flag or setting
)

const (
	// shutdownTimeout bounds the wait for requests in flight after SIGINT
	// or SIGTERM (docker's default grace period is 10s).
	shutdownTimeout = 8 * time.Second
	// pingTimeout bounds the Redis ping at start, which only warns.
	pingTimeout = 3 * time.Second
)

// Usage is the intake's --help preamble.
const Usage = `Usage: intake [flags]

Serves the HTTP intake, described in api/openapi.yaml:

  POST /v1/cancellations                       one item or an array of up to 1000
                                               (1 MiB), as in "enqueue file";
                                               202 with a result per item
  GET  /v1/cancellations/{provider}/{order}    the status, as "enqueue status"
                                               (meari: ?orderType=&sourceApp=)
  GET  /healthz                                200 while the process runs
  GET  /readyz                                 200 when Redis answers and takes writes, else 503

A batch is validated first: if any item is invalid, nothing is enqueued and
the answer is 400 with every problem (index, field, problem). Enqueueing is
idempotent per order, so resending a batch is always safe.

/v1 requires "Authorization: Bearer <token>" with the token from
INTAKE_TOKEN_FILE (--token-file) or INTAKE_TOKEN, at least 16 characters.
Without a token, authentication is off, which is allowed only on a loopback
address, and requests must then name a loopback Host (or one of
INTAKE_ALLOWED_HOSTS), against DNS rebinding.

The intake starts even when Redis does not answer yet (/readyz says so),
stops gracefully on SIGINT or SIGTERM, and logs one line per request to
stderr.

Each flag can also be set by the environment variable named in its help; the
flag wins.

`

// Main runs the intake with args (without the program name) until ctx is
// done, and returns the exit code: cmd/intake's main, and "enqueue serve".
func Main(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	l := config.NewLoader(getenv, nil)
	sec := config.AddIntakeBinary(l)
	rs, ls, is := sec.Redis, sec.Log, sec.Intake
	fs := flag.NewFlagSet("intake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, s := range l.Settings() {
		fs.Var(s, s.Flag, s.Usage())
	}
	version := fs.Bool("version", false, "print the version and the VCS revision this binary was built from, and exit")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), Usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage // the flag package has said why
	}
	if *version {
		fmt.Fprintln(os.Stdout, buildinfo.Read().String("intake"))
		return ExitOK
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "intake: unexpected argument %q\n", fs.Arg(0))
		return ExitUsage
	}
	l.Resolve()
	redisConn, logCfg, c := rs.Read(l), ls.Read(l), is.Read(l)
	// Every problem at once: the settings', then the OTEL_* variables'.
	if _, terr := otlp.Check(getenv); l.Err() != nil || terr != nil {
		fmt.Fprintf(stderr, "intake: invalid configuration:\n%v\n", l.Redact(errors.Join(l.Err(), terr).Error()))
		return ExitUsage
	}
	stopTracing, err := otlp.Setup(ctx, "cancelworker-intake", getenv)
	if err != nil {
		fmt.Fprintf(stderr, "intake: %v\n", err)
		return ExitFailure
	}
	log := config.NewLogger(logCfg, stderr).Named("intake")
	defer func() { _ = log.Sync() }() // stderr may not support sync
	defer func() {
		if err := stopTracing(); err != nil {
			log.Warn("tracing stopped", zap.Error(err))
		}
	}()
	if err := Serve(ctx, c, redisConn, log); err != nil {
		log.Error("intake failed", zap.String("error", l.Redact(err.Error())))
		fmt.Fprintf(stderr, "intake: %s\n", l.Redact(err.Error()))
		return ExitFailure
	}
	return ExitOK
}

// Serve runs the intake for c on Redis until ctx is done, then shuts it
// down gracefully. It returns an error when it cannot listen or stops on
// its own.
func Serve(ctx context.Context, c config.Intake, r config.RedisConn, log *zap.Logger) error {
	// The submit pool's and the status lookups' connections.
	rdb := r.WithMinPool(4 * WorkersDefault).NewClient()
	defer func() { _ = rdb.Close() }() // after the server has stopped: nothing in flight

	if c.Token == "" {
		log.Warn("authentication is off: INTAKE_TOKEN and INTAKE_TOKEN_FILE are unset; allowed on a loopback address only")
	}
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	err := rdb.Ping(pctx).Err()
	cancel()
	if err != nil {
		log.Warn("redis does not answer yet; /readyz reports 503 until it does", zap.String("redis", r.Shown), zap.Error(err))
	}

	h := NewHandler(rdb, Options{
		Token:        c.Token,
		Defaults:     Defaults{SourceApp: c.SourceApp},
		Timeout:      c.Timeout,
		MaxInFlight:  c.MaxInFlight,
		Logger:       log,
		AllowedHosts: c.AllowedHosts, // used only without a token
		Shards:       c.Shards,
	})
	srv, err := httpserve.Start(httpserve.Config{
		Addr: c.Addr, Setting: "INTAKE_ADDR", Handler: h, Logger: log,
		Timeouts: httpserve.Timeouts{Read: c.Timeout, Write: 2 * c.Timeout}, // the body read, then the Redis work
	})
	if err != nil {
		return err
	}
	log.Info("listening", zap.String("addr", srv.Addr()), zap.Bool("auth", c.Token != ""), zap.String("redis", r.Shown))

	select {
	case <-srv.Done():
		return fmt.Errorf("serve on %s: %w", srv.Addr(), srv.Err())
	case <-ctx.Done():
	}
	log.Info("shutting down: waiting for requests in flight", zap.String("timeout", shutdownTimeout.String()))
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	log.Info("stopped")
	return nil
}
