package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/guard"
	"github.com/cancelworker/cancelworker/internal/httpguard"
	"github.com/cancelworker/cancelworker/internal/text"
	"github.com/cancelworker/cancelworker/providers"
	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/cancelworker/cancelworker/providers/pandapon"
	"github.com/cancelworker/cancelworker/retry"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zapcore"
)

// The sections below are the settings every binary draws from: each
// declares its variables and flags on a Loader and reads them into the
// values the rest of the code takes (redis.Options, meari.Config,
// pandapon.Config, retry.Policy), reporting every problem on the Loader.

// RedisSection is the Redis connection, in one of three forms: one
// server (REDIS_URL), the master of a Sentinel set (REDIS_SENTINEL_ADDRS
// and REDIS_MASTER_NAME), or a Cluster (REDIS_CLUSTER_ADDRS); the
// password apart from them.
type RedisSection struct {
	URL, Password, PasswordFile                     *Setting
	SentinelAddrs, MasterName                       *Setting
	SentinelPassword, SentinelPasswordFile, Cluster *Setting
	DB                                              *Setting
	TLS, TLSCAFile                                  *Setting
}

// AddRedis declares the Redis settings on l.
func AddRedis(l *Loader) *RedisSection {
	l.Section("Redis")
	return &RedisSection{
		URL: l.Add(Setting{Env: "REDIS_URL", Flag: "redis-url", Default: RedisURLDefault, Kind: "url",
			Help: "one Redis server (redis://host:port/db or rediss://); a password only through the environment"}),
		Password:     l.Add(Setting{Env: "REDIS_PASSWORD", Flag: "redis-password", Secret: true, Help: "the Redis password (of the server, the master or the Cluster's nodes)"}),
		PasswordFile: l.Add(Setting{Env: "REDIS_PASSWORD_FILE", Flag: "redis-password-file", Kind: "path", Help: "file holding the Redis password (of the server, the master or the Cluster's nodes)"}),
		SentinelAddrs: l.Add(Setting{Env: "REDIS_SENTINEL_ADDRS", Flag: "redis-sentinel-addrs", Kind: "host:port,...",
			Help: "the Sentinels watching the Redis master, comma-separated; with REDIS_MASTER_NAME, instead of REDIS_URL"}),
		MasterName:           l.Add(Setting{Env: "REDIS_MASTER_NAME", Flag: "redis-master-name", Help: "the master's name in the Sentinels' configuration"}),
		SentinelPassword:     l.Add(Setting{Env: "REDIS_SENTINEL_PASSWORD", Flag: "redis-sentinel-password", Secret: true, Help: "the Sentinels' own password, if they have one"}),
		SentinelPasswordFile: l.Add(Setting{Env: "REDIS_SENTINEL_PASSWORD_FILE", Flag: "redis-sentinel-password-file", Kind: "path", Help: "file holding the Sentinels' own password, if they have one"}),
		Cluster: l.Add(Setting{Env: "REDIS_CLUSTER_ADDRS", Flag: "redis-cluster-addrs", Kind: "host:port,...",
			Help: "seed nodes of a Redis Cluster, comma-separated, instead of REDIS_URL"}),
		DB: l.Add(Setting{Env: "REDIS_DB", Flag: "redis-db", Kind: "int", Help: "with Sentinel, the database number (default 0); a Cluster has only database 0"}),
		TLS: l.Add(Setting{Env: "REDIS_TLS", Flag: "redis-tls", Kind: "bool", Default: "false",
			Help: "TLS to the Sentinels and the master, or to the Cluster's nodes (one server: rediss:// in REDIS_URL)"}),
		TLSCAFile: l.Add(Setting{Env: "REDIS_TLS_CA_FILE", Flag: "redis-tls-ca-file", Kind: "path",
			Help: "PEM file of the CAs that sign Redis's certificates, in place of the system's; with rediss:// or REDIS_TLS"}),
	}
}

