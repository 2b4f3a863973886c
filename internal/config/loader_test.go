package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/guard"
	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/cancelworker/cancelworker/providers/pandapon"
	"github.com/cancelworker/cancelworker/retry"
	"github.com/cancelworker/cancelworker/tasks"
)

// TestSettingName checks how problems name a setting: what the user gave.
func TestSettingName(t *testing.T) {
	t.Parallel()
	env := map[string]string{"A_ENV": "from env", "S_ENV": "secret"}
	l := NewLoader(func(k string) string { return env[k] }, nil)
	both := l.Add(Setting{Env: "A_ENV", Flag: "a-flag"})
	flagged := l.Add(Setting{Env: "B_ENV", Flag: "b-flag"})
	defaulted := l.Add(Setting{Env: "C_ENV", Flag: "c-flag", Default: "d"})
	secret := l.Add(Setting{Env: "S_ENV", Flag: "s-flag", Secret: true})
	flagOnly := l.Add(Setting{Flag: "only"})
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	for _, s := range l.Settings() {
		fs.Var(s, s.Flag, s.Usage())
	}
	if err := fs.Parse([]string{"--b-flag", "x"}); err != nil {
		t.Fatal(err)
	}
	l.Resolve()
	for s, want := range map[*Setting]string{both: "A_ENV (--a-flag)", flagged: "--b-flag", defaulted: "C_ENV (--c-flag)", secret: "S_ENV", flagOnly: "--only"} {
		if got := s.Name(); got != want {
			t.Errorf("Name of %s/%s = %q, want %q", s.Env, s.Flag, got, want)
		}
	}
	if both.Value() != "from env" || flagged.Value() != "x" || defaulted.Value() != "d" || !both.Given() || defaulted.Given() {
		t.Errorf("values %q %q %q, given %v %v", both.Value(), flagged.Value(), defaulted.Value(), both.Given(), defaulted.Given())
	}
	if secret.String() != "" || !strings.Contains(secret.Usage(), "refused") {
		t.Errorf("a secret shows %q in --help, usage %q", secret.String(), secret.Usage())
	}
}

// TestLoadSections checks that Load produces the types the code takes: the
// provider configurations and a validated retry policy per provider.
func TestLoadSections(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"MEARI_BASE_URL": "https://meari.example/", "MEARI_PARTNER_KEY": "pk", "MEARI_PARTNER_SECRET": "ps", "MEARI_SOURCE_APP": "72",
		"MEARI_SIGN_MODE": "documented", "MEARI_MAX_ATTEMPTS": "3", "RETRY_MAX_AGE": "2h", "WORKER_CONCURRENCY": "20",
	}
	c, err := Load(nil, func(k string) string { return env[k] }, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	wantMeari := &meari.Config{BaseURL: "https://meari.example", PartnerKey: "pk", PartnerSecret: "ps", SourceApp: 72, SignMode: meari.SignDocumented, TimestampFormat: meari.TimestampMillis}
	if !reflect.DeepEqual(c.Meari, wantMeari) || c.PandaPon != nil {
		t.Errorf("Meari = %+v, PandaPon = %+v; want %+v and nil", c.Meari, c.PandaPon, wantMeari)
	}
	if p, ok := c.Retry[tasks.ProviderMeari]; !ok || p.MaxAttempts != 3 || p.MaxAge != 2*time.Hour {
		t.Errorf("Retry = %+v, want meari with 3 attempts and 2h", c.Retry)
	}
	if _, ok := c.Retry[tasks.ProviderPandaPon]; ok {
		t.Errorf("Retry has a policy for the unconfigured PandaPon: %+v", c.Retry)
	}
	if c.Worker.Concurrency != 20 || c.Worker.Dequeuers != DequeuersDefault {
		t.Errorf("Worker = %+v", c.Worker)
	}

	env["MEARI_MAX_ATTEMPTS"] = "501"
	if _, err := Load(nil, func(k string) string { return env[k] }, nil, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "MEARI_MAX_ATTEMPTS (--meari-max-attempts): must be at most 500, got 501") {
		t.Errorf("501 attempts: %v, want the ceiling named", err)
	}
	if retry.MaxAttemptsCeiling != 500 || retry.MaxAttemptsCeiling*2 != tasks.MaxRetry {
		t.Errorf("the ceiling %d is not half of asynq's retry count %d", retry.MaxAttemptsCeiling, tasks.MaxRetry)
	}
}

