package tracing

import (
	"strings"
	"testing"
)

// TestWanted: tracing is off without the variables, on with an endpoint or
// OTEL_TRACES_EXPORTER=otlp, off again when disabled; with tracing asked
// for, a bad value is an error naming its variable (never echoing an
// endpoint), and without, variables left for other programs are ignored.
func TestWanted(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		on      bool
		wantErr string
	}{
		{env: nil},
		{env: map[string]string{EnvEndpoint: "http://127.0.0.1:4318"}, on: true},
		{env: map[string]string{EnvTracesEndpoint: "https://collector.example/v1/traces"}, on: true},
		{env: map[string]string{EnvExporter: "otlp"}, on: true},
		{env: map[string]string{EnvExporter: "none", EnvEndpoint: "http://127.0.0.1:4318"}},
		{env: map[string]string{EnvSDKDisabled: "true", EnvEndpoint: "http://127.0.0.1:4318"}},
		{env: map[string]string{EnvSDKDisabled: "false", EnvEndpoint: "http://127.0.0.1:4318"}, on: true},
		{env: map[string]string{EnvSDKDisabled: "maybe", EnvEndpoint: "http://127.0.0.1:4318"}, wantErr: EnvSDKDisabled + ": must be true or false"},
		{env: map[string]string{EnvExporter: "zipkin", EnvEndpoint: "http://127.0.0.1:4318"}, wantErr: EnvExporter + ": must name otlp"},
		{env: map[string]string{EnvExporter: "otlp,console"}, on: true},
		{env: map[string]string{EnvEndpoint: "collector:4318"}, wantErr: EnvEndpoint + ": must be an http:// or https:// URL"},
		{env: map[string]string{EnvTracesEndpoint: "ftp://u:hunter2@x"}, wantErr: EnvTracesEndpoint + ": must be"},
		{env: map[string]string{EnvEndpoint: "http://127.0.0.1:4318", EnvProtocol: "grpc"}, wantErr: EnvProtocol + ": only http/protobuf"},
		{env: map[string]string{EnvEndpoint: "http://127.0.0.1:4318", EnvTracesProtocol: "http/json"}, wantErr: EnvTracesProtocol + ": only http/protobuf"},
		{env: map[string]string{EnvEndpoint: "http://127.0.0.1:4318", EnvProtocol: "http/protobuf"}, on: true},
		// Left for other programs, with no request for tracing: off, no error.
		{env: map[string]string{EnvSDKDisabled: "maybe"}},
		{env: map[string]string{EnvExporter: "console"}},
		{env: map[string]string{EnvProtocol: "grpc"}},
	} {
		on, err := Wanted(func(k string) string { return tc.env[k] })
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: error %v, want one containing %q", tc.env, err, tc.wantErr)
			} else if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%v: error %q echoes the endpoint's credentials", tc.env, err)
			}
		case err != nil:
			t.Errorf("%v: unexpected error %v", tc.env, err)
		case on != tc.on:
			t.Errorf("%v: on = %v, want %v", tc.env, on, tc.on)
		}
	}
}

// TestOffByDefault: until Activate, nothing is injected or extracted.
func TestOffByDefault(t *testing.T) {
	if Enabled() {
		t.Fatal("tracing is on before Setup")
	}
	h := map[string]string{"a": "b"}
	if got := Inject(t.Context(), h); len(got) != 1 {
		t.Errorf("Inject while off = %v, want the headers unchanged", got)
	}
	if ctx := Extract(t.Context(), map[string]string{HeaderTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}); ctx != t.Context() {
		t.Error("Extract while off changed the context")
	}
}