// tlsConfig returns the TLS configuration of the connection (nil
// without TLS): certificates checked against the system's CAs or those of
// REDIS_TLS_CA_FILE, the host name against the address dialled.
func (r *RedisSection) tlsConfig(l *Loader, on bool) *tls.Config {
	if !on {
		if r.TLSCAFile.Value() != "" {
			l.Bad(r.TLSCAFile, "applies only with TLS: rediss:// in %s, or %s=true", r.URL.Env, r.TLS.Env)
		}
		return nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f := r.TLSCAFile.Value(); f != "" {
		pem, err := l.readFile(f)
		if err != nil {
			l.Bad(r.TLSCAFile, "cannot be read: %v", err)
			return nil
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			l.Bad(r.TLSCAFile, "holds no PEM certificate: %s", f)
			return nil
		}
	}
	return c
}

// Read parses the section; problems go to l.
func (r *RedisSection) Read(l *Loader) RedisConn {
	password := l.Secret(r.Password, r.PasswordFile)
	if l.Has(r.Password) || l.Has(r.PasswordFile) {
		return RedisConn{}
	}
	sentinel := r.SentinelAddrs.Value() != "" || r.MasterName.Value() != ""
	cluster := r.Cluster.Value() != ""
	urlGiven := r.URL.Given()
	switch {
	case sentinel && cluster:
		l.Bad(r.SentinelAddrs, "cannot be combined with %s: choose Sentinel or Cluster", r.Cluster.Name())
		return RedisConn{}
	case (sentinel || cluster) && urlGiven:
		other := r.SentinelAddrs
		if cluster {
			other = r.Cluster
		}
		l.Bad(r.URL, "cannot be combined with %s: give one server's URL, or the Sentinels or Cluster nodes", other.Name())
		return RedisConn{}
	case !sentinel && Given(r.SentinelPassword, r.SentinelPasswordFile):
		l.Bad(r.SentinelPassword, "applies only with %s", r.SentinelAddrs.Name())
		return RedisConn{}
	case !sentinel && !cluster && r.DB.Value() != "":
		l.Bad(r.DB, "applies only with %s: give the database in REDIS_URL's path (redis://host:6379/2)", r.SentinelAddrs.Name())
		return RedisConn{}
	case cluster && r.DB.Value() != "" && strings.TrimSpace(r.DB.Value()) != "0":
		l.Bad(r.DB, "a Redis Cluster has only database 0, got %q", r.DB.Value())
		return RedisConn{}
	}
	switch {
	case sentinel:
		if r.MasterName.Value() == "" {
			l.Bad(r.MasterName, "is required with %s", r.SentinelAddrs.Name())
		}
		if r.SentinelAddrs.Value() == "" {
			l.Bad(r.SentinelAddrs, "is required with %s: the Sentinels to ask for the master", r.MasterName.Name())
			return RedisConn{}
		}
		addrs := parseAddrs(l, r.SentinelAddrs)
		db := 0
		if r.DB.Value() != "" {
			db = int(l.Int(r.DB, 0, 15))
		}
		sentinelPassword := l.Secret(r.SentinelPassword, r.SentinelPasswordFile)
		useTLS := l.Bool(r.TLS)
		tc := r.tlsConfig(l, useTLS)
		if addrs == nil || r.MasterName.Value() == "" || l.Has(r.DB) || l.Has(r.SentinelPassword) || l.Has(r.SentinelPasswordFile) || l.Has(r.TLS) || l.Has(r.TLSCAFile) {
			return RedisConn{}
		}
		return RedisConn{
			Mode: RedisSentinel,
			Failover: &redis.FailoverOptions{MasterName: r.MasterName.Value(), SentinelAddrs: addrs,
				SentinelPassword: sentinelPassword, Password: password, DB: db, TLSConfig: tc},
			Shown: "sentinel " + tlsShown(useTLS) + r.MasterName.Value() + "@" + strings.Join(addrs, ",") + "/" + strconv.Itoa(db),
		}
	case cluster:
		addrs := parseAddrs(l, r.Cluster)
		useTLS := l.Bool(r.TLS)
		tc := r.tlsConfig(l, useTLS)
		if addrs == nil || l.Has(r.TLS) || l.Has(r.TLSCAFile) {
			return RedisConn{}
		}
		return RedisConn{
			Mode:    RedisCluster,
			Cluster: &redis.ClusterOptions{Addrs: addrs, Password: password, TLSConfig: tc, MaintNotificationsConfig: maintOff()},
			Shown:   "cluster " + tlsShown(useTLS) + strings.Join(addrs, ","),
		}
	}
	if l.Bool(r.TLS) {
		l.Bad(r.TLS, "applies only with %s or %s: for one server, give rediss:// in %s", r.SentinelAddrs.Name(), r.Cluster.Name(), r.URL.Name())
		return RedisConn{}
	}
	if u, err := url.Parse(r.URL.Value()); err == nil && u.User != nil {
		pw, ok := u.User.Password()
		switch {
		case ok && pw != "":
			l.secrets = append(l.secrets, pw)
		case !ok && password == "" && u.User.Username() != "":
			l.urlUsers = append(l.urlUsers, u.User.Username())
		}
	}
	opt, shown, err := ParseRedis(Redis{URL: r.URL.Value(), URLFromFlag: r.URL.FromFlag(), Password: password})
	if err != nil {
		l.Bad(r.URL, "%v", err)
		return RedisConn{Shown: shown}
	}
	if tc := r.tlsConfig(l, opt.TLSConfig != nil); tc != nil {
		// rediss://: go-redis set the server name from the URL.
		opt.TLSConfig.RootCAs = tc.RootCAs
	}
	if l.Has(r.TLSCAFile) {
		return RedisConn{Shown: shown}
	}
	return RedisConn{Mode: RedisSingle, Single: opt, Shown: shown}
}

// QueuesSection is how each provider's tasks are spread over queues:
// MEARI_QUEUE_SHARDS and PANDAPON_QUEUE_SHARDS. Every process that
// enqueues and every worker must agree on it.
type QueuesSection struct {
	Meari, PandaPon *Setting
}

// AddQueues declares the queue settings on l.
func AddQueues(l *Loader) *QueuesSection {
	l.Section("Queues")
	help := func(p string) string {
		return fmt.Sprintf("spread %s's tasks over this many queues (%s:0 …), chosen per order; 1 keeps the one queue %s. Give every worker and enqueuer the same value",
			p, tasks.QueueFor(strings.ToLower(p)), tasks.QueueFor(strings.ToLower(p)))
	}
	return &QueuesSection{
		Meari:    l.Add(Setting{Env: "MEARI_QUEUE_SHARDS", Flag: "meari-queue-shards", Default: "1", Kind: "int", Help: help("Meari")}),
		PandaPon: l.Add(Setting{Env: "PANDAPON_QUEUE_SHARDS", Flag: "pandapon-queue-shards", Default: "1", Kind: "int", Help: help("PandaPon")}),
	}
}

// Read parses the section.
func (q *QueuesSection) Read(l *Loader) tasks.Shards {
	return tasks.Shards{
		Meari:    int(l.Int(q.Meari, 1, tasks.MaxShards)),
		PandaPon: int(l.Int(q.PandaPon, 1, tasks.MaxShards)),
	}
}

// tlsShown marks a connection shown with TLS.
func tlsShown(on bool) string {
	if on {
		return "(tls) "
	}
	return ""
}

// LogSection is the process's log: LOG_LEVEL and LOG_FORMAT.
type LogSection struct {
	Level, Format *Setting
}

// AddLog declares the log settings on l.
func AddLog(l *Loader) *LogSection {
	l.Section("Log")
	return &LogSection{
		Level:  l.Add(Setting{Env: "LOG_LEVEL", Flag: "log-level", Default: LogLevelDefault, Help: "debug, info, warn or error"}),
		Format: l.Add(Setting{Env: "LOG_FORMAT", Flag: "log-format", Default: LogFormatDefault, Help: "json or console"}),
	}
}

// Log is how the process logs.
type Log struct {
	Level  zapcore.Level
	Format string // "json" or "console"
}

// Read parses the section; problems go to l.
func (s *LogSection) Read(l *Loader) Log {
	var c Log
	if lvl, err := zapcore.ParseLevel(s.Level.Value()); err != nil {
		l.Bad(s.Level, "must be debug, info, warn or error, got %q", s.Level.Value())
	} else {
		c.Level = lvl
	}
	switch f := s.Format.Value(); f {
	case "json", "console":
		c.Format = f
	default:
		l.Bad(s.Format, "must be json or console, got %q", f)
	}
	return c
}

// MeariSection is the Meari account and its retry budget. The provider is
// configured when any of its account settings is given.
type MeariSection struct {
	BaseURL, PartnerKey, PartnerSecret, PartnerSecretFile, SourceApp *Setting
	SignMode, TimestampFormat, MaxAttempts                           *Setting
	RateLimit, RateBurst                                             *Setting
	// Always reads the account even when none of its settings is given:
	// for the sandbox, whose settings default to its demo account.
	Always bool
}

// AddMeari declares the Meari settings on l.
func AddMeari(l *Loader) *MeariSection {
	l.Section("Meari")
	return &MeariSection{
		BaseURL:           l.Add(Setting{Env: "MEARI_BASE_URL", Flag: "meari-base-url", Kind: "url", Help: "Meari API base URL, e.g. https://api.example.com"}),
		PartnerKey:        l.Add(Setting{Env: "MEARI_PARTNER_KEY", Flag: "meari-partner-key", Help: "Meari partner key (sent as partnerKey)"}),
		PartnerSecret:     l.Add(Setting{Env: "MEARI_PARTNER_SECRET", Flag: "meari-partner-secret", Secret: true, Help: "the Meari partner secret, which signs each request"}),
		PartnerSecretFile: l.Add(Setting{Env: "MEARI_PARTNER_SECRET_FILE", Flag: "meari-partner-secret-file", Kind: "path", Help: "file holding the Meari partner secret"}),
		SourceApp:         l.Add(Setting{Env: "MEARI_SOURCE_APP", Flag: "meari-source-app", Kind: "int", Help: "Meari customer number (sourceApp)"}),
		SignMode:          l.Add(Setting{Env: "MEARI_SIGN_MODE", Flag: "meari-sign-mode", Default: string(meari.SignModeDefault), Help: "Meari stringToSign mode: sorted or documented (docs/upstreams.md §1)"}),
		TimestampFormat:   l.Add(Setting{Env: "MEARI_TIMESTAMP_FORMAT", Flag: "meari-timestamp-format", Default: "millis", Help: "Meari timestamp format: millis or rfc3339"}),
		MaxAttempts:       l.Add(Setting{Env: "MEARI_MAX_ATTEMPTS", Flag: "meari-max-attempts", Default: "0", Kind: "int", Help: fmt.Sprintf("Meari attempts before \"retries exhausted\" dead-letters the order (0: the default, %d)", retry.MaxAttemptsDefault)}),
		RateLimit:         l.Add(Setting{Env: "MEARI_RATE_LIMIT", Flag: "meari-rate-limit", Kind: "float", Help: "Meari calls per second, a positive number (20, 0.5), shared by every worker process on this Redis (empty: no limit)"}),
		RateBurst:         l.Add(Setting{Env: "MEARI_RATE_BURST", Flag: "meari-rate-burst", Kind: "int", Help: "Meari calls allowed at once on top of the rate (default: the rate, rounded up)"}),
	}
}

// Provider is what a provider section holds besides the account.
type Provider struct {
	// MaxAttempts is the retry budget; 0 means the default.
	MaxAttempts int
	// Limit is the rate limit shared by every worker process; Rate 0 means
	// none.
	Limit guard.Limit
}

// Read parses the section: the account, or nil when none of its settings
// is given (a partly given account is a problem), and the rest.
func (s *MeariSection) Read(l *Loader) (*meari.Config, Provider) {
	c := meari.Config{
		BaseURL:       l.BaseURL(s.BaseURL),
		PartnerKey:    s.PartnerKey.Value(),
		PartnerSecret: l.Secret(s.PartnerSecret, s.PartnerSecretFile),
	}
	if s.SourceApp.Value() != "" {
		c.SourceApp = l.Int(s.SourceApp, 1, 1<<53)
	}
	if mode, err := meari.ParseSignMode(s.SignMode.Value()); err != nil {
		l.Bad(s.SignMode, "%v", err)
	} else {
		c.SignMode = mode
	}
	if tf, err := meari.ParseTimestampFormat(s.TimestampFormat.Value()); err != nil {
		l.Bad(s.TimestampFormat, "%v", err)
	} else {
		c.TimestampFormat = tf
	}
	p := Provider{MaxAttempts: int(l.Int(s.MaxAttempts, 0, retry.MaxAttemptsCeiling)), Limit: readLimit(l, s.RateLimit, s.RateBurst)}
	secret := s.PartnerSecret
	if s.PartnerSecretFile.Given() && !s.PartnerSecret.Given() {
		secret = s.PartnerSecretFile
	}
	if s.Always {
		return &c, p
	}
	if !configured(l, "Meari", s.BaseURL, s.PartnerKey, secret, s.SourceApp) {
		return nil, p
	}
	l.providerProblems(c.Problems(), map[string]*Setting{
		"BaseURL": s.BaseURL, "PartnerKey": s.PartnerKey, "PartnerSecret": secret, "SourceApp": s.SourceApp,
		"SignMode": s.SignMode, "TimestampFormat": s.TimestampFormat,
	})
	return &c, p
}

// PandaPonSection is the PandaPon account and its retry budget. The
// provider is configured when any of its account settings is given.
type PandaPonSection struct {
	BaseURL, AccessKey, AccessSecret, AccessSecretFile, UserID, MaxAttempts *Setting
	RateLimit, RateBurst                                                    *Setting
	// Always: as MeariSection.Always.
	Always bool
}

// AddPandaPon declares the PandaPon settings on l.
func AddPandaPon(l *Loader) *PandaPonSection {
	l.Section("PandaPon")
	return &PandaPonSection{
		BaseURL:          l.Add(Setting{Env: "PANDAPON_BASE_URL", Flag: "pandapon-base-url", Kind: "url", Help: "PandaPon API base URL"}),
		AccessKey:        l.Add(Setting{Env: "PANDAPON_ACCESS_KEY", Flag: "pandapon-access-key", Help: "PandaPon access key (the access-key header)"}),
		AccessSecret:     l.Add(Setting{Env: "PANDAPON_ACCESS_SECRET", Flag: "pandapon-access-secret", Secret: true, Help: "the PandaPon access secret, which signs each request"}),
		AccessSecretFile: l.Add(Setting{Env: "PANDAPON_ACCESS_SECRET_FILE", Flag: "pandapon-access-secret-file", Kind: "path", Help: "file holding the PandaPon access secret"}),
		UserID:           l.Add(Setting{Env: "PANDAPON_USER_ID", Flag: "pandapon-user-id", Help: "PandaPon user id (the user-id header)"}),
		MaxAttempts:      l.Add(Setting{Env: "PANDAPON_MAX_ATTEMPTS", Flag: "pandapon-max-attempts", Default: "0", Kind: "int", Help: fmt.Sprintf("PandaPon attempts before \"retries exhausted\" dead-letters the order (0: the default, %d)", retry.MaxAttemptsDefault)}),
		RateLimit:        l.Add(Setting{Env: "PANDAPON_RATE_LIMIT", Flag: "pandapon-rate-limit", Kind: "float", Help: "PandaPon calls per second, a positive number (20, 0.5), shared by every worker process on this Redis (empty: no limit)"}),
		RateBurst:        l.Add(Setting{Env: "PANDAPON_RATE_BURST", Flag: "pandapon-rate-burst", Kind: "int", Help: "PandaPon calls allowed at once on top of the rate (default: the rate, rounded up)"}),
	}
}

// Read parses the section: the account, or nil when none of its settings
// is given, and the rest.
func (s *PandaPonSection) Read(l *Loader) (*pandapon.Config, Provider) {
	c := pandapon.Config{
		BaseURL:      l.BaseURL(s.BaseURL),
		AccessKey:    s.AccessKey.Value(),
		AccessSecret: l.Secret(s.AccessSecret, s.AccessSecretFile),
		UserID:       s.UserID.Value(),
	}
	p := Provider{MaxAttempts: int(l.Int(s.MaxAttempts, 0, retry.MaxAttemptsCeiling)), Limit: readLimit(l, s.RateLimit, s.RateBurst)}
	secret := s.AccessSecret
	if s.AccessSecretFile.Given() && !s.AccessSecret.Given() {
		secret = s.AccessSecretFile
	}
	if s.Always {
		return &c, p
	}
	if !configured(l, "PandaPon", s.BaseURL, s.AccessKey, secret, s.UserID) {
		return nil, p
	}
	l.providerProblems(c.Problems(), map[string]*Setting{
		"BaseURL": s.BaseURL, "AccessKey": s.AccessKey, "AccessSecret": secret, "UserID": s.UserID,
	})
	return &c, p
}

// RateLimitMax bounds a provider's rate limit, in calls per second.
const RateLimitMax = 100000

// readLimit parses a rate limit and its burst: the rate a positive number
// of calls per second, empty for none; the burst an integer from 1,
// defaulting to the rate rounded up, and only with a rate.
func readLimit(l *Loader, rate, burst *Setting) guard.Limit {
	var lim guard.Limit
	if v := strings.TrimSpace(rate.Value()); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		switch {
		case err != nil || math.IsNaN(r) || math.IsInf(r, 0):
			l.Bad(rate, "must be a number of calls per second, such as 20 or 0.5, got %q", text.Truncate(rate.Value(), 40))
		case r <= 0:
			l.Bad(rate, "must be positive (leave it empty for no limit), got %v", r)
		case r > RateLimitMax:
			l.Bad(rate, "must be at most %d calls per second, got %v", RateLimitMax, r)
		default:
			lim.Rate = r
		}
	}
	if strings.TrimSpace(burst.Value()) == "" {
		return lim
	}
	if rate.Value() == "" {
		l.Bad(burst, "applies only with a rate: set %s too", rate.Name())
		return lim
	}
	lim.Burst = int(l.Int(burst, 1, RateLimitMax))
	return lim
}

