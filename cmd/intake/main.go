// Command intake is the HTTP intake: upstream systems POST cancellations
// to it and look them up, instead of enqueueing into Redis themselves. See
// api/openapi.yaml for the API and --help for the configuration.
//
//	intake --addr 127.0.0.1:8081
//	INTAKE_TOKEN_FILE=/run/secrets/intake_token intake --addr 0.0.0.0:8081
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cancelworker/cancelworker/internal/intake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := intake.Main(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}
