package main

import (
	"strings"
	"testing"

	"github.com/cancelworker/cancelworker/internal/workertest"
)

// TestRedisUnreachable checks that every command fails with exit 1 when
// Redis does not answer, naming host and port but never the password.
func TestRedisUnreachable(t *testing.T) {
	t.Parallel()
	const password = "hunter2-a7c3"
	tests := []struct {
		name string
		args []string
	}{
		{name: "meari", args: meariArgs()},
		{name: "pandapon", args: []string{"pandapon", "--order-id", "2542285634920880794"}},
		{name: "status", args: []string{"status", "pandapon", "2542285634920880794"}},
		{name: "file", args: []string{"file", "-"}},
		{name: "dlq list", args: []string{"dlq", "list"}},
		{name: "dlq show", args: []string{"dlq", "show", "pandapon:1"}},
		{name: "dlq requeue", args: []string{"dlq", "requeue", "--all"}},
		{name: "dlq purge", args: []string{"dlq", "purge", "--all", "--yes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := workertest.ClosedAddr(t)
			url := "redis://user:" + password + "@" + addr + "/3"
			for _, how := range []struct {
				name  string
				env   map[string]string
				args  []string
				shown string
			}{
				{name: "flag, password in the environment", env: map[string]string{envSourceApp: "72", "REDIS_PASSWORD": password},
					args: append([]string{"--redis-url", "redis://user@" + addr + "/3"}, tt.args...), shown: "redis://user@" + addr + "/3"},
				{name: "environment", env: map[string]string{envSourceApp: "72", "REDIS_URL": url}, args: tt.args, shown: "redis://user:xxxxx@" + addr + "/3"},
			} {
				r := execute(t, how.env, how.args...)
				if r.code != exitFailure {
					t.Fatalf("%s: want exit %d, got %s", how.name, exitFailure, r)
				}
				if !strings.Contains(r.stderr, addr) || !strings.Contains(r.stderr, "unreachable") {
					t.Errorf("%s: stderr: want %s named as unreachable, got %q", how.name, addr, r.stderr)
				}
				if !strings.Contains(r.stderr, how.shown) {
					t.Errorf("%s: stderr: want the redacted URL, got %q", how.name, r.stderr)
				}
				if strings.Contains(r.stdout+r.stderr, password) {
					t.Errorf("%s: output shows the password:\n%s", how.name, r)
				}
			}

			r := execute(t, map[string]string{envSourceApp: "72", "REDIS_URL": url}, append([]string{"--json"}, tt.args...)...)
			if r.code != exitFailure {
				t.Fatalf("--json: want exit %d, got %s", exitFailure, r)
			}
			var out errorOutput
			decodeJSON(t, r.stdout, &out)
			if out.ExitCode != exitFailure || !strings.Contains(out.Error, addr) || strings.Contains(r.stdout, password) {
				t.Errorf("--json: want exit_code 1 and %s named without the password, got %s", addr, r.stdout)
			}
		})
	}
}
