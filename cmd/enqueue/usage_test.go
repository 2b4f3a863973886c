package main

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/cancelworker/cancelworker/internal/workertest"
)

// TestUsageErrors runs every invalid command line against a Redis URL that
// nothing listens on: a usage error must be found (exit 2) before any
// connection is tried (which would exit 1).
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	const password = "pw-9f8e7d"
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name string
		args []string
		env  map[string]string
		// ownURL: the case sets the Redis URL itself.
		ownURL bool
		// want are the problems, in order, as "flag: problem" prefixes; for
		// errors found by the flag parser, wantText is in stderr instead.
		want     []string
		wantText string
	}{
		// meari
		{name: "meari, every required flag missing", args: []string{"meari"}, env: map[string]string{}, want: []string{
			"--source-app: is required (or set MEARI_SOURCE_APP)",
			"--order-type: is required",
			"--user-account: is required",
			"--order-num: is required",
		}},
		{name: "meari, order type out of range", args: meariArgs("--order-type", "7"), want: []string{"--order-type: must be 1 (cloud), 2 (ai) or 3 (flow4g), got 7"}},
		{name: "meari, order type zero", args: meariArgs("--order-type", "0"), want: []string{"--order-type: must be 1 (cloud), 2 (ai) or 3 (flow4g), got 0"}},
		{name: "meari, order type not a number", args: meariArgs("--order-type", "cloud"), want: []string{`--order-type: must be 1 (cloud), 2 (ai) or 3 (flow4g), got "cloud"`}},
		{name: "meari, source app not a number", args: meariArgs("--source-app", "7x"), want: []string{`--source-app: must be an integer, got "7x"`}},
		{name: "meari, source app zero", args: meariArgs("--source-app", "0"), want: []string{"--source-app: must be a positive integer, got 0"}},
		{name: "meari, source app from the environment not a number", args: meariArgs(), env: map[string]string{envSourceApp: "x"}, want: []string{`MEARI_SOURCE_APP (--source-app): must be an integer, got "x"`}},
		{name: "meari, source app from the environment negative", args: meariArgs(), env: map[string]string{envSourceApp: "-1"}, want: []string{"MEARI_SOURCE_APP (--source-app): must be a positive integer, got -1"}},
		{name: "meari, user account padded", args: meariArgs("--user-account", " u@x.com"), want: []string{"--user-account: must not start or end with white space"}},
		{name: "meari, user account too long", args: meariArgs("--user-account", long(129)), want: []string{"--user-account: must be at most 128 bytes, got 129"}},
		{name: "meari, user account control character", args: meariArgs("--user-account", "u\x1bx"), want: []string{"--user-account: must not contain control characters"}},
		{name: "meari, order number empty", args: meariArgs("--order-num", ""), want: []string{"--order-num: is required"}},
		{name: "meari, order number with a colon", args: meariArgs("--order-num", "A:1"), want: []string{"--order-num: must not contain ':'"}},
		{name: "meari, order number too long", args: meariArgs("--order-num", long(65)), want: []string{"--order-num: must be at most 64 bytes, got 65"}},
		{name: "meari, every field invalid at once", args: meariArgs("--source-app", "-3", "--order-type", "9", "--user-account", "u ", "--order-num", "A:1"), want: []string{
			"--order-type: must be 1 (cloud), 2 (ai) or 3 (flow4g), got 9",
			"--source-app: must be a positive integer, got -3",
			"--user-account: must not start or end with white space",
			"--order-num: must not contain ':'",
		}},
		{name: "meari, bad boolean", args: meariArgs("--force=maybe"), wantText: `invalid argument "maybe" for "--force" flag`},
		{name: "meari, unknown flag", args: meariArgs("--order-nmu", "1"), wantText: "unknown flag: --order-nmu"},
		{name: "meari, stray argument", args: meariArgs("extra"), wantText: `unknown command "extra" for "enqueue meari"`},

		// pandapon
		{name: "pandapon, order ID missing", args: []string{"pandapon"}, want: []string{"--order-id: is required"}},
		{name: "pandapon, order ID in float notation", args: []string{"pandapon", "--order-id", "2.542285634920881e18"}, want: []string{`--order-id: must be a positive integer of decimal digits, got "2.542285634920881e18"`}},
		{name: "pandapon, order ID with a decimal point", args: []string{"pandapon", "--order-id", "2542285634920880794.0"}, want: []string{`--order-id: must be a positive integer of decimal digits`}},
		{name: "pandapon, order ID over 64 bits", args: []string{"pandapon", "--order-id", "99999999999999999999"}, want: []string{`--order-id: must fit in a signed 64-bit integer, got "99999999999999999999"`}},
		{name: "pandapon, order ID zero", args: []string{"pandapon", "--order-id", "0"}, want: []string{"--order-id: must be a positive integer, got 0"}},
		{name: "pandapon, order ID negative", args: []string{"pandapon", "--order-id=-5"}, want: []string{`--order-id: must be a positive integer of decimal digits, got "-5"`}},
		{name: "meari, order number with a bidi override", args: meariArgs("--order-num", "N\u202e1"), want: []string{"--order-num: must not contain bidirectional or line-separator characters, got U+202E"}},
		{name: "meari, order number not UTF-8", args: meariArgs("--order-num", "N\xff1"), want: []string{"--order-num: must be valid UTF-8: byte 0xFF at offset 1 is not"}},
		{name: "meari, user account with a replacement character", args: meariArgs("--user-account", "a\ufffd@b.c"), want: []string{"--user-account: must not contain U+FFFD, the replacement character"}},
		{name: "pandapon, remark cut inside a character", args: []string{"pandapon", "--order-id", "1", "--remark", "caf\xc3"}, want: []string{"--remark: must be valid UTF-8: byte 0xC3 at offset 3 is not"}},
		{name: "status, meari order not UTF-8", args: []string{"status", "meari", "A\xfe"}, want: []string{"<order>: must be valid UTF-8: byte 0xFE at offset 1 is not"}},
		{name: "pandapon, reason with a control character", args: []string{"pandapon", "--order-id", "1", "--reason", "a\x01b"}, want: []string{"--reason: must not contain control characters"}},
		{name: "pandapon, reason too long", args: []string{"pandapon", "--order-id", "1", "--reason", long(513)}, want: []string{"--reason: must be at most 512 bytes, got 513"}},
		{name: "pandapon, remark padded", args: []string{"pandapon", "--order-id", "1", "--remark", "r\n"}, want: []string{"--remark: must not start or end with white space"}},
		{name: "pandapon, every field invalid at once", args: []string{"pandapon", "--order-id", "12ab", "--reason", " r", "--remark", long(600)}, want: []string{
			`--order-id: must be a positive integer of decimal digits, got "12ab"`,
			"--reason: must not start or end with white space",
			"--remark: must be at most 512 bytes, got 600",
		}},

		// global flags
		{name: "timeout not a duration", args: []string{"--timeout", "10", "pandapon", "--order-id", "1"}, want: []string{`--timeout: must be a duration such as 10s or 1m, got "10"`}},
		{name: "timeout zero", args: []string{"--timeout", "0s", "pandapon", "--order-id", "1"}, want: []string{"--timeout: must be positive, got 0s"}},
		{name: "timeout negative", args: []string{"--timeout", "-1s", "dlq", "list"}, want: []string{"--timeout: must be positive, got -1s"}},
		{name: "redis URL scheme", ownURL: true, args: []string{"--redis-url", "http://127.0.0.1:6379", "dlq", "list"}, want: []string{"--redis-url: invalid URL scheme: http"}},
		{name: "redis URL port, password not shown", ownURL: true, args: []string{"--redis-url", "redis://:" + password + "@127.0.0.1:port/0", "dlq", "list"}, want: []string{`--redis-url: is not a valid URL, and it holds an '@': percent-encode any /, ?, # or @`}},
		{name: "redis URL port, no credentials", ownURL: true, args: []string{"--redis-url", "redis://127.0.0.1:port/0", "dlq", "list"}, want: []string{`--redis-url: is not a valid URL: invalid port ":port" after host`}},
		{name: "redis URL from the environment, password with a slash", ownURL: true, args: []string{"dlq", "list"}, env: map[string]string{"REDIS_URL": "redis://:ab/" + password + "@127.0.0.1:6379/0"},
			want: []string{"REDIS_URL (--redis-url): is not a valid URL, and it holds an '@'"}},
		{name: "redis URL database", ownURL: true, args: []string{"--redis-url", "redis://127.0.0.1:6379/db", "dlq", "list"}, want: []string{`--redis-url: invalid database number: "db"`}},
		{name: "redis URL flag with a password", ownURL: true, args: []string{"--redis-url", "redis://:" + password + "@127.0.0.1:6379/0", "dlq", "list"},
			want: []string{"--redis-url: must not hold a password on the command line"}},
		{name: "redis URL flag with the password as the user", ownURL: true, args: []string{"--redis-url", "redis://" + password + "@127.0.0.1:6379/0", "dlq", "list"},
			want: []string{"--redis-url: must not hold a user name without a password (redis://PASSWORD@host is a password to redis-cli) on the command line"}},
		{name: "redis URL from the environment with the password as the user, bad database", ownURL: true, args: []string{"dlq", "list"}, env: map[string]string{"REDIS_URL": "redis://" + password + "@127.0.0.1:6379/x"},
			want: []string{`REDIS_URL (--redis-url): invalid database number: "x"`}},
		{name: "redis password twice", ownURL: true, args: []string{"dlq", "list"}, env: map[string]string{"REDIS_URL": "redis://:" + password + "@127.0.0.1:6379/0", "REDIS_PASSWORD": password + "x"},
			want: []string{"REDIS_URL (--redis-url): holds a password and REDIS_PASSWORD or REDIS_PASSWORD_FILE is set too"}},
		{name: "redis password variable and file", ownURL: true, args: []string{"--redis-password-file", "/nonexistent", "dlq", "list"}, env: map[string]string{"REDIS_PASSWORD": password},
			want: []string{"REDIS_PASSWORD: set either it or --redis-password-file, not both"}},
		{name: "redis password file unreadable", ownURL: true, args: []string{"dlq", "list"}, env: map[string]string{"REDIS_PASSWORD_FILE": "/nonexistent/pw"},
			want: []string{"REDIS_PASSWORD_FILE (--redis-password-file): cannot read the file: no such file or directory"}},
		{name: "redis URL from the environment", ownURL: true, args: []string{"dlq", "list"}, env: map[string]string{"REDIS_URL": "redis://:" + password + "@127.0.0.1:6379/a/b"}, want: []string{"REDIS_URL (--redis-url): invalid URL path: /a/b"}},
		{name: "global and command problems at once", args: []string{"--timeout", "soon", "pandapon", "--order-id", "x"}, want: []string{
			`--timeout: must be a duration such as 10s or 1m, got "soon"`,
			`--order-id: must be a positive integer of decimal digits, got "x"`,
		}},
		{name: "no command", args: []string{}, wantText: "a command is required: one of dlq, file, meari, pandapon, serve, status"},
		{name: "unknown command", args: []string{"cancel"}, wantText: `unknown command "cancel" for "enqueue"`},

		// status
		{name: "status, no arguments", args: []string{"status"}, want: []string{"<provider> <order>: give exactly two arguments, the provider (meari or pandapon) and the order, got 0"}},
		{name: "status, three arguments", args: []string{"status", "pandapon", "1", "2"}, want: []string{"<provider> <order>: give exactly two arguments"}},
		{name: "status, unknown provider", args: []string{"status", "acme", "1"}, want: []string{`<provider>: must be meari or pandapon, got "acme"`}},
		{name: "status, meari order type", args: []string{"status", "meari", "A1", "--order-type", "4"}, want: []string{"--order-type: must be 1 (cloud), 2 (ai) or 3 (flow4g), got 4"}},
		{name: "status, meari without a source app", args: []string{"status", "meari", "A1"}, env: map[string]string{}, want: []string{"--source-app: is required (or set MEARI_SOURCE_APP)"}},
		{name: "status, meari order with a colon", args: []string{"status", "meari", "A:1"}, want: []string{"<order>: must not contain ':'"}},
		{name: "status, meari order and order type at once", args: []string{"status", "meari", "", "--order-type", "x", "--source-app", "0"}, want: []string{
			`--order-type: must be 1 (cloud), 2 (ai) or 3 (flow4g), got "x"`,
			"--source-app: must be a positive integer, got 0",
			"<order>: is required",
		}},
		{name: "status, pandapon order ID", args: []string{"status", "pandapon", "2542285634920880794.5"}, want: []string{"<order>: must be a positive integer of decimal digits"}},
		{name: "status, pandapon with meari flags", args: []string{"status", "pandapon", "1", "--order-type", "1", "--source-app", "72"}, want: []string{
			"--source-app: only applies to meari",
			"--order-type: only applies to meari",
		}},

		// file
		{name: "file, no path", args: []string{"file"}, want: []string{`<path>: is required: a JSON Lines file, or "-" for stdin`}},
		{name: "file, two paths", args: []string{"file", "a", "b"}, want: []string{"<path>: give exactly one file, got 2 arguments"}},
		{name: "file, no such file", args: []string{"file", "/nonexistent/cancellations.jsonl"}, want: []string{"<path>: no such file: /nonexistent/cancellations.jsonl"}},
		{name: "file, a directory", args: []string{"file", "."}, want: []string{"<path>: is a directory: ."}},
		{name: "file, everything at once", args: []string{"file", "-", "--concurrency", "0", "--source-app", "x"}, want: []string{
			`--source-app: must be an integer, got "x"`,
			"--concurrency: must be from 1 to 1024, got 0",
		}},
		{name: "file, concurrency not a number", args: []string{"file", "-", "--concurrency", "many"}, want: []string{`--concurrency: must be an integer, got "many"`}},
		{name: "file, source app from the environment", args: []string{"file", "-"}, env: map[string]string{envSourceApp: "0"}, want: []string{"MEARI_SOURCE_APP (--source-app): must be a positive integer, got 0"}},

		// dlq
		{name: "dlq, no command", args: []string{"dlq"}, wantText: "a command is required: one of list, purge, requeue, show"},
		{name: "dlq list, limit zero", args: []string{"dlq", "list", "--limit", "0"}, want: []string{"--limit: must be from 1 to 1000, got 0"}},
		{name: "dlq list, limit too big", args: []string{"dlq", "list", "--limit", "1001"}, want: []string{"--limit: must be from 1 to 1000, got 1001"}},
		{name: "dlq list, limit not a number", args: []string{"dlq", "list", "--limit", "ten"}, want: []string{`--limit: must be an integer, got "ten"`}},
		{name: "dlq list, offset negative", args: []string{"dlq", "list", "--offset=-1"}, want: []string{"--offset: must be from 0 to 2147483647, got -1"}},
		{name: "dlq list, everything at once", args: []string{"dlq", "list", "--provider", "acme", "--limit", "x", "--offset", "y"}, want: []string{
			`--provider: must be meari or pandapon, got "acme"`,
			`--limit: must be an integer, got "x"`,
			`--offset: must be an integer, got "y"`,
		}},
		{name: "dlq show, no ID", args: []string{"dlq", "show"}, want: []string{"<id>: is required"}},
		{name: "dlq show, two IDs", args: []string{"dlq", "show", "a", "b"}, want: []string{"<id>: give exactly one entry ID, got 2 arguments"}},
		{name: "dlq requeue, nothing selected", args: []string{"dlq", "requeue"}, want: []string{"<id>: give one or more entry IDs, or --all"}},
		{name: "dlq requeue, IDs and --all", args: []string{"dlq", "requeue", "a", "--all"}, want: []string{"--all: cannot be combined with entry IDs (got 1)"}},
		{name: "dlq requeue, provider without --all", args: []string{"dlq", "requeue", "a", "--provider", "meari"}, want: []string{"--provider: only applies with --all"}},
		{name: "dlq requeue, unknown provider", args: []string{"dlq", "requeue", "--all", "--provider", "acme"}, want: []string{`--provider: must be meari or pandapon, got "acme"`}},
		{name: "dlq purge, without --yes", args: []string{"dlq", "purge", "a"}, want: []string{"--yes: is required: purge deletes entries for good"}},
		{name: "dlq purge --all, without --yes", args: []string{"dlq", "purge", "--all"}, want: []string{"--yes: is required"}},
		{name: "dlq purge, IDs and --all", args: []string{"dlq", "purge", "a", "--all", "--yes"}, want: []string{"--all: cannot be combined with entry IDs (got 1)"}},
		{name: "dlq purge, nothing selected", args: []string{"dlq", "purge", "--yes"}, want: []string{"<id>: give one or more entry IDs, or --all"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := maps.Clone(tt.env)
			if env == nil {
				env = map[string]string{envSourceApp: "72"}
			}
			args := tt.args
			if !tt.ownURL {
				env["REDIS_URL"] = "redis://:" + password + "@" + workertest.ClosedAddr(t) + "/0"
			}

			r := execute(t, env, args...)
			if r.code != exitUsage {
				t.Fatalf("want exit %d, got %s", exitUsage, r)
			}
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			for i, w := range tt.want {
				if i >= len(lines) || !strings.Contains(lines[i], ": "+w) {
					t.Errorf("stderr line %d: want %q in it, got:\n%s", i+1, w, r.stderr)
				}
			}
			if len(tt.want) > 0 && len(lines) != len(tt.want)+1 {
				t.Errorf("stderr: want %d problems and the --help hint, got:\n%s", len(tt.want), r.stderr)
			}
			if !strings.Contains(r.stderr, tt.wantText) || !strings.Contains(r.stderr, "--help' for usage.") {
				t.Errorf("stderr: want %q and the --help hint, got:\n%s", tt.wantText, r.stderr)
			}
			if strings.Contains(r.stdout+r.stderr, password) {
				t.Errorf("output shows the Redis password:\n%s", r)
			}
			if r.stdout != "" {
				t.Errorf("stdout: want nothing without --json, got %q", r.stdout)
			}

			// With --json, the same problems as one JSON object on stdout.
			r = execute(t, env, append([]string{"--json"}, args...)...)
			if r.code != exitUsage {
				t.Fatalf("--json: want exit %d, got %s", exitUsage, r)
			}
			var out errorOutput
			decodeJSON(t, r.stdout, &out)
			if out.ExitCode != exitUsage || out.Error == "" {
				t.Errorf("--json: want exit_code 2 and an error, got %+v", out)
			}
			got := make([]string, len(out.Problems))
			for i, p := range out.Problems {
				got[i] = p.String()
			}
			if !slices.EqualFunc(got, tt.want, strings.HasPrefix) {
				t.Errorf("--json problems: want %q, got %q", tt.want, got)
			}
		})
	}
}