// TestAlwaysDefaults checks the sandbox's use of the provider sections: an
// account read with no settings at all takes the defaults it was given.
func TestAlwaysDefaults(t *testing.T) {
	t.Parallel()
	l := NewLoader(func(string) string { return "" }, nil)
	ms, ps := AddMeari(l), AddPandaPon(l)
	ms.Always, ps.Always = true, true
	ms.PartnerKey.Default, ms.PartnerSecret.Default, ms.SourceApp.Default = "demo-pk", "demo-ps", "7"
	ps.AccessKey.Default, ps.AccessSecret.Default, ps.UserID.Default = "demo-ak", "demo-as", "demo-u"
	l.Resolve()
	m, _ := ms.Read(l)
	p, _ := ps.Read(l)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	if m == nil || m.PartnerKey != "demo-pk" || m.PartnerSecret != "demo-ps" || m.SourceApp != 7 {
		t.Errorf("Meari = %+v", m)
	}
	if want := (&pandapon.Config{AccessKey: "demo-ak", AccessSecret: "demo-as", UserID: "demo-u"}); !reflect.DeepEqual(p, want) {
		t.Errorf("PandaPon = %+v, want %+v", p, want)
	}
}

// TestRateLimits checks the rate limit settings: a positive number of
// calls per second, a burst defaulting to the rate rounded up, and every
// bad value named.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	base := map[string]string{"MEARI_BASE_URL": "https://m.example", "MEARI_PARTNER_KEY": "pk", "MEARI_PARTNER_SECRET": "ps", "MEARI_SOURCE_APP": "72"}
	tests := []struct {
		name    string
		env     map[string]string
		want    guard.Limit
		wantErr []string
	}{
		{name: "none", want: guard.Limit{}},
		{name: "rate", env: map[string]string{"MEARI_RATE_LIMIT": "20"}, want: guard.Limit{Rate: 20}},
		{name: "fraction and burst", env: map[string]string{"MEARI_RATE_LIMIT": "0.5", "MEARI_RATE_BURST": "3"}, want: guard.Limit{Rate: 0.5, Burst: 3}},
		{name: "bad values at once", env: map[string]string{"MEARI_RATE_LIMIT": "fast", "PANDAPON_RATE_BURST": "2", "BREAKER_FAILURES": "0", "BREAKER_OPEN_TIMEOUT": "1ms"}, wantErr: []string{
			`MEARI_RATE_LIMIT (--meari-rate-limit): must be a number of calls per second, such as 20 or 0.5, got "fast"`,
			"PANDAPON_RATE_BURST (--pandapon-rate-burst): applies only with a rate: set PANDAPON_RATE_LIMIT (--pandapon-rate-limit) too",
			"BREAKER_FAILURES (--breaker-failures): must be at least 1, got 0",
			"BREAKER_OPEN_TIMEOUT (--breaker-open-timeout): must be from 100ms to 1h0m0s, got 1ms",
		}},
		{name: "zero", env: map[string]string{"MEARI_RATE_LIMIT": "0"}, wantErr: []string{"MEARI_RATE_LIMIT (--meari-rate-limit): must be positive (leave it empty for no limit), got 0"}},
		{name: "negative burst", env: map[string]string{"MEARI_RATE_LIMIT": "5", "MEARI_RATE_BURST": "-1"}, wantErr: []string{"MEARI_RATE_BURST (--meari-rate-burst): must be at least 1, got -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, ok := loadWant(t, base, tt.env, nil, tt.wantErr)
			if !ok {
				return
			}
			if got := c.Limits[tasks.ProviderMeari]; got != tt.want {
				t.Errorf("Meari limit %+v, want %+v", got, tt.want)
			}
		})
	}
}

// loadWant loads the worker's configuration from base and env (env wins)
// and args. With wantErr, it checks the error holds each of them and
// returns false; otherwise it fails t on an error.
func loadWant(t *testing.T, base, env map[string]string, args, wantErr []string) (Config, bool) {
	t.Helper()
	all := maps.Clone(base)
	maps.Copy(all, env)
	c, err := Load(args, func(k string) string { return all[k] }, nil, io.Discard)
	if len(wantErr) > 0 {
		for _, w := range wantErr {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("error %v, want %q", err, w)
			}
		}
		return c, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return c, true
}

