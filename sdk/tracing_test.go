package sdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

// syncBuffer is a log sink safe for the worker's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines decodes every JSON log line.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// TestTraceSurvivesRetriesAndDeadLetter: one enqueue, two failed attempts
// that dead-letter the job, a manual retry and a successful attempt give
// spans of one trace: the producer span is the parent of every attempt's
// consumer span, because its trace context is stored in JobEnqueued. A
// child job enqueued by the handler joins the same trace and inherits the
// correlation ID, and every log line about the jobs carries their
// attributes.
func TestTraceSurvivesRetriesAndDeadLetter(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	logs := &syncBuffer{}
	b := setup(t, func(c *sdk.Config) {
		c.Observability.TracerProvider = tp
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx := context.Background()
	if err := b.client.RegisterJobType("trace.job", sdk.JobType{RetryPolicy: sdk.RetryPolicy{MaximumAttempts: 2, Schedule: []time.Duration{0}}}); err != nil {
		t.Fatal(err)
	}
	w, err := b.client.NewWorker(sdk.WorkerConfig{ID: "trace-worker", PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var attempts atomic.Int32
	childID := make(chan eventlog.ID, 1)
	if err := w.Handle("trace.job", func(ctx context.Context, _ json.RawMessage) error {
		n := attempts.Add(1)
		sdk.Logger(ctx).Info("in handler", "n", n)
		if n <= 2 {
			return fmt.Errorf("attempt %d fails", n)
		}
		res, err := b.client.Enqueue(ctx, "trace.child", nil)
		if err != nil {
			return err
		}
		childID <- res.ID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.Handle("trace.child", func(context.Context, json.RawMessage) error { return nil }); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)

	rctx, request := tp.Tracer("test").Start(sdk.ContextWithCorrelationID(ctx, "req-42"), "POST /orders")
	res, err := b.client.Enqueue(rctx, "trace.job", map[string]int{"order": 7})
	request.End()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job to be dead-lettered", 10*time.Second, func() bool { return jobOf(t, b, res.ID).Status == sdk.StatusDeadLettered })
	// Days later, as far as the trace can tell: an operator retries it.
	if _, err := b.client.RetryDeadLetter(ctx, res.ID, "ops@example.com", "SMTP is back"); err != nil {
		t.Fatal(err)
	}
	child := recv(t, "the child job", childID, 10*time.Second)
	waitFor(t, "the child to succeed", 10*time.Second, func() bool { return jobOf(t, b, child).Status == sdk.StatusSucceeded })
	waitFor(t, "7 spans", 5*time.Second, func() bool { return len(exp.GetSpans()) >= 7 })

	spans := exp.GetSpans()
	byName := map[string][]tracetest.SpanStub{}
	traceID := request.SpanContext().TraceID()
	for _, s := range spans {
		byName[s.Name] = append(byName[s.Name], s)
		if s.SpanContext.TraceID() != traceID {
			t.Errorf("span %q is in trace %s, want every span in the request's trace %s", s.Name, s.SpanContext.TraceID(), traceID)
		}
	}
	one := func(name string, kind trace.SpanKind) tracetest.SpanStub {
		t.Helper()
		if len(byName[name]) != 1 || byName[name][0].SpanKind != kind {
			t.Fatalf("want one %s span %q, got %+v", kind, name, byName[name])
		}
		return byName[name][0]
	}
	producer := one("enqueue trace.job", trace.SpanKindProducer)
	if producer.Parent.SpanID() != request.SpanContext().SpanID() {
		t.Errorf("the enqueue span's parent is %s, want the request span", producer.Parent.SpanID())
	}
	consumers := byName["process trace.job"]
	if len(consumers) != 3 {
		t.Fatalf("%d process spans, want one per attempt (3)", len(consumers))
	}
	for i, s := range consumers {
		if s.SpanKind != trace.SpanKindConsumer || s.Parent.SpanID() != producer.SpanContext.SpanID() {
			t.Errorf("attempt span %d: kind %s, parent %s; want a consumer span whose parent is the enqueue span %s", i+1, s.SpanKind, s.Parent.SpanID(), producer.SpanContext.SpanID())
		}
		wantStatus := codes.Error
		if i == 2 {
			wantStatus = codes.Unset
		}
		if s.Status.Code != wantStatus {
			t.Errorf("attempt span %d has status %v, want %v", i+1, s.Status.Code, wantStatus)
		}
		found := false
		for _, a := range s.Attributes {
			if a.Key == "chronicle.job.attempt" && a.Value.AsInt64() == int64(i+1) {
				found = true
			}
		}
		if !found {
			t.Errorf("attempt span %d lacks chronicle.job.attempt=%d: %v", i+1, i+1, s.Attributes)
		}
	}
	childProducer := one("enqueue trace.child", trace.SpanKindProducer)
	if childProducer.Parent.SpanID() != consumers[2].SpanContext.SpanID() {
		t.Errorf("the child's enqueue span's parent is %s, want the successful attempt's span", childProducer.Parent.SpanID())
	}
	if s := one("process trace.child", trace.SpanKindConsumer); s.Parent.SpanID() != childProducer.SpanContext.SpanID() {
		t.Errorf("the child's attempt span's parent is %s, want the child's enqueue span", s.Parent.SpanID())
	}

	// The trace context and correlation ID are in the enqueue events.
	for _, id := range []eventlog.ID{res.ID, child} {
		enq := decodeEvent[engine.JobEnqueued](t, historyOf(t, b, id)[0], engine.EventJobEnqueued)
		if enq.CorrelationID != "req-42" || !strings.Contains(enq.TraceContext["traceparent"], traceID.String()) {
			t.Errorf("JobEnqueued of %s: correlation %q, trace context %v; want req-42 and a traceparent in trace %s", id, enq.CorrelationID, enq.TraceContext, traceID)
		}
	}

	// Every log line about an attempt carries the job's attributes.
	var failed, handler int
	for _, l := range logs.lines(t) {
		if l["msg"] != "job attempt failed" && l["msg"] != "in handler" {
			continue
		}
		if l["msg"] == "in handler" {
			handler++
		} else {
			failed++
		}
		for k, v := range map[string]any{"job_id": res.ID.String(), "type": "trace.job", "queue": "default", "worker_id": "trace-worker",
			"correlation_id": "req-42", "trace_id": traceID.String()} {
			if l[k] != v {
				t.Errorf("log line %v: %s = %v, want %v", l, k, l[k], v)
			}
		}
		if _, ok := l["attempt"].(float64); !ok {
			t.Errorf("log line %v lacks the attempt", l)
		}
	}
	if failed != 2 || handler != 3 {
		t.Errorf("%d 'job attempt failed' and %d handler lines, want 2 and 3", failed, handler)
	}
}

// TestUntracedJobKeepsHistoryUnchanged: without a span or correlation ID
// at enqueue, JobEnqueued has neither field, and the attempts' log lines
// use the job's ID as correlation ID.
func TestUntracedJobKeepsHistoryUnchanged(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	b := setup(t, func(c *sdk.Config) { c.Logger = slog.New(slog.NewJSONHandler(logs, nil)) })
	ctx := context.Background()
	res, err := b.client.Enqueue(ctx, "email.send", nil)
	if err != nil {
		t.Fatal(err)
	}
	h := historyOf(t, b, res.ID)
	for _, field := range []string{"trace_context", "correlation_id"} {
		if v, ok := rawField(t, h[0], field); ok {
			t.Errorf("JobEnqueued has %s = %s, want the field absent", field, v)
		}
	}
	w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Handle("email.send", func(context.Context, json.RawMessage) error { return errors.New("smtp down") }); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	waitFor(t, "the failure to be logged", 10*time.Second, func() bool {
		for _, l := range logs.lines(t) {
			if l["msg"] == "job attempt failed" {
				if l["correlation_id"] != res.ID.String() {
					t.Fatalf("log line %v: correlation_id %v, want the job's ID", l, l["correlation_id"])
				}
				if _, traced := l["trace_id"]; traced {
					t.Fatalf("log line %v has a trace_id without tracing", l)
				}
				return true
			}
		}
		return false
	})
}
