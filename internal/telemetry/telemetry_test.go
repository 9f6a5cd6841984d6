package telemetry_test

import (
	"context"
	"testing"

	"github.com/chronicle-engine/chronicle/internal/telemetry"
)

func TestEnabled(t *testing.T) {
	t.Parallel()
	cases := []struct {
		env     map[string]string
		want    bool
		wantErr bool
	}{
		{env: nil, want: false},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, want: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, want: true},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, want: true},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, want: false},
		{env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, want: false},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: true},
	}
	for _, c := range cases {
		got, err := telemetry.Enabled(func(k string) string { return c.env[k] })
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("Enabled(%v) = %v, %v; want %v, error %v", c.env, got, err, c.want, c.wantErr)
		}
	}
}

// TestSetupWithoutEnvironmentIsNoop: with no OTEL_* variables, Setup
// installs no exporter.
func TestSetupWithoutEnvironmentIsNoop(t *testing.T) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Setenv(k, "")
	}
	shutdown, enabled, err := telemetry.Setup(context.Background())
	if err != nil || enabled {
		t.Fatalf("Setup() = enabled %v, %v; want off without error", enabled, err)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
	if _, _, err := telemetry.Setup(context.Background()); err == nil {
		t.Fatal("Setup accepted OTEL_EXPORTER_OTLP_PROTOCOL=carrier-pigeon")
	}
}
