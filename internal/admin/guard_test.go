package admin_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
)

// TestCrossSiteRequestsRefused replays the attacks of a page on another
// site against the UI's write API, with the default (writable) UI on its
// default loopback address without auth: each is refused, and the queue
// and its tasks are untouched. The UI's own same-origin request still
// works.
func TestCrossSiteRequestsRefused(t *testing.T) {
	t.Parallel()
	r := newRig(t, config.Admin{})
	// A paused queue keeps its tasks pending, so the attacks have targets.
	if err := r.Inspector.PauseQueue(tasks.QueueMeari); err != nil {
		t.Fatal(err)
	}
	var queued []tasks.Result
	for i := range 3 {
		queued = append(queued, r.EnqueueMeari(t, fmt.Sprintf("CSRF-%d", i), sandbox.OK()))
	}
	host := strings.TrimPrefix(r.base, "http://")
	api := r.base + "/monitoring/api/queues/" + tasks.QueueMeari
	attacks := []struct {
		name, method, url string
		header            map[string]string
		host              string // the Host header; "" means the server's own
	}{
		{name: "cross-site archive all (fetch from another site)", method: "POST", url: api + "/pending_tasks:archive_all",
			header: map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}},
		{name: "cross-site resume (form post)", method: "POST", url: api + ":resume",
			header: map[string]string{"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"}},
		{name: "another port of this host", method: "POST", url: api + "/pending_tasks:archive_all",
			header: map[string]string{"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"}},
		{name: "cross-site delete all", method: "DELETE", url: api + "/pending_tasks:delete_all",
			header: map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{name: "no Origin and no fetch metadata", method: "POST", url: api + "/pending_tasks:archive_all"},
		{name: "DNS rebinding: same-origin to the browser, foreign Host", method: "POST", url: api + "/pending_tasks:archive_all",
			header: map[string]string{"Origin": "http://evil.example:" + portOf(host), "Sec-Fetch-Site": "same-origin"},
			host:   "evil.example:" + portOf(host)},
		{name: "DNS rebinding: reading the task list", method: "GET", url: api + "/pending_tasks", host: "evil.example"},
	}
	for _, a := range attacks {
		req, err := http.NewRequestWithContext(t.Context(), a.method, a.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range a.header {
			req.Header.Set(k, v)
		}
		if a.host != "" {
			req.Host = a.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", a.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403: %s", a.name, resp.StatusCode, body)
		}
	}
	info, err := r.Inspector.GetQueueInfo(tasks.QueueMeari)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Paused || info.Pending != 3 || info.Archived != 0 {
		t.Fatalf("after the attacks: paused %v, %d pending, %d archived; want paused, 3 pending, 0 archived", info.Paused, info.Pending, info.Archived)
	}

	// The UI's own page: same origin.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, api+":resume", nil)
	req.Header.Set("Origin", r.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("same-origin resume: %d, want 2xx", resp.StatusCode)
	}
	for _, q := range queued {
		r.WaitState(t, q, asynq.TaskStateCompleted)
	}
}

func portOf(hostport string) string {
	_, port, _ := strings.Cut(hostport, ":")
	return port
}
