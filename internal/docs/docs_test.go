package docs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// root is the repository, from this package's directory.
const root = "../.."

// pages returns every Markdown page of the repository, relative to root.
func pages(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// block is a fenced code block: its info string and lines.
type block struct {
	info, before string // before: the line above the fence
	lines        []string
}

// parse returns a page's headings' anchors (as GitHub makes them) and its
// fenced blocks, and the text outside them.
func parse(text string) (anchors map[string]bool, blocks []block, prose string) {
	anchors = map[string]bool{}
	var cur *block
	var sb strings.Builder
	prev := ""
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "```") {
			if cur == nil {
				cur = &block{info: strings.TrimPrefix(l, "```"), before: prev}
			} else {
				blocks = append(blocks, *cur)
				cur = nil
			}
			prev = l
			continue
		}
		if cur != nil {
			cur.lines = append(cur.lines, l)
			continue
		}
		if m := regexp.MustCompile(`^#{1,6} (.*)`).FindStringSubmatch(l); m != nil {
			anchors[slug(m[1])] = true
		}
		sb.WriteString(l + "\n")
		if strings.TrimSpace(l) != "" {
			prev = l
		}
	}
	return anchors, blocks, sb.String()
}

// slug is GitHub's anchor of a heading.
func slug(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = regexp.MustCompile(`[^\p{L}\p{N}_\- ]`).ReplaceAllString(h, "")
	return strings.ReplaceAll(h, " ", "-")
}

// TestLinks: every relative link in every page names a file that exists,
// and its anchor, if any, a heading of that page.
func TestLinks(t *testing.T) {
	anchors := map[string]map[string]bool{}
	prose := map[string]string{}
	ps := pages(t)
	for _, p := range ps {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		anchors[p], _, prose[p] = parse(string(b))
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	checked := 0
	for _, p := range ps {
		for _, m := range link.FindAllStringSubmatch(prose[p], -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			dest := p
			if file != "" {
				dest = filepath.Clean(filepath.Join(filepath.Dir(p), file))
				if _, err := os.Stat(filepath.Join(root, dest)); err != nil {
					t.Errorf("%s: link %s: %s does not exist", p, target, dest)
					continue
				}
			}
			checked++
			if anchor == "" {
				continue
			}
			as, ok := anchors[dest]
			if !ok {
				t.Errorf("%s: link %s: an anchor into a page that is not Markdown", p, target)
			} else if !as[anchor] {
				t.Errorf("%s: link %s: %s has no heading %q", p, target, dest, anchor)
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d links checked: is the parser broken?", checked)
	}
}

// binaries builds the binaries into a directory shared by this package's
// tests.
var binaries = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "docs-bin-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/worker", "./cmd/enqueue", "./cmd/intake", "./cmd/sandbox")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", &buildError{err, string(out)}
	}
	return dir, nil
})

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

func bin(t *testing.T) string {
	t.Helper()
	dir, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// ourCommand returns the binary and arguments of a shell line that runs one
// of our binaries (as `go run ./cmd/X` or plain `X`), after any VAR=value
// assignments.
func ourCommand(line string) (name string, args []string, ok bool) {
	f := strings.Fields(line)
	for len(f) > 0 && regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`).MatchString(f[0]) {
		f = f[1:]
	}
	if len(f) >= 3 && f[0] == "go" && f[1] == "run" && strings.HasPrefix(f[2], "./cmd/") {
		return strings.TrimPrefix(f[2], "./cmd/"), f[3:], true
	}
	if len(f) > 0 && slices.Contains([]string{"worker", "enqueue", "intake", "sandbox"}, f[0]) {
		return f[0], f[1:], true
	}
	return "", nil, false
}

// TestCommands: every command of ours in a shell block of any page parses:
// the binary, with the line's flags and --help added, exits 0 (an unknown
// flag or subcommand makes it exit 2); every `make X` names a target of
// the Makefile. A line that is a synopsis (with [optional] parts,
// alternatives or <placeholders>) is checked against its subcommand's
// help instead: each flag it shows must be there.
func TestCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	dir := bin(t)
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, sl := range shellLines(t) {
		p, line := sl.page, sl.line
		line, _, _ = strings.Cut(line, " #")
		line = strings.TrimSpace(line)
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "make" {
			for _, target := range f[1:] {
				if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:`).Match(mk) {
					t.Errorf("%s: `%s`: the Makefile has no target %s", p, line, target)
				}
			}
			n++
			continue
		}
		name, args, ok := ourCommand(line)
		if !ok || strings.Contains(line, "$") {
			continue
		}
		synopsis := strings.ContainsAny(line, "[]|<>")
		if synopsis {
			// Its subcommand's help must name every flag it shows.
			var sub []string
			for _, a := range args {
				if !regexp.MustCompile(`^[a-z][a-z-]*$`).MatchString(a) {
					break
				}
				sub = append(sub, a)
			}
			args = sub
		}
		cmd := exec.Command(filepath.Join(dir, name), append(args, "--help")...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s: `%s` is refused by %s: %v\n%s", p, line, name, err, out)
		}
		if synopsis {
			for _, flag := range regexp.MustCompile(`--[a-z][a-z-]*`).FindAllString(line, -1) {
				// Go's flag package prints -name, cobra --name.
				if !regexp.MustCompile(`(^|[^\w-])--?` + regexp.QuoteMeta(strings.TrimPrefix(flag, "--")) + `\b`).Match(out) {
					t.Errorf("%s: `%s`: %s %s --help does not know %s", p, line, name, strings.Join(args, " "), flag)
				}
			}
		}
		n++
	}
	if n < 10 {
		t.Errorf("only %d commands checked: is the parser broken?", n)
	}
}

