package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cancelworker/cancelworker/internal/config"
	"github.com/cancelworker/cancelworker/internal/httpserve"
	"github.com/cancelworker/cancelworker/internal/text"
	"github.com/cancelworker/cancelworker/internal/tracing"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/cancelworker/cancelworker/internal/httpguard"
	"github.com/cancelworker/cancelworker/internal/status"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// Limits and defaults of a Handler.
const (
	// MaxBodyDefault is the largest request body accepted, in bytes.
	MaxBodyDefault = 1 << 20
	// MaxItemsDefault is the most items accepted in one request.
	MaxItemsDefault = 1000
	// TimeoutDefault bounds the Redis work of one request.
	TimeoutDefault = 30 * time.Second
	// MaxInFlightDefault is how many /v1 requests are served at once; more
	// are answered 503 with Retry-After at once. A request holds its body
	// (at most MaxBody), its tasks, its Redis commands and its answer:
	// about 4 MB for a 1 MiB batch of 1000 valid items. 64 such requests
	// at once took the intake to 266 MB, 48 to 207 MB, 32 to 142 MB.
	MaxInFlightDefault = config.IntakeMaxInFlightDefault
	// readyTimeout bounds the Redis PING of /readyz.
	readyTimeout = 2 * time.Second
)

// Options configure a Handler. The zero value is usable: no auth, the
// default limits, no logging.
type Options struct {
	// Token is the bearer token that /v1 requests must present. Empty
	// turns authentication off; the caller decides when that is allowed.
	Token string
	// Defaults fills the fields an item leaves out.
	Defaults Defaults
	// Workers is how many Enqueue calls one request keeps in flight.
	// Zero means WorkersDefault.
	Workers int
	// Timeout bounds the Redis work of one request. Zero means
	// TimeoutDefault.
	Timeout time.Duration
	// MaxBody is the largest body accepted, in bytes. Zero means
	// MaxBodyDefault.
	MaxBody int64
	// MaxItems is the most items accepted in one request. Zero means
	// MaxItemsDefault.
	MaxItems int
	// MaxInFlight is how many /v1 requests are served at once; more get a
	// 503 with Retry-After. Zero means MaxInFlightDefault.
	MaxInFlight int
	// Logger gets one line per request; nil means none. Tokens and
	// headers are never logged.
	Logger *zap.Logger
	// AllowedHosts are the Host header names accepted when Token is empty
	// (httpguard.AllowedHosts of the listen address): without a token, a
	// page on a rebound DNS name could otherwise enqueue through a user's
	// browser. Empty means the loopback names. With a token it is unused.
	AllowedHosts []string
	// Shards is the queue layout orders are enqueued to and looked up in.
	Shards tasks.Shards
}

// Route is one method and path pattern the Handler serves.
type Route struct {
	Method  string
	Pattern string // as http.ServeMux and api/openapi.yaml spell it
	Auth    bool   // requires the bearer token, when one is set
}

// Routes returns the routes the Handler serves, for documentation checks.
func Routes() []Route {
	return []Route{
		{Method: http.MethodPost, Pattern: "/v1/cancellations", Auth: true},
		{Method: http.MethodGet, Pattern: "/v1/cancellations/{provider}/{order}", Auth: true},
		{Method: http.MethodGet, Pattern: "/healthz"},
		{Method: http.MethodGet, Pattern: "/readyz"},
	}
}

