package worker

import (
	"context"
	"errors"

	"github.com/cancelworker/cancelworker/internal/tracing"
	"github.com/cancelworker/cancelworker/providers"
	"github.com/cancelworker/cancelworker/retry"
	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// The spans of one run of a task, while tracing is on (internal/tracing):
//
//	process <queue>             the run, under the producer's span that the
//	                            task's headers name; its outcome
//	  attempt <n>               the attempt, once the rate limit and the
//	                            breaker let the call go
//	    POST <provider> cancel  the upstream call, whose traceparent goes
//	                            to the provider
//
// Each run of a retried task is a process span under the same producer
// span, hence in the same trace. No span holds a secret or a signature.

// Attribute keys of this worker's spans.
const (
	attrProvider   = attribute.Key("cancelworker.provider")
	attrOrder      = attribute.Key("cancelworker.order")
	attrAttempt    = attribute.Key("cancelworker.attempt")
	attrOutcome    = attribute.Key("cancelworker.outcome")
	attrClass      = attribute.Key("cancelworker.class")
	attrResultCode = attribute.Key("cancelworker.result_code")
	attrUnknown    = attribute.Key("cancelworker.outcome_unknown")
)

// startProcess starts the run's span under the trace context of t's
// headers; nil when tracing is off.
func startProcess(ctx context.Context, t *asynq.Task, queue, taskID string, retried int) (context.Context, trace.Span) {
	if !tracing.Enabled() {
		return ctx, nil
	}
	ctx = tracing.Extract(ctx, t.Headers())
	return tracing.Tracer().Start(ctx, "process "+queue, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "asynq"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", queue),
			attribute.String("messaging.message.id", taskID),
			attribute.Int("messaging.asynq.retried", retried),
		))
}

// endProcess ends the run's span with its outcome, from ProcessTask's
// error.
func endProcess(span trace.Span, err error) {
	if span == nil {
		return
	}
	var d *retry.Deferred
	switch {
	case err == nil:
		span.SetAttributes(attrOutcome.String("cancelled"))
	case errors.As(err, &d):
		span.SetAttributes(attrOutcome.String("deferred"), attribute.String("cancelworker.deferred_reason", d.Reason))
	case errors.Is(err, asynq.SkipRetry):
		span.SetAttributes(attrOutcome.String("dead-lettered"))
		span.SetStatus(codes.Error, "dead-lettered")
	default:
		span.SetAttributes(attrOutcome.String("retry"))
		span.SetStatus(codes.Error, "will retry")
	}
	span.End()
}

// startAttempt starts the attempt's span; nil when tracing is off.
func startAttempt(ctx context.Context, provider, order string, attempt int) (context.Context, trace.Span) {
	if !tracing.Enabled() {
		return ctx, nil
	}
	return tracing.Tracer().Start(ctx, "attempt", trace.WithAttributes(
		attrProvider.String(provider), attrOrder.String(order), attrAttempt.Int(attempt)))
}

// startCall starts the upstream call's span; nil when tracing is off.
// providers.Core sets its HTTP status and sends its traceparent.
func startCall(ctx context.Context, provider, order string, attempt int) (context.Context, trace.Span) {
	if !tracing.Enabled() {
		return ctx, nil
	}
	return tracing.Tracer().Start(ctx, "POST "+provider+" cancel", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attrProvider.String(provider), attrOrder.String(order), attrAttempt.Int(attempt)))
}

// endCall ends the call's span, and notes its outcome on the attempt's.
func endCall(call, attempt trace.Span, err error) {
	if call == nil {
		return
	}
	attrs := []attribute.KeyValue{attrOutcome.String("success")}
	var pe *providers.Error
	if errors.As(err, &pe) {
		attrs = []attribute.KeyValue{attrOutcome.String(pe.Class.String()), attrClass.String(pe.Class.String()),
			attrResultCode.String(pe.Code), attrUnknown.Bool(pe.Unknown)}
	} else if err != nil {
		attrs = []attribute.KeyValue{attrOutcome.String("error")}
	}
	for _, s := range []trace.Span{call, attempt} {
		if s == nil {
			continue // tracing was switched on between the two
		}
		s.SetAttributes(attrs...)
		if err != nil {
			// The class and code, never the message: it may quote the
			// upstream's reply.
			s.SetStatus(codes.Error, "upstream call failed")
		}
	}
	call.End()
}
