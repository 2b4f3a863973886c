package otlp

import (
	"testing"

	"github.com/cancelworker/cancelworker/internal/tracing"
)

// TestSetupOff: without the variables Setup leaves tracing off and its
// stop does nothing; with a bad one it names it.
func TestSetupOff(t *testing.T) {
	stop, err := Setup(t.Context(), "test", func(string) string { return "" })
	if err != nil || tracing.Enabled() {
		t.Fatalf("Setup without variables: err %v, enabled %v; want off", err, tracing.Enabled())
	}
	if err := stop(); err != nil {
		t.Error(err)
	}
	_, err = Setup(t.Context(), "test", func(k string) string {
		return map[string]string{tracing.EnvEndpoint: "http://127.0.0.1:4318", tracing.EnvProtocol: "grpc"}[k]
	})
	if err == nil || tracing.Enabled() {
		t.Fatalf("Setup with OTEL_EXPORTER_OTLP_PROTOCOL=grpc: err %v, enabled %v; want an error and off", err, tracing.Enabled())
	}
}