// Handler serves the HTTP intake: POST /v1/cancellations enqueues one item
// or an array of them, GET /v1/cancellations/{provider}/{order} tells where
// an order's cancellation stands, /healthz says the process is up and
// /readyz that Redis answers. Every answer, errors included, is JSON.
//
// A batch is validated as a whole first: if any item is invalid, nothing
// is enqueued and the answer is 400 with every problem, so the client can
// fix and resend the whole batch. Enqueueing is idempotent per order, so
// resending a batch that was partly enqueued (a 503) is safe as well.
//
// It is safe for concurrent use. It does not own the Redis client.
type Handler struct {
	opts  Options
	auth  bool
	token string // compared with httpserve.SameSecret; never logged
	mux   *http.ServeMux
	root  http.Handler // mux, behind the Host check when there is no token
	rdb   redis.UniversalClient
	sub   *Submitter
	insp  *asynq.Inspector
	store *dlq.Store
	log   *zap.Logger
	slots chan struct{} // one per /v1 request in flight
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns a Handler that works on Redis through rdb; the
// caller keeps ownership of rdb and closes it after the server stops.
func NewHandler(rdb redis.UniversalClient, o Options) *Handler {
	if o.Workers < 1 {
		o.Workers = WorkersDefault
	}
	if o.Timeout <= 0 {
		o.Timeout = TimeoutDefault
	}
	if o.MaxBody <= 0 {
		o.MaxBody = MaxBodyDefault
	}
	if o.MaxItems <= 0 {
		o.MaxItems = MaxItemsDefault
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = MaxInFlightDefault
	}
	h := &Handler{
		opts:  o,
		auth:  o.Token != "",
		mux:   http.NewServeMux(),
		rdb:   rdb,
		sub:   NewSubmitter(rdb, o.Shards, "the HTTP intake"),
		insp:  asynq.NewInspectorFromRedisClient(rdb),
		store: dlq.New(rdb),
		log:   o.Logger,
		slots: make(chan struct{}, o.MaxInFlight),
	}
	if h.log == nil {
		h.log = zap.NewNop()
	}
	h.token = o.Token
	serve := map[string]http.HandlerFunc{
		"/v1/cancellations":                    h.postCancellations,
		"/v1/cancellations/{provider}/{order}": h.getStatus,
		httpserve.HealthPath:                   httpserve.Health,
		httpserve.ReadyPath:                    httpserve.Ready([]httpserve.Check{httpserve.RedisCheck(rdb)}, readyTimeout, h.log),
	}
	for _, rt := range Routes() {
		fn := serve[rt.Pattern]
		if rt.Auth {
			fn = h.authenticated(h.limited(fn))
		}
		h.mux.HandleFunc(rt.Method+" "+rt.Pattern, fn)
		allow := rt.Method
		if rt.Method == http.MethodGet {
			allow += ", " + http.MethodHead
		}
		h.mux.HandleFunc(rt.Pattern, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "", "method not allowed: use "+allow)
		})
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "", "no such path: see api/openapi.yaml")
	})
	h.root = h.mux
	if !h.auth {
		hosts := o.AllowedHosts
		if len(hosts) == 0 {
			hosts = httpguard.LoopbackHosts
		}
		h.root = httpguard.Hosts{
			Allowed: hosts,
			Setting: "INTAKE_ALLOWED_HOSTS",
			Open:    []string{"/healthz", "/readyz"},
			RefuseFunc: func(w http.ResponseWriter, msg string) {
				writeError(w, http.StatusForbidden, "", msg)
			},
		}.Wrap(h.mux)
	}
	return h
}

// ServeHTTP serves r and logs one line for it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := httpserve.NewStatusWriter(w)
	var span trace.Span
	if tracing.Enabled() {
		// Under the client's traceparent, if it sent one.
		_, pattern := h.mux.Handler(r)
		ctx := tracing.ExtractHTTP(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span = tracing.Tracer().Start(ctx, pattern, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
		r = r.WithContext(ctx)
	}
	h.root.ServeHTTP(sw, r)
	if span != nil {
		span.SetAttributes(attribute.Int("http.response.status_code", sw.Status))
		if sw.Status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.Status))
		}
		span.End()
	}
	h.log.Info("request",
		zap.String("method", r.Method),
		zap.String("path", r.URL.Path),
		zap.Int("status", sw.Status),
		zap.Int64("latency_ms", time.Since(start).Milliseconds()),
	)
}

