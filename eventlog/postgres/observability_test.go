package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/eventlog/postgres"
	"github.com/chronicle-engine/chronicle/internal/testdb"
)

// TestWorkerHeartbeats: a beat inserts the row, later beats refresh
// last_seen_at and keep started_at, and removing it deletes it.
func TestWorkerHeartbeats(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	hb := eventlog.WorkerHeartbeat{WorkerID: "w1", Host: "h", PID: 42, Queues: []string{"a", "b"}, Version: "v1", JobsRunning: 3}
	if err := b.store.BeatWorker(ctx, hb); err != nil {
		t.Fatal(err)
	}
	rows, now, err := b.store.ListWorkers(ctx)
	if err != nil || len(rows) != 1 || now.IsZero() {
		t.Fatalf("workers %+v at %v (%v), want one", rows, now, err)
	}
	first := rows[0]
	if first.WorkerID != "w1" || first.Host != "h" || first.PID != 42 || !slices.Equal(first.Queues, hb.Queues) || first.Version != "v1" ||
		first.JobsRunning != 3 || !first.StartedAt.Equal(first.LastSeenAt) || now.Before(first.LastSeenAt) {
		t.Fatalf("row %+v, want what was beaten, started_at = last_seen_at <= now", first)
	}
	hb.JobsRunning = 0
	if err := b.store.BeatWorker(ctx, hb); err != nil {
		t.Fatal(err)
	}
	rows, _, _ = b.store.ListWorkers(ctx)
	if len(rows) != 1 || !rows[0].StartedAt.Equal(first.StartedAt) || !rows[0].LastSeenAt.After(first.LastSeenAt) || rows[0].JobsRunning != 0 {
		t.Fatalf("after a second beat %+v, want started_at kept, last_seen_at later, 0 jobs", rows)
	}
	if err := b.store.RemoveWorker(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	if err := b.store.RemoveWorker(ctx, "never-there"); err != nil {
		t.Fatalf("removing a missing row: %v", err)
	}
	rows, now, err = b.store.ListWorkers(ctx)
	if err != nil || len(rows) != 0 || now.IsZero() {
		t.Fatalf("after removal: %+v at %v (%v), want none, with the database time", rows, now, err)
	}
}

// TestQueueDepths counts due, scheduled, leased, retrying and
// dead-lettered work per queue.
func TestQueueDepths(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.enqueue(t, engine.NewJob{Queue: "a"})
	b.enqueue(t, engine.NewJob{Queue: "a"})
	b.enqueue(t, engine.NewJob{Queue: "a", Delay: time.Hour})
	b.enqueue(t, engine.NewJob{Queue: "b"})
	b.enqueue(t, engine.NewJob{Queue: "c", RetryPolicy: engine.RetryPolicy{MaximumAttempts: 2, Schedule: []time.Duration{time.Hour}}})
	b.enqueue(t, engine.NewJob{Queue: "c", RetryPolicy: engine.RetryPolicy{MaximumAttempts: 1}})
	b.claim(t, "b", "w") // b: one processing
	for range 2 {        // c: one retrying, one dead-lettered
		c := b.claim(t, "c", "w")
		res, err := b.eng.Complete(ctx, []engine.Outcome{{Lease: c.Lease, Err: errors.New("boom")}})
		if err != nil || res[0] != nil {
			t.Fatal(err, res)
		}
	}
	depths, now, err := b.store.QueueDepths(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []eventlog.QueueDepth
	for _, d := range depths {
		if d.NewestDeadLetterAt != nil {
			if now.Sub(*d.NewestDeadLetterAt) > time.Minute || d.NewestDeadLetterAt.After(now) {
				t.Errorf("queue %s: newest dead letter at %v, want just before %v", d.Queue, d.NewestDeadLetterAt, now)
			}
			d.NewestDeadLetterAt = nil
		}
		got = append(got, d)
	}
	want := []eventlog.QueueDepth{
		{Queue: "a", Pending: 2, Scheduled: 1},
		{Queue: "b", Processing: 1},
		{Queue: "c", Scheduled: 1, Retrying: 1, DeadLettered: 1},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("queue depths\n got %+v\nwant %+v", got, want)
	}
}

// TestFirstEventFields reads only the named fields of event 1.
func TestFirstEventFields(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	traced := b.enqueue(t, engine.NewJob{TraceContext: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, CorrelationID: "req-1"})
	plain := b.enqueue(t, engine.NewJob{})
	missing := eventlog.NewID(time.Now())
	var out map[eventlog.ID]map[string]json.RawMessage
	err := b.store.InTx(ctx, func(tx eventlog.Tx) error {
		var err error
		out, err = tx.FirstEventFields(ctx, []eventlog.ID{traced, plain, missing}, []string{"trace_context", "correlation_id", "no_such_field"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 {
		t.Fatalf("fields of %d executions, want 2 (the missing one absent): %v", len(out), out)
	}
	if string(out[traced]["correlation_id"]) != `"req-1"` || len(out[traced]) != 2 {
		t.Errorf("traced job's fields %v, want trace_context and correlation_id", out[traced])
	}
	if len(out[plain]) != 0 {
		t.Errorf("plain job's fields %v, want none", out[plain])
	}
}

// BenchmarkFirstEventFields measures the read every claim adds to find the
// origins (trace context, correlation ID) of a batch of 100 claimed jobs.
func BenchmarkFirstEventFields(b *testing.B) {
	pool, _ := testdb.Schema(b)
	store := postgres.New(pool)
	eng := engine.New(store, nil, nil)
	jobs := make([]engine.NewJob, 100)
	for i := range jobs {
		jobs[i] = engine.NewJob{Type: "bench.job", Queue: "default", Priority: engine.PriorityNormal, Payload: json.RawMessage(`{"n":1}`),
			TraceContext: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, CorrelationID: "req-1"}
	}
	out, err := eng.Enqueue(context.Background(), nil, jobs)
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]eventlog.ID, len(out))
	for i, e := range out {
		ids[i] = e.ID
	}
	ctx := context.Background()
	fields := []string{"trace_context", "correlation_id"}
	for b.Loop() {
		err := store.InTx(ctx, func(tx eventlog.Tx) error {
			got, err := tx.FirstEventFields(ctx, ids, fields)
			if err == nil && len(got) != len(ids) {
				err = fmt.Errorf("read %d, want %d", len(got), len(ids))
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
