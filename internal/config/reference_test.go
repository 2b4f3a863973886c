package config

import (
	"os"
	"strings"
	"testing"
)

// TestReferenceIsCurrent fails when docs/configuration.md differs from
// what the binaries' settings generate, or when a setting lacks help text.
func TestReferenceIsCurrent(t *testing.T) {
	want, err := Reference()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatalf("%v: run make docs", err)
	}
	if string(got) != want {
		t.Errorf("docs/configuration.md is not what the settings generate: run make docs (go run ./cmd/worker config --markdown > docs/configuration.md)")
	}
}

// TestReferenceListsEverySetting checks the reference against each
// binary's loader: every variable and flag appears, with the binary among
// its readers.
func TestReferenceListsEverySetting(t *testing.T) {
	text, err := Reference()
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if cells := strings.Split(line, " | "); strings.HasPrefix(line, "| `") && len(cells) == 6 {
			rows[strings.Trim(cells[0], "| `")+" "+strings.Trim(cells[1], "`-")] = cells[4]
		}
	}
	n := 0
	for _, b := range Binaries {
		l := NewLoader(func(string) string { return "" }, nil)
		b.Add(l)
		for _, s := range l.Settings() {
			n++
			flag := s.Flag
			if s.Secret {
				flag = "refused (secret)"
			}
			readers, ok := rows[s.Env+" "+flag]
			if !ok {
				t.Errorf("%s: %s --%s is not in the reference", b.Name, s.Env, s.Flag)
				continue
			}
			if !strings.Contains(", "+readers+",", ", "+b.Name+",") {
				t.Errorf("%s: %s is read by %q in the reference", b.Name, s.Env, readers)
			}
		}
	}
	if n < 50 {
		t.Errorf("only %d settings declared over all binaries", n)
	}
}

// TestReferenceRefusesMissingHelp: a setting without help text makes
// Reference fail, naming it.
func TestReferenceRefusesMissingHelp(t *testing.T) {
	saved := Binaries
	defer func() { Binaries = saved }()
	Binaries = append(Binaries[:len(Binaries):len(Binaries)], Binary{"extra", func(l *Loader) {
		l.Section("Log")
		l.Add(Setting{Env: "UNHELPED", Flag: "unhelped"})
	}})
	if _, err := Reference(); err == nil || !strings.Contains(err.Error(), "UNHELPED (--unhelped) (extra) has no help text") {
		t.Errorf("Reference: %v, want the missing help named", err)
	}
}