// authenticated wraps next with the bearer-token check, when a token is
// set. The token is compared in constant time, its length included.
func (h *Handler) authenticated(next http.HandlerFunc) http.HandlerFunc {
	if !h.auth {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cancelworker intake"`)
			writeError(w, http.StatusUnauthorized, "", "a bearer token is required: send Authorization: Bearer <token>")
			return
		}
		if !httpserve.SameSecret(strings.TrimSpace(token), h.token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cancelworker intake", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "", "the bearer token is not valid")
			return
		}
		next(w, r)
	}
}

// limited serves next only while fewer than MaxInFlight requests are
// being served; past that it answers 503 at once, without reading the
// body, so that a burst of large bodies cannot take the process's memory.
func (h *Handler) limited(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case h.slots <- struct{}{}:
			defer func() { <-h.slots }()
			next(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "", fmt.Sprintf("busy: %d requests are being served (INTAKE_MAX_INFLIGHT); retry in a second", cap(h.slots)))
		}
	}
}

// ErrorItem is one problem in an error answer.
type ErrorItem struct {
	// Index is the item's position in the request's array (0 for a single
	// item); absent when the problem is not one item's.
	Index *int `json:"index,omitempty"`
	// Field is the item's or the query's field name; "" for the request
	// or the item as a whole.
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

// ErrorBody is the body of every error answer. Results lists the items
// that were enqueued before a failure (503).
type ErrorBody struct {
	Errors  []ErrorItem  `json:"errors"`
	Results []ItemResult `json:"results,omitempty"`
}

// ItemResult is what became of one item of an accepted request.
type ItemResult struct {
	Index    int    `json:"index"`
	Provider string `json:"provider"`
	Order    string `json:"order"`
	TaskID   string `json:"task_id"`
	Queue    string `json:"queue"`
	// State is what became of the item: StateQueued, StateAlreadyQueued,
	// StateAlreadyCancelled, StateDeadLettered or StateArchived. Only
	// queued, already_queued and already_cancelled need nothing more.
	State string `json:"state"`
	// AlreadyQueued is true when a task for the same order existed and
	// nothing new was enqueued, whatever its State.
	AlreadyQueued bool `json:"already_queued"`
	// Replaced is true when force replaced the order's earlier task.
	Replaced bool `json:"replaced,omitempty"`
	// DLQReason is the dead-letter entry's reason, for dead_lettered.
	DLQReason string `json:"dlq_reason,omitempty"`
	// Hint says how to go on for dead_lettered and archived.
	Hint string `json:"hint,omitempty"`
}

// AcceptedBody is the body of a 202 answer, one result per item, in the
// request's order.
type AcceptedBody struct {
	Results []ItemResult `json:"results"`
}

func (h *Handler) postCancellations(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "", "Content-Type must be application/json")
		return
	}
	if r.ContentLength > h.opts.MaxBody {
		writeError(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("the body must be at most %d bytes, got %d", h.opts.MaxBody, r.ContentLength))
		return
	}
	// Read into one buffer of the announced size, not a doubling one.
	buf := bytes.NewBuffer(make([]byte, 0, min(max(r.ContentLength, 0), h.opts.MaxBody)+bytes.MinRead))
	_, err = buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.opts.MaxBody))
	body := buf.Bytes()
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("the body must be at most %d bytes", h.opts.MaxBody))
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "", "the body could not be read")
		return
	}
	raws, n, fe := splitBody(body, h.opts.MaxItems)
	switch {
	case n > h.opts.MaxItems:
		writeError(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("at most %d items per request, got %d", h.opts.MaxItems, n))
		return
	case fe != nil:
		writeError(w, http.StatusBadRequest, fe.Field, fe.Problem)
		return
	}

	// Validate every item before enqueueing any.
	cs := make([]Cancellation, len(raws))
	var bad []ErrorItem
	more := 0
	for i, raw := range raws {
		c, fes := Decode(raw, h.opts.Defaults)
		for _, fe := range fes {
			switch {
			case fe.omitted > 0:
				more += fe.omitted // the item's own count of what it left out
			case len(bad) == MaxProblems:
				more++
			default:
				bad = append(bad, ErrorItem{Index: &i, Field: fe.Field, Problem: fe.Problem})
			}
		}
		cs[i] = c
	}
	if more > 0 {
		bad = append(bad, ErrorItem{Problem: fmt.Sprintf("and %d more %s: the first %d are listed", more, plural(more, "problem"), MaxProblems)})
	}
	if len(bad) > 0 {
		httpserve.WriteJSON(w, http.StatusBadRequest, ErrorBody{Errors: bad})
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	pool := NewPool(h.sub, h.opts.Workers, false)
	defer pool.Close()
	tickets := make([]*Ticket, len(cs))
	for i, c := range cs {
		tickets[i] = pool.Submit(ctx, c)
	}
	results := make([]ItemResult, 0, len(cs))
	var failed []ErrorItem
	for i, tk := range tickets {
		out := tk.Wait()
		if out.Err != nil {
			failed = append(failed, ErrorItem{Index: &i, Problem: "not enqueued: " + out.Err.Error()})
			continue
		}
		sub := out.Submission
		results = append(results, ItemResult{
			Index: i, Provider: cs[i].Provider, Order: cs[i].Order, TaskID: sub.TaskID, Queue: sub.Queue,
			State: sub.State, AlreadyQueued: sub.AlreadyQueued, Replaced: sub.Replaced, DLQReason: sub.DLQReason, Hint: sub.Hint,
		})
	}
	if len(failed) > 0 {
		h.log.Error("enqueue failed", zap.Int("failed", len(failed)), zap.Int("items", len(cs)), zap.Error(pool.Err()))
		w.Header().Set("Retry-After", "5")
		httpserve.WriteJSON(w, http.StatusServiceUnavailable, ErrorBody{Errors: failed, Results: results})
		return
	}
	httpserve.WriteJSON(w, http.StatusAccepted, AcceptedBody{Results: results})
}

