// Package httpserve is what the worker's admin server and the HTTP intake
// share: listening, serving with bounded timeouts, a graceful shutdown,
// constant-time credential checks, and the health endpoints in one format.
//
// Both /healthz and /readyz answer JSON:
//
//	200 {"status":"ok"}                          /healthz, while the process serves HTTP
//	200 {"status":"ready"}                       /readyz, every check passes
//	503 {"status":"unavailable","reason":"..."}  /readyz, the failed checks, "name: error; ..."
package httpserve

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Paths of the health endpoints.
const (
	HealthPath = "/healthz"
	ReadyPath  = "/readyz"
)

// CheckTimeoutDefault bounds each readiness check.
const CheckTimeoutDefault = 2 * time.Second

// Check is one readiness condition: Func returns nil when it holds, or an
// error that /readyz shows after Name. Func must honour ctx.
type Check struct {
	Name string
	Func func(ctx context.Context) error
}

// RedisCheck returns a Check named "redis" that PINGs rdb and writes to it.
//
// Answering is not enough: a Redis out of memory (maxmemory with
// noeviction), a replica (READONLY) or one whose snapshots fail (MISCONF)
// answers PING and refuses every enqueue and every outcome. So the check
// also writes ReadyKey, a few bytes that expire in seconds; on Redis
// Cluster that tests the one master holding it.
func RedisCheck(rdb redis.UniversalClient) Check {
	return Check{Name: "redis", Func: func(ctx context.Context) error {
		if err := rdb.Ping(ctx).Err(); err != nil {
			return err
		}
		if err := rdb.Set(ctx, ReadyKey, "1", readyKeyTTL).Err(); err != nil {
			return fmt.Errorf("answers but refuses writes: %w", err)
		}
		return nil
	}}
}

// ReadyKey is the key RedisCheck writes; readyKeyTTL is how long it stays.
const (
	ReadyKey    = "cancelworker:readyz"
	readyKeyTTL = 10 * time.Second
)

// Status is the body of /healthz and /readyz.
type Status struct {
	// Status is "ok" (/healthz), "ready" or "unavailable" (/readyz).
	Status string `json:"status"`
	// Reason names each failed check and its error, "; "-separated.
	Reason string `json:"reason,omitempty"`
}

// Health answers /healthz: 200 while the process can serve HTTP at all.
func Health(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, Status{Status: "ok"})
}

// Ready returns the /readyz handler: it runs every check, each bounded by
// timeout (zero means CheckTimeoutDefault), and answers 200 "ready" or 503
// "unavailable" with the failed checks. log, if not nil, gets a debug line
// per 503.
func Ready(checks []Check, timeout time.Duration, log *zap.Logger) http.HandlerFunc {
	if timeout <= 0 {
		timeout = CheckTimeoutDefault
	}
	if log == nil {
		log = zap.NewNop()
	}
	return func(w http.ResponseWriter, r *http.Request) {
		var failed []string
		for _, c := range checks {
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			err := c.Func(ctx)
			cancel()
			if err != nil {
				failed = append(failed, c.Name+": "+err.Error())
			}
		}
		if len(failed) > 0 {
			log.Debug("not ready", zap.Strings("failed", failed))
			WriteJSON(w, http.StatusServiceUnavailable, Status{Status: "unavailable", Reason: strings.Join(failed, "; ")})
			return
		}
		WriteJSON(w, http.StatusOK, Status{Status: "ready"})
	}
}

// WriteJSON writes v as the JSON body of a code answer, not to be cached
// or sniffed.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only plain structs are written: this is a wiring bug.
		code, b = http.StatusInternalServerError, []byte(`{"errors":[{"field":"","problem":"could not encode the answer"}]}`)
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n')) // the client may be gone; nothing to do then
}

// SameSecret reports whether got equals want in time that depends on
// neither: both are hashed first, so the constant-time compare does not
// leak their lengths either.
func SameSecret(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// Timeouts bound a server's connections. Zero fields take the defaults of
// DefaultTimeouts.
type Timeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// DefaultTimeouts are the bounds of Start when Config leaves them zero.
var DefaultTimeouts = Timeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 60 * time.Second, Idle: 2 * time.Minute}

// Config is one server to Start.
type Config struct {
	// Addr is the listen address, host:port; port 0 picks a free one.
	Addr string
	// Setting names the variable Addr came from, for errors
	// ("ADMIN_ADDR").
	Setting string
	// FallbackToFreePort listens on a free port of the same host when Addr
	// is in use, instead of failing (for the demo).
	FallbackToFreePort bool
	Handler            http.Handler
	Timeouts           Timeouts
	// Logger gets the server's errors; required.
	Logger *zap.Logger
}

// Server is a started HTTP server.
type Server struct {
	srv  *http.Server
	addr string
	done chan struct{} // closed when Serve returns
	mu   sync.Mutex
	err  error // what Serve returned, other than ErrServerClosed
}

// Start listens on c.Addr and serves c.Handler in the background.
func Start(c Config) (*Server, error) {
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil && c.FallbackToFreePort && errors.Is(err, syscall.EADDRINUSE) {
		host, _, _ := net.SplitHostPort(c.Addr)
		c.Logger.Warn("address in use; listening on a free port instead", zap.String("wanted", c.Addr), zap.String("setting", c.Setting))
		ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		return nil, fmt.Errorf("listen on %s (%s): %w", c.Addr, c.Setting, err)
	}
	t := c.Timeouts
	d := DefaultTimeouts
	s := &Server{
		addr: ln.Addr().String(),
		done: make(chan struct{}),
		srv: &http.Server{
			Handler:           c.Handler,
			ReadHeaderTimeout: cmpOr(t.ReadHeader, d.ReadHeader),
			ReadTimeout:       cmpOr(t.Read, d.Read),
			WriteTimeout:      cmpOr(t.Write, d.Write),
			IdleTimeout:       cmpOr(t.Idle, d.Idle),
			ErrorLog:          zap.NewStdLog(c.Logger.Named("http")),
		},
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.Logger.Error("HTTP server stopped", zap.String("addr", s.addr), zap.Error(err))
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
		}
	}()
	return s, nil
}

func cmpOr(a, b time.Duration) time.Duration {
	if a > 0 {
		return a
	}
	return b
}

// Addr is the bound address, host:port: for port 0, the port picked.
func (s *Server) Addr() string { return s.addr }

// URL is "http://" and the bound address, a wildcard host shown as
// 127.0.0.1.
func (s *Server) URL() string { return BaseURL(s.addr) }

// BaseURL is "http://" and addr, a wildcard host shown as 127.0.0.1; ""
// for "".
func BaseURL(addr string) string {
	if addr == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(addr)
	if err == nil && (host == "" || net.ParseIP(host).IsUnspecified()) {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	return "http://" + addr
}

// Done is closed when the server has stopped serving: after Shutdown, or
// on its own after an error (Err says which).
func (s *Server) Done() <-chan struct{} { return s.done }

// Err returns what stopped the server on its own, nil after a Shutdown.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Shutdown stops accepting connections and waits for those in progress
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	select {
	case <-s.done:
	case <-ctx.Done():
	}
	return err
}

// StatusWriter passes a response through and remembers its status: 200
// unless the handler writes another before its body.
type StatusWriter struct {
	http.ResponseWriter
	Status int
	wrote  bool
}

// NewStatusWriter wraps w.
func NewStatusWriter(w http.ResponseWriter) *StatusWriter {
	return &StatusWriter{ResponseWriter: w, Status: http.StatusOK}
}

func (s *StatusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.Status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *StatusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *StatusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
