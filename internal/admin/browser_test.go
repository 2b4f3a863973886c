package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"
	"go.uber.org/zap"
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

// hostRulesDefault makes the browser fail every name lookup but loopback.
// The UI links web fonts from the internet: failing those lookups at once
// keeps the test to this machine.
const hostRulesDefault = "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"

// browser starts a headless Chromium with a fresh profile, closed at t's
// cleanup, and returns its context, bounded by timeout.
func browser(t *testing.T, timeout time.Duration) context.Context {
	return browserWithHosts(t, timeout, hostRulesDefault)
}

// browserWithHosts is browser with Chromium's host-resolver-rules set to
// rules, e.g. to make a made-up name resolve to 127.0.0.1.
func browserWithHosts(t *testing.T, timeout time.Duration, rules string) context.Context {
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
		chromedp.Flag("host-resolver-rules", rules),
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

// failWithPage fails t with err and the text of the page the browser of
// ctx shows.
func failWithPage(t *testing.T, ctx context.Context, err error) {
	t.Helper()
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	text, _ := chromedp.Run(tctx, chromedp.Text(chromedp.CSS("body")))
	t.Fatalf("browser: %v\npage text:\n%s", err, text)
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
	dead := r.EnqueueMeari(t, "UI-4001", sandbox.MeariCode("4001"))
	done := r.EnqueuePandaPon(t, "2542285634920880794", sandbox.OK())
	r.WaitState(t, dead, asynq.TaskStateArchived)
	r.WaitState(t, done, asynq.TaskStateCompleted)

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
		failWithPage(t, ctx, err)
	}
	dlqURL, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(dlqURL, "/monitoring/dlq") {
		t.Errorf("the UI's dead-letter link led to %s, want /monitoring/dlq", dlqURL)
	}
}

// TestBrowserCrossSiteRefused drives a real Chromium through the two
// attacks on the writable UI: a page on another site posting to the UI's
// write API, and a DNS-rebinding page (a foreign name resolving to
// 127.0.0.1) doing so "same-origin". Both are refused and the pending tasks
// stay; the UI's own page, same-origin, can still resume the queue.
func TestBrowserCrossSiteRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	t.Parallel()
	ctx := browserWithHosts(t, 90*time.Second, "MAP evil.test 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
	r := newRig(t, config.Admin{})
	if err := r.Inspector.PauseQueue(tasks.QueueMeari); err != nil {
		t.Fatal(err)
	}
	var queued []tasks.Result
	for i := range 3 {
		queued = append(queued, r.EnqueueMeari(t, fmt.Sprintf("BROWSER-CSRF-%d", i), sandbox.OK()))
	}
	api := "/monitoring/api/queues/" + tasks.QueueMeari
	// The attacker's site: one page that posts to the UI's API.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>evil</title><script>
Promise.allSettled([
  fetch(%[1]q, {method: "POST", mode: "no-cors"}),
  fetch(%[2]q, {method: "POST", mode: "no-cors"}),
]).then(() => { document.title = "sent"; });
</script>`, r.base+api+"/pending_tasks:archive_all", r.base+api+":resume")
	}))
	t.Cleanup(evil.Close)
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "evil.test", 1)
	rebound := strings.Replace(r.base, "127.0.0.1", "evil.test", 1)

	status := func(js string) chromedp.Action[int] {
		return chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise)
	}
	post := func(path string) string {
		return "fetch(" + jsString(path) + ", {method: 'POST'}).then(r => r.status)"
	}
	err := chromedp.Do(ctx,
		chromedp.Navigate(evilURL+"/"),
		chromedp.Poll[chromedp.Void]("document.title === 'sent'", chromedp.WithPollingTimeout(20*time.Second)),
	)
	if err != nil {
		t.Fatalf("cross-site page: %v", err)
	}
	// The rebound name reaches the admin server itself: the page and its
	// same-origin calls are refused for their Host.
	if err := chromedp.Do(ctx, chromedp.Navigate(rebound+"/monitoring/"), textIncludes("forbidden: Host")); err != nil {
		t.Fatalf("rebound page: %v", err)
	}
	if code, err := chromedp.Run(ctx, status(post(api+"/pending_tasks:archive_all"))); err != nil || code != http.StatusForbidden {
		t.Fatalf("rebound same-origin POST: %d, %v; want 403", code, err)
	}
	info, err := r.Inspector.GetQueueInfo(tasks.QueueMeari)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Paused || info.Pending != 3 || info.Archived != 0 {
		t.Fatalf("after the attacks: paused %v, %d pending, %d archived; want paused, 3 pending, 0 archived", info.Paused, info.Pending, info.Archived)
	}

	// The UI's own origin: Chromium sends Origin and Sec-Fetch-Site, and
	// the call goes through.
	if err := chromedp.Do(ctx, chromedp.Navigate(r.base+"/monitoring/"), textIncludes("cancel:meari")); err != nil {
		t.Fatalf("UI page: %v", err)
	}
	if code, err := chromedp.Run(ctx, status(post(api+":resume"))); err != nil || code >= 300 {
		t.Fatalf("same-origin resume from the UI's page: %d, %v; want 2xx", code, err)
	}
	for _, q := range queued {
		r.WaitState(t, q, asynq.TaskStateCompleted)
	}
}

// TestBrowserDeleteRefused clicks the monitoring UI's "Delete All" on a
// queue's pending tasks in a real Chromium: the admin server refuses it,
// the page shows why in a banner, and every task is still pending.
func TestBrowserDeleteRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	t.Parallel()
	ctx := browser(t, 90*time.Second)
	dir := artifactDir(t)
	r := newRig(t, config.Admin{})
	if err := r.Inspector.PauseQueue(tasks.QueueMeari); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r.EnqueueMeari(t, fmt.Sprintf("KEEP-%d", i), sandbox.OK())
	}
	err := chromedp.Do(ctx,
		chromedp.Navigate(r.base+"/monitoring/queues/"+tasks.QueueMeari+"?status=pending"),
		textIncludes("KEEP-0", "KEEP-2"),
		chromedp.Click(chromedp.CSS(`button[aria-label="actions"]`)),
		chromedp.Click(chromedp.Search(`//li[normalize-space()="Delete All"]`)),
		chromedp.WaitVisible(chromedp.CSS("#cancelworker-refused")),
		textIncludes("refused: deleting a pending task drops its order without a trace", "Archive it instead"),
		screenshot(t, dir, "monitoring-delete-refused.png"),
	)
	if err != nil {
		failWithPage(t, ctx, err)
	}
	info, err := r.Inspector.GetQueueInfo(tasks.QueueMeari)
	if err != nil || info.Pending != 3 {
		t.Errorf("after the refused Delete All: %+v, %v; want 3 pending", info, err)
	}
	if n := r.Logs.FilterMessage("operator action").FilterField(zap.String("result", "refused")).Len(); n != 1 {
		t.Errorf("%d refused operator actions logged, want 1", n)
	}
}
