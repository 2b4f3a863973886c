// Package config reads the worker's configuration: each setting from an
// environment variable and a matching flag (the flag wins), validated at once
// with one line per problem, naming variable and flag. Secrets are never
// echoed.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/guard"
	"github.com/cancelworker/cancelworker/internal/httpguard"
	"github.com/cancelworker/cancelworker/internal/text"
	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/cancelworker/cancelworker/providers/pandapon"
	"github.com/cancelworker/cancelworker/retry"
	"github.com/cancelworker/cancelworker/tasks"
)

// Defaults.
const (
	RedisURLDefault        = "redis://127.0.0.1:6379/0"
	ConcurrencyDefault     = 10
	DequeuersDefault       = 8
	PollIntervalDefault    = 50 * time.Millisecond
	ShutdownTimeoutDefault = 25 * time.Second
	UpstreamTimeoutDefault = 10 * time.Second
	LogLevelDefault        = "info"
	LogFormatDefault       = "json"
	AdminAddrDefault       = "127.0.0.1:8080"
	// CompactAfterDefault is TASK_COMPACT_AFTER's default.
	CompactAfterDefault = 10 * time.Minute
)

// AdminOff is the ADMIN_ADDR value that turns the admin server off.
const AdminOff = "off"

// Meari is the Meari provider's settings. It is enabled when any is set.
type Meari struct {
	Enabled         bool
	BaseURL         string
	PartnerKey      string
	PartnerSecret   string
	SourceApp       int64
	SignMode        meari.SignMode
	TimestampFormat meari.TimestampFormat
	MaxAttempts     int // 0: retry.MaxAttemptsDefault
}

// PandaPon is the PandaPon provider's settings. It is enabled when any is
// set.
type PandaPon struct {
	Enabled      bool
	BaseURL      string
	AccessKey    string
	AccessSecret string
	UserID       string
	MaxAttempts  int // 0: retry.MaxAttemptsDefault
}

// Admin is the admin HTTP server's settings: the monitoring UI, metrics
// and health endpoints.
type Admin struct {
	// Addr is the listen address, host:port; port 0 picks a free one. ""
	// means the server is off (ADMIN_ADDR=off).
	Addr string
	// User and Password are the HTTP basic auth credentials of the UI and
	// metrics. Both or neither are set; they are required when Addr is not
	// a loopback address.
	User     string
	Password string
	// ReadOnly makes the monitoring UI and the dead-letter page view-only.
	ReadOnly bool
	// Profiling serves Go's runtime profiles at ProfilingPath
	// (ADMIN_PPROF), behind the same auth as the UI: CPU, heap,
	// goroutines, for finding where the time goes in production.
	Profiling bool
	// AllowedHosts are host names, besides the loopback names and Addr's own
	// host, that requests may carry in their Host header
	// (ADMIN_ALLOWED_HOSTS): the names the server is reached by through a
	// proxy or DNS. Other names are refused, against DNS rebinding.
	AllowedHosts []string
}

// AuthRequired reports whether the UI and metrics ask for credentials:
// whenever they are configured, and always off loopback (Load refuses a
// non-loopback address without them).
func (a Admin) AuthRequired() bool {
	return a.User != "" || a.Password != "" || !IsLoopback(a.Addr)
}

// IsLoopback reports whether the listen address addr (host:port) only
// accepts connections from this machine: a loopback IP or "localhost". An
// empty host, a wildcard or any other name is not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	if i := strings.IndexByte(host, '%'); i >= 0 {
		host = host[:i]
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CommandLineSecret is the problem reported for a secret given as a
// command-line flag: every user of the machine can read a process's
// arguments. fileVar and envVar name the ways that are taken.
func CommandLineSecret(fileVar, envVar string) string {
	return fmt.Sprintf("secrets are not taken on the command line, where any user of this machine can read them (ps, /proc/<pid>/cmdline): name a file holding it in %s, or set %s", fileVar, envVar)
}

