package main

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cancelworker/cancelworker/internal/text"

	"github.com/cancelworker/cancelworker/tasks"
)

// textFlag is a flag that keeps its raw text and never fails to parse.
// The command parses and validates it with the other flags, so that every
// bad value is reported at once instead of the first one alone.
type textFlag struct {
	value string
	set   bool
	typ   string // shown in --help, e.g. "int"
}

func (f *textFlag) String() string { return f.value }

func (f *textFlag) Set(s string) error {
	f.value, f.set = s, true
	return nil
}

func (f *textFlag) Type() string { return f.typ }

// problem is one invalid flag or argument.
type problem struct {
	// Flag names the flag ("--order-type"), the environment variable and
	// its flag ("MEARI_SOURCE_APP (--source-app)") or the argument
	// ("<order>").
	Flag    string `json:"flag"`
	Problem string `json:"problem"`
}

func (p problem) String() string { return p.Flag + ": " + p.Problem }

// problems collects every invalid flag and argument of one command line.
type problems []problem

func (p *problems) add(flag, format string, args ...any) {
	*p = append(*p, problem{Flag: flag, Problem: fmt.Sprintf(format, args...)})
}

// has reports whether flag already has a problem.
func (p problems) has(flag string) bool {
	return slices.ContainsFunc(p, func(q problem) bool { return q.Flag == flag })
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &usageError{problems: p}
}

// addValidation adds the field errors of a tasks.ValidationError under the
// flag names that flags maps the payload fields to, skipping flags that
// already have a problem (a value that did not parse is not reported
// twice). Any other non-nil error is added under "payload".
func (p *problems) addValidation(err error, flags map[string]string) {
	if err == nil {
		return
	}
	var ve *tasks.ValidationError
	if !errors.As(err, &ve) {
		p.add("payload", "%v", err)
		return
	}
	seen := slices.Clone(*p)
	for _, f := range ve.Fields {
		name, ok := flags[f.Field]
		if !ok {
			name = f.Field
		}
		if seen.has(name) {
			continue
		}
		p.add(name, "%s", f.Problem)
	}
}

// usageError is a bad command line: exit code 2.
type usageError struct {
	problems []problem
	msg      string // when there are no problems
}

func (e *usageError) Error() string {
	if len(e.problems) == 0 {
		return e.msg
	}
	parts := make([]string, len(e.problems))
	for i, p := range e.problems {
		parts[i] = p.String()
	}
	return strings.Join(parts, "; ")
}

// failure is a command that could not do its work: exit code 1.
type failure struct {
	err error
	// reported is true when the command has already written its output and
	// messages, so that only the exit code is left to give.
	reported bool
}

func (e *failure) Error() string { return e.err.Error() }
func (e *failure) Unwrap() error { return e.err }

// parseInt parses f as a decimal integer, adding a problem under name if
// it is not one.
func parseInt(p *problems, name string, f *textFlag) (int64, bool) {
	n, err := strconv.ParseInt(f.value, 10, 64)
	if err != nil {
		p.add(name, "must be an integer, got %q", text.Truncate(f.value, 40))
		return 0, false
	}
	return n, true
}

// sourceApp resolves --source-app, which defaults to MEARI_SOURCE_APP, and
// returns it with the name its problems are reported under.
func (a *app) sourceApp(p *problems, f *textFlag) (int64, string) {
	name, v := "--source-app", *f
	if !f.set {
		name, v.value = envSourceApp+" (--source-app)", a.getenv(envSourceApp)
		if v.value == "" {
			p.add("--source-app", "is required (or set %s)", envSourceApp)
			return 0, "--source-app"
		}
	}
	n, _ := parseInt(p, name, &v)
	return n, name
}

// orderTypeNames are the Meari order types, by number.
var orderTypeNames = map[int]string{1: "cloud", 2: "ai", 3: "flow4g"}

// orderType parses --order-type; it returns 0 and adds a problem when the
// value is not one of the order types, or when it is unset and required.
func orderType(p *problems, f *textFlag, required bool) int {
	const name = "--order-type"
	if !f.set {
		if required {
			p.add(name, "is required: 1 (cloud), 2 (ai) or 3 (flow4g)")
		}
		return 0
	}
	n, err := strconv.Atoi(f.value)
	switch _, ok := orderTypeNames[n]; {
	case err != nil:
		p.add(name, "must be 1 (cloud), 2 (ai) or 3 (flow4g), got %q", text.Truncate(f.value, 40))
	case !ok:
		p.add(name, "must be 1 (cloud), 2 (ai) or 3 (flow4g), got %d", n)
	default:
		return n
	}
	return 0
}

// checkProvider adds a problem under name unless v is a provider, or ""
// when empty is allowed.
func checkProvider(p *problems, name, v string, empty bool) {
	if (v == "" && empty) || tasks.QueueFor(v) != "" {
		return
	}
	if v == "" {
		p.add(name, "is required: %s", strings.Join(tasks.Providers(), " or "))
		return
	}
	p.add(name, "must be %s, got %q", strings.Join(tasks.Providers(), " or "), text.Truncate(v, 40))
}

// sourceAppDefault resolves --source-app, which defaults to
// MEARI_SOURCE_APP, when it only provides a default: unset is 0 with no
// problem.
func (a *app) sourceAppDefault(p *problems, f *textFlag) int64 {
	if !f.set && a.getenv(envSourceApp) == "" {
		return 0
	}
	n, name := a.sourceApp(p, f)
	if n <= 0 && !p.has(name) {
		p.add(name, "must be a positive integer, got %d", n)
	}
	return n
}
