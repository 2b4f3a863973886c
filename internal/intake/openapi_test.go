package intake

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"
)

// openAPIPath is api/openapi.yaml, from this package's directory.
const openAPIPath = "../../api/openapi.yaml"

// yamlKeys reads the block-style YAML that api/openapi.yaml is written in
// and returns the path of every mapping key, joined with "/" (list items
// add "-"). It is not a YAML parser: it checks the subset the file uses
// (two-space indents, no tabs, no flow mappings across lines, block
// scalars with | or >) and fails t on anything else, which keeps the file
// in that subset.
func yamlKeys(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	keyRe := regexp.MustCompile(`^('[^']*'|"[^"]*"|[^\s'"#:][^:#]*?):(?:\s+(.*))?$`)
	type level struct {
		indent int
		key    string
	}
	var stack []level
	keys := map[string]bool{}
	blockIndent := -1 // inside a block scalar: lines indented more than this belong to it
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.Contains(line, "\t") {
			t.Fatalf("%s:%d: a tab; YAML indents with spaces", path, n)
		}
		trimmed := strings.TrimLeft(line, " ")
		indent := len(line) - len(trimmed)
		if blockIndent >= 0 {
			if trimmed == "" || indent > blockIndent {
				continue
			}
			blockIndent = -1
		}
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if indent%2 != 0 {
			t.Fatalf("%s:%d: indent of %d spaces; use multiples of two", path, n, indent)
		}
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		if strings.HasPrefix(trimmed, "- ") {
			stack = append(stack, level{indent: indent, key: "-"})
			indent += 2
			trimmed = trimmed[2:]
		}
		m := keyRe.FindStringSubmatch(trimmed)
		if m == nil {
			if len(stack) > 0 && stack[len(stack)-1].key == "-" {
				continue // a scalar list item
			}
			t.Fatalf("%s:%d: neither a key nor a list item: %q", path, n, trimmed)
		}
		key := strings.Trim(m[1], `'"`)
		stack = append(stack, level{indent: indent, key: key})
		parts := make([]string, len(stack))
		for i, l := range stack {
			parts[i] = l.key
		}
		keys[strings.Join(parts, "/")] = true
		switch v := m[2]; {
		case v == "|" || v == ">" || strings.HasPrefix(v, "|-") || strings.HasPrefix(v, ">-"):
			blockIndent = indent
		case strings.HasPrefix(v, "{") && !strings.HasSuffix(v, "}"),
			strings.HasPrefix(v, "[") && !strings.HasSuffix(v, "]"):
			t.Fatalf("%s:%d: a flow collection across lines", path, n)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestOpenAPIDocumentsEveryRoute checks api/openapi.yaml against the
// Handler: every route served is documented with the answers it can give,
// every documented path is served, and every $ref resolves.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "openapi: 3.") {
		t.Fatalf("%s: want it to start with openapi: 3.x", openAPIPath)
	}
	keys := yamlKeys(t, openAPIPath)

	// The status codes each route can answer with.
	codes := map[string][]string{
		"POST /v1/cancellations":                   {"202", "400", "401", "405", "413", "415", "503"},
		"GET /v1/cancellations/{provider}/{order}": {"200", "400", "401", "404", "405", "503"},
		"GET /healthz":                             {"200", "405"},
		"GET /readyz":                              {"200", "405", "503"},
	}
	served := map[string]bool{}
	for _, rt := range Routes() {
		served[rt.Pattern] = true
		op := "paths/" + rt.Pattern + "/" + strings.ToLower(rt.Method)
		if !keys[op] {
			t.Errorf("%s %s is served but not documented (no %s)", rt.Method, rt.Pattern, op)
			continue
		}
		want, ok := codes[rt.Method+" "+rt.Pattern]
		if !ok {
			t.Errorf("%s %s: add its status codes to this test", rt.Method, rt.Pattern)
		}
		for _, c := range want {
			if !keys[op+"/responses/"+c] {
				t.Errorf("%s %s: answer %s not documented", rt.Method, rt.Pattern, c)
			}
		}
		if doc := keys[op+"/security"]; doc == rt.Auth {
			t.Errorf("%s %s: auth %v, but the document's security override says otherwise", rt.Method, rt.Pattern, rt.Auth)
		}
	}
	for k := range keys {
		parts := strings.Split(k, "/")
		// paths/<the pattern, itself split on />: a documented path ends
		// where a method key follows.
		if parts[0] != "paths" || len(parts) < 3 {
			continue
		}
		switch parts[len(parts)-1] {
		case "get", "post", "put", "delete", "patch", "head", "options":
			p := strings.Join(parts[1:len(parts)-1], "/")
			if !served[p] {
				t.Errorf("%s is documented but not served", p)
			}
		}
	}

	refRe := regexp.MustCompile(`\$ref: '#/([^']+)'`)
	for _, m := range refRe.FindAllStringSubmatch(string(b), -1) {
		if !keys[m[1]] {
			t.Errorf("$ref #/%s does not resolve", m[1])
		}
	}
	for _, s := range []string{"2542285634920880794", "bearerAuth", "WWW-Authenticate"} {
		if !strings.Contains(string(b), s) {
			t.Errorf("want %s in the document", s)
		}
	}
}