// Config is the worker's whole configuration, in the types the code that
// uses it takes.
type Config struct {
	Redis RedisConn
	// Meari and PandaPon are the providers' accounts; nil when not
	// configured. Their Transport is the worker's to fill in.
	Meari    *meari.Config
	PandaPon *pandapon.Config
	// Retry is each configured provider's retry policy, validated, by
	// provider name (tasks.ProviderMeari, tasks.ProviderPandaPon).
	Retry map[string]retry.Policy
	// Limits is each configured provider's rate limit (Rate 0: none).
	Limits map[string]guard.Limit
	// Breaker is every provider's circuit breaker; RateMaxWait the longest
	// a call waits for a token before its task is put back.
	Breaker     guard.Breaker
	RateMaxWait time.Duration
	Worker      Worker
	Log         Log
	Admin       Admin
	Demo        bool
	// Shards is how each provider's tasks are spread over queues.
	Shards tasks.Shards
}

// Worker is how the worker runs its tasks.
type Worker struct {
	Concurrency int
	// Dequeuers is how many asynq servers the worker runs, each taking
	// tasks from Redis one at a time and sharing Concurrency.
	Dequeuers int
	// Prefetch is how many tasks the worker takes from Redis beyond
	// Concurrency, each waiting for a call slot: the next task is at hand
	// when a call ends, instead of a completion and a dequeue round trip
	// later. Upstream calls in flight stay at most Concurrency.
	Prefetch int
	// Pipeline sends asynq's dequeue and completion scripts, from all the
	// slots, through go-redis's autopipeliner: many calls share one round
	// trip, each still one atomic script call (WORKER_PIPELINE).
	Pipeline bool
	// PollInterval is how often an idle dequeuer looks for new tasks
	// (asynq's TaskCheckInterval; each sleep is drawn from ½ to 1½ of it).
	PollInterval    time.Duration
	ShutdownTimeout time.Duration
	UpstreamTimeout time.Duration
	// NetHTTP sends the upstream calls with Go's net/http client instead
	// of fasthttp (UPSTREAM_HTTP_CLIENT=net/http).
	NetHTTP bool
	// CompactAfter is how long a completed task stays whole before it is
	// compacted; zero compacts it at the next maintenance pass.
	CompactAfter time.Duration
}

// UsageError is a command-line error: unknown flag, bad flag syntax.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// ErrHelp is returned by Load for -h or --help, after the usage is written.
var ErrHelp = flag.ErrHelp

// ErrVersion is returned by Load for --version, before any setting is
// read: the caller prints the build (buildinfo).
var ErrVersion = errors.New("version requested")

// WorkerSection is how the worker runs its tasks, and the retry age
// limit every provider shares.
type WorkerSection struct {
	Concurrency, Dequeuers, Prefetch, Pipeline, PollInterval, ShutdownTimeout *Setting
	UpstreamTimeout, HTTPClient, MaxAge, InitialInterval, MaxInterval         *Setting
	CompactAfter                                                              *Setting
}

