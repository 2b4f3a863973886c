package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/text"
)

// Setting is one configuration value: an environment variable, a flag, or
// both, the flag winning. It is a flag.Value and a pflag.Value, so a
// binary binds it to whichever flag package it parses with; its text is
// kept raw and validated by the Loader's readers after parsing, so that
// every bad value is reported at once.
type Setting struct {
	// Env is the environment variable, "" for a flag alone.
	Env string
	// Flag is the flag's name without dashes, "" for a variable alone.
	Flag string
	// Default is the value when neither is given.
	Default string
	// Help is the flag's usage, without the variable and default, which
	// Usage adds.
	Help string
	// Secret refuses the flag: a process's arguments are readable by every
	// user of the machine. The value comes from Env or its _FILE twin.
	Secret bool
	// Kind is the value's kind in --help ("duration", "url"); "" is
	// "string".
	Kind string

	raw      string
	set      bool // given by flag or environment, not defaulted
	fromFlag bool
	section  string // the section that declared it (Loader.Section)
}

// String returns the raw value, "" for a secret (flag.Value).
func (s *Setting) String() string {
	if s == nil || s.Secret {
		return ""
	}
	return s.raw
}

// Set records a value given on the command line (flag.Value); it never
// fails, the Loader validates later.
func (s *Setting) Set(v string) error {
	s.raw, s.set, s.fromFlag = v, true, true
	return nil
}

// Type names the value's kind in --help (pflag.Value).
func (s *Setting) Type() string {
	if s.Kind == "" {
		return "string"
	}
	return s.Kind
}

// Value returns the raw text: as given, or the default.
func (s *Setting) Value() string { return s.raw }

// Given reports whether the flag or the variable gave the value.
func (s *Setting) Given() bool { return s.set }

// FromFlag reports whether the value came from the command line.
func (s *Setting) FromFlag() bool { return s.fromFlag }

// Name is how problems name the setting: what the user gave when it was
// the flag ("--redis-url"), else the variable and its flag
// ("REDIS_URL (--redis-url)"); a secret, whose flag is refused, by its
// variable alone.
func (s *Setting) Name() string {
	switch {
	case s.fromFlag || s.Env == "":
		return "--" + s.Flag
	case s.Flag == "" || s.Secret:
		return s.Env
	}
	return fmt.Sprintf("%s (--%s)", s.Env, s.Flag)
}

// Usage is the flag's help: the Help text, the variable and the default.
func (s *Setting) Usage() string {
	if s.Secret {
		return fmt.Sprintf("refused: a secret on the command line shows in the process list; set %s_FILE or %s", s.Env, s.Env)
	}
	u := s.Help
	switch {
	case s.Env != "" && s.Default != "":
		u += fmt.Sprintf(" (env %s, default %q)", s.Env, s.Default)
	case s.Env != "":
		u += fmt.Sprintf(" (env %s)", s.Env)
	case s.Default != "":
		u += fmt.Sprintf(" (default %q)", s.Default)
	}
	return u
}

// Problem is one invalid setting: its name (Setting.Name) and what is
// wrong, never its secret value.
type Problem struct {
	Name    string
	Problem string
}

func (p Problem) Error() string { return p.Name + ": " + p.Problem }

// Loader reads one binary's settings: its sections declare them, the
// binary binds them to its flags and parses, Resolve fills in the
// environment and the defaults, and the sections' readers turn the text
// into values, collecting every problem.
type Loader struct {
	getenv   func(string) string
	readFile func(string) ([]byte, error)
	settings []*Setting
	problems []Problem
	secrets  []string
	// urlUsers are user names given without a password in a URL, which
	// may be one (redis://PASSWORD@host): redacted where a URL shows
	// them, not as words anywhere.
	urlUsers []string
	// section names the settings Add declares next (Section).
	section string
}

// NewLoader returns a Loader reading the environment through getenv and
// files through readFile (nil: os.ReadFile).
func NewLoader(getenv func(string) string, readFile func(string) ([]byte, error)) *Loader {
	if readFile == nil {
		readFile = os.ReadFile
	}
	return &Loader{getenv: getenv, readFile: readFile}
}

// Section names the group of the settings Add declares next, for the
// configuration reference (Reference).
func (l *Loader) Section(name string) { l.section = name }

// Add declares s and returns it, for binding and reading.
func (l *Loader) Add(s Setting) *Setting {
	p := &s
	p.section = l.section
	l.settings = append(l.settings, p)
	return p
}

// Settings returns every declared setting, in declaration order.
func (l *Loader) Settings() []*Setting { return l.settings }

// Resolve gives each setting its value from the environment, or its
// default, unless the command line gave one. Call it after parsing the
// flags and before reading.
func (l *Loader) Resolve() {
	for _, s := range l.settings {
		if s.fromFlag {
			continue
		}
		if v := l.env(s.Env); v != "" {
			s.raw, s.set = v, true
		} else {
			s.raw = s.Default
		}
	}
}

func (l *Loader) env(name string) string {
	if name == "" || l.getenv == nil {
		return ""
	}
	return l.getenv(name)
}

// Bad records a problem with s.
func (l *Loader) Bad(s *Setting, format string, args ...any) {
	l.problems = append(l.problems, Problem{Name: s.Name(), Problem: fmt.Sprintf(format, args...)})
}

// Problems returns every problem recorded so far.
func (l *Loader) Problems() []Problem { return l.problems }

