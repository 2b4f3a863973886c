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
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/httpguard"
	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zapcore"
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

// Config is the worker's whole configuration.
type Config struct {
	// RedisURL is the Redis URL as it may be shown: its password, if any,
	// replaced by "xxxxx".
	RedisURL    string
	Redis       *redis.Options
	Meari       Meari
	PandaPon    PandaPon
	Concurrency int
	// Dequeuers is how many asynq servers the worker runs, each taking
	// tasks from Redis one at a time and sharing Concurrency.
	Dequeuers int
	// PollInterval is how often an idle dequeuer looks for new tasks
	// (asynq's TaskCheckInterval; each sleep is drawn from ½ to 1½ of it).
	PollInterval    time.Duration
	ShutdownTimeout time.Duration
	UpstreamTimeout time.Duration
	MaxAge          time.Duration // 0: retry.MaxAgeDefault
	LogLevel        zapcore.Level
	LogFormat       string // "json" or "console"
	Admin           Admin
	Demo            bool
}

// setting is one configuration value: its variable, its flag, and where the
// raw text ends up.
type setting struct {
	env, flag, def, help string
	secret               bool
	raw                  string
	set                  bool // given by flag or environment, not defaulted
	fromFlag             bool // given on the command line
}

func (s *setting) name() string { return fmt.Sprintf("%s (--%s)", s.env, s.flag) }

// UsageError is a command-line error: unknown flag, bad flag syntax.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// ErrHelp is returned by Load for -h or --help, after the usage is written.
var ErrHelp = flag.ErrHelp

