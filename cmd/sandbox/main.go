// Command sandbox serves the fake Meari and PandaPon upstreams of
// providers/sandbox on their own: every request's signature, nonce and
// timestamp are checked as docs/upstreams.md says the vendors do, and
// orders can be scripted to fail (1005, 503, resets, slow answers...), so
// that a staging worker can run against it with no real keys.
//
//	sandbox [--addr 127.0.0.1:8090] [--script answers.txt]
//
// The accounts come from the worker's own variables (MEARI_PARTNER_KEY,
// MEARI_PARTNER_SECRET or _FILE, MEARI_SOURCE_APP, MEARI_SIGN_MODE,
// MEARI_TIMESTAMP_FORMAT, PANDAPON_ACCESS_KEY, PANDAPON_ACCESS_SECRET or
// _FILE, PANDAPON_USER_ID), so one environment configures both; each left
// unset takes the sandbox's demo value (README). A script file has one
// order per line: "<provider> <order> <step>[,<step>...]" (see
// sandbox.ParseScript); unscripted orders are cancelled at once.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/cancelworker/cancelworker/providers/sandbox"
)

// The demo accounts, used for each setting left unset. They are not
// secrets: the sandbox is a fake.
const (
	DemoPartnerKey    = "sandbox-partner"
	DemoPartnerSecret = "sandbox-partner-secret"
	DemoSourceApp     = 72
	DemoAccessKey     = "sandbox-access-key"
	DemoAccessSecret  = "sandbox-access-secret"
	DemoUserID        = "sandbox-user"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.ReadFile, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run serves until ctx is done. It returns 0 after a clean stop, 1 when
// the address cannot be opened, 2 on a configuration error.
func run(ctx context.Context, args []string, getenv func(string) string, readFile func(string) ([]byte, error), stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", cmp.Or(getenv("SANDBOX_ADDR"), "127.0.0.1:8090"), "listen address, host:port (env SANDBOX_ADDR)")
	scriptPath := fs.String("script", getenv("SANDBOX_SCRIPT"), "file of scripted answers, one order per line (env SANDBOX_SCRIPT)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, err := loadConfig(getenv, readFile)
	var script []sandbox.ScriptLine
	if err == nil && *scriptPath != "" {
		var b []byte
		if b, err = readFile(*scriptPath); err == nil {
			script, err = sandbox.ParseScript(strings.NewReader(string(b)))
		}
		if err != nil {
			err = fmt.Errorf("--script %s: %w", *scriptPath, err)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "sandbox: invalid configuration:\n%v\n", err)
		return 2
	}

	sb := sandbox.New(cfg)
	for _, l := range script {
		sb.Script(l.Provider, l.Order, l.Steps...)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "sandbox: %v\n", err)
		return 1
	}
	srv := &http.Server{Handler: sb, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "sandbox: serving Meari (partner key %s, source app %d, sign mode %s) and PandaPon (access key %s, user %s) at http://%s; %d orders scripted\n",
		cfg.Meari.PartnerKey, cfg.Meari.SourceApp, cmp.Or(string(cfg.Meari.SignMode), string(meari.SignModeDefault)), cfg.PandaPon.AccessKey, cfg.PandaPon.UserID, ln.Addr(), len(script))
	select {
	case <-ctx.Done():
	case err := <-done:
		fmt.Fprintf(stderr, "sandbox: %v\n", err)
		return 1
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return 0
}

// loadConfig reads the accounts from the worker's variables, each unset one
// taking its demo value, and reports every bad one.
func loadConfig(getenv func(string) string, readFile func(string) ([]byte, error)) (sandbox.Config, error) {
	var errs []error
	secret := func(env, demo string) string {
		v, file := getenv(env), getenv(env+"_FILE")
		switch {
		case v != "" && file != "":
			errs = append(errs, fmt.Errorf("%s: set either it or %s_FILE, not both", env, env))
		case file != "":
			b, err := readFile(file)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s_FILE: cannot read the file: %v", env, errors.Unwrap(err)))
				return ""
			}
			return strings.TrimRight(string(b), "\r\n")
		}
		return cmp.Or(v, demo)
	}
	c := sandbox.Config{
		Meari: sandbox.MeariAccount{
			PartnerKey:      cmp.Or(getenv("MEARI_PARTNER_KEY"), DemoPartnerKey),
			PartnerSecret:   secret("MEARI_PARTNER_SECRET", DemoPartnerSecret),
			SourceApp:       DemoSourceApp,
			SignMode:        meari.SignMode(getenv("MEARI_SIGN_MODE")),
			TimestampFormat: meari.TimestampFormat(getenv("MEARI_TIMESTAMP_FORMAT")),
		},
		PandaPon: sandbox.PandaPonAccount{
			AccessKey:    cmp.Or(getenv("PANDAPON_ACCESS_KEY"), DemoAccessKey),
			AccessSecret: secret("PANDAPON_ACCESS_SECRET", DemoAccessSecret),
			UserID:       cmp.Or(getenv("PANDAPON_USER_ID"), DemoUserID),
		},
	}
	if v := getenv("MEARI_SOURCE_APP"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("MEARI_SOURCE_APP: must be a positive integer, got %q", v))
		}
		c.Meari.SourceApp = n
	}
	if c.Meari.SignMode != "" {
		if _, err := meari.ParseSignMode(string(c.Meari.SignMode)); err != nil {
			errs = append(errs, fmt.Errorf("MEARI_SIGN_MODE: %w", err))
		}
	}
	if c.Meari.TimestampFormat != "" {
		if _, err := meari.ParseTimestampFormat(string(c.Meari.TimestampFormat)); err != nil {
			errs = append(errs, fmt.Errorf("MEARI_TIMESTAMP_FORMAT: %w", err))
		}
	}
	return c, errors.Join(errs...)
}
