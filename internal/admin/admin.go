// Package admin is the worker's admin HTTP server, one listener serving:
//
//	/                 links to everything below
//	/monitoring/      the asynqmon web UI (queues, tasks, archived tasks)
//	/monitoring/dlq   the dead-letter queue, with each entry's reason, filters
//	                  and (unless read-only) requeue and purge buttons, which
//	                  post to /monitoring/dlq/requeue and /monitoring/dlq/purge
//	/metrics          Prometheus metrics
//	/healthz          200 while the process is alive
//	/readyz           200 when every readiness check passes, else 503
//
// The UI, the dead-letter page and the metrics ask for HTTP basic auth when
// config.Admin.AuthRequired says so (always off loopback); the health
// endpoints stay open. In every mode, requests must name an allowed Host
// (config.Admin.AllowedHosts, against DNS rebinding; health endpoints
// excepted) and state-changing requests must come from a page of the same
// origin (against cross-site request forgery): see package httpguard.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/httpguard"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Paths served.
const (
	MonitoringPath = "/monitoring/"
	DLQPath        = "/monitoring/dlq"
	// DLQRequeuePath and DLQPurgePath take the dead-letter page's posts.
	DLQRequeuePath = DLQPath + "/requeue"
	DLQPurgePath   = DLQPath + "/purge"
	MetricsPath    = "/metrics"
	// ProfilingPath serves net/http/pprof when Config.Profiling is on.
	ProfilingPath = "/debug/pprof/"
	HealthPath    = "/healthz"
	ReadyPath     = "/readyz"
)

// CheckTimeoutDefault bounds each readiness check.
const CheckTimeoutDefault = 2 * time.Second

// Check is one readiness condition: Func returns nil when it holds, or an
// error that /readyz shows after Name. Func must honour ctx.
type Check struct {
	Name string
	Func func(ctx context.Context) error
}

// RedisCheck returns a Check named "redis" that PINGs rdb.
func RedisCheck(rdb redis.UniversalClient) Check {
	return Check{Name: "redis", Func: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }}
}

// WorkerCheck returns a Check named "worker" that passes while running
// returns nil, such as (*worker.Worker).Running.
func WorkerCheck(running func() error) Check {
	return Check{Name: "worker", Func: func(context.Context) error { return running() }}
}

// Options configures a Server.
type Options struct {
	// Config is the address, credentials and UI mode. Config.Addr "" is
	// refused: the caller does not build a Server when the admin server is
	// off.
	Config config.Admin
	// Redis is how the monitoring UI connects to Redis. The UI opens its own
	// clients from these options and Shutdown closes them. Required. Pass
	// the options the worker's client was built from, never a live
	// client's (*redis.Client).Options: go-redis keeps changing those.
	Redis *redis.Options
	// DLQ is the store the dead-letter page lists. Required.
	DLQ *dlq.Store
	// Enqueuer puts requeued dead-letter entries back on their queue, for
	// the dead-letter page's requeue buttons. Required unless
	// Config.ReadOnly.
	Enqueuer *tasks.Enqueuer
	// Metrics serves /metrics; nil means 404.
	Metrics http.Handler
	// Checks decide /readyz, each bounded by CheckTimeout.
	Checks []Check
	// CheckTimeout bounds each check; zero means CheckTimeoutDefault.
	CheckTimeout time.Duration
	// Logger is required.
	Logger *zap.Logger
	// FallbackToFreePort makes Start listen on a free port of the same host
	// when Config.Addr is in use, instead of failing. For the demo.
	FallbackToFreePort bool
}

// Server is the admin HTTP server. Start it once; Shutdown stops it.
type Server struct {
	cfg      config.Admin
	log      *zap.Logger
	mon      *asynqmon.HTTPHandler
	handler  http.Handler
	checks   []Check
	timeout  time.Duration
	fallback bool

	mu   sync.Mutex
	srv  *http.Server
	addr string
	done chan struct{} // closed when Serve returns
}

