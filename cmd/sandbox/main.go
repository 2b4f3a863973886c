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

	"github.com/cancelworker/cancelworker/internal/buildinfo"
	"github.com/cancelworker/cancelworker/internal/config"
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
	l := config.NewLoader(getenv, readFile)
	sec := config.AddSandboxBinary(l)
	addrS, scriptS, ms, ps := sec.Addr, sec.Script, sec.Meari, sec.PandaPon
	demoAccounts(ms, ps)
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, s := range l.Settings() {
		fs.Var(s, s.Flag, s.Usage())
	}
	version := fs.Bool("version", false, "print the version and the VCS revision this binary was built from, and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		fmt.Fprintln(stdout, buildinfo.Read().String("sandbox"))
		return 0
	}
	l.Resolve()
	addr := l.ListenAddr(addrS, AddrDefault)
	m, _ := ms.Read(l)
	p, _ := ps.Read(l)
	var script []sandbox.ScriptLine
	if path := scriptS.Value(); path != "" && len(l.Problems()) == 0 {
		b, err := readFile(path)
		if err == nil {
			script, err = sandbox.ParseScript(strings.NewReader(string(b)))
		}
		if err != nil {
			l.Bad(scriptS, "%s: %v", path, err)
		}
	}
	if err := l.Err(); err != nil {
		fmt.Fprintf(stderr, "sandbox: invalid configuration:\n%v\n", err)
		return 2
	}
	cfg := sandbox.Config{
		Meari: sandbox.MeariAccount{PartnerKey: m.PartnerKey, PartnerSecret: m.PartnerSecret, SourceApp: m.SourceApp,
			SignMode: m.SignMode, TimestampFormat: m.TimestampFormat},
		PandaPon: sandbox.PandaPonAccount{AccessKey: p.AccessKey, AccessSecret: p.AccessSecret, UserID: p.UserID},
	}

	sb := sandbox.New(cfg)
	for _, l := range script {
		sb.Script(l.Provider, l.Order, l.Steps...)
	}
	ln, err := net.Listen("tcp", addr)
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

// AddrDefault is where the sandbox listens without --addr or SANDBOX_ADDR.
const AddrDefault = config.SandboxAddrDefault

// demoAccounts gives each account setting the demo value as its default:
// the sandbox reads the worker's own settings, so one environment
// configures both, and runs with no settings at all.
func demoAccounts(m *config.MeariSection, p *config.PandaPonSection) {
	m.Always, p.Always = true, true
	m.PartnerKey.Default, m.PartnerSecret.Default, m.SourceApp.Default = DemoPartnerKey, DemoPartnerSecret, strconv.Itoa(DemoSourceApp)
	p.AccessKey.Default, p.AccessSecret.Default, p.UserID.Default = DemoAccessKey, DemoAccessSecret, DemoUserID
}
