// Package otlp sets up the OpenTelemetry SDK for a binary: spans exported
// as OTLP over HTTP/protobuf when the OTEL_* variables ask for tracing
// (internal/tracing says which), by otlptrace's exporter through this
// package's client. Only the binaries import it, so that the libraries
// (tasks, providers) do not link the SDK and its exporter.
package otlp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cancelworker/cancelworker/internal/buildinfo"
	"github.com/cancelworker/cancelworker/internal/tracing"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// StopTimeout bounds the flush of the last spans as a process exits.
const StopTimeout = 5 * time.Second

// Check reports whether the variables ask for tracing, or every problem
// with them, each named once: tracing.Wanted's and, while tracing is
// asked for, the exporter's (a header, the timeout, the compression, a
// certificate file). getenv is os.Getenv or a test's.
func Check(getenv func(string) string) (bool, error) {
	c, err := check(getenv)
	return c != nil, err
}

// check is Check, returning the exporter's client where tracing is on and
// nil where it is off or misconfigured.
func check(getenv func(string) string) (*client, error) {
	on, err := tracing.Wanted(getenv)
	if err == nil && !on {
		return nil, nil
	}
	c, cerr := newClient(getenv, os.ReadFile)
	// Both check the endpoints: keep one of each problem.
	var errs []error
	seen := map[string]bool{}
	for _, e := range []error{err, cerr} {
		list := []error{e}
		if l, ok := e.(interface{ Unwrap() []error }); ok {
			list = l.Unwrap()
		}
		for _, e := range list {
			if e != nil && !seen[e.Error()] {
				seen[e.Error()] = true
				errs = append(errs, e)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// Setup switches tracing on for the process named service (the default of
// OTEL_SERVICE_NAME) when the variables ask for it, and returns the func
// that flushes the last spans, within StopTimeout, and stops it: to call
// before the process exits (a no-op when off). getenv is os.Getenv or a
// test's: the exporter's variables are read through it; the SDK reads the
// process's environment itself for the others (the resource, the sampler,
// the batching).
func Setup(ctx context.Context, service string, getenv func(string) string) (stop func() error, err error) {
	nop := func() error { return nil }
	c, err := check(getenv)
	if err != nil || c == nil {
		return nop, err
	}
	exp, err := otlptrace.New(ctx, c)
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
