package sandbox

import (
	"strings"
	"testing"
)

func TestParseStep(t *testing.T) {
	for in, want := range map[string]string{
		"ok":                     "ok",
		"meari:4001":             "resultCode 4001",
		"pandapon:429":           "code 429",
		"pandapon:200:false":     "code 200 data false",
		"http:503":               "http 503",
		"retry-after:429:1500ms": "http 429 retry-after 2s",
		"slow:3s:meari:1005":     "slow 3s, then resultCode 1005",
		"reset":                  "reset",
		"bad-body:<html>":        "bad body",
	} {
		st, err := ParseStep(in)
		if err != nil || st.String() != want {
			t.Errorf("ParseStep(%q) = %q, %v; want %q", in, st.String(), err, want)
		}
	}
	for _, in := range []string{"", "nope", "ok:1", "meari:", "pandapon:x", "pandapon:200:maybe", "http:99", "http:abc", "retry-after:429", "slow:3s", "slow:x:ok", "reset:1"} {
		if _, err := ParseStep(in); err == nil {
			t.Errorf("ParseStep(%q) accepted", in)
		}
	}
	lines, err := ParseScript(strings.NewReader("\n# c\nmeari N1 meari:1005,ok\n"))
	if err != nil || len(lines) != 1 || lines[0].Order != "N1" || len(lines[0].Steps) != 2 {
		t.Errorf("ParseScript = %+v, %v", lines, err)
	}
}
