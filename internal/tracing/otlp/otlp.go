// Package otlp sets up the OpenTelemetry SDK for a binary: spans exported
// as OTLP over HTTP/protobuf when the OTEL_* variables ask for tracing
// (internal/tracing says which). Only the binaries import it, so that the
// libraries (tasks, providers) do not link the SDK and its exporter.
package otlp

import (
	"context"
	"fmt"
	"time"

	"github.com/cancelworker/cancelworker/internal/buildinfo"
	"github.com/cancelworker/cancelworker/internal/tracing"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// StopTimeout bounds the flush of the last spans as a process exits.
const StopTimeout = 5 * time.Second

// Setup switches tracing on for the process named service (the default of
// OTEL_SERVICE_NAME) when the variables ask for it, and returns the func
// that flushes the last spans, within StopTimeout, and stops it: to call
// before the process exits (a no-op when off). getenv is os.Getenv or a
// test's; the SDK reads the process's environment itself.
func Setup(ctx context.Context, service string, getenv func(string) string) (stop func() error, err error) {
	nop := func() error { return nil }
	on, err := tracing.Wanted(getenv)
	if err != nil || !on {
		return nop, err
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nop, fmt.Errorf("tracing: the OTLP exporter: %w", err)
	}
	bi := buildinfo.Read()
	// Later sources win: the environment's OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES over the defaults.
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", service),
		attribute.String("service.version", bi.Version),
		attribute.String("vcs.ref.head.revision", bi.Short()),
	))
	if err == nil {
		var env *resource.Resource
		if env, err = resource.New(ctx, resource.WithFromEnv()); err == nil {
			res, err = resource.Merge(res, env)
		}
	}
	if err != nil {
		return nop, fmt.Errorf("tracing: the resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	deactivate := tracing.Activate()
	return func() error {
		deactivate()
		ctx, cancel := context.WithTimeout(context.Background(), StopTimeout)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			return fmt.Errorf("tracing: flushing the last spans: %w", err)
		}
		return nil
	}, nil
}
