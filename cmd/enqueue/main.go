// Command enqueue asks the cancel worker to cancel an order, looks up where
// a cancellation stands, and manages the dead-letter queue.
//
//	enqueue meari --user-account test@123.com --order-type 1 --order-num 01582572KS0209053
//	enqueue pandapon --order-id 2542285634920880794
//	enqueue status pandapon 2542285634920880794
//	enqueue file cancellations.jsonl
//	enqueue dlq list
//
// Exit codes: 0 success (including "already queued"), 1 failure (Redis
// unreachable, not found, requeue failed, a file line invalid or not
// enqueued), 2 usage error.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	// go-redis logs dial failures on its own; the error enqueue reports
	// already carries the cause, so its log would only repeat it.
	redis.SetLogger(&logging.VoidLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args (without the program name), reading
// stdin for "file -", writing results to stdout and diagnostics to stderr,
// and returns the exit code. Defaults come from the process environment.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runIO(ctx, args, os.Stdin, stdout, stderr, os.Getenv)
}

// runEnv is run with an empty stdin and the environment read through
// getenv, so tests can set variables without touching the process
// environment.
func runEnv(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return runIO(ctx, args, strings.NewReader(""), stdout, stderr, getenv)
}

// runIO is run with every stream and the environment given.
func runIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, args: args}
	defer a.close()
	root := a.rootCommand()
	if args == nil {
		args = []string{} // nil makes cobra read os.Args
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	return a.finish(cmd, err)
}
