package config

import (
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"
)

// pandapon is a complete PandaPon configuration, so that Load has a
// provider and only the settings under test can fail.
var pandapon = map[string]string{
	"PANDAPON_BASE_URL": "https://pandapon.example", "PANDAPON_ACCESS_KEY": "k", "PANDAPON_ACCESS_SECRET": "s", "PANDAPON_USER_ID": "u",
}

func load(t *testing.T, env map[string]string, args []string, files map[string]string) (Config, error) {
	t.Helper()
	all := map[string]string{}
	for k, v := range pandapon {
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := load(t, tt.env, tt.args, tt.files)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.Admin != tt.want {
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
			want: []string{`ADMIN_ADDR (--admin-addr): "0.0.0.0:8080" is not a loopback address`, "ADMIN_USER (--admin-user)", "ADMIN_PASSWORD (--admin-password)", "ADMIN_PASSWORD_FILE"}},
		{name: "empty host is every interface", env: map[string]string{"ADMIN_ADDR": ":8080"}, want: []string{"is not a loopback address"}},
		{name: "host name is not loopback", env: map[string]string{"ADMIN_ADDR": "admin.internal:8080"}, want: []string{"is not a loopback address"}},
		{name: "user without password", env: map[string]string{"ADMIN_USER": "ops"}, want: []string{"ADMIN_PASSWORD (--admin-password): required when ADMIN_USER (--admin-user) is set"}},
		{name: "password without user", env: map[string]string{"ADMIN_ADDR": ":1", "ADMIN_PASSWORD": "hunter2"}, want: []string{"ADMIN_USER (--admin-user): required when ADMIN_PASSWORD (--admin-password) is set"}},
		{name: "user with a colon", env: map[string]string{"ADMIN_USER": "a:b", "ADMIN_PASSWORD": "hunter2"}, want: []string{"ADMIN_USER (--admin-user): must not contain ':'"}},
		{name: "password and its file", env: map[string]string{"ADMIN_USER": "ops", "ADMIN_PASSWORD": "hunter2", "ADMIN_PASSWORD_FILE": "/x"},
			want: []string{"ADMIN_PASSWORD (--admin-password): set either it or ADMIN_PASSWORD_FILE"}},
		{name: "missing password file", env: map[string]string{"ADMIN_USER": "ops", "ADMIN_PASSWORD_FILE": "/nonexistent"},
			want: []string{"ADMIN_PASSWORD_FILE (--admin-password-file): cannot read the file"}},
		{name: "no port", env: map[string]string{"ADMIN_ADDR": "127.0.0.1"}, want: []string{"ADMIN_ADDR (--admin-addr): must be host:port"}},
		{name: "bad port", env: map[string]string{"ADMIN_ADDR": "127.0.0.1:http-alt"}, want: []string{"ADMIN_ADDR (--admin-addr): port must be a number from 0 to 65535"}},
		{name: "port too large", env: map[string]string{"ADMIN_ADDR": "127.0.0.1:70000"}, want: []string{"port must be a number from 0 to 65535"}},
		{name: "read-only not a bool", env: map[string]string{"ADMIN_READONLY": "yes please"}, want: []string{`ADMIN_READONLY (--admin-readonly): must be true or false, got "yes please"`}},
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
