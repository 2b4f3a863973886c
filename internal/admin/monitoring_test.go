package admin_test

import (
	"bytes"
	"fmt"
	"html/template"
	"os"
	"strings"
	"testing"

	"github.com/cancelworker/cancelworker/internal/admin"
	"github.com/cancelworker/cancelworker/internal/config"
)

// TestMonitoringIndexAsUpstream: the monitoring UI's index page, whose
// placeholders the copy of asynqmon in third_party fills in without a
// template (its README.cancelworker.md says why), is the page asynqmon's
// own html/template rendering gives, but for the JavaScript escape of /
// (\/, the same string in a script) and the dead-letter link the admin
// server adds before </body>.
func TestMonitoringIndexAsUpstream(t *testing.T) {
	t.Parallel()
	index, err := os.ReadFile("../../third_party/asynqmon/ui/build/index.html")
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(index, []byte("/[[")); n != 11 {
		t.Fatalf("index.html has %d placeholders, want the 11 asynqmon v0.7.2 has", n)
	}
	for _, ro := range []bool{false, true} {
		t.Run(fmt.Sprintf("readonly=%v", ro), func(t *testing.T) {
			t.Parallel()
			// As asynqmon v0.7.2's static.go renders it.
			tmpl := template.Must(template.New("index.html").Delims("/[[", "]]").Parse(string(index)))
			var up bytes.Buffer
			if err := tmpl.Execute(&up, struct {
				RootPath, PrometheusAddr string
				ReadOnly                 bool
			}{strings.TrimSuffix(admin.MonitoringPath, "/"), "", ro}); err != nil {
				t.Fatal(err)
			}
			want := strings.ReplaceAll(up.String(), `\/`, "/")

			_, hs, _ := newServer(t, admin.Options{Config: config.Admin{Addr: "127.0.0.1:0", ReadOnly: ro}})
			code, got := get(t, hs.URL, "/monitoring/", "", "")
			if code != 200 {
				t.Fatalf("GET /monitoring/: %d", code)
			}
			i := strings.LastIndex(want, "</body>")
			if i < 0 || !strings.HasPrefix(got, want[:i]) || !strings.HasSuffix(got, want[i:]) || !strings.Contains(got, `id="cancelworker-dlq-link"`) {
				t.Errorf("the page differs from asynqmon's rendering.\ngot:\n%s\nwant (and the dead-letter link before </body>):\n%s", got, want)
			}
		})
	}
}
