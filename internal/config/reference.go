package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cancelworker/cancelworker/internal/tracing"
)

// Each binary declares its settings with one of the functions below, and
// Reference reads the same functions: docs/configuration.md cannot list a
// setting a binary does not read, or miss one it does.

// WorkerSections are the worker's settings.
type WorkerSections struct {
	Redis    *RedisSection
	Meari    *MeariSection
	PandaPon *PandaPonSection
	Worker   *WorkerSection
	Log      *LogSection
	Admin    *AdminSection
	Guard    *GuardSection
	Queues   *QueuesSection
}

// AddWorkerBinary declares the worker's settings on l.
func AddWorkerBinary(l *Loader) WorkerSections {
	return WorkerSections{
		Redis: AddRedis(l), Meari: AddMeari(l), PandaPon: AddPandaPon(l), Worker: AddWorker(l),
		Log: AddLog(l), Admin: AddAdmin(l), Guard: AddGuard(l), Queues: AddQueues(l),
	}
}

// IntakeSections are the intake's settings (cmd/intake and enqueue serve).
type IntakeSections struct {
	Redis  *RedisSection
	Log    *LogSection
	Intake *IntakeSection
}

// AddIntakeBinary declares the intake's settings on l.
func AddIntakeBinary(l *Loader) IntakeSections {
	return IntakeSections{Redis: AddRedis(l), Log: AddLog(l), Intake: AddIntake(l)}
}

// EnqueueSections are the enqueue CLI's settings, besides its own flags.
type EnqueueSections struct {
	Redis  *RedisSection
	Queues *QueuesSection
}

// AddEnqueueBinary declares the enqueue CLI's settings on l.
func AddEnqueueBinary(l *Loader) EnqueueSections {
	return EnqueueSections{Redis: AddRedis(l), Queues: AddQueues(l)}
}

// SandboxAddrDefault is where the sandbox listens without --addr or
// SANDBOX_ADDR.
const SandboxAddrDefault = "127.0.0.1:8090"

// SandboxSections are the sandbox upstream's settings.
type SandboxSections struct {
	Addr, Script *Setting
	Meari        *MeariSection
	PandaPon     *PandaPonSection
}

// AddSandboxBinary declares the sandbox's settings on l.
func AddSandboxBinary(l *Loader) SandboxSections {
	l.Section("Sandbox")
	return SandboxSections{
		Addr:     l.Add(Setting{Env: "SANDBOX_ADDR", Flag: "addr", Default: SandboxAddrDefault, Kind: "host:port", Help: "the sandbox upstream's listen address"}),
		Script:   l.Add(Setting{Env: "SANDBOX_SCRIPT", Flag: "script", Kind: "path", Help: "file of scripted answers, one order per line"}),
		Meari:    AddMeari(l),
		PandaPon: AddPandaPon(l),
	}
}

// Binary is one program and how it declares its settings.
type Binary struct {
	Name string
	Add  func(*Loader)
}

// Binaries are the programs whose settings Reference lists.
var Binaries = []Binary{
	{"worker", func(l *Loader) { AddWorkerBinary(l) }},
	{"intake", func(l *Loader) { AddIntakeBinary(l) }},
	{"enqueue", func(l *Loader) { AddEnqueueBinary(l) }},
	{"sandbox", func(l *Loader) { AddSandboxBinary(l) }},
}

// sectionDocs introduces each section in the reference, in its order.
var sectionDocs = []struct{ name, doc string }{
	{"Redis", "Where the queues live: one server (`REDIS_URL`), the master of a Sentinel set (`REDIS_SENTINEL_ADDRS` and `REDIS_MASTER_NAME`) or a Cluster (`REDIS_CLUSTER_ADDRS`). docs/deployment.md shows each."},
	{"Meari", "The Meari account. The provider is on when any of its settings is given, and then its base URL, partner key, secret and source app are required. The sandbox defaults the account to its demo one."},
	{"PandaPon", "The PandaPon account, on the same terms as Meari's."},
	{"Worker", "How the worker runs tasks, retries transient failures and keeps completed ones."},
	{"Breaker and rate limits", "Each provider's circuit breaker and the wait for a rate-limit token (docs/operations.md)."},
	{"Queues", "How each provider's tasks are spread over queues. Every worker, enqueuer and intake must be given the same values."},
	{"Log", "The process's log."},
	{"Admin server", "The worker's HTTP server: the monitoring UI, the dead-letter page, /metrics, /healthz and /readyz."},
	{"Intake", "The HTTP intake (cmd/intake, or `enqueue serve`): docs/intake.md."},
	{"Sandbox", "The sandbox upstream (cmd/sandbox), which answers as both providers for demos and tests."},
}