// configured reports whether a provider is configured: any of its
// required settings given. When only some are, each missing one is a
// problem, and the provider counts as configured so that nothing starts
// half-configured. A setting with a default (the sandbox's demo account)
// is never missing.
func configured(l *Loader, provider string, required ...*Setting) bool {
	var missing []*Setting
	given := false
	for _, s := range required {
		given = given || s.Given()
		if strings.TrimSpace(s.Value()) == "" {
			missing = append(missing, s)
		}
	}
	if !given {
		return false
	}
	for _, s := range missing {
		l.Bad(s, "required when %s is configured (some %s settings are set)", provider, provider)
	}
	return true
}

// providerProblems reports each problem a provider's own validation finds
// (its Config.Problems, the checks its New makes) under the setting of the
// field, unless that setting has a problem already: the worker refuses
// nothing at start that the loader, and so `worker check`, let through.
func (l *Loader) providerProblems(ps []providers.FieldProblem, settings map[string]*Setting) {
	for _, p := range ps {
		s, ok := settings[p.Field]
		if !ok {
			l.problems = append(l.problems, Problem{Name: p.Field, Problem: p.Err.Error()})
			continue
		}
		if !l.Has(s) {
			l.Bad(s, "%v", p.Err)
		}
	}
}

// IntakeSection is the HTTP intake's listener, token and defaults.
type IntakeSection struct {
	Addr, Token, TokenFile, AllowedHosts, SourceApp, Timeout, MaxInFlight *Setting
	Queues                                                                *QueuesSection
}