// meariArgs returns a valid meari command line with args appended; a
// repeated flag overrides the valid one.
func meariArgs(args ...string) []string {
	return append([]string{"meari", "--user-account", "u@x.com", "--order-type", "1", "--order-num", "A1"}, args...)
}

// TestUsageErrorJSONAfterBadFlag checks that --json holds even when the
// flag parser stops at a bad flag before reaching it.
func TestUsageErrorJSONAfterBadFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		wantJSON bool
	}{
		{name: "--json after the bad flag", args: []string{"pandapon", "--order-idd", "1", "--json"}, wantJSON: true},
		{name: "--json=true after the bad flag", args: []string{"dlq", "list", "--limitt", "1", "--json=true"}, wantJSON: true},
		{name: "--json=false", args: []string{"dlq", "list", "--limitt", "1", "--json=false"}},
		{name: "--json after --", args: []string{"dlq", "show", "--bad", "--", "--json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := execute(t, nil, tt.args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, "unknown flag") {
				t.Fatalf("want exit %d and unknown flag, got %s", exitUsage, r)
			}
			if !tt.wantJSON {
				if r.stdout != "" {
					t.Errorf("stdout: want nothing, got %q", r.stdout)
				}
				return
			}
			var out errorOutput
			decodeJSON(t, r.stdout, &out)
			if out.ExitCode != exitUsage || !strings.Contains(out.Error, "unknown flag") {
				t.Errorf("--json: want the unknown flag with exit_code 2, got %+v", out)
			}
		})
	}
}
