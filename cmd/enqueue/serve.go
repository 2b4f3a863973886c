package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/text"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/httpguard"
	"github.com/cancelworker/cancelworker/internal/intake"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const (
	// addrDefault is where serve listens without --addr or INTAKE_ADDR.
	addrDefault = "127.0.0.1:8081"
	// tokenMinLen is the shortest bearer token accepted.
	tokenMinLen = 16
	// shutdownTimeout bounds the wait for requests in flight after
	// SIGINT or SIGTERM (docker's default grace period is 10s).
	shutdownTimeout = 8 * time.Second
	// readHeaderTimeout bounds a client's request headers.
	readHeaderTimeout = 10 * time.Second
	// idleTimeout closes idle keep-alive connections.
	idleTimeout = 2 * time.Minute
)

// serveConfig is serve's resolved configuration.
type serveConfig struct {
	addr     string
	token    string // never printed
	defaults intake.Defaults
	hosts    []string // the Host names accepted without a token
}

func (a *app) serveCommand() *cobra.Command {
	var (
		addrF      = &textFlag{typ: "host:port"}
		tokenF     = &textFlag{typ: "string"}
		tokenFileF = &textFlag{typ: "path"}
		sourceApp  = &textFlag{typ: "int"}
		hostsF     = &textFlag{typ: "hosts"}
	)
	cmd := &cobra.Command{
		Use:   "serve [--addr HOST:PORT] [--token-file PATH]",
		Short: "Serve the HTTP intake: enqueue cancellations and look them up over HTTP",
		Long: `Serve the HTTP intake, described in api/openapi.yaml:

  POST /v1/cancellations                       one item or an array of up to 1000
                                               (1 MiB), as in "enqueue file";
                                               202 with a result per item
  GET  /v1/cancellations/{provider}/{order}    the status, as "enqueue status"
                                               (meari: ?orderType=&sourceApp=)
  GET  /healthz                                200 while the process runs
  GET  /readyz                                 200 when Redis answers, else 503

A batch is validated first: if any item is invalid, nothing is enqueued and
the answer is 400 with every problem (index, field, problem), so the client
can fix the batch and resend it. Enqueueing is idempotent per order, so
resending a batch is always safe.

/v1 requires "Authorization: Bearer <token>" with the token from
INTAKE_TOKEN_FILE (--token-file) or INTAKE_TOKEN, at least 16 characters;
--token is refused, as the command line shows in the process list. Without
a token, authentication is off, which is allowed only on a loopback
address, and requests must then name a loopback Host (or one of
INTAKE_ALLOWED_HOSTS), against DNS rebinding.

serve starts even when Redis does not answer yet (/readyz says so), stops
gracefully on SIGINT or SIGTERM, and logs one JSON line per request to
stderr. --timeout bounds each request's Redis work.`,
		Example: `  enqueue serve
  INTAKE_TOKEN_FILE=/run/secrets/intake_token enqueue serve --addr 0.0.0.0:8081
  curl -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"provider":"pandapon","orderId":2542285634920880794}' http://127.0.0.1:8081/v1/cancellations`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.Var(addrF, "addr", "the address to listen on (env "+envIntakeAddr+", default "+addrDefault+")")
	f.Var(tokenFileF, "token-file", "a file holding the bearer token (env "+envIntakeTokenFile+")")
	f.Var(tokenF, "token", "refused: a token on the command line shows in the process list; use --token-file or env "+envIntakeToken)
	f.Var(hostsF, "allowed-hosts", "without a token, the Host names accepted besides the loopback names and --addr's host, comma-separated (env "+envIntakeAllowedHosts+")")
	f.Var(sourceApp, "source-app", "the Meari customer number for items without sourceApp (env "+envSourceApp+")")

	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var p problems
		a.checkGlobals(&p)
		var c serveConfig
		c.addr = a.listenAddr(&p, addrF)
		var tokenOK bool
		c.token, tokenOK = a.intakeToken(&p, tokenF, tokenFileF)
		c.defaults.SourceApp = a.sourceAppDefault(&p, sourceApp)
		c.hosts = a.allowedHosts(&p, hostsF, c.addr)
		if c.token == "" && tokenOK && c.addr != "" && !config.IsLoopback(c.addr) {
			p.add(envIntakeToken+" / "+envIntakeTokenFile+" (--token / --token-file)",
				"is required when listening on %s, which is not a loopback address", c.addr)
		}
		if err := p.err(); err != nil {
			return err
		}
		return a.serve(cmd.Context(), c)
	}
	return cmd
}

// listenAddr resolves --addr, which defaults to INTAKE_ADDR, and checks it.
func (a *app) listenAddr(p *problems, f *textFlag) string {
	v, name := f.value, "--addr"
	if !f.set {
		v, name = a.getenv(envIntakeAddr), envIntakeAddr+" (--addr)"
		if v == "" {
			v, name = addrDefault, "--addr"
		}
	}
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		p.add(name, "must be host:port, e.g. %s, got %q", addrDefault, text.Truncate(v, 60))
		return ""
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		p.add(name, "must have a port from 0 to 65535, got %q", text.Truncate(port, 20))
		return ""
	}
	return v
}