// Intake defaults and bounds.
const (
	IntakeAddrDefault    = "127.0.0.1:8081"
	IntakeTimeoutDefault = 30 * time.Second
	// IntakeTokenMinLen is the shortest bearer token accepted.
	IntakeTokenMinLen = 16
	// IntakeMaxInFlightDefault is how many /v1 requests the intake serves
	// at once (intake.MaxInFlightDefault says why).
	IntakeMaxInFlightDefault = 32
)

// AddIntake declares the intake's settings on l.
func AddIntake(l *Loader) *IntakeSection {
	l.Section("Intake")
	return &IntakeSection{
		Addr:      l.Add(Setting{Env: "INTAKE_ADDR", Flag: "addr", Default: IntakeAddrDefault, Kind: "host:port", Help: "the address to listen on"}),
		Token:     l.Add(Setting{Env: "INTAKE_TOKEN", Flag: "token", Secret: true, Help: "the bearer token clients send, at least 16 characters"}),
		TokenFile: l.Add(Setting{Env: "INTAKE_TOKEN_FILE", Flag: "token-file", Kind: "path", Help: "a file holding the bearer token, at least 16 characters"}),
		AllowedHosts: l.Add(Setting{Env: "INTAKE_ALLOWED_HOSTS", Flag: "allowed-hosts", Kind: "hosts",
			Help: "without a token, the Host names accepted besides the loopback names and --addr's host, comma-separated"}),
		SourceApp: l.Add(Setting{Env: "MEARI_SOURCE_APP", Flag: "source-app", Kind: "int", Help: "the Meari customer number for items without sourceApp"}),
		Timeout:   l.Add(Setting{Env: "INTAKE_TIMEOUT", Flag: "timeout", Default: IntakeTimeoutDefault.String(), Kind: "duration", Help: "bound on each request: its body and its Redis work"}),
		MaxInFlight: l.Add(Setting{Env: "INTAKE_MAX_INFLIGHT", Flag: "max-inflight", Default: strconv.Itoa(IntakeMaxInFlightDefault), Kind: "int",
			Help: "most /v1 requests served at once, each holding up to 1 MiB of body; more are answered 503 with Retry-After"}),
		Queues: AddQueues(l),
	}
}