// Has reports whether s has a problem.
func (l *Loader) Has(s *Setting) bool {
	for _, p := range l.problems {
		if p.Name == s.Name() {
			return true
		}
	}
	return false
}

// Err joins every problem, one per line; nil when there is none.
func (l *Loader) Err() error {
	errs := make([]error, len(l.problems))
	for i, p := range l.problems {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// Secrets returns the secret values read, for redacting them from any
// message that might quote them.
func (l *Loader) Secrets() []string { return l.secrets }

// Redact replaces every secret read so far in s with "xxxxx". A nil
// Loader has read none.
func (l *Loader) Redact(s string) string {
	if l == nil {
		return s
	}
	for _, sec := range l.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "xxxxx")
		}
	}
	for _, user := range l.urlUsers {
		s = strings.ReplaceAll(s, "//"+user+"@", "//xxxxx@")
	}
	return s
}

// Int parses s as a decimal integer from min to max.
func (l *Loader) Int(s *Setting, min, max int64) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(s.raw), 10, 64)
	switch {
	case err != nil:
		l.Bad(s, "must be an integer, got %q", text.Truncate(s.raw, 40))
	case n < min:
		l.Bad(s, "must be at least %d, got %d", min, n)
	case n > max:
		l.Bad(s, "must be at most %d, got %d", max, n)
	}
	return n
}

// Float parses s as a number from min to max.
func (l *Loader) Float(s *Setting, min, max float64) float64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(s.raw), 64)
	switch {
	case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
		l.Bad(s, "must be a number, got %q", text.Truncate(s.raw, 40))
	case f < min || f > max:
		l.Bad(s, "must be from %v to %v, got %v", min, max, f)
	}
	return f
}

// Duration parses s as a duration from min to max.
func (l *Loader) Duration(s *Setting, min, max time.Duration) time.Duration {
	d, err := time.ParseDuration(strings.TrimSpace(s.raw))
	switch {
	case err != nil:
		l.Bad(s, "must be a duration such as 30s or 2m, got %q", text.Truncate(s.raw, 40))
	case d < 0 && min >= 0:
		l.Bad(s, "must not be negative, got %s", d)
	case d < min || d > max:
		l.Bad(s, "must be from %s to %s, got %s", min, max, d)
	}
	return d
}

// Bool parses s as true or false (or 1, 0, t, f).
func (l *Loader) Bool(s *Setting) bool {
	b, err := strconv.ParseBool(strings.TrimSpace(s.raw))
	if err != nil {
		l.Bad(s, "must be true or false, got %q", text.Truncate(s.raw, 40))
	}
	return b
}

// Secret returns the secret of s or of file, its _FILE twin: at most one
// may be given, and never s on the command line. A file's trailing line
// breaks are dropped; an empty file is a problem.
func (l *Loader) Secret(s, file *Setting) string {
	var v string
	switch {
	case s.fromFlag:
		l.Bad(s, "%s", CommandLineSecret(file.Name(), s.Env))
		return ""
	case s.set && file.set:
		l.Bad(s, "set either it or %s, not both", file.Name())
		return ""
	case file.set && file.raw == "":
		l.Bad(file, "must not be empty")
		return ""
	case file.set:
		b, err := l.readFile(file.raw)
		if err != nil {
			if u := errors.Unwrap(err); u != nil {
				err = u
			}
			l.Bad(file, "cannot read the file: %v", err)
			return ""
		}
		v = strings.TrimRight(string(b), "\r\n")
		if v == "" {
			l.Bad(file, "the file is empty")
		}
	default:
		v = s.raw
	}
	if v != "" {
		l.secrets = append(l.secrets, v)
	}
	return v
}

// Given reports whether s or its _FILE twin file was given.
func Given(s, file *Setting) bool { return s.set || file.set }

// BaseURL checks that s, when given, is an http(s) URL naming a host,
// without credentials, query or fragment, and returns it without a
// trailing slash.
func (l *Loader) BaseURL(s *Setting) string {
	if s.raw == "" {
		return ""
	}
	u, err := url.Parse(s.raw)
	switch {
	case err != nil && strings.Contains(s.raw, "@"):
		l.Bad(s, "must be an http(s) URL without credentials (it holds an '@', not shown)")
	case err != nil:
		l.Bad(s, "must be an http(s) URL, got %q", text.Truncate(s.raw, 60))
	case u.Scheme != "http" && u.Scheme != "https":
		l.Bad(s, "must start with http:// or https://, got %q", text.RedactedURL(u))
	case u.Host == "":
		l.Bad(s, "must name a host, got %q", text.RedactedURL(u))
	case u.User != nil:
		l.Bad(s, "must not hold credentials")
	case u.RawQuery != "" || u.Fragment != "":
		l.Bad(s, "must not have a query or fragment, got %q", text.RedactedURL(u))
	}
	return strings.TrimRight(s.raw, "/")
}

// ListenAddr checks that s is host:port with a port from 0 (any free one)
// to 65535, and returns it; "" after a problem.
func (l *Loader) ListenAddr(s *Setting, example string) string {
	raw := strings.TrimSpace(s.raw)
	host, port, err := net.SplitHostPort(raw)
	if err != nil {
		l.Bad(s, "must be host:port, e.g. %s, got %q", example, text.Truncate(s.raw, 60))
		return ""
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		l.Bad(s, "must have a port from 0 to 65535, got %q", text.Truncate(port, 20))
		return ""
	}
	return net.JoinHostPort(host, port)
}