// splitBody returns the items of body, one JSON object or an array of
// them, each a slice of body, and n, how many there are. Past maxItems it
// keeps counting but stops collecting. A body that is not JSON, or an
// empty array, gives a FieldError; an item that is not an object is left
// to Decode.
func splitBody(body []byte, maxItems int) (items [][]byte, n int, fe *FieldError) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, 0, &FieldError{Problem: "the body is empty: send one item or an array of items"}
	}
	if body[0] != '[' {
		return [][]byte{body}, 1, nil
	}
	if !json.Valid(body) {
		return nil, 0, arraySyntaxProblem(body)
	}
	w := walker{b: body}
	w.elements(func(_, item []byte) {
		if n++; n <= maxItems {
			items = append(items, item)
		}
	})
	if n == 0 {
		return nil, 0, &FieldError{Problem: "the array is empty: send at least one item"}
	}
	return items, n, nil
}

// arraySyntaxProblem describes what makes body, an array json.Valid
// refused, not JSON, reading it whole once.
func arraySyntaxProblem(body []byte) *FieldError {
	fe, bad := wholeValue(json.NewDecoder(bytes.NewReader(body)))
	if !bad {
		return &FieldError{Problem: "the body is not valid JSON: trailing data after the array"}
	}
	fe.Problem = "the body " + fe.Problem
	return &fe
}

