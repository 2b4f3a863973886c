package admin_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"
)

// Environment variables read by the browser test.
const (
	envRequireBrowser = "REQUIRE_BROWSER" // "1": fail, not skip, without chromium
	envArtifacts      = "TEST_ARTIFACTS"  // directory for screenshots; default t.TempDir()
)

// chromium returns the path of the system Chromium, or skips t (fails it
// with REQUIRE_BROWSER=1) when there is none.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(envRequireBrowser) == "1" {
		t.Fatalf("%s=1 but no chromium on PATH; install Debian's chromium", envRequireBrowser)
	}
	t.Skipf("no chromium on PATH (set %s=1 to fail instead)", envRequireBrowser)
	return ""
}

// artifactDir returns where screenshots go: TEST_ARTIFACTS, or a temporary
// directory.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(envArtifacts)
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("%s: %v", envArtifacts, err)
	}
	return dir
}

// browser starts a headless Chromium with a fresh profile, closed at t's
// cleanup, and returns its context, bounded by timeout.
func browser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// The UI links web fonts from the internet: fail those lookups at
		// once, so the test depends on nothing beyond this machine.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancel)
	return ctx
}

// textIncludes polls until the page's visible text holds every one of want.
func textIncludes(want ...string) chromedp.Action[chromedp.Void] {
	var js strings.Builder
	js.WriteString("(() => { const t = document.body ? document.body.innerText : ''; return true")
	for _, w := range want {
		js.WriteString(" && t.includes(" + jsString(w) + ")")
	}
	js.WriteString("; })()")
	return chromedp.Poll[chromedp.Void](js.String(), chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second))
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// screenshot saves the whole page as dir/name and logs the path.
func screenshot(t *testing.T, dir, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, target) // 100: PNG
		if err != nil {
			return err
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			return err
		}
		t.Logf("screenshot: %s", path)
		return nil
	})
}

// TestBrowserMonitoringUI opens the worker's monitoring UI in a real
// headless Chromium after a real worker dead-lettered a Meari 4001: the UI
// lists both provider queues, its archived tab shows the dead-letter
// reason, and its link leads to the dead-letter page listing the entry.
func TestBrowserMonitoringUI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	t.Parallel()
	ctx := browser(t, 90*time.Second)
	dir := artifactDir(t)

	r := newRig(t, config.Admin{})
	dead := r.enqueueMeari(t, "UI-4001", sandbox.MeariCode("4001"))
	done := r.enqueuePandaPon(t, "2542285634920880794", sandbox.OK())
	r.waitState(t, dead, asynq.TaskStateArchived)
	r.waitState(t, done, asynq.TaskStateCompleted)

	err := chromedp.Do(ctx,
		chromedp.Navigate(r.base+"/monitoring/"),
		textIncludes("cancel:meari", "cancel:pandapon"),
		screenshot(t, dir, "monitoring-queues.png"),

		chromedp.Navigate(r.base+"/monitoring/queues/cancel:meari?status=archived"),
		textIncludes("UI-4001", "dead-lettered (permanent)"),
		screenshot(t, dir, "monitoring-archived.png"),

		chromedp.WaitVisible(chromedp.CSS("#cancelworker-dlq-link")),
		chromedp.Click(chromedp.CSS("#cancelworker-dlq-link")),
		chromedp.WaitVisible(chromedp.CSS("table#dlq")),
		textIncludes("Dead-letter queue", dead.TaskID, "permanent", "4001", "meari (1)", "pandapon (0)"),
		screenshot(t, dir, "dlq-page.png"),
	)
	if err != nil {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		text, _ := chromedp.Run(tctx, chromedp.Text(chromedp.CSS("body")))
		cancel()
		t.Fatalf("browser: %v\npage text:\n%s", err, text)
	}
	dlqURL, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(dlqURL, "/monitoring/dlq") {
		t.Errorf("the UI's dead-letter link led to %s, want /monitoring/dlq", dlqURL)
	}
}
