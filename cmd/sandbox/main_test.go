package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"io/fs"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/providers"
	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/cancelworker/cancelworker/providers/pandapon"
)

func files(m map[string]string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		if v, ok := m[name]; ok {
			return []byte(v), nil
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
}

// TestServesScriptedAnswers starts the sandbox with its demo accounts and
// a script, and calls it with the real provider clients: scripted orders
// answer as scripted, others are cancelled, a wrong secret is refused.
func TestServesScriptedAnswers(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	// The sandbox writes one line to stdout, where it serves; stderr is
	// read only after it has returned.
	out, stdout := io.Pipe()
	var stderr bytes.Buffer
	script := "# order answers\nmeari N1 meari:1005,ok\npandapon 2542285634920880794 http:503\n"
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--addr", "127.0.0.1:0", "--script", "answers.txt"}, func(string) string { return "" }, files(map[string]string{"answers.txt": script}), stdout, &stderr)
		stdout.Close()
	}()
	start, err := bufio.NewReader(out).ReadString('\n')
	m := regexp.MustCompile(`at (http://\S+);`).FindStringSubmatch(start)
	if err != nil || m == nil {
		t.Fatalf("the sandbox did not say where it serves: %q, %v (exit %d: %s)", start, err, <-code, stderr.String())
	}
	base := m[1]
	if !strings.Contains(start, "2 orders scripted") {
		t.Errorf("start line: %s", start)
	}
	mc := func(secret string) *meari.Client {
		c, err := meari.New(meari.Config{BaseURL: base, PartnerKey: DemoPartnerKey, PartnerSecret: secret, SourceApp: DemoSourceApp})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	order := func(num string) meari.Order {
		return meari.Order{SourceApp: DemoSourceApp, UserAccount: "u@example.com", OrderType: 1, OrderNum: num}
	}
	if err := mc(DemoPartnerSecret).Cancel(t.Context(), order("N1")); providers.ClassOf(err) != providers.Transient {
		t.Errorf("N1, first call: %v, want the scripted 1005", err)
	}
	if err := mc(DemoPartnerSecret).Cancel(t.Context(), order("N1")); err != nil {
		t.Errorf("N1, second call: %v, want success", err)
	}
	if err := mc(DemoPartnerSecret).Cancel(t.Context(), order("N2")); err != nil {
		t.Errorf("unscripted N2: %v, want success", err)
	}
	if err := mc("wrong-secret").Cancel(t.Context(), order("N3")); providers.ClassOf(err) != providers.Auth {
		t.Errorf("wrong secret: %v, want an auth failure", err)
	}
	pc, err := pandapon.New(pandapon.Config{BaseURL: base, AccessKey: DemoAccessKey, AccessSecret: DemoAccessSecret, UserID: DemoUserID})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Cancel(t.Context(), pandapon.Order{OrderID: 2542285634920880794}); providers.ClassOf(err) != providers.Transient {
		t.Errorf("scripted PandaPon 503: %v, want transient", err)
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit %d after the context ended: %s", c, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the sandbox did not stop")
	}
}

func TestConfigErrors(t *testing.T) {
	env := map[string]string{"MEARI_SOURCE_APP": "zero", "MEARI_SIGN_MODE": "magic", "PANDAPON_ACCESS_SECRET": "a", "PANDAPON_ACCESS_SECRET_FILE": "/x"}
	var stdout, stderr bytes.Buffer
	script := "meari N1 meari:1005,wat\npandapon 1 meari:1005\nmeari only-two\n"
	c := run(t.Context(), []string{"--addr", "127.0.0.1:0", "--script", "s"}, func(k string) string { return env[k] }, files(map[string]string{"s": script}), &stdout, &stderr)
	if c != 2 {
		t.Fatalf("exit %d, want 2", c)
	}
	for _, want := range []string{`MEARI_SOURCE_APP (--meari-source-app): must be an integer, got "zero"`, "MEARI_SIGN_MODE (--meari-sign-mode):", "PANDAPON_ACCESS_SECRET: set either it or PANDAPON_ACCESS_SECRET_FILE"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	env = map[string]string{}
	stderr.Reset()
	if c := run(t.Context(), []string{"--addr", "127.0.0.1:0", "--script", "s"}, func(k string) string { return env[k] }, files(map[string]string{"s": script}), &stdout, &stderr); c != 2 {
		t.Fatalf("bad script: exit %d, want 2", c)
	}
	for _, want := range []string{"line 1: step \"wat\"", "line 2: MeariCode is for provider meari", "line 3: want <provider> <order> <step>"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}
