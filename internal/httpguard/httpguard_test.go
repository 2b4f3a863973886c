package httpguard_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/cancelworker/cancelworker/internal/httpguard"
)

func TestParseHosts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "empty", in: "", want: nil},
		{name: "names and addresses", in: " Admin.Example.com, 10.0.0.5 ,[fd00::1],", want: []string{"admin.example.com", "10.0.0.5", "fd00::1"}},
		{name: "a port", in: "admin.example.com:8080", wantErr: `"admin.example.com:8080" is not a host name`},
		{name: "a URL", in: "https://admin.example.com", wantErr: "is not a host name"},
		{name: "a path", in: "admin/x", wantErr: "is not a host name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := httpguard.ParseHosts(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseHosts(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("ParseHosts(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestAllowedHosts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr  string
		extra []string
		want  []string
	}{
		{addr: "127.0.0.1:8080", want: []string{"localhost", "127.0.0.1", "::1"}},
		{addr: "0.0.0.0:8080", want: []string{"localhost", "127.0.0.1", "::1"}},
		{addr: ":8080", extra: []string{"admin.example.com"}, want: []string{"localhost", "127.0.0.1", "::1", "admin.example.com"}},
		{addr: "10.0.0.5:8080", want: []string{"localhost", "127.0.0.1", "::1", "10.0.0.5"}},
		{addr: "[::]:8080", want: []string{"localhost", "127.0.0.1", "::1"}},
	}
	for _, tt := range tests {
		if got := httpguard.AllowedHosts(tt.addr, tt.extra); !slices.Equal(got, tt.want) {
			t.Errorf("AllowedHosts(%q, %q) = %q, want %q", tt.addr, tt.extra, got, tt.want)
		}
	}
}

func TestHosts(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	h := httpguard.Hosts{
		Allowed: httpguard.AllowedHosts("127.0.0.1:8080", []string{"admin.example.com"}),
		Setting: "ADMIN_ALLOWED_HOSTS",
		Open:    []string{"/healthz"},
	}.Wrap(ok)
	tests := []struct {
		host, path string
		want       int
	}{
		{host: "127.0.0.1:8080", path: "/", want: 200},
		{host: "localhost:8080", path: "/", want: 200},
		{host: "LOCALHOST", path: "/", want: 200},
		{host: "[::1]:8080", path: "/", want: 200},
		{host: "admin.example.com:443", path: "/", want: 200},
		{host: "evil.example:8080", path: "/monitoring/api/queues", want: 403},
		{host: "localhost.evil.example", path: "/", want: 403},
		{host: "127.0.0.2:8080", path: "/", want: 403},
		{host: "", path: "/", want: 403},
		{host: "evil.example", path: "/healthz", want: 200},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "http://x"+tt.path, nil)
		r.Host = tt.host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("Host %q %s: %d, want %d", tt.host, tt.path, w.Code, tt.want)
		}
		if w.Code == 403 && !strings.Contains(w.Body.String(), "ADMIN_ALLOWED_HOSTS") {
			t.Errorf("Host %q: refusal does not name the setting: %q", tt.host, w.Body.String())
		}
	}
}

func TestSameOrigin(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h := httpguard.SameOrigin(nil, ok)
	tests := []struct {
		name, method string
		header       map[string]string
		want         int
	}{
		{name: "GET without headers", method: "GET", want: 204},
		{name: "HEAD cross-site", method: "HEAD", header: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: 204},
		{name: "POST from the UI (fetch metadata)", method: "POST", header: map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:8080"}, want: 204},
		{name: "POST with a same-origin Origin only", method: "POST", header: map[string]string{"Origin": "http://127.0.0.1:8080"}, want: 204},
		{name: "DELETE from the UI", method: "DELETE", header: map[string]string{"Sec-Fetch-Site": "same-origin"}, want: 204},
		{name: "POST without Origin or fetch metadata", method: "POST", want: 403},
		{name: "POST from another site", method: "POST", header: map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, want: 403},
		{name: "POST from another port (same site)", method: "POST", header: map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:9999"}, want: 403},
		{name: "POST with a foreign Origin only", method: "POST", header: map[string]string{"Origin": "https://evil.example"}, want: 403},
		{name: "POST with Origin null", method: "POST", header: map[string]string{"Origin": "null"}, want: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(tt.method, "http://127.0.0.1:8080/monitoring/api/queues/cancel:meari:pause", nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("%d, want %d: %s", w.Code, tt.want, w.Body.String())
			}
		})
	}
}
