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
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/httpguard"
	"github.com/cancelworker/cancelworker/internal/httpserve"
	"github.com/cancelworker/cancelworker/internal/taskstore"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
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
)

// WorkerCheck returns a readiness check named "worker" that passes while
// running returns nil, such as (*worker.Worker).Running.
func WorkerCheck(running func() error) httpserve.Check {
	return httpserve.Check{Name: "worker", Func: func(context.Context) error { return running() }}
}

// Options configures a Server.
type Options struct {
	// Config is the address, credentials and UI mode. Config.Addr "" is
	// refused: the caller does not build a Server when the admin server is
	// off.
	Config config.Admin
	// Redis is how the monitoring UI connects to Redis: it opens its own
	// clients (conn.NewClient) and Shutdown closes them. Required.
	Redis config.RedisConn
	// DLQ is the store the dead-letter page lists. Required.
	DLQ *dlq.Store
	// Enqueuer puts requeued dead-letter entries back on their queue, for
	// the dead-letter page's requeue buttons. Required unless
	// Config.ReadOnly.
	Enqueuer *tasks.Enqueuer
	// Shards is the queue layout, for the dead-letter page's links to each
	// queue's archive.
	Shards tasks.Shards
	// Metrics serves /metrics; nil means 404.
	Metrics http.Handler
	// Checks decide /readyz, each bounded by CheckTimeout.
	Checks []httpserve.Check
	// CheckTimeout bounds each check; zero means
	// httpserve.CheckTimeoutDefault.
	CheckTimeout time.Duration
	// Observer is told of every operator action, for metrics; nil means
	// none.
	Observer Observer
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
	mon      *monitor
	rdb      redis.UniversalClient // the audit's, for the archived tasks' entries
	handler  http.Handler
	fallback bool

	mu  sync.Mutex
	srv *httpserve.Server // nil before Start
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
	if !o.Redis.Valid() {
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
	s := &Server{
		cfg:      o.Config,
		log:      o.Logger,
		fallback: o.FallbackToFreePort,
		mon: &monitor{opts: asynqmon.Options{
			RootPath:     strings.TrimSuffix(MonitoringPath, "/"),
			RedisConnOpt: clientOpt{o.Redis},
			ReadOnly:     o.Config.ReadOnly,
		}},
	}
	s.rdb = o.Redis.NewClient()
	audit := auditor{log: o.Logger.Named("audit"), obs: o.Observer}
	mon := compactedView{next: s.mon, rdb: s.rdb, store: taskstore.New(s.rdb)}
	api := &apiGuard{next: mon, store: o.DLQ, insp: asynq.NewInspectorFromRedisClient(s.rdb), audit: audit}
	guard := func(h http.Handler) http.Handler { return h }
	if o.Config.AuthRequired() {
		guard = func(h http.Handler) http.Handler { return basicAuth(o.Config.User, o.Config.Password, h) }
	}
	metrics := o.Metrics
	if metrics == nil {
		metrics = http.NotFoundHandler()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+httpserve.HealthPath, httpserve.Health)
	mux.HandleFunc("GET "+httpserve.ReadyPath, httpserve.Ready(o.Checks, o.CheckTimeout, o.Logger))
	mux.Handle(MetricsPath, guard(metrics))
	mux.Handle(MonitoringPath, guard(withDLQLink(api)))
	mux.Handle(DLQPath, guard(&dlqPage{store: o.DLQ, log: o.Logger, readOnly: o.Config.ReadOnly, shards: o.Shards}))
	// Registered for every method, so that a GET gets a clear 405 rather
	// than the monitoring UI's "page not found".
	mux.Handle(DLQRequeuePath, guard(&dlqAction{action: actionRequeue, store: o.DLQ, enq: o.Enqueuer, log: o.Logger, audit: audit, readOnly: o.Config.ReadOnly}))
	mux.Handle(DLQPurgePath, guard(&dlqAction{action: actionPurge, store: o.DLQ, enq: o.Enqueuer, log: o.Logger, audit: audit, readOnly: o.Config.ReadOnly}))
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
		Open:    []string{httpserve.HealthPath, httpserve.ReadyPath},
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
	srv, err := httpserve.Start(httpserve.Config{
		Addr: s.cfg.Addr, Setting: "ADMIN_ADDR", FallbackToFreePort: s.fallback,
		Handler: s.handler, Logger: s.log.Named("admin"),
	})
	if err != nil {
		return fmt.Errorf("admin server: %w", err)
	}
	s.srv = srv
	s.log.Info("admin server listening", zap.String("addr", srv.Addr()),
		zap.String("monitoring_url", srv.URL()+MonitoringPath), zap.String("dlq_url", srv.URL()+DLQPath),
		zap.Bool("basic_auth", s.cfg.AuthRequired()), zap.Bool("read_only", s.cfg.ReadOnly))
	if !config.IsLoopback(s.cfg.Addr) {
		s.log.Warn("the admin server is reachable from other machines over plain HTTP: put it behind TLS, as basic auth sends the password in clear", zap.String("addr", srv.Addr()))
	}
	return nil
}

// Addr returns the bound address, host:port, or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return ""
	}
	return s.srv.Addr()
}

// URL returns "http://" and the bound address, or "" before Start. A
// wildcard host is shown as 127.0.0.1.
func (s *Server) URL() string {
	return httpserve.BaseURL(s.Addr())
}

// Shutdown stops accepting connections, waits for those in progress until
// ctx ends, and closes the monitoring UI's Redis clients. It may be called
// without Start.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	var errs []error
	if srv != nil {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("admin server: shutdown: %w", err))
		}
	}
	if err := s.mon.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		errs = append(errs, fmt.Errorf("admin server: close the monitoring UI's Redis clients: %w", err))
	}
	if err := s.rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		errs = append(errs, fmt.Errorf("admin server: close the audit's Redis client: %w", err))
	}
	return errors.Join(errs...)
}

func plain(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
}

// basicAuth lets a request through only with user and password.
func basicAuth(user, password string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		// Both compared, always: the time taken does not say which failed.
		userOK, passOK := httpserve.SameSecret(u, user), httpserve.SameSecret(p, password)
		if !ok || !userOK || !passOK {
			w.Header().Set("WWW-Authenticate", `Basic realm="cancelworker admin", charset="UTF-8"`)
			plain(w)
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintln(w, "unauthorized: this needs the admin user and password (ADMIN_USER, ADMIN_PASSWORD)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// monitor is asynqmon's handler, built at the first request for the
// monitoring UI: a worker whose UI nobody opens does not hold its router,
// inspector and Redis client (about 2 MB, docs/performance.md).
type monitor struct {
	opts asynqmon.Options

	mu     sync.Mutex
	h      *asynqmon.HTTPHandler // nil until the first request
	closed bool
}

func (m *monitor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	if m.h == nil && !m.closed {
		m.h = asynqmon.New(m.opts)
	}
	h := m.h
	closed := m.closed
	m.mu.Unlock()
	if closed {
		plain(w)
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "unavailable: the admin server is shutting down")
		return
	}
	h.ServeHTTP(w, r)
}

// Close closes the handler's Redis clients, if it was built; requests
// after it are answered 503.
func (m *monitor) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	if m.h == nil {
		return nil
	}
	return m.h.Close()
}

// clientOpt gives asynqmon clients built from the worker's own Redis
// connection, so the UI connects as the worker does (one server, Sentinel
// or Cluster; TLS, credentials, DB).
type clientOpt struct{ conn config.RedisConn }

// MakeRedisClient returns a new client; asynqmon closes it.
func (c clientOpt) MakeRedisClient() any { return c.conn.NewClient() }
