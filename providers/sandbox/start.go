package sandbox

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// readHeaderTimeout bounds how long the server started by Start waits for a
// request's headers.
const readHeaderTimeout = 10 * time.Second

// Start serves a new Sandbox for cfg on a free port of 127.0.0.1, in its own
// goroutine, and returns it with its server and base URL
// ("http://127.0.0.1:<port>", without a trailing slash). The caller stops
// the server with Close or Shutdown. It returns an error when cfg is invalid
// or the port cannot be opened.
func Start(cfg Config) (*Sandbox, *http.Server, string, error) {
	if err := cfg.validate(); err != nil {
		return nil, nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, "", fmt.Errorf("sandbox: listen: %w", err)
	}
	s := New(cfg)
	srv := &http.Server{Handler: s, ReadHeaderTimeout: readHeaderTimeout}
	// Serve closes ln when it returns: http.ErrServerClosed after Close or
	// Shutdown, nothing to report.
	go func() { _ = srv.Serve(ln) }()
	return s, srv, "http://" + ln.Addr().String(), nil
}