// intakeToken resolves the bearer token from --token (INTAKE_TOKEN) or
// --token-file (INTAKE_TOKEN_FILE); "" means none. ok is false when a
// problem was added. Problems never show the token.
func (a *app) intakeToken(p *problems, tokenF, fileF *textFlag) (token string, ok bool) {
	tok, tokName := a.getenv(envIntakeToken), envIntakeToken
	path, pathName := fileF.value, "--token-file"
	if !fileF.set {
		path, pathName = a.getenv(envIntakeTokenFile), envIntakeTokenFile+" (--token-file)"
	}
	if tok != "" {
		a.secrets = append(a.secrets, tok)
	}
	switch {
	case tokenF.set:
		p.add("--token", "%s", config.CommandLineSecret(envIntakeTokenFile+" (--token-file)", envIntakeToken))
		return "", false
	case fileF.set && path == "":
		p.add(pathName, "must not be empty")
		return "", false
	case tok != "" && path != "":
		p.add(tokName, "cannot be combined with %s: set one", pathName)
		return "", false
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			p.add(pathName, "cannot be read: %v", err)
			return "", false
		}
		tok, tokName = strings.TrimSpace(string(b)), pathName
		if tok == "" {
			p.add(pathName, "the file %s is empty", path)
			return "", false
		}
		a.secrets = append(a.secrets, tok)
	}
	if tok != "" && len(tok) < tokenMinLen {
		p.add(tokName, "the token must be at least %d characters, got %d (e.g. openssl rand -hex 32)", tokenMinLen, len(tok))
		return "", false
	}
	return tok, true
}

// allowedHosts resolves --allowed-hosts, which defaults to
// INTAKE_ALLOWED_HOSTS, into the Host names accepted without a token.
func (a *app) allowedHosts(p *problems, f *textFlag, addr string) []string {
	v, name := f.value, "--allowed-hosts"
	if !f.set {
		v, name = a.getenv(envIntakeAllowedHosts), envIntakeAllowedHosts+" (--allowed-hosts)"
	}
	extra, err := httpguard.ParseHosts(v)
	if err != nil {
		p.add(name, "%v", err)
		return nil
	}
	return httpguard.AllowedHosts(addr, extra)
}

// newLogger returns serve's logger: JSON lines on w, info and above, no
// sampling.
func newLogger(w io.Writer) *zap.Logger {
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "ts"
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	sink := zapcore.Lock(zapcore.AddSync(w))
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(ec), sink, zapcore.InfoLevel), zap.ErrorOutput(sink))
}

// serve runs the HTTP intake until ctx is done, then shuts it down
// gracefully.
func (a *app) serve(ctx context.Context, c serveConfig) error {
	log := newLogger(a.stderr).Named("intake")
	defer func() { _ = log.Sync() }() // stderr may not support sync

	opt := *a.redisOpt
	ensurePoolSize(&opt, 4*intake.WorkersDefault)
	rdb := redis.NewClient(&opt)
	defer func() { _ = rdb.Close() }() // after the server has stopped: nothing in flight

	if c.token == "" {
		log.Warn("authentication is off: " + envIntakeToken + " and " + envIntakeTokenFile + " are unset; allowed on a loopback address only")
	}
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	err := rdb.Ping(pctx).Err()
	cancel()
	if err != nil {
		log.Warn("redis does not answer yet; /readyz reports 503 until it does",
			zap.String("redis", a.redisShown), zap.String("error", a.redact(err.Error())))
	}

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return &failure{err: fmt.Errorf("listen on %s: %w", c.addr, err)}
	}
	h := intake.NewHandler(rdb, intake.Options{
		Token:    c.token,
		Defaults: c.defaults,
		Timeout:  a.timeoutValue,
		Logger:   log,
		// Used only without a token.
		AllowedHosts: c.hosts,
	})
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       a.timeoutValue,
		WriteTimeout:      2 * a.timeoutValue, // the body read and the Redis work
		IdleTimeout:       idleTimeout,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("listening", zap.String("addr", ln.Addr().String()), zap.Bool("auth", c.token != ""),
		zap.String("redis", a.redisShown))

	select {
	case err := <-served:
		return &failure{err: fmt.Errorf("serve on %s: %w", ln.Addr(), err)}
	case <-ctx.Done():
	}
	log.Info("shutting down: waiting for requests in flight", zap.String("timeout", shutdownTimeout.String()))
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return &failure{err: fmt.Errorf("shut down: %w", err)}
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return &failure{err: fmt.Errorf("serve on %s: %w", ln.Addr(), err)}
	}
	log.Info("stopped")
	return nil
}
