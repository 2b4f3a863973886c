// Package httpguard holds the request checks that the admin server and the
// HTTP intake put in front of their handlers, against attacks a browser can
// be made to carry out on a user's behalf:
//
//   - Hosts refuses a request whose Host header is not on an allow-list, so
//     a DNS-rebinding page (evil.example resolving to 127.0.0.1) cannot
//     reach a loopback server through the user's browser.
//   - SameOrigin refuses a state-changing request (any method but GET, HEAD
//     and OPTIONS) that does not show it comes from a page of the same
//     origin, so another site cannot make the browser pause a queue or
//     archive tasks (cross-site request forgery).
package httpguard

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
)

// LoopbackHosts are the host names a loopback listener is reached by; they
// are always allowed.
var LoopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

// ParseHosts parses a comma-separated allow-list of host names or IP
// addresses, without ports ("admin.example.com, 10.0.0.5"). It returns them
// lower-cased, and an error naming the first entry that is not a host.
func ParseHosts(s string) ([]string, error) {
	var hosts []string
	for part := range strings.SplitSeq(s, ",") {
		h := strings.ToLower(strings.TrimSpace(part))
		if h == "" {
			continue
		}
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if strings.ContainsAny(h, "/@ ") || (strings.Contains(h, ":") && net.ParseIP(h) == nil) {
			return nil, fmt.Errorf("%q is not a host name or IP address (give no scheme, port or path)", part)
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}

// AllowedHosts returns the Host names a server listening on addr accepts:
// the loopback names, the listen address's own host when it is a specific
// address (not a wildcard), and extra.
func AllowedHosts(addr string, extra []string) []string {
	hosts := slices.Clone(LoopbackHosts)
	add := func(h string) {
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	if h, _, err := net.SplitHostPort(addr); err == nil && h != "" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
			add(strings.ToLower(h))
		}
	}
	for _, h := range extra {
		add(h)
	}
	return hosts
}

// hostOf returns the host of a Host header value, without port or
// brackets, lower-cased.
func hostOf(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
}

// RefuseFunc writes a 403 answer carrying msg, in the server's own format.
type RefuseFunc func(w http.ResponseWriter, msg string)

// Hosts is a Host-header check.
type Hosts struct {
	// Allowed are the accepted host names, lower-cased, without ports.
	Allowed []string
	// Setting names the setting that extends Allowed, for the refusal.
	Setting string
	// Open lists paths that skip the check, such as health endpoints that
	// orchestrators probe by IP address.
	Open []string
	// RefuseFunc writes the refusal; nil means PlainRefusal.
	RefuseFunc RefuseFunc
}

// Wrap returns next behind the check: a request whose Host header (any
// port) is not allowed is answered 403, with a text naming the setting.
func (hs Hosts) Wrap(next http.Handler) http.Handler {
	refuse := hs.RefuseFunc
	if refuse == nil {
		refuse = PlainRefusal
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slices.Contains(hs.Open, r.URL.Path) || slices.Contains(hs.Allowed, hostOf(r.Host)) {
			next.ServeHTTP(w, r)
			return
		}
		shown := strings.Map(func(c rune) rune {
			if c < 0x20 || c == 0x7f {
				return '?'
			}
			return c
		}, r.Host)
		if len(shown) > 80 {
			shown = shown[:80] + "..."
		}
		refuse(w, fmt.Sprintf("forbidden: Host %q is not a name this server answers to; add it to %s (comma-separated host names)", shown, hs.Setting))
	})
}

// ErrCrossOrigin is the cause given for a refused state-changing request.
var ErrCrossOrigin = errors.New("state-changing requests must come from a page of this server: the request's Origin or Sec-Fetch-Site header is missing or names another site")

// CheckSameOrigin returns nil when r is safe (GET, HEAD, OPTIONS) or shows
// it comes from a page of the same origin: Sec-Fetch-Site same-origin, or
// an Origin header naming the request's own Host. A state-changing request
// with neither header is refused too: browsers always send one, and a
// script that means to change state can send Origin itself.
func CheckSameOrigin(r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if r.Header.Get("Origin") == "" && r.Header.Get("Sec-Fetch-Site") == "" {
		return ErrCrossOrigin
	}
	if err := http.NewCrossOriginProtection().Check(r); err != nil {
		return ErrCrossOrigin
	}
	return nil
}

// SameOrigin returns next behind CheckSameOrigin: a request that fails it is
// refused with refuse (nil means PlainRefusal).
func SameOrigin(refuse RefuseFunc, next http.Handler) http.Handler {
	if refuse == nil {
		refuse = PlainRefusal
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := CheckSameOrigin(r); err != nil {
			refuse(w, "forbidden: "+err.Error())
			return
		}
		next.ServeHTTP(w, r)
	})
}

// PlainRefusal writes a 403 with msg as plain text.
func PlainRefusal(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusForbidden)
	fmt.Fprintln(w, msg)
}