// AddWorker declares the worker's settings on l.
func AddWorker(l *Loader) *WorkerSection {
	l.Section("Worker")
	return &WorkerSection{
		Concurrency: l.Add(Setting{Env: "WORKER_CONCURRENCY", Flag: "concurrency", Default: strconv.Itoa(ConcurrencyDefault), Kind: "int", Help: "tasks processed at once"}),
		Dequeuers:   l.Add(Setting{Env: "WORKER_DEQUEUERS", Flag: "dequeuers", Default: strconv.Itoa(DequeuersDefault), Kind: "int", Help: "asynq servers in this process, each fetching tasks one at a time, sharing the concurrency"}),
		Prefetch: l.Add(Setting{Env: "WORKER_PREFETCH", Flag: "prefetch", Default: PrefetchAuto, Kind: "int or auto",
			Help: fmt.Sprintf("tasks taken from Redis beyond the concurrency, each waiting for a call slot so that the next call starts as one ends; upstream calls in flight stay at most the concurrency. %s is a fifth of the concurrency, rounded up, at most %d; 0 (off) to %d; docs/performance.md has its measured effect", PrefetchAuto, PrefetchAutoMax, PrefetchMax)}),
		Pipeline: l.Add(Setting{Env: "WORKER_PIPELINE", Flag: "pipeline", Default: "true", Kind: "bool",
			Help: "send asynq's task fetches and completions from all of the worker's slots to Redis in shared pipelines (go-redis's autopipeliner), each still one atomic script call: about half of Redis's CPU per task; false sends each in a round trip of its own, as asynq alone does. true or false"}),
		PollInterval:    l.Add(Setting{Env: "WORKER_POLL_INTERVAL", Flag: "poll-interval", Default: PollIntervalDefault.String(), Kind: "duration", Help: "how often an idle dequeuer looks for new tasks (asynq's TaskCheckInterval, each wait drawn from ½ to 1½ of it): about how long a cancellation waits before an idle worker sends it"}),
		ShutdownTimeout: l.Add(Setting{Env: "SHUTDOWN_TIMEOUT", Flag: "shutdown-timeout", Default: ShutdownTimeoutDefault.String(), Kind: "duration", Help: "on SIGTERM, how long in-flight calls may finish; the unfinished ones go back to their queue"}),
		UpstreamTimeout: l.Add(Setting{Env: "UPSTREAM_TIMEOUT", Flag: "upstream-timeout", Default: UpstreamTimeoutDefault.String(), Kind: "duration", Help: "bound on one upstream call, body included"}),
		HTTPClient: l.Add(Setting{Env: "UPSTREAM_HTTP_CLIENT", Flag: "upstream-http-client", Default: "fasthttp",
			Help: "fasthttp (HTTP/1.1, about half the CPU per call) or net/http (Go's own client; HTTP/2 where the upstream offers it); a provider whose URL HTTPS_PROXY or HTTP_PROXY sends through a proxy uses net/http either way"}),
		MaxAge:          l.Add(Setting{Env: "RETRY_MAX_AGE", Flag: "retry-max-age", Default: "0", Kind: "duration", Help: fmt.Sprintf("dead-letter a cancellation still failing this long after it was requested (0: the default, %s)", retry.MaxAgeDefault)}),
		InitialInterval: l.Add(Setting{Env: "RETRY_INITIAL_INTERVAL", Flag: "retry-initial-interval", Default: retry.InitialIntervalDefault.String(), Kind: "duration", Help: "base delay before the first retry of a transient failure; it doubles with each counted failure, ±50% jitter"}),
		MaxInterval:     l.Add(Setting{Env: "RETRY_MAX_INTERVAL", Flag: "retry-max-interval", Default: retry.MaxIntervalDefault.String(), Kind: "duration", Help: "cap on the base delay between two retries"}),
		CompactAfter: l.Add(Setting{Env: "TASK_COMPACT_AFTER", Flag: "task-compact-after", Default: CompactAfterDefault.String(), Kind: "duration",
			Help: "how long a completed task stays whole (listed in the monitoring UI's Completed tab, about 630 bytes of Redis) before it is compacted to about 160 bytes that still answer dedupe and status until its retention ends; 0s compacts at the next maintenance pass (every 15s)"}),
	}
}

