package providers_test

import (
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/providers"
)

// TestBuildChoosesTheClient checks which client sends a provider's calls:
// fasthttp by default, net/http when asked, the caller's own http.Client
// when given one.
func TestBuildChoosesTheClient(t *testing.T) {
	if os.Getenv("HTTP_PROXY")+os.Getenv("http_proxy")+os.Getenv("HTTPS_PROXY")+os.Getenv("https_proxy") != "" {
		t.Skip("the environment names a proxy")
	}
	core, _, _ := providers.Transport{Timeout: time.Second, Calls: 4}.Build("p", "http://127.0.0.1:1", nil)
	if core.Fast == nil || core.HTTP != nil {
		t.Errorf("default: Fast=%v HTTP=%v, want a FastClient only", core.Fast, core.HTTP)
	}
	core, _, _ = providers.Transport{NetHTTP: true}.Build("p", "http://127.0.0.1:1", nil)
	if core.Fast != nil || core.HTTP == nil {
		t.Errorf("with NetHTTP: Fast=%v HTTP=%v, want net/http only", core.Fast, core.HTTP)
	}
	own := &http.Client{}
	core, _, _ = providers.Transport{HTTPClient: own}.Build("p", "http://127.0.0.1:1", nil)
	if core.Fast != nil || core.HTTP != own {
		t.Errorf("with HTTPClient: Fast=%v HTTP=%p, want the caller's %p only", core.Fast, core.HTTP, own)
	}
}

// TestBuildBehindProxy checks that a proxy named by the environment for the
// provider's URL sends its calls through net/http, which honours it
// (FastClient does not), and that NO_PROXY keeps fasthttp. net/http reads
// the environment once per process, so each case runs in a child.
func TestBuildBehindProxy(t *testing.T) {
	if want := os.Getenv("CANCELWORKER_PROXY_CHILD"); want != "" {
		core, _, _ := providers.Transport{}.Build("p", "http://upstream.example:8080", nil)
		if got := map[bool]string{true: "fast", false: "net/http"}[core.Fast != nil]; got != want {
			t.Fatalf("HTTP_PROXY=%q NO_PROXY=%q: calls go through %s, want %s", os.Getenv("HTTP_PROXY"), os.Getenv("NO_PROXY"), got, want)
		}
		return
	}
	for _, tt := range []struct{ noProxy, want string }{{"", "net/http"}, {"upstream.example", "fast"}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBuildBehindProxy$", "-test.count=1")
		cmd.Env = append(os.Environ(), "CANCELWORKER_PROXY_CHILD="+tt.want, "HTTP_PROXY=http://127.0.0.1:3128", "NO_PROXY="+tt.noProxy)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("NO_PROXY=%q: %v\n%s", tt.noProxy, err, out)
		}
	}
}