// New returns a Server for o; it does not listen yet.
func New(o Options) (*Server, error) {
	var errs []error
	if o.Config.Addr == "" {
		errs = append(errs, errors.New("admin: Config.Addr is required"))
	}
	if o.Config.AuthRequired() && (o.Config.User == "" || o.Config.Password == "") {
		errs = append(errs, fmt.Errorf("admin: basic auth on %s needs both ADMIN_USER and ADMIN_PASSWORD (always off loopback)", o.Config.Addr))
	}
	if o.Redis == nil {
		errs = append(errs, errors.New("admin: Redis is required"))
	}
	if o.DLQ == nil {
		errs = append(errs, errors.New("admin: DLQ is required"))
	}
	if o.Enqueuer == nil && !o.Config.ReadOnly {
		errs = append(errs, errors.New("admin: Enqueuer is required unless the admin server is read-only (ADMIN_READONLY)"))
	}
	if o.Logger == nil {
		errs = append(errs, errors.New("admin: Logger is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = CheckTimeoutDefault
	}
	s := &Server{
		cfg:      o.Config,
		log:      o.Logger,
		checks:   o.Checks,
		timeout:  o.CheckTimeout,
		fallback: o.FallbackToFreePort,
		mon: asynqmon.New(asynqmon.Options{
			RootPath:     strings.TrimSuffix(MonitoringPath, "/"),
			RedisConnOpt: clientOpt{o.Redis},
			ReadOnly:     o.Config.ReadOnly,
		}),
	}
	guard := func(h http.Handler) http.Handler { return h }
	if o.Config.AuthRequired() {
		guard = func(h http.Handler) http.Handler { return basicAuth(o.Config.User, o.Config.Password, h) }
	}
	metrics := o.Metrics
	if metrics == nil {
		metrics = http.NotFoundHandler()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+HealthPath, health)
	mux.HandleFunc("GET "+ReadyPath, s.ready)
	mux.Handle(MetricsPath, guard(metrics))
	mux.Handle(MonitoringPath, guard(withDLQLink(s.mon)))
	mux.Handle(DLQPath, guard(&dlqPage{store: o.DLQ, log: o.Logger, readOnly: o.Config.ReadOnly}))
	// Registered for every method, so that a GET gets a clear 405 rather
	// than the monitoring UI's "page not found".
	mux.Handle(DLQRequeuePath, guard(&dlqAction{action: actionRequeue, store: o.DLQ, enq: o.Enqueuer, log: o.Logger, readOnly: o.Config.ReadOnly}))
	mux.Handle(DLQPurgePath, guard(&dlqAction{action: actionPurge, store: o.DLQ, enq: o.Enqueuer, log: o.Logger, readOnly: o.Config.ReadOnly}))
	mux.Handle("GET /{$}", guard(http.HandlerFunc(index)))
	if o.Config.Profiling {
		// Not /debug/pprof/cmdline: nothing there a profile needs.
		mux.Handle("GET "+ProfilingPath, guard(http.HandlerFunc(pprof.Index)))
		mux.Handle("GET "+ProfilingPath+"profile", guard(http.HandlerFunc(pprof.Profile)))
		mux.Handle("GET "+ProfilingPath+"trace", guard(http.HandlerFunc(pprof.Trace)))
		mux.Handle("GET "+ProfilingPath+"symbol", guard(http.HandlerFunc(pprof.Symbol)))
	}
	// In every mode: a page on another site must not be able to drive the
	// UI's write API through the user's browser, nor reach a loopback
	// server by a rebound DNS name.
	s.handler = httpguard.Hosts{
		Allowed: httpguard.AllowedHosts(o.Config.Addr, o.Config.AllowedHosts),
		Setting: "ADMIN_ALLOWED_HOSTS",
		Open:    []string{HealthPath, ReadyPath},
	}.Wrap(httpguard.SameOrigin(nil, mux))
	return s, nil
}

// Handler returns the server's routes, auth included, for tests and for
// mounting elsewhere.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on the configured address and serves in the background. It
// logs "admin server listening" with the bound address (field addr), which
// differs from the configured one for port 0 or after a fallback.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("admin server: already started")
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil && s.fallback && errors.Is(err, syscall.EADDRINUSE) {
		host, _, _ := net.SplitHostPort(s.cfg.Addr)
		s.log.Warn("admin address in use; listening on a free port instead", zap.String("wanted", s.cfg.Addr))
		ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		return fmt.Errorf("admin server: listen on %s (ADMIN_ADDR): %w", s.cfg.Addr, err)
	}
	s.addr = ln.Addr().String()
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          zap.NewStdLog(s.log.Named("admin_http")),
	}
	s.done = make(chan struct{})
	go func(srv *http.Server, done chan struct{}) {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin server stopped", zap.Error(err))
		}
	}(s.srv, s.done)
	s.log.Info("admin server listening", zap.String("addr", s.addr),
		zap.String("monitoring_url", baseURL(s.addr)+MonitoringPath), zap.String("dlq_url", baseURL(s.addr)+DLQPath),
		zap.Bool("basic_auth", s.cfg.AuthRequired()), zap.Bool("read_only", s.cfg.ReadOnly))
	if !config.IsLoopback(s.cfg.Addr) {
		s.log.Warn("the admin server is reachable from other machines over plain HTTP: put it behind TLS, as basic auth sends the password in clear", zap.String("addr", s.addr))
	}
	return nil
}

