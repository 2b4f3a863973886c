// Package tracing is the OpenTelemetry tracing of every binary, off by
// default. This package holds what the libraries need (the tasks' and the
// upstream calls' trace context, on the OpenTelemetry API alone, cheap
// while off); internal/tracing/otlp sets up the SDK and its exporter, for
// the binaries. The standard variables switch it on: OTEL_EXPORTER_OTLP_ENDPOINT
// (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), or OTEL_TRACES_EXPORTER=otlp for
// the SDK's default endpoint, http://localhost:4318. Spans go out as OTLP
// over HTTP/protobuf through the official Go SDK, which reads the other
// OTEL_* variables itself (headers, timeout, compression, sampler, batch
// sizes, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES).
//
// The W3C trace context travels with each task in its headers
// (traceparent, tracestate): Inject writes it as a producer enqueues,
// Extract reads it as the worker takes the task. While tracing is off
// neither does anything, and no span is recorded.
package tracing

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Scope is the instrumentation scope of every span this module records.
const Scope = "github.com/cancelworker/cancelworker"

// The headers a task carries its trace context in (W3C Trace Context).
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// Variables read here; the SDK reads the rest of OTEL_*.
const (
	EnvSDKDisabled    = "OTEL_SDK_DISABLED"
	EnvExporter       = "OTEL_TRACES_EXPORTER"
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
)

var enabled atomic.Bool

// Enabled reports whether Setup switched tracing on in this process.
func Enabled() bool { return enabled.Load() }

// Tracer is the tracer of this module's spans.
func Tracer() trace.Tracer { return otel.Tracer(Scope) }

// propagator is W3C Trace Context alone: a caller's baggage is neither
// stored in tasks nor sent to the providers.
var propagator = propagation.TraceContext{}