// shellLine is one command of a sh block of a Markdown page, its
// continued lines joined.
type shellLine struct{ page, line string }

// shellLines returns every command of every sh block of every page.
func shellLines(t *testing.T) []shellLine {
	t.Helper()
	var out []shellLine
	for _, p := range pages(t) {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		_, blocks, _ := parse(string(b))
		for _, bl := range blocks {
			if bl.info != "sh" {
				continue
			}
			for _, line := range joinContinued(bl.lines) {
				out = append(out, shellLine{p, line})
			}
		}
	}
	return out
}

// joinContinued joins lines ending in a backslash with the next, and
// lines within a single-quoted string, as the shell does.
func joinContinued(lines []string) []string {
	var out []string
	cur := ""
	for _, l := range lines {
		if s, ok := strings.CutSuffix(l, `\`); ok {
			cur += s + " "
			continue
		}
		cur += l
		if strings.Count(cur, "'")%2 == 1 {
			cur += "\n"
			continue
		}
		out = append(out, cur)
		cur = ""
	}
	return out
}

// TestReadmeTour runs the README's five-minute tour: the demo, then the
// block marked as the tour, line by line, as a newcomer would paste it
// (the entry's ID taken from `dlq list`), and checks that the order the
// demo dead-lettered ends cancelled.
func TestReadmeTour(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs the demo")
	}
	dir := bin(t)
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, blocks, _ := parse(string(b))
	var tour []string
	for _, bl := range blocks {
		if strings.HasPrefix(bl.before, "<!-- tour:") {
			tour = bl.lines
		}
	}
	if len(tour) < 4 {
		t.Fatalf("README has no tour block (a sh block after <!-- tour: ... -->)")
	}
	if !strings.Contains(string(b), "go run ./cmd/worker --demo\n") {
		t.Fatal("README no longer starts the demo with go run ./cmd/worker --demo")
	}

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	printed := startDemo(t)
	out := strings.Join(printed, "\n")
	if !regexp.MustCompile(`meari +DEMO-OUTAGE .* dead-lettered +retries exhausted`).MatchString(out) {
		t.Fatalf("the demo did not dead-letter DEMO-OUTAGE:\n%s", out)
	}
	// The demo names its Redis; the README's export is the same unless
	// port 6399 was taken here.
	export := ""
	for _, l := range printed {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "export "); ok {
			export = s
		}
	}
	if export == "" {
		t.Fatalf("the demo printed no export line:\n%s", out)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	id := ""
	var last string
	for _, line := range tour {
		line, _, _ = strings.Cut(line, " #")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if s, ok := strings.CutPrefix(line, "export "); ok {
			if s != export && !strings.Contains(export, "127.0.0.1:6399") {
				t.Logf("port 6399 was taken: using the demo's %s for the README's %s", export, s)
			} else if s != export {
				t.Errorf("README exports %q, the demo prints %q", s, export)
			}
			env = append(env, strings.Fields(export)...)
			continue
		}
		name, args, ok := ourCommand(line)
		if !ok || name != "enqueue" {
			t.Fatalf("tour line %q is not an enqueue command", line)
		}
		for i, a := range args {
			if a == "<ID>" {
				if id == "" {
					t.Fatalf("tour line %q needs an ID that no dlq list gave", line)
				}
				args[i] = id
			}
		}
		cmd := exec.CommandContext(ctx, filepath.Join(dir, name), args...)
		cmd.Env = env
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, b)
		}
		last = string(b)
		t.Logf("$ %s\n%s", line, b)
		if slices.Equal(args, []string{"dlq", "list"}) {
			for l := range strings.Lines(last) {
				if strings.Contains(l, "DEMO-OUTAGE") {
					id = strings.Fields(l)[0]
				}
			}
		}
	}
	// The requeued order is cancelled within a second or two; status was
	// the tour's last line: run it until it says so.
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(last, "completed") {
		if time.Now().After(deadline) {
			t.Fatalf("DEMO-OUTAGE was not cancelled after the requeue:\n%s", last)
		}
		time.Sleep(200 * time.Millisecond)
		cmd := exec.CommandContext(ctx, filepath.Join(dir, "enqueue"), "status", "meari", "DEMO-OUTAGE")
		cmd.Env = env
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("status: %v\n%s", err, b)
		}
		last = string(b)
	}
	if !regexp.MustCompile(`requeued by \S+ \(enqueue CLI\)`).MatchString(last) {
		t.Errorf("status does not tell the requeue's history:\n%s", last)
	}
}