// Addr returns the bound address, host:port, or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URL returns "http://" and the bound address, or "" before Start. A
// wildcard host is shown as 127.0.0.1.
func (s *Server) URL() string {
	return baseURL(s.Addr())
}

func baseURL(addr string) string {
	if addr == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(addr)
	if err == nil && (host == "" || net.ParseIP(host).IsUnspecified()) {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	return "http://" + addr
}

// Shutdown stops accepting connections, waits for those in progress until
// ctx ends, and closes the monitoring UI's Redis clients. It may be called
// without Start.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.mu.Unlock()
	var errs []error
	if srv != nil {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("admin server: shutdown: %w", err))
		}
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	if err := s.mon.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		errs = append(errs, fmt.Errorf("admin server: close the monitoring UI's Redis clients: %w", err))
	}
	return errors.Join(errs...)
}

// health answers 200 while the process can serve HTTP at all.
func health(w http.ResponseWriter, _ *http.Request) {
	plain(w)
	fmt.Fprintln(w, "ok")
}

// ready runs every check and answers 200 "ready", or 503 with one line per
// failed check.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	var failed []string
	for _, c := range s.checks {
		ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
		err := c.Func(ctx)
		cancel()
		if err != nil {
			failed = append(failed, c.Name+": "+err.Error())
		}
	}
	plain(w)
	if len(failed) > 0 {
		s.log.Debug("not ready", zap.Strings("failed", failed))
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready\n%s\n", strings.Join(failed, "\n"))
		return
	}
	fmt.Fprintln(w, "ready")
}

func plain(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
}

// basicAuth lets a request through only with user and password. Both sides
// are hashed first, so the constant-time compare does not leak lengths.
func basicAuth(user, password string, next http.Handler) http.Handler {
	wantUser, wantPass := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		gotUser, gotPass := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
		userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
		passOK := subtle.ConstantTimeCompare(gotPass[:], wantPass[:])
		if !ok || userOK&passOK != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="cancelworker admin", charset="UTF-8"`)
			plain(w)
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintln(w, "unauthorized: this needs the admin user and password (ADMIN_USER, ADMIN_PASSWORD)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// clientOpt gives asynqmon clients built from the worker's own Redis
// options, so the UI connects as the worker does (TLS, credentials, DB).
type clientOpt struct{ opt *redis.Options }

// MakeRedisClient returns a new client; asynqmon closes it.
func (c clientOpt) MakeRedisClient() any { return redis.NewClient(c.opt) }
