package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/eventlog/postgres"
	"github.com/chronicle-engine/chronicle/internal/metrics"
	"github.com/chronicle-engine/chronicle/internal/testdb"
)

// TestNamesMatchRegistry: metrics.Names, which the alert-rules test trusts,
// lists exactly the metrics a registry exposes once every collector has a
// series.
func TestNamesMatchRegistry(t *testing.T) {
	t.Parallel()
	pool, _ := testdb.Schema(t)
	store := postgres.New(pool)
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(reg, time.Minute); err == nil {
		t.Fatal("registering twice on one registry succeeded; want an error")
	}
	job := &engine.Job{Type: "email.send", Queue: "default"}
	m.AttemptFinished(job, engine.Result{}, time.Millisecond)
	m.AttemptFinished(job, engine.Result{Err: errors.New("x")}, time.Millisecond)
	m.AttemptTimedOut(job)
	m.DeadLettered(job)
	m.WakeupReceived("default")
	m.Claimed("default", engine.TriggerPoll, 10, 3)
	m.OutcomesRecorded(3)
	m.WorkflowTaskFinished("OrderWorkflow", time.Millisecond)
	if err := m.Refresh(t.Context(), store); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range families {
		got = append(got, f.GetName())
	}
	// Queue and dead-letter gauges have series only while a queue has work,
	// so this empty schema shows the ones that always do.
	for _, name := range metrics.Names {
		switch name {
		case "job_queue_pending", "job_queue_scheduled", "job_queue_processing", "job_queue_failed", "job_retries_scheduled",
			"job_dead_letters_pending", "job_dead_letters_newest_timestamp_seconds", "job_worker_heartbeat_age_seconds":
			got = append(got, name)
		}
	}
	slices.Sort(got)
	got = slices.Compact(got)
	want := slices.Sorted(slices.Values(metrics.Names))
	if !slices.Equal(got, want) {
		t.Fatalf("registry exposes %q\nmetrics.Names lists %q", got, want)
	}
}

// BenchmarkAttemptTelemetry measures what every attempt pays for
// observability in a worker: its span (tracing off), its logger with the
// job's attributes (JSON, discarded) and its metrics.
func BenchmarkAttemptTelemetry(b *testing.B) {
	m, err := metrics.New(prometheus.NewRegistry(), time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	eng := engine.New(nil, nil, nil)
	eng.Instrument(engine.Instrumentation{Observer: m})
	log := slog.New(slog.NewJSONHandler(io.Discard, nil)).With("worker_id", "bench-worker")
	job := &engine.Job{ID: eventlog.NewID(time.Now()), Type: "email.send", Queue: "default", Attempt: 1}
	origin := engine.Origin{CorrelationID: "req-1"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, tel := eng.BeginAttempt(ctx, job, origin, "bench-worker", log)
		eng.EndAttempt(tel, job, engine.Result{}, time.Millisecond)
	}
}
