package main

import (
	"bytes"
	"os/exec"
	"testing"
)

// TestBinaryExecutesNoTemplate: nothing the worker links can execute a
// text/template or html/template. Where something can, the linker keeps
// every exported method of every type, as it cannot tell which ones a
// template calls: go-redis's alone are 3 MB of code, and the binary grows
// by half and its resident memory by a quarter (docs/performance.md has
// the figures). Every execution of a template goes through the symbols
// below; `go build -ldflags=-dumpdep` shows what reaches them.
func TestBinaryExecutesNoTemplate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker")
	}
	bin := buildWorker(t)
	out, err := exec.Command("go", "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	if !bytes.Contains(out, []byte(" main.main\n")) {
		t.Fatalf("go tool nm lists no main.main: not the symbols of a Go binary?\n%.500s", out)
	}
	for _, sym := range []string{"text/template.(*Template).execute", "text/template.(*state).walk"} {
		if bytes.Contains(out, []byte(" "+sym+"\n")) {
			t.Errorf("the worker binary links %s: something it runs can execute a template", sym)
		}
	}
}
