package sdk_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

func ShoutActivity(_ context.Context, s string) (string, error) { return strings.ToUpper(s), nil }

func ShoutWorkflow(ctx workflow.Context, s string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	err := workflow.ExecuteActivity(ctx, ShoutActivity, s).Get(ctx, &s)
	return s, err
}

// TestWorkflowTelemetry: a worker's workflow tasks and activity attempts
// get spans in the starter's trace, their log lines carry the starter's
// correlation ID, and workflow tasks are measured by
// workflow_task_latency_seconds, not counted as jobs.
func TestWorkflowTelemetry(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	logs := &syncBuffer{}
	b := setup(t, func(c *sdk.Config) {
		c.Observability.TracerProvider = tp
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.RegisterWorkflow(ShoutWorkflow); err != nil {
		t.Fatal(err)
	}
	if err := w.RegisterActivity(ShoutActivity); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sctx, starter := tp.Tracer("test").Start(sdk.ContextWithCorrelationID(ctx, "req-wf"), "POST /shout")
	run, err := b.client.StartWorkflow(sctx, sdk.StartWorkflowOptions{ID: "shout-1"}, ShoutWorkflow, "hi")
	starter.End()
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := run.Get(ctx, &out); err != nil || out != "HI" {
		t.Fatalf("workflow result %q, %v", out, err)
	}
	waitFor(t, "the spans of two workflow tasks and an activity", 5*time.Second, func() bool {
		tasks, activities := 0, 0
		for _, s := range exp.GetSpans() {
			if s.SpanKind != trace.SpanKindConsumer {
				continue
			}
			if s.SpanContext.TraceID() != starter.SpanContext().TraceID() || s.Parent.SpanID() != starter.SpanContext().SpanID() {
				t.Fatalf("span %q is not a child of the starter's span", s.Name)
			}
			switch {
			case strings.HasPrefix(s.Name, "workflow task "):
				tasks++
			case strings.HasPrefix(s.Name, "activity "):
				activities++
			}
		}
		return tasks >= 2 && activities == 1
	})
	families, err := b.client.MetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var latencies uint64
	for _, f := range families {
		switch f.GetName() {
		case "workflow_task_latency_seconds":
			for _, m := range f.GetMetric() {
				latencies += m.GetHistogram().GetSampleCount()
			}
		case "job_processed_total":
			for _, m := range f.GetMetric() {
				if m.GetCounter().GetValue() > 0 && hasLabel(m, "type", "ShoutWorkflow") {
					t.Errorf("workflow tasks were counted as jobs: %v", m)
				}
			}
		}
	}
	if latencies < 2 {
		t.Errorf("workflow_task_latency_seconds counted %d tasks, want at least 2", latencies)
	}
	lines := 0
	for _, l := range logs.lines(t) {
		if l["msg"] == "job attempt succeeded" {
			lines++
			if l["correlation_id"] != "req-wf" || l["trace_id"] != starter.SpanContext().TraceID().String() {
				t.Errorf("log line %v: want correlation_id req-wf and the starter's trace", l)
			}
		}
	}
	if lines < 3 {
		t.Errorf("%d success lines of workflow tasks and activities, want at least 3", lines)
	}
}