// TestBreakerAndRetrySettings checks the breaker's ratio settings and the
// shared retry timing: defaults, values, and each bad value named.
func TestBreakerAndRetrySettings(t *testing.T) {
	t.Parallel()
	base := map[string]string{"PANDAPON_BASE_URL": "https://p.example", "PANDAPON_ACCESS_KEY": "ak", "PANDAPON_ACCESS_SECRET": "as", "PANDAPON_USER_ID": "u1"}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		breaker guard.Breaker
		initial time.Duration
		maxIv   time.Duration
		wantErr []string
	}{
		{name: "defaults", breaker: guard.Breaker{Failures: 50, MinCalls: 100, FailureRatio: 0.5, Window: 30 * time.Second, OpenFor: 30 * time.Second, Probes: 5},
			initial: 10 * time.Second, maxIv: 15 * time.Minute},
		{name: "set", env: map[string]string{"BREAKER_MIN_CALLS": "40", "BREAKER_FAILURE_RATIO": "0.8", "RETRY_INITIAL_INTERVAL": "1s"}, args: []string{"--retry-max-interval", "4s", "--breaker-failures", "20"},
			breaker: guard.Breaker{Failures: 20, MinCalls: 40, FailureRatio: 0.8, Window: 30 * time.Second, OpenFor: 30 * time.Second, Probes: 5}, initial: time.Second, maxIv: 4 * time.Second},
		{name: "bad values at once", env: map[string]string{"BREAKER_MIN_CALLS": "0", "BREAKER_FAILURE_RATIO": "half", "RETRY_INITIAL_INTERVAL": "1ms"}, wantErr: []string{
			"BREAKER_MIN_CALLS (--breaker-min-calls): must be at least 1, got 0",
			`BREAKER_FAILURE_RATIO (--breaker-failure-ratio): must be a number, got "half"`,
			"RETRY_INITIAL_INTERVAL (--retry-initial-interval): must be from 100ms to 24h0m0s, got 1ms",
		}},
		{name: "ratio out of range", env: map[string]string{"BREAKER_FAILURE_RATIO": "1.5"}, wantErr: []string{"BREAKER_FAILURE_RATIO (--breaker-failure-ratio): must be from 0.01 to 1, got 1.5"}},
		{name: "max below initial", env: map[string]string{"RETRY_INITIAL_INTERVAL": "1m", "RETRY_MAX_INTERVAL": "30s"}, wantErr: []string{"RETRY_MAX_INTERVAL (--retry-max-interval): must be at least RETRY_INITIAL_INTERVAL (1m0s), got 30s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, ok := loadWant(t, base, tt.env, tt.args, tt.wantErr)
			if !ok {
				return
			}
			if c.Breaker != tt.breaker {
				t.Errorf("breaker %+v, want %+v", c.Breaker, tt.breaker)
			}
			p := c.Retry[tasks.ProviderPandaPon]
			if p.InitialInterval != tt.initial || p.MaxInterval != tt.maxIv {
				t.Errorf("retry intervals %s and %s, want %s and %s", p.InitialInterval, p.MaxInterval, tt.initial, tt.maxIv)
			}
		})
	}
}

