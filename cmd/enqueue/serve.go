package main

import (
	"strconv"
	"strings"

	"github.com/cancelworker/cancelworker/internal/intake"
	"github.com/spf13/cobra"
)

// serveCommand is "enqueue serve": for one release, an alias of the intake
// binary (cmd/intake), with its flags and variables, kept so that existing
// scripts go on working. The global --redis-url, --redis-password-file and
// --timeout pass through (the intake has the same flags); --json is
// ignored.
func (a *app) serveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "serve [intake flags]",
		Short: "Deprecated: run the intake binary instead (same flags); serves the HTTP intake",
		Long: `"enqueue serve" is an alias of the intake binary, kept for one release:
run "intake" with the same flags and variables instead. See "intake --help".`,
		Example: `  intake --addr 127.0.0.1:8081
  INTAKE_TOKEN_FILE=/run/secrets/intake_token intake --addr 0.0.0.0:8081`,
		// The intake parses its own flags, the global ones included.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := intake.Main(cmd.Context(), withoutJSON(args), a.getenv, a.stderr); code != intake.ExitOK {
				return &exited{code: code}
			}
			return nil
		},
	}
}

// withoutJSON drops the global --json flag, which the intake has no use
// for, up to a "--".
func withoutJSON(args []string) []string {
	out := make([]string, 0, len(args))
	for i, s := range args {
		if s == "--" {
			return append(out, args[i:]...)
		}
		if v, ok := strings.CutPrefix(s, "--json="); ok {
			if _, err := strconv.ParseBool(v); err == nil {
				continue
			}
		}
		if s != "--json" {
			out = append(out, s)
		}
	}
	return out
}

// exited is a command that has reported its own outcome and only has an
// exit code left to give.
type exited struct{ code int }

func (e *exited) Error() string { return "exit status " + strconv.Itoa(e.code) }