func (h *Handler) getStatus(w http.ResponseWriter, r *http.Request) {
	provider, order := r.PathValue("provider"), r.PathValue("order")
	q := r.URL.Query()
	var errs fieldErrors
	for _, k := range slices.Sorted(maps.Keys(q)) {
		switch {
		case k != FieldOrderType && k != FieldSourceApp:
			errs.add(shownKey(k), "unknown query parameter: only orderType and sourceApp (meari) are taken")
		case len(q[k]) > 1:
			errs.add(k, "is given %d times: give it once", len(q[k]))
		}
	}
	var oq status.OrderQuery
	switch provider {
	case tasks.ProviderMeari:
		oq = h.meariQuery(&errs, order, q)
	case tasks.ProviderPandaPon:
		for _, k := range []string{FieldOrderType, FieldSourceApp} {
			if q.Has(k) {
				errs.add(k, "only applies to meari")
			}
		}
		id, err := tasks.ParseOrderID(order)
		if err != nil {
			errs.add("order", "%s", err.Error())
			break
		}
		oq = status.OrderQuery{Provider: tasks.ProviderPandaPon, OrderID: id}
	default:
		errs.add(FieldProvider, "must be %s, got %s", strings.Join(tasks.Providers(), " or "), strconv.Quote(text.Truncate(provider, shownMax)))
	}
	if len(errs) > 0 {
		writeFieldErrors(w, http.StatusBadRequest, errs)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	all, err := status.LookupOrder(ctx, h.rdb, h.store, h.opts.Shards, oq)
	if err != nil {
		h.log.Error("status lookup failed", zap.String("provider", provider), zap.String("order", order), zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "", "status lookup failed: "+err.Error())
		return
	}
	found := make([]status.Status, 0, len(all))
	for _, st := range all {
		if st.State != status.StateNotFound {
			found = append(found, st)
		}
	}
	switch {
	case len(found) == 0:
		writeError(w, http.StatusNotFound, "", fmt.Sprintf("not found: no task and no dead-letter entry for %s order %s", provider, text.Truncate(order, shownMax)))
	case oq.Scan():
		httpserve.WriteJSON(w, http.StatusOK, found)
	default:
		httpserve.WriteJSON(w, http.StatusOK, found[0])
	}
}

// meariQuery returns the Meari status query of order and q: one order
// type with orderType, else every type (a scan).
func (h *Handler) meariQuery(errs *fieldErrors, order string, q url.Values) status.OrderQuery {
	oq := status.OrderQuery{Provider: tasks.ProviderMeari, SourceApp: h.opts.Defaults.SourceApp, OrderNum: order}
	if v, ok := q[FieldSourceApp]; ok {
		n, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil {
			errs.add(FieldSourceApp, "must be a positive integer, got %s", strconv.Quote(text.Truncate(v[0], shownMax)))
		}
		oq.SourceApp = n
	} else if oq.SourceApp == 0 {
		errs.add(FieldSourceApp, "is required: no default source app is configured")
	}
	if v, ok := q[FieldOrderType]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > 3 {
			errs.add(FieldOrderType, "must be %s, got %s", orderTypes, strconv.Quote(text.Truncate(v[0], shownMax)))
		}
		oq.OrderType = n
	}
	if _, err := oq.TaskIDs(); err != nil {
		var ve *tasks.ValidationError
		if errors.As(err, &ve) {
			for _, f := range ve.Fields {
				name := fieldOf[f.Field]
				if f.Field == "order_num" {
					name = "order"
				}
				errs.add(name, "%s", f.Problem)
			}
		}
	}
	return oq
}

// plural returns noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return noun
	}
	return noun + "s"
}

// writeError writes an ErrorBody with one problem.
func writeError(w http.ResponseWriter, code int, field, problem string) {
	httpserve.WriteJSON(w, code, ErrorBody{Errors: []ErrorItem{{Field: field, Problem: problem}}})
}

// writeFieldErrors writes an ErrorBody with the problems of fes.
func writeFieldErrors(w http.ResponseWriter, code int, fes []FieldError) {
	items := make([]ErrorItem, len(fes))
	for i, fe := range fes {
		items[i] = ErrorItem{Field: fe.Field, Problem: fe.Problem}
	}
	httpserve.WriteJSON(w, code, ErrorBody{Errors: items})
}