// TestRedisForms checks the three ways to name Redis and that each bad
// combination is its own error naming the variable.
func TestRedisForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		files     map[string]string
		wantMode  string
		wantShown string
		wantErr   string
	}{
		{name: "single, the default", wantMode: RedisSingle, wantShown: RedisURLDefault},
		{name: "sentinel", env: map[string]string{"REDIS_SENTINEL_ADDRS": "127.0.0.1:26379, 127.0.0.1:26380", "REDIS_MASTER_NAME": "mymaster", "REDIS_PASSWORD": "pw-1", "REDIS_DB": "2"},
			wantMode: RedisSentinel, wantShown: "sentinel mymaster@127.0.0.1:26379,127.0.0.1:26380/2"},
		{name: "sentinel with its own password from a file", env: map[string]string{"REDIS_SENTINEL_ADDRS": "s1:26379", "REDIS_MASTER_NAME": "m", "REDIS_SENTINEL_PASSWORD_FILE": "/sp"},
			files: map[string]string{"/sp": "pw-2\n"}, wantMode: RedisSentinel, wantShown: "sentinel m@s1:26379/0"},
		{name: "sentinel and cluster", env: map[string]string{"REDIS_SENTINEL_ADDRS": "s1:26379", "REDIS_MASTER_NAME": "m", "REDIS_CLUSTER_ADDRS": "c1:7000"},
			wantErr: "REDIS_SENTINEL_ADDRS (--redis-sentinel-addrs): cannot be combined with REDIS_CLUSTER_ADDRS (--redis-cluster-addrs): choose Sentinel or Cluster"},
		{name: "master name without sentinels", env: map[string]string{"REDIS_MASTER_NAME": "m"},
			wantErr: "REDIS_SENTINEL_ADDRS (--redis-sentinel-addrs): is required with REDIS_MASTER_NAME (--redis-master-name)"},
		{name: "sentinels without a master name", env: map[string]string{"REDIS_SENTINEL_ADDRS": "s1:26379"},
			wantErr: "REDIS_MASTER_NAME (--redis-master-name): is required with REDIS_SENTINEL_ADDRS (--redis-sentinel-addrs)"},
		{name: "a bad sentinel address", env: map[string]string{"REDIS_SENTINEL_ADDRS": "s1:26379,s2", "REDIS_MASTER_NAME": "m"},
			wantErr: `REDIS_SENTINEL_ADDRS (--redis-sentinel-addrs): each address must be host:port with a port from 1 to 65535, got "s2"`},
		{name: "URL and sentinels", env: map[string]string{"REDIS_URL": "redis://r:6379/0", "REDIS_SENTINEL_ADDRS": "s1:26379", "REDIS_MASTER_NAME": "m"},
			wantErr: "REDIS_URL (--redis-url): cannot be combined with REDIS_SENTINEL_ADDRS (--redis-sentinel-addrs)"},
		{name: "a database on a cluster", env: map[string]string{"REDIS_CLUSTER_ADDRS": "c1:7000", "REDIS_DB": "3"},
			wantErr: `REDIS_DB (--redis-db): a Redis Cluster has only database 0, got "3"`},
		{name: "cluster", env: map[string]string{"REDIS_CLUSTER_ADDRS": "c1:7000, c2:7000", "REDIS_PASSWORD": "pw-4"},
			wantMode: RedisCluster, wantShown: "cluster c1:7000,c2:7000"},
		{name: "cluster with TLS and a CA", env: map[string]string{"REDIS_CLUSTER_ADDRS": "c1:7000", "REDIS_TLS": "true", "REDIS_TLS_CA_FILE": "/ca.pem"},
			files: map[string]string{"/ca.pem": testCAPEM}, wantMode: RedisCluster, wantShown: "cluster (tls) c1:7000"},
		{name: "sentinel with TLS", env: map[string]string{"REDIS_SENTINEL_ADDRS": "s1:26379", "REDIS_MASTER_NAME": "m", "REDIS_TLS": "1"},
			wantMode: RedisSentinel, wantShown: "sentinel (tls) m@s1:26379/0"},
		{name: "rediss with a CA", env: map[string]string{"REDIS_URL": "rediss://r:6380/0", "REDIS_TLS_CA_FILE": "/ca.pem"},
			files: map[string]string{"/ca.pem": testCAPEM}, wantMode: RedisSingle, wantShown: "rediss://r:6380/0"},
		{name: "a cluster address without a port", env: map[string]string{"REDIS_CLUSTER_ADDRS": "c1:7000,c2"},
			wantErr: `REDIS_CLUSTER_ADDRS (--redis-cluster-addrs): each address must be host:port with a port from 1 to 65535, got "c2"`},
		{name: "a cluster with no address", env: map[string]string{"REDIS_CLUSTER_ADDRS": " , "},
			wantErr: `REDIS_CLUSTER_ADDRS (--redis-cluster-addrs): must list at least one host:port`},
		{name: "TLS with a URL", env: map[string]string{"REDIS_TLS": "true"},
			wantErr: "REDIS_TLS (--redis-tls): applies only with REDIS_SENTINEL_ADDRS (--redis-sentinel-addrs) or REDIS_CLUSTER_ADDRS (--redis-cluster-addrs): for one server, give rediss:// in REDIS_URL"},
		{name: "TLS not a boolean", env: map[string]string{"REDIS_CLUSTER_ADDRS": "c1:7000", "REDIS_TLS": "yes please"},
			wantErr: "REDIS_TLS (--redis-tls): "},
		{name: "a CA without TLS", env: map[string]string{"REDIS_CLUSTER_ADDRS": "c1:7000", "REDIS_TLS_CA_FILE": "/ca.pem"},
			files: map[string]string{"/ca.pem": testCAPEM}, wantErr: "REDIS_TLS_CA_FILE (--redis-tls-ca-file): applies only with TLS: rediss:// in REDIS_URL, or REDIS_TLS=true"},
		{name: "a CA file that is not PEM", env: map[string]string{"REDIS_URL": "rediss://r:6380/0", "REDIS_TLS_CA_FILE": "/ca.pem"},
			files: map[string]string{"/ca.pem": "not a certificate"}, wantErr: "REDIS_TLS_CA_FILE (--redis-tls-ca-file): holds no PEM certificate: /ca.pem"},
		{name: "a CA file missing", env: map[string]string{"REDIS_URL": "rediss://r:6380/0", "REDIS_TLS_CA_FILE": "/nope.pem"},
			wantErr: "REDIS_TLS_CA_FILE (--redis-tls-ca-file): cannot be read: open /nope.pem: no such file"},
		{name: "a database with a URL", env: map[string]string{"REDIS_DB": "1"},
			wantErr: "REDIS_DB (--redis-db): applies only with REDIS_SENTINEL_ADDRS (--redis-sentinel-addrs): give the database in REDIS_URL's path"},
		{name: "a sentinel password alone", env: map[string]string{"REDIS_SENTINEL_PASSWORD": "pw-3"},
			wantErr: "REDIS_SENTINEL_PASSWORD: applies only with REDIS_SENTINEL_ADDRS (--redis-sentinel-addrs)"},
		{name: "a sentinel database out of range", env: map[string]string{"REDIS_SENTINEL_ADDRS": "s1:26379", "REDIS_MASTER_NAME": "m", "REDIS_DB": "16"},
			wantErr: "REDIS_DB (--redis-db): must be at most 15, got 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := NewLoader(func(k string) string { return tt.env[k] }, func(name string) ([]byte, error) {
				if v, ok := tt.files[name]; ok {
					return []byte(v), nil
				}
				return nil, fmt.Errorf("open %s: no such file", name)
			})
			rs := AddRedis(l)
			l.Resolve()
			c := rs.Read(l)
			err := l.Err()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "pw-") {
					t.Errorf("the error shows a password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Mode != tt.wantMode || c.Shown != tt.wantShown || !c.Valid() || strings.Contains(c.Shown, "pw-") {
				t.Errorf("conn %s %q (valid %v), want %s %q", c.Mode, c.Shown, c.Valid(), tt.wantMode, tt.wantShown)
			}
			if c.Mode == RedisSentinel && (c.Failover.MasterName == "" || len(c.Failover.SentinelAddrs) == 0) {
				t.Errorf("failover options %+v", c.Failover)
			}
			if c.Mode == RedisCluster && len(c.Cluster.Addrs) == 0 {
				t.Errorf("cluster options %+v", c.Cluster)
			}
			var tc *tls.Config
			switch c.Mode {
			case RedisSingle:
				tc = c.Single.TLSConfig
			case RedisSentinel:
				tc = c.Failover.TLSConfig
			case RedisCluster:
				tc = c.Cluster.TLSConfig
			}
			wantTLS := tt.env["REDIS_TLS"] != "" || strings.HasPrefix(tt.env["REDIS_URL"], "rediss://")
			if (tc != nil) != wantTLS || (tc != nil && tc.MinVersion < tls.VersionTLS12) {
				t.Errorf("TLS config %+v, want TLS %v", tc, wantTLS)
			}
			if wantCA := tt.env["REDIS_TLS_CA_FILE"] != ""; tc != nil && (tc.RootCAs != nil) != wantCA {
				t.Errorf("TLS root CAs set %v, want %v", tc.RootCAs != nil, wantCA)
			}
		})
	}
}

