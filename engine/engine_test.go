package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/eventlog/postgres"
	"github.com/chronicle-engine/chronicle/internal/testdb"
)

func newClaimEngine(t *testing.T) *engine.Engine {
	t.Helper()
	pool, _ := testdb.Schema(t)
	return engine.New(postgres.New(pool), nil, nil)
}

func enqueueForClaim(t *testing.T, eng *engine.Engine, nj engine.NewJob) eventlog.ID {
	t.Helper()
	if nj.Type == "" {
		nj.Type = "order.test"
	}
	if nj.Queue == "" {
		nj.Queue = "default"
	}
	nj.Payload = json.RawMessage(`{}`)
	out, err := eng.Enqueue(context.Background(), nil, []engine.NewJob{nj})
	if err != nil {
		t.Fatal(err)
	}
	return out[0].ID
}

// claimInOrder claims one job at a time from queue until none is left and
// returns them in claim order.
func claimInOrder(t *testing.T, eng *engine.Engine, queue string) []eventlog.ID {
	t.Helper()
	var out []eventlog.ID
	for range 100 {
		got, err := eng.Claim(context.Background(), engine.ClaimParams{Queues: []string{queue}, Limit: 1, WorkerID: "w", LeaseDuration: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			return out
		}
		if len(got) != 1 {
			t.Fatalf("claim with limit 1 returned %d jobs", len(got))
		}
		out = append(out, got[0].Job.ID)
	}
	t.Fatal("queue never ran dry")
	return nil
}

func TestClaimOrdersByPriority(t *testing.T) {
	t.Parallel()
	eng := newClaimEngine(t)
	// Enqueued low first, so it is also the one that has waited longest.
	low := enqueueForClaim(t, eng, engine.NewJob{Priority: engine.PriorityLow})
	normal := enqueueForClaim(t, eng, engine.NewJob{Priority: engine.PriorityNormal})
	high := enqueueForClaim(t, eng, engine.NewJob{Priority: engine.PriorityHigh})
	names := map[eventlog.ID]string{low: "low", normal: "normal", high: "high"}
	got := claimInOrder(t, eng, "default")
	want := []eventlog.ID{high, normal, low}
	if len(got) != len(want) {
		t.Fatalf("claimed %d jobs, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("claim %d returned the %s job, want %s", i+1, names[got[i]], names[want[i]])
		}
	}
}

func TestClaimOrdersByRunAtWithinPriority(t *testing.T) {
	t.Parallel()
	eng := newClaimEngine(t)
	now := time.Now()
	// Enqueue order is the reverse of run_at order: run_at decides. The
	// times are an hour apart so that clock skew between this process and
	// the database cannot reorder them or make them not yet due.
	latest := enqueueForClaim(t, eng, engine.NewJob{RunAt: now.Add(-1 * time.Hour)})
	middle := enqueueForClaim(t, eng, engine.NewJob{RunAt: now.Add(-2 * time.Hour)})
	earliest := enqueueForClaim(t, eng, engine.NewJob{RunAt: now.Add(-3 * time.Hour)})
	// Due later but higher priority: still first.
	urgent := enqueueForClaim(t, eng, engine.NewJob{Priority: engine.PriorityHigh})
	// Not yet due: never claimed, whatever its priority.
	enqueueForClaim(t, eng, engine.NewJob{Priority: engine.PriorityHigh, Delay: time.Hour})
	// Another queue: never claimed from this one.
	enqueueForClaim(t, eng, engine.NewJob{Queue: "other", RunAt: now.Add(-4 * time.Hour), Priority: engine.PriorityHigh})

	names := map[eventlog.ID]string{latest: "latest", middle: "middle", earliest: "earliest", urgent: "urgent"}
	got := claimInOrder(t, eng, "default")
	want := []eventlog.ID{urgent, earliest, middle, latest}
	if len(got) != len(want) {
		t.Fatalf("claimed %d jobs, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("claim %d returned %s (%s), want %s", i+1, names[got[i]], got[i], names[want[i]])
		}
	}
}

// TestClaimBatchTakesTheFirstInOrder: a claim of n leases the n jobs that
// come first by priority and run time.
func TestClaimBatchTakesTheFirstInOrder(t *testing.T) {
	t.Parallel()
	eng := newClaimEngine(t)
	var lows []eventlog.ID
	for range 5 {
		lows = append(lows, enqueueForClaim(t, eng, engine.NewJob{Priority: engine.PriorityLow}))
	}
	high1 := enqueueForClaim(t, eng, engine.NewJob{Priority: engine.PriorityHigh})
	high2 := enqueueForClaim(t, eng, engine.NewJob{Priority: engine.PriorityHigh})
	got, err := eng.Claim(context.Background(), engine.ClaimParams{Queues: []string{"default"}, Limit: 3, WorkerID: "w", LeaseDuration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	claimed := map[eventlog.ID]bool{}
	for _, c := range got {
		claimed[c.Job.ID] = true
	}
	if len(got) != 3 || !claimed[high1] || !claimed[high2] || !claimed[lows[0]] {
		t.Fatalf("claimed %d jobs %v; want both high jobs and the oldest low one", len(got), claimed)
	}
}

// TestEnqueueBatchIsAtomic: when the database refuses one job of a batch
// (here job 500 reuses an existing job's ID, so its first event conflicts),
// none of the batch is written: no events, rows or idempotency keys.
func TestEnqueueBatchIsAtomic(t *testing.T) {
	t.Parallel()
	pool, _ := testdb.Schema(t)
	eng := engine.New(postgres.New(pool), nil, nil)
	ctx := context.Background()
	existing := enqueueForClaim(t, eng, engine.NewJob{})

	jobs := make([]engine.NewJob, 1000)
	for i := range jobs {
		jobs[i] = engine.NewJob{Type: "bulk.item", Queue: "default", Priority: engine.PriorityNormal, Payload: json.RawMessage(`{}`),
			IdempotencyKey: fmt.Sprintf("bulk:%d", i), IdempotencyTTL: time.Hour}
	}
	jobs[499].ID = existing
	_, err := eng.Enqueue(ctx, nil, jobs)
	if !errors.Is(err, eventlog.ErrConflict) {
		t.Fatalf("Enqueue = %v, want an error matching eventlog.ErrConflict", err)
	}
	// The error names the history that conflicted, not the batch's first.
	var ce *eventlog.ConflictError
	if !errors.As(err, &ce) || ce.ExecutionID != existing || ce.ExpectedSeq != 1 {
		t.Fatalf("Enqueue = %v, want a *ConflictError for %s at seq 1", err, existing)
	}
	for table, want := range map[string]int64{"events": 1, "executions": 1, "tasks": 1, "enqueue_keys": 0} {
		var n int64
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Fatalf("%s holds %d rows after the failed batch, want %d", table, n, want)
		}
	}
}