// Intake is the HTTP intake's resolved settings.
type Intake struct {
	Addr string
	// Token is the bearer token, "" for none (allowed on loopback only).
	// Never printed.
	Token string
	// AllowedHosts are the Host names accepted without a token.
	AllowedHosts []string
	// SourceApp is the Meari customer number for items without one; 0
	// for none.
	SourceApp int64
	Timeout   time.Duration
	// MaxInFlight is how many /v1 requests are served at once.
	MaxInFlight int
	// Shards is the queue layout the intake enqueues to.
	Shards tasks.Shards
}

// Read parses the section; problems go to l.
func (s *IntakeSection) Read(l *Loader) Intake {
	c := Intake{Shards: s.Queues.Read(l)}
	c.Addr = l.ListenAddr(s.Addr, IntakeAddrDefault)
	c.Token = l.Secret(s.Token, s.TokenFile)
	if c.Token != "" {
		c.Token = strings.TrimSpace(c.Token)
		named := s.Token
		if s.TokenFile.Given() {
			named = s.TokenFile
		}
		if len(c.Token) < IntakeTokenMinLen {
			l.Bad(named, "the token must be at least %d characters, got %d (e.g. openssl rand -hex 32)", IntakeTokenMinLen, len(c.Token))
		}
	}
	if hosts, err := httpguard.ParseHosts(s.AllowedHosts.Value()); err != nil {
		l.Bad(s.AllowedHosts, "%v", err)
	} else if c.Addr != "" {
		c.AllowedHosts = httpguard.AllowedHosts(c.Addr, hosts)
	}
	if s.SourceApp.Value() != "" {
		c.SourceApp = l.Int(s.SourceApp, 1, 1<<53)
	}
	c.Timeout = l.Duration(s.Timeout, time.Millisecond, time.Hour)
	c.MaxInFlight = int(l.Int(s.MaxInFlight, 1, 100_000))
	tokenBad := l.Has(s.Token) || l.Has(s.TokenFile)
	if c.Token == "" && !tokenBad && c.Addr != "" && !IsLoopback(c.Addr) {
		l.Bad(s.Token, "is required (or %s) when listening on %s, which is not a loopback address", s.TokenFile.Name(), c.Addr)
	}
	return c
}