// Wanted reports whether the variables ask for tracing, or what is wrong
// with them, naming the variable. getenv is os.Getenv or a test's.
//
// Only a request for tracing is checked: OTEL_* variables left by a
// platform for other programs (a gRPC protocol, a console exporter)
// change nothing while no endpoint is set and OTEL_TRACES_EXPORTER does
// not name otlp.
func Wanted(getenv func(string) string) (bool, error) {
	exporters := map[string]bool{}
	for _, e := range strings.Split(getenv(EnvExporter), ",") {
		if e = strings.TrimSpace(e); e != "" {
			exporters[e] = true
		}
	}
	endpoint := ""
	for _, name := range []string{EnvTracesEndpoint, EnvEndpoint} {
		if endpoint == "" {
			endpoint = getenv(name)
		}
	}
	if exporters["none"] || (endpoint == "" && !exporters["otlp"]) {
		return false, nil
	}
	var errs []error
	if v := getenv(EnvSDKDisabled); v != "" {
		off, err := strconv.ParseBool(v)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: must be true or false, got %q", EnvSDKDisabled, v))
		case off:
			return false, nil
		}
	}
	if len(exporters) > 0 && !exporters["otlp"] {
		errs = append(errs, fmt.Errorf("%s: must name otlp (spans go out as OTLP over HTTP/protobuf) or be none, got %q", EnvExporter, getenv(EnvExporter)))
	}
	for _, name := range []string{EnvTracesEndpoint, EnvEndpoint} {
		v := getenv(name)
		if v == "" {
			continue
		}
		if _, err := EndpointURL(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	for _, name := range []string{EnvTracesProtocol, EnvProtocol} {
		if v := getenv(name); v != "" && v != "http/protobuf" {
			errs = append(errs, fmt.Errorf("%s: only http/protobuf is supported, got %q", name, v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return false, err
	}
	return true, nil
}

// EndpointURL parses an endpoint variable's value: an http:// or https://
// URL with a host. The value is not echoed: it may carry credentials. As
// otlptracehttp, the exporter keeps its scheme, host and path: not a user,
// a query or a fragment.
func EndpointURL(v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("must be an http:// or https:// URL with a host")
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}, nil
}

// Activate switches this process's trace propagation and spans on, once
// the OTLP exporter is set up (internal/tracing/otlp), and returns the func
// that switches them off again.
func Activate() (deactivate func()) {
	otel.SetTextMapPropagator(propagator)
	enabled.Store(true)
	return func() { enabled.Store(false) }
}

// Inject returns h with ctx's trace context added, as a new map, for a task
// to carry; h itself when tracing is off or ctx holds no span.
func Inject(ctx context.Context, h map[string]string) map[string]string {
	if !Enabled() || !trace.SpanContextFromContext(ctx).IsValid() {
		return h
	}
	out := make(map[string]string, len(h)+2)
	for k, v := range h {
		out[k] = v
	}
	propagator.Inject(ctx, propagation.MapCarrier(out))
	return out
}

// Extract returns ctx with the trace context of a task's headers h, if
// tracing is on and h has one.
func Extract(ctx context.Context, h map[string]string) context.Context {
	if !Enabled() || h[HeaderTraceparent] == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier(h))
}

// InjectHTTP adds ctx's trace context to an outgoing request's header.
func InjectHTTP(ctx context.Context, header propagation.HeaderCarrier) {
	if Enabled() {
		propagator.Inject(ctx, header)
	}
}

// ExtractHTTP returns ctx with the trace context of an incoming request's
// header, if tracing is on.
func ExtractHTTP(ctx context.Context, header propagation.HeaderCarrier) context.Context {
	if !Enabled() {
		return ctx
	}
	return propagator.Extract(ctx, header)
}

// Variable is one OTEL_* variable the binaries honour, for the
// configuration reference.
type Variable struct{ Name, Default, Meaning string }

// Variables are the variables that switch tracing on and shape it: the
// first ones read here, the exporter's (OTEL_EXPORTER_OTLP_*; each also
// as OTEL_EXPORTER_OTLP_TRACES_*, which wins) by internal/tracing/otlp,
// the rest by the SDK.
var Variables = []Variable{
	{EnvEndpoint, "", "the OTLP/HTTP endpoint's base URL (spans go to its /v1/traces); setting it switches tracing on"},
	{EnvTracesEndpoint, "", "the full URL of the traces endpoint, over " + EnvEndpoint + "; setting it switches tracing on"},
	{EnvExporter, "", "otlp switches tracing on (to http://localhost:4318 without an endpoint), none keeps it off; with an endpoint set it must name otlp"},
	{EnvSDKDisabled, "false", "true keeps tracing off whatever else is set"},
	{EnvProtocol + ", " + EnvTracesProtocol, "http/protobuf", "the only protocol supported"},
	{"OTEL_EXPORTER_OTLP_HEADERS", "", "headers sent with each export, key=value,... with percent-encoded values, e.g. an API key (never logged)"},
	{"OTEL_EXPORTER_OTLP_TIMEOUT", "10000", "milliseconds allowed for one attempt of an export. Answers 429, 502, 503 and 504 and an endpoint that cannot be reached are tried again, from 5 s apart, for up to a minute and within the batch's export timeout (OTEL_BSP_EXPORT_TIMEOUT, 30000)"},
	{"OTEL_EXPORTER_OTLP_COMPRESSION", "none", "gzip to compress the exports"},
	{"OTEL_EXPORTER_OTLP_CERTIFICATE", "", "a PEM file of the certificates that an https endpoint's is checked against, instead of the system's"},
	{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE, OTEL_EXPORTER_OTLP_CLIENT_KEY", "", "PEM files of the client certificate and its key, for an endpoint that asks for one"},
	{"OTEL_SERVICE_NAME", "cancelworker-worker, cancelworker-intake, cancelworker-enqueue", "the service name of the spans"},
	{"OTEL_RESOURCE_ATTRIBUTES", "", "more resource attributes, key=value,..."},
	{"OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG", "parentbased_always_on", "which traces to record, e.g. parentbased_traceidratio and 0.1"},
	{"OTEL_BSP_MAX_QUEUE_SIZE", "2048", "spans held for export; more are dropped. Above a few hundred tasks a second with every task traced, raise it (BENCHMARKS.md uses 32768)"},
	{"OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "5000, 512", "how often (ms) and in batches of how many spans they are exported"},
}

// Endpoint returns the URL spans are sent to while tracing is on: the
// traces endpoint, else the base endpoint, else the SDK's default.
func Endpoint(getenv func(string) string) string {
	return cmp.Or(getenv(EnvTracesEndpoint), getenv(EnvEndpoint), "http://localhost:4318")
}