// Read parses the section, and the retry timing every provider shares
// (zero fields: the defaults).
func (s *WorkerSection) Read(l *Loader) (w Worker, shared retry.Policy) {
	const forever = 1<<63 - 1
	w.Concurrency = int(l.Int(s.Concurrency, 1, ConcurrencyMax))
	w.Dequeuers = int(l.Int(s.Dequeuers, 1, DequeuersMax))
	switch {
	case w.Dequeuers > w.Concurrency && w.Concurrency >= 1 && s.Dequeuers.Given() && !l.Has(s.Dequeuers):
		l.Bad(s.Dequeuers, "must be at most WORKER_CONCURRENCY (%d): each dequeuer needs a share of it, got %d", w.Concurrency, w.Dequeuers)
	case w.Dequeuers > w.Concurrency && w.Concurrency >= 1:
		w.Dequeuers = w.Concurrency // the default, for a concurrency below it
	}
	if v := strings.TrimSpace(s.Prefetch.Value()); v == PrefetchAuto {
		w.Prefetch = AutoPrefetch(w.Concurrency)
	} else if _, err := strconv.Atoi(v); err != nil {
		l.Bad(s.Prefetch, "must be %s or an integer from 0 to %d, got %q", PrefetchAuto, PrefetchMax, text.Truncate(s.Prefetch.Value(), 40))
	} else {
		w.Prefetch = int(l.Int(s.Prefetch, 0, PrefetchMax))
	}
	w.Pipeline = l.Bool(s.Pipeline)
	w.PollInterval = l.Duration(s.PollInterval, time.Millisecond, 10*time.Second)
	w.ShutdownTimeout = l.Duration(s.ShutdownTimeout, 0, forever)
	w.UpstreamTimeout = l.Duration(s.UpstreamTimeout, 0, forever)
	w.CompactAfter = l.Duration(s.CompactAfter, 0, tasks.RetentionDefault)
	switch v := s.HTTPClient.Value(); v {
	case "fasthttp":
	case "net/http":
		w.NetHTTP = true
	default:
		l.Bad(s.HTTPClient, "must be fasthttp or net/http, got %q", v)
	}
	if w.UpstreamTimeout == 0 && !l.Has(s.UpstreamTimeout) {
		l.Bad(s.UpstreamTimeout, "must be positive")
	}
	shared.MaxAge = l.Duration(s.MaxAge, 0, forever)
	shared.InitialInterval = l.Duration(s.InitialInterval, 100*time.Millisecond, 24*time.Hour)
	shared.MaxInterval = l.Duration(s.MaxInterval, 100*time.Millisecond, 24*time.Hour)
	if shared.MaxInterval < shared.InitialInterval && !l.Has(s.InitialInterval) && !l.Has(s.MaxInterval) {
		l.Bad(s.MaxInterval, "must be at least RETRY_INITIAL_INTERVAL (%s), got %s", shared.InitialInterval, shared.MaxInterval)
	}
	return w, shared
}

// Bounds of the worker's settings.
const (
	ConcurrencyMax = 1000
	DequeuersMax   = 16
	PrefetchMax    = 1000
	// PrefetchAuto is WORKER_PREFETCH's default: AutoPrefetch of the
	// concurrency.
	PrefetchAuto = "auto"
	// PrefetchAutoMax bounds AutoPrefetch.
	PrefetchAutoMax = 10
)