// refRow is one setting in the reference, merged over the binaries that
// read it.
type refRow struct {
	s       *Setting
	readers []string
}

// Reference returns docs/configuration.md: every setting of every binary
// (env, flag, default, kind, meaning, which binaries read it), by section.
// It reports a setting without help text, or outside a known section, as
// an error.
func Reference() (string, error) {
	rows := map[string][]*refRow{} // section → rows, in declaration order
	byKey := map[string]*refRow{}
	var problems []string
	for _, b := range Binaries {
		l := NewLoader(func(string) string { return "" }, nil)
		b.Add(l)
		for _, s := range l.Settings() {
			key := s.Env + " " + s.Flag
			if r, ok := byKey[key]; ok {
				if !slices.Contains(r.readers, b.Name) {
					r.readers = append(r.readers, b.Name)
				}
				continue
			}
			if strings.TrimSpace(s.Help) == "" {
				problems = append(problems, fmt.Sprintf("%s (%s) has no help text", s.Name(), b.Name))
			}
			r := &refRow{s: s, readers: []string{b.Name}}
			byKey[key] = r
			rows[s.section] = append(rows[s.section], r)
		}
	}
	var sb strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	w("# Configuration\n\n")
	w("<!-- Generated by `go run ./cmd/worker config --markdown > docs/configuration.md` (make docs) from the settings the binaries declare; a test fails when this file differs. Do not edit by hand. -->\n\n")
	w("Every setting is an environment variable and a flag of the same meaning; the flag wins. ")
	w("Secrets are taken only from the environment, or from a file named by their `_FILE` twin (the better way: a file is not inherited by child processes nor shown by `docker inspect`); their flag is refused. ")
	w("A binary reports every invalid setting at once, one line each naming the variable and the flag, and exits 2. `worker check` validates a configuration and reaches Redis and each provider without sending a cancellation.\n\n")
	seen := map[string]bool{}
	for _, sd := range sectionDocs {
		seen[sd.name] = true
		rs := rows[sd.name]
		if len(rs) == 0 {
			continue
		}
		w("## %s\n\n%s\n\n", sd.name, sd.doc)
		w("| variable | flag | default | kind | read by | meaning |\n|---|---|---|---|---|---|\n")
		for _, r := range rs {
			s := r.s
			flagCol := "`--" + s.Flag + "`"
			if s.Flag == "" {
				flagCol = ""
			}
			if s.Secret {
				flagCol = "refused (secret)"
			}
			envCol := ""
			if s.Env != "" {
				envCol = "`" + s.Env + "`"
			}
			def := ""
			if s.Default != "" {
				def = "`" + s.Default + "`"
			}
			kind := s.Kind
			if kind == "" {
				kind = "string"
			}
			if s.Secret {
				kind = "secret"
			}
			w("| %s | %s | %s | %s | %s | %s |\n", envCol, flagCol, def, kind, strings.Join(r.readers, ", "), mdCell(s.Help))
		}
		w("\n")
	}
	w("## Tracing (OpenTelemetry)\n\n")
	w("Off by default. The worker, the intake and the enqueue CLI read the standard OpenTelemetry variables; spans go out as OTLP over HTTP/protobuf. Each `OTEL_EXPORTER_OTLP_` variable below also has its form for traces alone, `OTEL_EXPORTER_OTLP_TRACES_`, which wins over it; while tracing is on, a bad value stops the binary at start, naming the variable. docs/operations.md shows the spans and what each holds.\n\n")
	w("| variable | default | meaning |\n|---|---|---|\n")
	for _, v := range tracing.Variables {
		names := strings.Split(v.Name, ", ")
		for i, n := range names {
			names[i] = "`" + n + "`"
		}
		def := ""
		if v.Default != "" {
			def = "`" + v.Default + "`"
		}
		w("| %s | %s | %s |\n", strings.Join(names, ", "), def, mdCell(v.Meaning))
	}
	w("\n")
	for name, rs := range rows {
		if !seen[name] {
			for _, r := range rs {
				problems = append(problems, fmt.Sprintf("%s is in section %q, which the reference does not list", r.s.Name(), name))
			}
		}
	}
	slices.Sort(problems)
	if len(problems) > 0 {
		return sb.String(), fmt.Errorf("configuration reference: %s", strings.Join(problems, "; "))
	}
	return sb.String(), nil
}

// mdCell escapes text for a Markdown table cell.
func mdCell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}
