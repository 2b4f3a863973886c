package config

import (
	"errors"
	"io"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9/maintnotifications"
)

// pandapon is a complete PandaPon configuration, so that Load has a
// provider and only the settings under test can fail.
var pandaponEnv = map[string]string{
	"PANDAPON_BASE_URL": "https://pandapon.example", "PANDAPON_ACCESS_KEY": "k", "PANDAPON_ACCESS_SECRET": "s", "PANDAPON_USER_ID": "u",
}

func load(t *testing.T, env map[string]string, args []string, files map[string]string) (Config, error) {
	t.Helper()
	all := map[string]string{}
	for k, v := range pandaponEnv {
		all[k] = v
	}
	for k, v := range env {
		all[k] = v
	}
	readFile := func(name string) ([]byte, error) {
		if v, ok := files[name]; ok {
			return []byte(v), nil
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return Load(args, func(k string) string { return all[k] }, readFile, io.Discard)
}

func TestAdmin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		files map[string]string
		want  Admin
		auth  bool
	}{
		{name: "default", want: Admin{Addr: AdminAddrDefault}},
		{name: "port zero", env: map[string]string{"ADMIN_ADDR": "127.0.0.1:0"}, want: Admin{Addr: "127.0.0.1:0"}},
		{name: "IPv6 loopback", env: map[string]string{"ADMIN_ADDR": "[::1]:9090"}, want: Admin{Addr: "[::1]:9090"}},
		{name: "localhost", env: map[string]string{"ADMIN_ADDR": "localhost:9090"}, want: Admin{Addr: "localhost:9090"}},
		{name: "off", env: map[string]string{"ADMIN_ADDR": "off"}, want: Admin{}},
		{name: "flag wins", env: map[string]string{"ADMIN_ADDR": "0.0.0.0:1"}, args: []string{"--admin-addr", "127.0.0.1:9"}, want: Admin{Addr: "127.0.0.1:9"}},
		{name: "public with password", env: map[string]string{"ADMIN_ADDR": ":8080", "ADMIN_USER": "ops", "ADMIN_PASSWORD": "pw"},
			want: Admin{Addr: ":8080", User: "ops", Password: "pw"}, auth: true},
		{name: "public with password file", env: map[string]string{"ADMIN_ADDR": "10.0.0.5:8080", "ADMIN_USER": "ops", "ADMIN_PASSWORD_FILE": "/run/secrets/admin"},
			files: map[string]string{"/run/secrets/admin": "from-file\n"}, want: Admin{Addr: "10.0.0.5:8080", User: "ops", Password: "from-file"}, auth: true},
		{name: "loopback with credentials", env: map[string]string{"ADMIN_USER": "ops", "ADMIN_PASSWORD": "pw"},
			want: Admin{Addr: AdminAddrDefault, User: "ops", Password: "pw"}, auth: true},
		{name: "read-only", env: map[string]string{"ADMIN_READONLY": "true"}, want: Admin{Addr: AdminAddrDefault, ReadOnly: true}},
		{name: "read-only flag", args: []string{"--admin-readonly", "1"}, want: Admin{Addr: AdminAddrDefault, ReadOnly: true}},
		{name: "allowed hosts", env: map[string]string{"ADMIN_ALLOWED_HOSTS": "Admin.Example.com, 10.0.0.5"},
			want: Admin{Addr: AdminAddrDefault, AllowedHosts: []string{"admin.example.com", "10.0.0.5"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := load(t, tt.env, tt.args, tt.files)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(c.Admin, tt.want) {
				t.Errorf("Admin = %+v, want %+v", c.Admin, tt.want)
			}
			if c.Admin.Addr != "" && c.Admin.AuthRequired() != tt.auth {
				t.Errorf("AuthRequired = %v, want %v", c.Admin.AuthRequired(), tt.auth)
			}
		})
	}
}

func TestAdminErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{name: "public without credentials", env: map[string]string{"ADMIN_ADDR": "0.0.0.0:8080"},
			want: []string{`ADMIN_ADDR (--admin-addr): "0.0.0.0:8080" is not a loopback address`, "ADMIN_USER (--admin-user)", "ADMIN_PASSWORD", "ADMIN_PASSWORD_FILE"}},
		{name: "empty host is every interface", env: map[string]string{"ADMIN_ADDR": ":8080"}, want: []string{"is not a loopback address"}},
		{name: "host name is not loopback", env: map[string]string{"ADMIN_ADDR": "admin.internal:8080"}, want: []string{"is not a loopback address"}},
		{name: "user without password", env: map[string]string{"ADMIN_USER": "ops"}, want: []string{"ADMIN_PASSWORD: required when ADMIN_USER (--admin-user) is set"}},
		{name: "password without user", env: map[string]string{"ADMIN_ADDR": ":1", "ADMIN_PASSWORD": "hunter2"}, want: []string{"ADMIN_USER (--admin-user): required when ADMIN_PASSWORD is set"}},
		{name: "user with a colon", env: map[string]string{"ADMIN_USER": "a:b", "ADMIN_PASSWORD": "hunter2"}, want: []string{"ADMIN_USER (--admin-user): must not contain ':'"}},
		{name: "password and its file", env: map[string]string{"ADMIN_USER": "ops", "ADMIN_PASSWORD": "hunter2", "ADMIN_PASSWORD_FILE": "/x"},
			want: []string{"ADMIN_PASSWORD: set either it or ADMIN_PASSWORD_FILE (--admin-password-file), not both"}},
		{name: "missing password file", env: map[string]string{"ADMIN_USER": "ops", "ADMIN_PASSWORD_FILE": "/nonexistent"},
			want: []string{"ADMIN_PASSWORD_FILE (--admin-password-file): cannot read the file"}},
		{name: "no port", env: map[string]string{"ADMIN_ADDR": "127.0.0.1"}, want: []string{"ADMIN_ADDR (--admin-addr): must be host:port"}},
		{name: "bad port", env: map[string]string{"ADMIN_ADDR": "127.0.0.1:http-alt"}, want: []string{"ADMIN_ADDR (--admin-addr): port must be a number from 0 to 65535"}},
		{name: "port too large", env: map[string]string{"ADMIN_ADDR": "127.0.0.1:70000"}, want: []string{"port must be a number from 0 to 65535"}},
		{name: "read-only not a bool", env: map[string]string{"ADMIN_READONLY": "yes please"}, want: []string{`ADMIN_READONLY (--admin-readonly): must be true or false, got "yes please"`}},
		{name: "unknown HTTP client", env: map[string]string{"UPSTREAM_HTTP_CLIENT": "curl"}, want: []string{`UPSTREAM_HTTP_CLIENT (--upstream-http-client): must be fasthttp or net/http, got "curl"`}},
		{name: "all reported at once", env: map[string]string{"ADMIN_READONLY": "maybe", "ADMIN_ADDR": "0.0.0.0:1", "LOG_FORMAT": "xml"},
			want: []string{"ADMIN_READONLY (--admin-readonly)", "ADMIN_ADDR (--admin-addr)", "LOG_FORMAT (--log-format)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tt.env, nil, nil)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			var ue *UsageError
			if errors.As(err, &ue) {
				t.Fatalf("a usage error, want a validation error: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error echoes the password:\n%v", err)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		addr string
		want bool
	}{
		{name: "IPv4 loopback", addr: "127.0.0.1:8080", want: true},
		{name: "other 127/8 address", addr: "127.1.2.3:80", want: true},
		{name: "IPv6 loopback", addr: "[::1]:80", want: true},
		{name: "localhost", addr: "LocalHost:80", want: true},
		{name: "empty host", addr: ":80"},
		{name: "IPv4 wildcard", addr: "0.0.0.0:80"},
		{name: "IPv6 wildcard", addr: "[::]:80"},
		{name: "private address", addr: "10.1.2.3:80"},
		{name: "host name", addr: "localhost.example:80"},
		{name: "no port", addr: "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := IsLoopback(tt.addr); got != tt.want {
				t.Errorf("IsLoopback(%q) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestRedis(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		env          map[string]string
		args         []string
		files        map[string]string
		wantAddr     string
		wantPassword string
		wantShown    string
		wantErr      string
	}{
		{name: "default", wantAddr: "127.0.0.1:6379", wantShown: RedisURLDefault},
		{name: "password in the URL from the environment", env: map[string]string{"REDIS_URL": "redis://:pw-1@redis:6379/2"},
			wantAddr: "redis:6379", wantPassword: "pw-1", wantShown: "redis://:xxxxx@redis:6379/2"},
		{name: "password file", env: map[string]string{"REDIS_URL": "redis://redis:6379/0", "REDIS_PASSWORD_FILE": "/run/secrets/redis"},
			files: map[string]string{"/run/secrets/redis": "pw-2\n"}, wantAddr: "redis:6379", wantPassword: "pw-2", wantShown: "redis://redis:6379/0"},
		{name: "password variable, URL flag without one", env: map[string]string{"REDIS_PASSWORD": "pw-3"}, args: []string{"--redis-url", "rediss://cache:6380/1"},
			wantAddr: "cache:6380", wantPassword: "pw-3", wantShown: "rediss://cache:6380/1"},
		{name: "password file flag", args: []string{"--redis-password-file", "/pw"}, files: map[string]string{"/pw": "pw-4"},
			wantAddr: "127.0.0.1:6379", wantPassword: "pw-4", wantShown: RedisURLDefault},
		{name: "password in the URL flag", args: []string{"--redis-url", "redis://:pw-5@redis:6379/0"}, wantErr: "--redis-url: must not hold a password on the command line"},
		{name: "password flag", args: []string{"--redis-password", "pw-6"}, wantErr: "--redis-password: secrets are not taken on the command line"},
		{name: "password with a slash, not percent-encoded", env: map[string]string{"REDIS_URL": "redis://:pw-ab/cd+e==@redis:6379/0"}, wantErr: "percent-encode any /, ?, # or @"},
		{name: "password with a slash, parsed as a path", env: map[string]string{"REDIS_URL": "redis://:123/pw-secretpart@redis:6379/0"}, wantErr: "percent-encode"},
		{name: "password with a hash", env: map[string]string{"REDIS_URL": "rediss://u:pw-a#b@redis:6379/0"}, wantErr: "percent-encode"},
		{name: "password percent-encoded", env: map[string]string{"REDIS_URL": "redis://:pw-ab%2Fcd@redis:6379/0"},
			wantAddr: "redis:6379", wantPassword: "pw-ab/cd", wantShown: "redis://:xxxxx@redis:6379/0"},
		{name: "password in the user field, from the environment", env: map[string]string{"REDIS_URL": "redis://pw-7@redis:6379/0"},
			wantAddr: "redis:6379", wantShown: "redis://xxxxx@redis:6379/0"},
		{name: "password in the user field of the URL flag", args: []string{"--redis-url", "redis://pw-8@redis:6379/0"},
			wantErr: "--redis-url: must not hold a user name without a password (redis://PASSWORD@host is a password to redis-cli) on the command line"},
		{name: "user name in the URL flag, password from a file", args: []string{"--redis-url", "redis://alice@redis:6379/0", "--redis-password-file", "/pw"}, files: map[string]string{"/pw": "pw-9"},
			wantAddr: "redis:6379", wantPassword: "pw-9", wantShown: "redis://alice@redis:6379/0"},
		{name: "password in the user field, bad database", env: map[string]string{"REDIS_URL": "redis://pw-10@redis:6379/x"}, wantErr: `invalid database number: "x"`},
		{name: "a one-letter user name, redacted only as a URL's", env: map[string]string{"REDIS_URL": "redis://a@redis:6379/x"}, wantErr: `invalid database number: "x"`},
		{name: "a base URL that does not parse, with a password in it", env: map[string]string{"MEARI_BASE_URL": "https://pw-12@meari example.com"}, wantErr: "must be an http(s) URL without credentials (it holds an '@', not shown)"},
		{name: "password in the user field of a base URL", env: map[string]string{"MEARI_BASE_URL": "ftp://pw-11@meari.example"}, wantErr: `must start with http:// or https://, got "ftp://xxxxx@meari.example"`},
		{name: "empty password file", env: map[string]string{"REDIS_PASSWORD_FILE": "/pw"}, files: map[string]string{"/pw": "\n"}, wantErr: "REDIS_PASSWORD_FILE (--redis-password-file): the file is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := load(t, tt.env, tt.args, tt.files)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load error = %v, want %q", err, tt.wantErr)
				}
				for _, part := range []string{"pw-", "secretpart", "cd+e"} {
					if strings.Contains(err.Error(), part) {
						t.Errorf("the error shows part of the password (%q): %v", part, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if o := c.Redis.Single; o.Addr != tt.wantAddr || o.Password != tt.wantPassword || c.Redis.Shown != tt.wantShown {
				t.Errorf("Redis = %s, password %q, shown %s; want %s, %q, %s", o.Addr, o.Password, c.Redis.Shown, tt.wantAddr, tt.wantPassword, tt.wantShown)
			}
		})
	}
}

// TestMaintNotificationsOff: the clients for one server and for a
// Cluster do not set up go-redis's maintenance notifications (Redis
// Enterprise's), which are on in go-redis's default (auto) mode. go-redis
// turns them off for Sentinel clients itself.
func TestMaintNotificationsOff(t *testing.T) {
	c, err := load(t, map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := c.Redis.Single.MaintNotificationsConfig; m == nil || m.Mode != maintnotifications.ModeDisabled {
		t.Errorf("one server: maintenance notifications %+v, want mode disabled", m)
	}
	c, err = load(t, map[string]string{"REDIS_CLUSTER_ADDRS": "127.0.0.1:7000,127.0.0.1:7001"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := c.Redis.Cluster.MaintNotificationsConfig; m == nil || m.Mode != maintnotifications.ModeDisabled {
		t.Errorf("Cluster: maintenance notifications %+v, want mode disabled", m)
	}
}

// TestPrefetch: WORKER_PREFETCH is a fifth of the concurrency, rounded up,
// at most 10, unless it is given; 0 turns it off.
func TestPrefetch(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want int
	}{
		{env: nil, want: 2}, // the default concurrency, 10
		{env: map[string]string{"WORKER_CONCURRENCY": "1"}, want: 1},
		{env: map[string]string{"WORKER_CONCURRENCY": "41"}, want: 9},
		{env: map[string]string{"WORKER_CONCURRENCY": "50"}, want: 10},
		{env: map[string]string{"WORKER_CONCURRENCY": "200", "WORKER_PREFETCH": " auto "}, want: 10},
		{env: map[string]string{"WORKER_CONCURRENCY": "200", "WORKER_PREFETCH": "40"}, want: 40},
		{env: map[string]string{"WORKER_CONCURRENCY": "50", "WORKER_PREFETCH": "0"}, want: 0},
		{env: map[string]string{"WORKER_CONCURRENCY": "50", "WORKER_PREFETCH": "3"}, want: 3},
	}
	for _, tt := range tests {
		c, err := load(t, tt.env, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Worker.Prefetch != tt.want {
			t.Errorf("%v: Prefetch %d, want %d", tt.env, c.Worker.Prefetch, tt.want)
		}
	}
}

func TestDequeuersAndPollInterval(t *testing.T) {
	tests := []struct {
		name          string
		env           map[string]string
		wantDequeuers int
		wantPoll      time.Duration
	}{
		{name: "defaults", wantDequeuers: DequeuersDefault, wantPoll: PollIntervalDefault},
		{name: "the default follows a concurrency below it", env: map[string]string{"WORKER_CONCURRENCY": "1"}, wantDequeuers: 1, wantPoll: PollIntervalDefault},
		{name: "set", env: map[string]string{"WORKER_CONCURRENCY": "40", "WORKER_DEQUEUERS": "4", "WORKER_POLL_INTERVAL": "1s"}, wantDequeuers: 4, wantPoll: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, tt.env, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if w := c.Worker; w.Dequeuers != tt.wantDequeuers || w.PollInterval != tt.wantPoll {
				t.Errorf("Dequeuers %d, PollInterval %s; want %d, %s", w.Dequeuers, w.PollInterval, tt.wantDequeuers, tt.wantPoll)
			}
		})
	}
}