// GuardSection is the circuit breaker every provider has and the rate
// limit's longest wait.
type GuardSection struct {
	Failures, MinCalls, FailureRatio, Window, OpenTimeout, Probes, MaxWait *Setting
}

// AddGuard declares the breaker's and the limiter's settings on l.
func AddGuard(l *Loader) *GuardSection {
	l.Section("Breaker and rate limits")
	return &GuardSection{
		Failures:     l.Add(Setting{Env: "BREAKER_FAILURES", Flag: "breaker-failures", Default: strconv.Itoa(guard.BreakerFailuresDefault), Kind: "int", Help: "failures in a row (timeouts, resets, 5xx, 1005) that open a provider's circuit breaker, whatever the ratio; one auth failure opens it at once"}),
		MinCalls:     l.Add(Setting{Env: "BREAKER_MIN_CALLS", Flag: "breaker-min-calls", Default: strconv.Itoa(guard.BreakerMinCallsDefault), Kind: "int", Help: "fewest calls in BREAKER_WINDOW for BREAKER_FAILURE_RATIO to open the breaker"}),
		FailureRatio: l.Add(Setting{Env: "BREAKER_FAILURE_RATIO", Flag: "breaker-failure-ratio", Default: strconv.FormatFloat(guard.BreakerFailureRatioDefault, 'g', -1, 64), Kind: "float", Help: "share of failed calls in BREAKER_WINDOW (at least BREAKER_MIN_CALLS of them) that opens the breaker, from 0.01 to 1; a half-open breaker closes when more than 1 minus this share of its probes succeed"}),
		Window:       l.Add(Setting{Env: "BREAKER_WINDOW", Flag: "breaker-window", Default: guard.BreakerWindowDefault.String(), Kind: "duration", Help: "how far back a closed breaker counts calls (it rolls in tenths)"}),
		OpenTimeout:  l.Add(Setting{Env: "BREAKER_OPEN_TIMEOUT", Flag: "breaker-open-timeout", Default: guard.BreakerOpenDefault.String(), Kind: "duration", Help: "how long an open breaker holds every call before it lets probes through"}),
		Probes:       l.Add(Setting{Env: "BREAKER_PROBES", Flag: "breaker-probes", Default: strconv.Itoa(guard.BreakerProbesDefault), Kind: "int", Help: "calls a half-open breaker lets through to probe the provider; most of them succeeding closes it"}),
		MaxWait:      l.Add(Setting{Env: "RATE_LIMIT_MAX_WAIT", Flag: "rate-limit-max-wait", Default: guard.MaxWaitDefault.String(), Kind: "duration", Help: "longest a call waits in the worker for a rate limit token; past it the task is put back, using no attempt"}),
	}
}

// Read parses the section; problems go to l.
func (s *GuardSection) Read(l *Loader) (guard.Breaker, time.Duration) {
	b := guard.Breaker{
		Failures:     int(l.Int(s.Failures, 1, 100000)),
		MinCalls:     int(l.Int(s.MinCalls, 1, 1000000)),
		FailureRatio: l.Float(s.FailureRatio, 0.01, 1),
		Window:       l.Duration(s.Window, time.Second, 24*time.Hour),
		OpenFor:      l.Duration(s.OpenTimeout, 100*time.Millisecond, time.Hour),
		Probes:       int(l.Int(s.Probes, 1, 1000)),
	}
	return b, l.Duration(s.MaxWait, 0, time.Minute)
}