// Load reads the worker's configuration from args (without the program
// name), getenv and files (for the _FILE secrets). It writes flag help to
// out on --help. Every invalid value is reported, each on its own line.
func Load(args []string, getenv func(string) string, readFile func(string) ([]byte, error), out io.Writer) (Config, error) {
	l := NewLoader(getenv, readFile)
	sec := AddWorkerBinary(l)
	rs, ms, ps, ws, ls, as, bs, qs := sec.Redis, sec.Meari, sec.PandaPon, sec.Worker, sec.Log, sec.Admin, sec.Guard, sec.Queues
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(out)
	for _, s := range l.Settings() {
		fs.Var(s, s.Flag, s.Usage())
	}
	demo := fs.Bool("demo", false, "run the zero-dependency demo: in-process Redis and a sandbox upstream (not durable)")
	version := fs.Bool("version", false, "print the version and the VCS revision this binary was built from, and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: worker [flags]\n       worker check [flags]   validate the configuration, reach Redis and each provider (no request sent), and exit 0 or 1\n       worker config --markdown   print the configuration reference of every binary (docs/configuration.md)\n\nEach flag can also be set by the environment variable named in its help; the flag wins.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, ErrHelp
		}
		return Config{}, &UsageError{Err: err}
	}
	if *version {
		return Config{}, ErrVersion
	}
	if fs.NArg() > 0 {
		return Config{}, &UsageError{Err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	l.Resolve()

	c := Config{Demo: *demo, Retry: map[string]retry.Policy{}}
	if !c.Demo {
		c.Redis = rs.Read(l)
	}
	var meariP, pandaponP Provider
	c.Meari, meariP = ms.Read(l)
	c.PandaPon, pandaponP = ps.Read(l)
	var shared retry.Policy
	c.Worker, shared = ws.Read(l)
	c.Log = ls.Read(l)
	c.Admin = as.Read(l)
	policy := func(provider string, attempts int, s *Setting) {
		p := shared
		p.MaxAttempts = attempts
		if err := p.Validate(); err != nil && !l.Has(s) && !l.Has(ws.MaxAge) && !l.Has(ws.InitialInterval) && !l.Has(ws.MaxInterval) {
			l.Bad(s, "%v", err)
		}
		c.Retry[provider] = p
	}
	c.Limits = map[string]guard.Limit{}
	if c.Meari != nil || c.Demo {
		policy(tasks.ProviderMeari, meariP.MaxAttempts, ms.MaxAttempts)
		c.Limits[tasks.ProviderMeari] = meariP.Limit
	}
	if c.PandaPon != nil || c.Demo {
		policy(tasks.ProviderPandaPon, pandaponP.MaxAttempts, ps.MaxAttempts)
		c.Limits[tasks.ProviderPandaPon] = pandaponP.Limit
	}
	c.Breaker, c.RateMaxWait = bs.Read(l)
	c.Shards = qs.Read(l)
	if !c.Demo && c.Meari == nil && c.PandaPon == nil && len(l.Problems()) == 0 {
		return c, errors.New("no provider is configured: set MEARI_* or PANDAPON_* (see --help), or run --demo")
	}
	return c, l.Err()
}

// Warnings returns what is valid but unwise in c, one sentence each, for
// the start-up log.
func (c Config) Warnings() []string {
	var ws []string
	if w := c.Worker; w.UpstreamTimeout > w.ShutdownTimeout {
		ws = append(ws, fmt.Sprintf("UPSTREAM_TIMEOUT (%s) is longer than SHUTDOWN_TIMEOUT (%s): on SIGTERM a call still waiting for its upstream is cut off and retried later, "+
			"and if the upstream had taken it, the retry's answer is marked outcome unknown; make SHUTDOWN_TIMEOUT the longer", w.UpstreamTimeout, w.ShutdownTimeout))
	}
	return ws
}

// AdminSection is the admin HTTP server: the monitoring UI, metrics and
// health endpoints.
type AdminSection struct {
	Addr, User, Password, PasswordFile, ReadOnly, Profiling, AllowedHosts *Setting
}

// AddAdmin declares the admin server's settings on l.
func AddAdmin(l *Loader) *AdminSection {
	l.Section("Admin server")
	return &AdminSection{
		Addr:         l.Add(Setting{Env: "ADMIN_ADDR", Flag: "admin-addr", Default: AdminAddrDefault, Kind: "host:port", Help: "admin HTTP server address (monitoring UI, metrics, health), host:port, or off"}),
		User:         l.Add(Setting{Env: "ADMIN_USER", Flag: "admin-user", Help: "admin basic auth user of the UI and /metrics; required, with a password, when ADMIN_ADDR is not loopback"}),
		Password:     l.Add(Setting{Env: "ADMIN_PASSWORD", Flag: "admin-password", Secret: true, Help: "the admin basic auth password"}),
		PasswordFile: l.Add(Setting{Env: "ADMIN_PASSWORD_FILE", Flag: "admin-password-file", Kind: "path", Help: "file holding the admin basic auth password"}),
		ReadOnly:     l.Add(Setting{Env: "ADMIN_READONLY", Flag: "admin-readonly", Default: "false", Kind: "bool", Help: "make the monitoring UI and the dead-letter page read-only: true or false"}),
		Profiling:    l.Add(Setting{Env: "ADMIN_PPROF", Flag: "admin-pprof", Default: "false", Kind: "bool", Help: "serve Go's profiles (net/http/pprof) at /debug/pprof/, behind the admin auth: true or false"}),
		AllowedHosts: l.Add(Setting{Env: "ADMIN_ALLOWED_HOSTS", Flag: "admin-allowed-hosts", Kind: "hosts", Help: "host names the admin server answers to besides the loopback names and ADMIN_ADDR's host, comma-separated"}),
	}
}

// Read parses the section; problems go to l.
func (s *AdminSection) Read(l *Loader) Admin {
	var a Admin
	a.ReadOnly = l.Bool(s.ReadOnly)
	a.Profiling = l.Bool(s.Profiling)
	if hosts, err := httpguard.ParseHosts(s.AllowedHosts.Value()); err != nil {
		l.Bad(s.AllowedHosts, "%v", err)
	} else {
		a.AllowedHosts = hosts
	}
	pass := s.Password
	if s.PasswordFile.Given() && !s.Password.Given() {
		pass = s.PasswordFile
	}
	a.User, a.Password = s.User.Value(), l.Secret(s.Password, s.PasswordFile)
	passGiven := Given(s.Password, s.PasswordFile)
	switch {
	case strings.ContainsAny(a.User, ":\r\n"):
		l.Bad(s.User, "must not contain ':' or line breaks")
	case a.User != "" && a.Password == "" && !passGiven:
		l.Bad(pass, "required when %s is set", s.User.Name())
	case a.User == "" && passGiven:
		l.Bad(s.User, "required when %s is set", pass.Name())
	}
	raw := strings.TrimSpace(s.Addr.Value())
	if strings.EqualFold(raw, AdminOff) {
		return a
	}
	host, port, err := net.SplitHostPort(raw)
	if err != nil {
		l.Bad(s.Addr, "must be host:port (such as 127.0.0.1:8080) or %s, got %q", AdminOff, s.Addr.Value())
		return a
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		l.Bad(s.Addr, "port must be a number from 0 to 65535, got %q", port)
		return a
	}
	a.Addr = net.JoinHostPort(host, port)
	if !IsLoopback(a.Addr) && a.User == "" && !passGiven {
		l.Bad(s.Addr, "%q is not a loopback address, so the monitoring UI and metrics need basic auth: set %s and %s (or %s)",
			a.Addr, s.User.Name(), s.Password.Name(), s.PasswordFile.Env)
	}
	return a
}

// AutoPrefetch is the prefetch WORKER_PREFETCH=auto gives for concurrency
// slots: a fifth of them, rounded up, at most PrefetchAutoMax. Without it
// a slot idles between two calls for a completion and a dequeue round
// trip (together about 1.3 ms at p50 and 5.5 ms at p99 at 20 ms / C=50 in
// make bench), so a fifth covers gaps up to a fifth of a call. A
// prefetched task waits for a call slot only while every call slot is
// busy, when it would otherwise wait in its queue.
//
// The tasks in those gaps are the worker's rate times the gap, and the
// rate of one process is bounded by its cores and Redis: about 7,000
// tasks/s and so 10 tasks in the gaps on one core in make bench. Beyond
// that the extra slots only add goroutines: at 0 ms / C=200 a prefetch of
// 40 made 6,426 tasks/s against 6,875 without, and 1.1 MB more RSS.
func AutoPrefetch(concurrency int) int {
	return min((max(concurrency, 0)+4)/5, PrefetchAutoMax)
}
