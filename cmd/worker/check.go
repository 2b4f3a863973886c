package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/tracing"
	"github.com/cancelworker/cancelworker/internal/tracing/otlp"
	"github.com/cancelworker/cancelworker/internal/worker"
	"go.uber.org/zap"
)

// checkTimeout bounds each network check of `worker check`.
const checkTimeout = 5 * time.Second

// check is `worker check [flags]`: it validates the configuration (the
// same flags and environment as the worker, and the same validation: the
// loader runs the providers' own checks, and check builds the worker as
// it starts, without starting it), connects to Redis and
// describes it, and opens a TCP (and TLS, for https) connection to each
// enabled provider's base URL without sending anything, one line per
// check. It returns 0 when every check passed, 1 otherwise; a warning
// does not fail.
func check(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(args, getenv, nil, stderr)
	tracingOn, terr := otlp.Check(getenv)
	if err != nil || terr != nil {
		fmt.Fprintf(stdout, "fail  configuration:\n%v\n", errors.Join(err, terr))
		return 1
	}
	line := func(status, what, detail string) {
		fmt.Fprintf(stdout, "%-5s %s: %s\n", status, what, detail)
	}
	rdb := cfg.Redis.NewClient()
	defer rdb.Close()
	// What the worker builds at start, without starting it: whatever it
	// would refuse, check refuses.
	if _, err := newWorker(cfg, rdb, zap.NewNop(), nil); err != nil {
		line("fail", "configuration", err.Error())
		return 1
	}
	ok := true
	enabled := func(on bool) string {
		if on {
			return "enabled"
		}
		return "disabled"
	}
	line("ok", "configuration", fmt.Sprintf("meari %s, pandapon %s, concurrency %d, prefetch %d, %d dequeuers, poll interval %s",
		enabled(cfg.Meari != nil), enabled(cfg.PandaPon != nil), cfg.Worker.Concurrency, cfg.Worker.Prefetch, cfg.Worker.Dequeuers, cfg.Worker.PollInterval))
	for _, w := range cfg.Warnings() {
		line("warn", "configuration", w)
	}
	if !tracingOn {
		line("ok", "tracing", "off (set OTEL_EXPORTER_OTLP_ENDPOINT to switch it on)")
	}

	rctx, cancel := context.WithTimeout(ctx, checkTimeout)
	summary, err := worker.RedisSummary(rctx, rdb)
	if err == nil {
		line("ok", "redis "+cfg.Redis.Shown, summary)
		for _, w := range worker.RedisWarnings(rctx, rdb) {
			line("warn", "redis", w)
		}
		// On a clock of its own: the summary may have used most of rctx's.
		tctx, tcancel := context.WithTimeout(ctx, checkTimeout)
		topology := worker.RedisTopology(tctx, cfg.Redis)
		tcancel()
		for _, l := range topology {
			if l.Status == worker.CheckFail {
				ok = false
			}
			line(l.Status, l.What, l.Detail)
		}
	} else {
		ok = false
		line("fail", "redis "+cfg.Redis.Shown, err.Error())
	}
	cancel()

	type target struct{ name, base string }
	var targets []target
	if cfg.Meari != nil {
		targets = append(targets, target{"meari", cfg.Meari.BaseURL})
	}
	if cfg.PandaPon != nil {
		targets = append(targets, target{"pandapon", cfg.PandaPon.BaseURL})
	}
	for _, p := range targets {
		took, err := reach(ctx, p.base, min(cfg.Worker.UpstreamTimeout, checkTimeout))
		if err != nil {
			ok = false
			line("fail", p.name+" "+p.base, err.Error())
			continue
		}
		how := "TCP connection"
		if u, _ := url.Parse(p.base); u != nil && u.Scheme == "https" {
			how = "TCP and TLS connection"
		}
		line("ok", p.name+" "+p.base, fmt.Sprintf("%s in %d ms; no request sent", how, took.Milliseconds()))
	}
	if tracingOn {
		// Only a warning: without its collector the worker still works,
		// and drops its spans. The host only: the URL may hold a key.
		ep := tracing.Endpoint(getenv)
		host := ep
		if u, err := url.Parse(ep); err == nil {
			host = u.Scheme + "://" + u.Host
		}
		if took, err := reach(ctx, ep, checkTimeout); err != nil {
			line("warn", "tracing "+host, "on, but the OTLP endpoint is unreachable, so spans will be dropped: "+err.Error())
		} else {
			line("ok", "tracing "+host, fmt.Sprintf("on: OTLP over HTTP/protobuf; TCP connection in %d ms; nothing sent", took.Milliseconds()))
		}
	}
	if !ok {
		return 1
	}
	return 0
}

// reach connects to base's host (and completes a TLS handshake for https,
// verifying the certificate) and closes the connection, sending nothing.
// It connects directly, not through a proxy from the environment.
func reach(ctx context.Context, base string, timeout time.Duration) (time.Duration, error) {
	u, err := url.Parse(base)
	if err != nil {
		return 0, err
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	addr := net.JoinHostPort(u.Hostname(), port)
	var conn net.Conn
	if u.Scheme == "https" {
		conn, err = (&tls.Dialer{Config: &tls.Config{ServerName: u.Hostname()}}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return 0, err
	}
	took := time.Since(start)
	return took, conn.Close()
}