// testCAPEM is a self-signed CA certificate, made for the test run.
var testCAPEM = func() string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}()

// TestCompactAfter checks TASK_COMPACT_AFTER: its default, 0s allowed,
// and bad values named.
func TestCompactAfter(t *testing.T) {
	t.Parallel()
	base := map[string]string{"PANDAPON_BASE_URL": "https://p.example", "PANDAPON_ACCESS_KEY": "ak", "PANDAPON_ACCESS_SECRET": "as", "PANDAPON_USER_ID": "u1"}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    time.Duration
		wantErr []string
	}{
		{name: "default", want: 10 * time.Minute},
		{name: "seconds", env: map[string]string{"TASK_COMPACT_AFTER": "5s"}, want: 5 * time.Second},
		{name: "at once", args: []string{"--task-compact-after", "0s"}, want: 0},
		{name: "negative", env: map[string]string{"TASK_COMPACT_AFTER": "-1s"}, wantErr: []string{"TASK_COMPACT_AFTER (--task-compact-after): must not be negative, got -1s"}},
		{name: "past the retention", env: map[string]string{"TASK_COMPACT_AFTER": "200h"}, wantErr: []string{"TASK_COMPACT_AFTER (--task-compact-after): must be from 0s to 168h0m0s, got 200h0m0s"}},
		{name: "not a duration", env: map[string]string{"TASK_COMPACT_AFTER": "10"}, wantErr: []string{`TASK_COMPACT_AFTER (--task-compact-after): must be a duration such as 30s or 2m, got "10"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, ok := loadWant(t, base, tt.env, tt.args, tt.wantErr)
			if ok && c.Worker.CompactAfter != tt.want {
				t.Errorf("CompactAfter %s, want %s", c.Worker.CompactAfter, tt.want)
			}
		})
	}
}