// Load reads the configuration from args (without the program name),
// getenv and files (for the _FILE secrets). It writes flag help to out on
// --help. Every invalid value is reported, each on its own line.
func Load(args []string, getenv func(string) string, readFile func(string) ([]byte, error), out io.Writer) (Config, error) {
	if readFile == nil {
		readFile = os.ReadFile
	}
	ss := []*setting{
		{env: "REDIS_URL", flag: "redis-url", def: RedisURLDefault, help: "Redis URL (redis://host:port/db or rediss://); a password only through the environment"},
		{env: "REDIS_PASSWORD", flag: "redis-password", secret: true, help: "Redis password (prefer REDIS_PASSWORD_FILE)"},
		{env: "REDIS_PASSWORD_FILE", flag: "redis-password-file", help: "file holding the Redis password"},
		{env: "MEARI_BASE_URL", flag: "meari-base-url", help: "Meari API base URL, e.g. https://api.example.com"},
		{env: "MEARI_PARTNER_KEY", flag: "meari-partner-key", help: "Meari partner key"},
		{env: "MEARI_PARTNER_SECRET", flag: "meari-partner-secret", secret: true, help: "Meari partner secret (prefer MEARI_PARTNER_SECRET_FILE)"},
		{env: "MEARI_PARTNER_SECRET_FILE", flag: "meari-partner-secret-file", help: "file holding the Meari partner secret"},
		{env: "MEARI_SOURCE_APP", flag: "meari-source-app", help: "Meari customer number (sourceApp)"},
		{env: "MEARI_SIGN_MODE", flag: "meari-sign-mode", def: string(meari.SignModeDefault), help: "Meari stringToSign mode: sorted or documented"},
		{env: "MEARI_TIMESTAMP_FORMAT", flag: "meari-timestamp-format", def: "millis", help: "Meari timestamp format: millis or rfc3339"},
		{env: "MEARI_MAX_ATTEMPTS", flag: "meari-max-attempts", def: "0", help: "Meari attempts before dead-lettering (0: default)"},
		{env: "PANDAPON_BASE_URL", flag: "pandapon-base-url", help: "PandaPon API base URL"},
		{env: "PANDAPON_ACCESS_KEY", flag: "pandapon-access-key", help: "PandaPon access key"},
		{env: "PANDAPON_ACCESS_SECRET", flag: "pandapon-access-secret", secret: true, help: "PandaPon access secret (prefer PANDAPON_ACCESS_SECRET_FILE)"},
		{env: "PANDAPON_ACCESS_SECRET_FILE", flag: "pandapon-access-secret-file", help: "file holding the PandaPon access secret"},
		{env: "PANDAPON_USER_ID", flag: "pandapon-user-id", help: "PandaPon user id"},
		{env: "PANDAPON_MAX_ATTEMPTS", flag: "pandapon-max-attempts", def: "0", help: "PandaPon attempts before dead-lettering (0: default)"},
		{env: "WORKER_CONCURRENCY", flag: "concurrency", def: strconv.Itoa(ConcurrencyDefault), help: "tasks processed at once"},
		{env: "WORKER_DEQUEUERS", flag: "dequeuers", def: strconv.Itoa(DequeuersDefault), help: "asynq servers in this process, each fetching tasks one at a time, sharing the concurrency"},
		{env: "WORKER_POLL_INTERVAL", flag: "poll-interval", def: PollIntervalDefault.String(), help: "how often an idle dequeuer looks for new tasks: the wait before an idle worker sees one"},
		{env: "SHUTDOWN_TIMEOUT", flag: "shutdown-timeout", def: ShutdownTimeoutDefault.String(), help: "how long in-flight calls may finish on SIGTERM"},
		{env: "UPSTREAM_TIMEOUT", flag: "upstream-timeout", def: UpstreamTimeoutDefault.String(), help: "bound on one upstream call, body included"},
		{env: "RETRY_MAX_AGE", flag: "retry-max-age", def: "0", help: "dead-letter a cancellation still failing this long after it was requested (0: default)"},
		{env: "LOG_LEVEL", flag: "log-level", def: LogLevelDefault, help: "debug, info, warn or error"},
		{env: "LOG_FORMAT", flag: "log-format", def: LogFormatDefault, help: "json or console"},
		{env: "ADMIN_ADDR", flag: "admin-addr", def: AdminAddrDefault, help: "admin HTTP server address (monitoring UI, metrics, health), host:port, or off"},
		{env: "ADMIN_USER", flag: "admin-user", help: "admin basic auth user; required when ADMIN_ADDR is not loopback"},
		{env: "ADMIN_PASSWORD", flag: "admin-password", secret: true, help: "admin basic auth password (prefer ADMIN_PASSWORD_FILE)"},
		{env: "ADMIN_PASSWORD_FILE", flag: "admin-password-file", help: "file holding the admin basic auth password"},
		{env: "ADMIN_READONLY", flag: "admin-readonly", def: "false", help: "make the monitoring UI and the dead-letter page read-only: true or false"},
		{env: "ADMIN_PPROF", flag: "admin-pprof", def: "false", help: "serve Go's profiles (net/http/pprof) at /debug/pprof/, behind the admin auth: true or false"},
		{env: "ADMIN_ALLOWED_HOSTS", flag: "admin-allowed-hosts", help: "host names the admin server answers to besides the loopback names and ADMIN_ADDR's host, comma-separated"},
	}
	byEnv := map[string]*setting{}
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(out)
	for _, s := range ss {
		byEnv[s.env] = s
		def := s.def
		if s.secret {
			def = ""
		}
		help := fmt.Sprintf("%s (env %s, default %q)", s.help, s.env, def)
		if s.secret {
			help = fmt.Sprintf("refused: a secret on the command line shows in the process list; set %s_FILE or %s", s.env, s.env)
		}
		fs.Func(s.flag, help, func(v string) error {
			s.raw, s.set, s.fromFlag = v, true, true
			return nil
		})
	}
	demo := fs.Bool("demo", false, "run the zero-dependency demo: in-process Redis and a sandbox upstream (not durable)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: worker [flags]\n       worker check [flags]   validate the configuration, reach Redis and each provider (no request sent), and exit 0 or 1\n\nEach flag can also be set by the environment variable named in its help; the flag wins.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, ErrHelp
		}
		return Config{}, &UsageError{Err: err}
	}
	if fs.NArg() > 0 {
		return Config{}, &UsageError{Err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	for _, s := range ss {
		if !s.set {
			if v := getenv(s.env); v != "" {
				s.raw, s.set = v, true
			} else {
				s.raw = s.def
			}
		}
	}

	c := Config{Demo: *demo}
	var errs []error
	bad := func(s *setting, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", s.name(), fmt.Sprintf(format, args...)))
	}
	integer := func(env string, min int64) int64 {
		s := byEnv[env]
		n, err := strconv.ParseInt(strings.TrimSpace(s.raw), 10, 64)
		switch {
		case err != nil:
			bad(s, "must be an integer, got %q", s.raw)
		case n < min:
			bad(s, "must be at least %d, got %d", min, n)
		}
		return n
	}
	duration := func(env string) time.Duration {
		s := byEnv[env]
		d, err := time.ParseDuration(strings.TrimSpace(s.raw))
		switch {
		case err != nil:
			bad(s, "must be a duration such as 30s or 2m, got %q", s.raw)
		case d < 0:
			bad(s, "must not be negative, got %s", d)
		}
		return d
	}
	secret := func(env string) string {
		s, f := byEnv[env], byEnv[env+"_FILE"]
		switch {
		case s.fromFlag:
			bad(s, "%s", CommandLineSecret(f.name(), s.env))
			return ""
		case s.set && f.set:
			bad(s, "set either it or %s, not both", f.name())
			return ""
		case f.set:
			b, err := readFile(f.raw)
			if err != nil {
				bad(f, "cannot read the file: %v", errors.Unwrap(err))
				return ""
			}
			v := strings.TrimRight(string(b), "\r\n")
			if v == "" {
				bad(f, "the file is empty")
			}
			return v
		}
		return s.raw
	}
	baseURL := func(env string) string {
		s := byEnv[env]
		if s.raw == "" {
			return ""
		}
		u, err := url.Parse(s.raw)
		switch {
		case err != nil:
			bad(s, "must be an http(s) URL, got %q", s.raw)
		case u.Scheme != "http" && u.Scheme != "https":
			bad(s, "must start with http:// or https://, got %q", u.Redacted())
		case u.Host == "":
			bad(s, "must name a host, got %q", u.Redacted())
		case u.User != nil:
			bad(s, "must not hold credentials")
		case u.RawQuery != "" || u.Fragment != "":
			bad(s, "must not have a query or fragment, got %q", u.Redacted())
		}
		return strings.TrimRight(s.raw, "/")
	}

	// Redis.
	redisURL := byEnv["REDIS_URL"]
	redisPassword := secret("REDIS_PASSWORD")
	if !c.Demo {
		opt, shown, err := ParseRedis(Redis{URL: redisURL.raw, URLFromFlag: redisURL.fromFlag, Password: redisPassword})
		if err != nil {
			bad(redisURL, "%v", err)
		}
		c.Redis, c.RedisURL = opt, shown
	}

	// Meari.
	m := &c.Meari
	m.BaseURL = baseURL("MEARI_BASE_URL")
	m.PartnerKey = byEnv["MEARI_PARTNER_KEY"].raw
	m.PartnerSecret = secret("MEARI_PARTNER_SECRET")
	if s := byEnv["MEARI_SOURCE_APP"]; s.set {
		m.SourceApp = integer("MEARI_SOURCE_APP", 1)
	}
	if mode, err := meari.ParseSignMode(byEnv["MEARI_SIGN_MODE"].raw); err != nil {
		bad(byEnv["MEARI_SIGN_MODE"], "%v", err)
	} else {
		m.SignMode = mode
	}
	if tf, err := meari.ParseTimestampFormat(byEnv["MEARI_TIMESTAMP_FORMAT"].raw); err != nil {
		bad(byEnv["MEARI_TIMESTAMP_FORMAT"], "%v", err)
	} else {
		m.TimestampFormat = tf
	}
	m.MaxAttempts = int(integer("MEARI_MAX_ATTEMPTS", 0))
	errs = append(errs, enable(&m.Enabled, "Meari",
		byEnv["MEARI_BASE_URL"], byEnv["MEARI_PARTNER_KEY"], orSecret(byEnv["MEARI_PARTNER_SECRET"], byEnv["MEARI_PARTNER_SECRET_FILE"]), byEnv["MEARI_SOURCE_APP"])...)

	// PandaPon.
	p := &c.PandaPon
	p.BaseURL = baseURL("PANDAPON_BASE_URL")
	p.AccessKey = byEnv["PANDAPON_ACCESS_KEY"].raw
	p.AccessSecret = secret("PANDAPON_ACCESS_SECRET")
	p.UserID = byEnv["PANDAPON_USER_ID"].raw
	p.MaxAttempts = int(integer("PANDAPON_MAX_ATTEMPTS", 0))
	errs = append(errs, enable(&p.Enabled, "PandaPon",
		byEnv["PANDAPON_BASE_URL"], byEnv["PANDAPON_ACCESS_KEY"], orSecret(byEnv["PANDAPON_ACCESS_SECRET"], byEnv["PANDAPON_ACCESS_SECRET_FILE"]), byEnv["PANDAPON_USER_ID"])...)

	for _, s := range []*setting{byEnv["MEARI_MAX_ATTEMPTS"], byEnv["PANDAPON_MAX_ATTEMPTS"]} {
		if n, err := strconv.Atoi(s.raw); err == nil && n > 500 {
			bad(s, "must be at most 500, got %d", n)
		}
	}

	// Worker.
	c.Concurrency = int(integer("WORKER_CONCURRENCY", 1))
	if c.Concurrency > 1000 {
		bad(byEnv["WORKER_CONCURRENCY"], "must be at most 1000, got %d", c.Concurrency)
	}
	c.Dequeuers = int(integer("WORKER_DEQUEUERS", 1))
	switch {
	case c.Dequeuers > 16:
		bad(byEnv["WORKER_DEQUEUERS"], "must be at most 16, got %d", c.Dequeuers)
	case c.Dequeuers > c.Concurrency && c.Concurrency >= 1 && byEnv["WORKER_DEQUEUERS"].set:
		bad(byEnv["WORKER_DEQUEUERS"], "must be at most WORKER_CONCURRENCY (%d): each dequeuer needs a share of it, got %d", c.Concurrency, c.Dequeuers)
	case c.Dequeuers > c.Concurrency && c.Concurrency >= 1:
		c.Dequeuers = c.Concurrency // the default, for a concurrency below it
	}
	c.PollInterval = duration("WORKER_POLL_INTERVAL")
	if s := byEnv["WORKER_POLL_INTERVAL"]; c.PollInterval < time.Millisecond || c.PollInterval > 10*time.Second {
		// A value that is not a duration, or negative, is reported above.
		if _, err := time.ParseDuration(strings.TrimSpace(s.raw)); err == nil && c.PollInterval >= 0 {
			bad(s, "must be from 1ms to 10s, got %s", c.PollInterval)
		}
	}
	c.ShutdownTimeout = duration("SHUTDOWN_TIMEOUT")
	c.UpstreamTimeout = duration("UPSTREAM_TIMEOUT")
	if c.UpstreamTimeout == 0 {
		bad(byEnv["UPSTREAM_TIMEOUT"], "must be positive")
	}
	c.MaxAge = duration("RETRY_MAX_AGE")
	if lvl, err := zapcore.ParseLevel(byEnv["LOG_LEVEL"].raw); err != nil {
		bad(byEnv["LOG_LEVEL"], "must be debug, info, warn or error, got %q", byEnv["LOG_LEVEL"].raw)
	} else {
		c.LogLevel = lvl
	}
	switch f := byEnv["LOG_FORMAT"].raw; f {
	case "json", "console":
		c.LogFormat = f
	default:
		bad(byEnv["LOG_FORMAT"], "must be json or console, got %q", f)
	}
	errs = append(errs, loadAdmin(&c.Admin, byEnv, secret("ADMIN_PASSWORD"))...)
	if !c.Demo && !c.Meari.Enabled && !c.PandaPon.Enabled && len(errs) == 0 {
		errs = append(errs, errors.New("no provider is configured: set MEARI_* or PANDAPON_* (see --help), or run --demo"))
	}
	return c, errors.Join(errs...)
}

// Warnings returns what is valid but unwise in c, one sentence each, for
// the start-up log.
func (c Config) Warnings() []string {
	var ws []string
	if c.UpstreamTimeout > c.ShutdownTimeout {
		ws = append(ws, fmt.Sprintf("UPSTREAM_TIMEOUT (%s) is longer than SHUTDOWN_TIMEOUT (%s): on SIGTERM a call still waiting for its upstream is cut off and retried later, "+
			"and if the upstream had taken it, the retry's answer is marked outcome unknown; make SHUTDOWN_TIMEOUT the longer", c.UpstreamTimeout, c.ShutdownTimeout))
	}
	return ws
}

// loadAdmin fills a from the ADMIN_* settings and reports every problem.
// password is ADMIN_PASSWORD or the content of ADMIN_PASSWORD_FILE.
func loadAdmin(a *Admin, byEnv map[string]*setting, password string) []error {
	var errs []error
	bad := func(s *setting, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", s.name(), fmt.Sprintf(format, args...)))
	}
	addr, user, pass := byEnv["ADMIN_ADDR"], byEnv["ADMIN_USER"], orSecret(byEnv["ADMIN_PASSWORD"], byEnv["ADMIN_PASSWORD_FILE"])
	if ro, err := strconv.ParseBool(strings.TrimSpace(byEnv["ADMIN_READONLY"].raw)); err != nil {
		bad(byEnv["ADMIN_READONLY"], "must be true or false, got %q", byEnv["ADMIN_READONLY"].raw)
	} else {
		a.ReadOnly = ro
	}
	if on, err := strconv.ParseBool(strings.TrimSpace(byEnv["ADMIN_PPROF"].raw)); err != nil {
		bad(byEnv["ADMIN_PPROF"], "must be true or false, got %q", byEnv["ADMIN_PPROF"].raw)
	} else {
		a.Profiling = on
	}
	if hosts, err := httpguard.ParseHosts(byEnv["ADMIN_ALLOWED_HOSTS"].raw); err != nil {
		bad(byEnv["ADMIN_ALLOWED_HOSTS"], "%v", err)
	} else {
		a.AllowedHosts = hosts
	}
	a.User, a.Password = user.raw, password
	switch {
	case strings.ContainsAny(a.User, ":\r\n"):
		bad(user, "must not contain ':' or line breaks")
	case a.User != "" && a.Password == "" && !pass.set:
		bad(pass, "required when %s is set", user.name())
	case a.User == "" && pass.set:
		bad(user, "required when %s is set", pass.name())
	}
	raw := strings.TrimSpace(addr.raw)
	if strings.EqualFold(raw, AdminOff) {
		return errs
	}
	host, port, err := net.SplitHostPort(raw)
	if err != nil {
		bad(addr, "must be host:port (such as 127.0.0.1:8080) or %s, got %q", AdminOff, addr.raw)
		return errs
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		bad(addr, "port must be a number from 0 to 65535, got %q", port)
		return errs
	}
	a.Addr = net.JoinHostPort(host, port)
	if !IsLoopback(a.Addr) && a.User == "" && !pass.set {
		bad(addr, "%q is not a loopback address, so the monitoring UI and metrics need basic auth: set %s and %s (or %s)",
			a.Addr, user.name(), byEnv["ADMIN_PASSWORD"].name(), byEnv["ADMIN_PASSWORD_FILE"].env)
	}
	return errs
}

// orSecret returns whichever of a secret and its _FILE twin was given.
func orSecret(s, file *setting) *setting {
	if file.set && !s.set {
		return file
	}
	return s
}

// enable marks a provider enabled when any of its required settings is
// given, and reports each missing one when only some are: a half-configured
// provider is an error, an unconfigured one is disabled.
func enable(enabled *bool, provider string, required ...*setting) []error {
	var missing []*setting
	for _, s := range required {
		if !s.set || s.raw == "" {
			missing = append(missing, s)
		}
	}
	if len(missing) == len(required) {
		return nil
	}
	*enabled = true
	var errs []error
	for _, s := range missing {
		errs = append(errs, fmt.Errorf("%s: required when %s is configured (some %s settings are set)", s.name(), provider, provider))
	}
	return errs
}
