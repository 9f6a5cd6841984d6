package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/eventlog/postgres"
	"github.com/chronicle-engine/chronicle/internal/testdb"
)

type bundle struct {
	pool  *pgxpool.Pool
	store *postgres.Store
	eng   *engine.Engine
}

func setup(t *testing.T) *bundle {
	t.Helper()
	pool, _ := testdb.Schema(t)
	store := postgres.New(pool)
	return &bundle{pool: pool, store: store, eng: engine.New(store, nil, nil)}
}

func (b *bundle) enqueue(t *testing.T, nj engine.NewJob) eventlog.ID {
	t.Helper()
	if nj.Type == "" {
		nj.Type = "test.job"
	}
	if nj.Queue == "" {
		nj.Queue = "default"
	}
	if nj.Priority == "" {
		nj.Priority = engine.PriorityNormal
	}
	if nj.Payload == nil {
		nj.Payload = json.RawMessage(`{}`)
	}
	out, err := b.eng.Enqueue(context.Background(), nil, []engine.NewJob{nj})
	if err != nil {
		t.Fatal(err)
	}
	return out[0].ID
}

func (b *bundle) claim(t *testing.T, queue, worker string) engine.Claimed {
	t.Helper()
	got, err := b.eng.Claim(context.Background(), engine.ClaimParams{Queues: []string{queue}, Limit: 1, WorkerID: worker, LeaseDuration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("claim from %s returned %d jobs, want 1", queue, len(got))
	}
	return got[0]
}

func (b *bundle) complete(t *testing.T, c engine.Claimed, err error) {
	t.Helper()
	res, cerr := b.eng.Complete(context.Background(), []engine.Outcome{{Lease: c.Lease, Err: err}})
	if cerr != nil {
		t.Fatal(cerr)
	}
	if res[0] != nil {
		t.Fatal(res[0])
	}
}

func (b *bundle) count(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := b.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// attemptStarted builds the changes a claim by worker would write for the
// job in state j: the next event, sealed onto the history, and the
// projection rows it implies.
func attemptStarted(t *testing.T, j engine.Job, worker string, now time.Time) eventlog.Changes {
	t.Helper()
	lease := now.Add(time.Minute)
	j2, events, err := engine.Record(j, []engine.Decision{{Type: engine.EventAttemptStarted,
		Data: engine.AttemptStarted{Attempt: j.Attempt + 1, WorkerID: worker, LeaseExpiresAt: lease}}}, now)
	if err != nil {
		t.Fatal(err)
	}
	return eventlog.Changes{Events: events, Executions: []eventlog.Execution{j2.Row()}, Tasks: []eventlog.Task{*j2.Task()}}
}

// TestAppendConflict: two writers append the same seq to one history. The
// second waits for the first, then fails with a typed conflict and leaves
// no trace: not its event, not its projection rows.
func TestAppendConflict(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	id := b.enqueue(t, engine.NewJob{})
	row, err := b.store.GetExecution(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	j, err := engine.JobFromRow(row, nil)
	if err != nil {
		t.Fatal(err)
	}

	txA, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txA.Rollback(ctx) //nolint:errcheck // a no-op after commit
	txB, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txB.Rollback(ctx) //nolint:errcheck // the conflict aborts it
	var pidB uint32
	if err := txB.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pidB); err != nil {
		t.Fatal(err)
	}
	now, err := postgres.WrapTx(txA).Now(ctx)
	if err != nil {
		t.Fatal(err)
	}

	changesA, changesB := attemptStarted(t, j, "writer-a", now), attemptStarted(t, j, "writer-b", now)
	if err := postgres.WrapTx(txA).Apply(ctx, changesA); err != nil {
		t.Fatalf("writer A: %v", err)
	}
	errB := make(chan error, 1)
	go func() { errB <- postgres.WrapTx(txB).Apply(ctx, changesB) }()

	// B must be blocked behind A's uncommitted row, not racing past it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var waiting bool
		err := b.pool.QueryRow(ctx, `SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1`, pidB).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case err := <-errB:
			t.Fatalf("writer B finished before A committed: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("writer B never waited for writer A's lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	var err2 error
	select {
	case err2 = <-errB:
	case <-time.After(5 * time.Second):
		t.Fatal("writer B still blocked after A committed")
	}
	if !errors.Is(err2, eventlog.ErrConflict) {
		t.Fatalf("writer B error = %v, want one matching eventlog.ErrConflict", err2)
	}
	var ce *eventlog.ConflictError
	if !errors.As(err2, &ce) || ce.ExecutionID != id || ce.ExpectedSeq != 2 {
		t.Fatalf("writer B error = %#v, want a *ConflictError for %s at seq 2", err2, id)
	}
	_ = txB.Rollback(ctx)

	h, err := b.store.History(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 {
		t.Fatalf("history has %d events, want 2", len(h))
	}
	var started engine.AttemptStarted
	if err := h[1].Decode(&started); err != nil {
		t.Fatal(err)
	}
	if started.WorkerID != "writer-a" {
		t.Fatalf("event 2 is by %q, want writer-a", started.WorkerID)
	}
	if n := b.count(t, `SELECT count(*) FROM tasks WHERE leased_by = 'writer-b'`); n != 0 {
		t.Fatalf("writer B's task row was written")
	}
	if err := eventlog.CheckChain(h); err != nil {
		t.Fatal(err)
	}

	// A writer that read the history before A's append, arriving after A
	// committed, gets the same conflict at once.
	err = b.store.InTx(ctx, func(tx eventlog.Tx) error {
		return tx.Apply(ctx, attemptStarted(t, j, "writer-c", now))
	})
	if !errors.Is(err, eventlog.ErrConflict) {
		t.Fatalf("stale writer error = %v, want one matching eventlog.ErrConflict", err)
	}
	if n := b.count(t, `SELECT count(*) FROM events`); n != 2 {
		t.Fatalf("%d events, want 2", n)
	}

	r, err := b.eng.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Fatalf("verify: %v", r.Problems)
	}
}

// TestEditedEventBreaksChain: an event changed behind the store's back
// fails CheckChain at that event, and Verify names that execution alone.
func TestEditedEventBreaksChain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	victim := b.enqueue(t, engine.NewJob{Queue: "victim"})
	bystander := b.enqueue(t, engine.NewJob{Queue: "bystander"})
	for _, q := range []string{"victim", "bystander"} {
		b.complete(t, b.claim(t, q, "worker-1"), nil)
	}

	if r, err := b.eng.Verify(ctx, nil); err != nil || !r.OK() {
		t.Fatalf("verify before the edit: %v %v", r, err)
	}
	tag, err := b.pool.Exec(ctx, `UPDATE events SET data = jsonb_set(data, '{worker_id}', '"mallory"') WHERE execution_id = $1 AND seq = 2`, [16]byte(victim))
	if err != nil {
		t.Fatal(err)
	}
	if tag.RowsAffected() != 1 {
		t.Fatalf("edited %d events, want 1", tag.RowsAffected())
	}

	h, err := b.store.History(ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	err = eventlog.CheckChain(h)
	var ce *eventlog.ChainError
	if !errors.As(err, &ce) {
		t.Fatalf("CheckChain = %v, want a *ChainError", err)
	}
	if ce.ExecutionID != victim || ce.Seq != 2 || !strings.Contains(ce.Reason, "edited") {
		t.Fatalf("CheckChain = %v, want the edit of event 2 of %s", err, victim)
	}
	hb, err := b.store.History(ctx, bystander)
	if err != nil {
		t.Fatal(err)
	}
	if err := eventlog.CheckChain(hb); err != nil {
		t.Fatalf("the bystander's history: %v", err)
	}

	r, err := b.eng.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Executions != 2 || r.Events != 6 {
		t.Fatalf("verify saw %d executions and %d events, want 2 and 6", r.Executions, r.Events)
	}
	if len(r.Problems) != 1 || r.Problems[0].ID != victim {
		t.Fatalf("verify problems = %v, want exactly one, for %s", r.Problems, victim)
	}
	if !strings.Contains(r.Problems[0].Message, "event 2") {
		t.Fatalf("verify problem = %q, want it to name event 2", r.Problems[0].Message)
	}

	// A rebuild would launder the edit into the projection: it refuses and
	// leaves the projection as it was.
	before := snapshot(t, b)
	if _, err := b.eng.RebuildProjections(ctx); err == nil || !strings.Contains(err.Error(), victim.String()) {
		t.Fatalf("RebuildProjections over an edited history = %v, want an error naming %s", err, victim)
	}
	if after := snapshot(t, b); !slices.Equal(before, after) {
		t.Fatalf("a refused rebuild changed the projection")
	}
}

// snapshot returns every projection row as JSON text, in a stable order.
func snapshot(t *testing.T, b *bundle) []string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `
		SELECT 'executions ' || row_to_json(e)::text FROM (SELECT * FROM executions ORDER BY id) e
		UNION ALL
		SELECT 'tasks ' || row_to_json(t)::text FROM (SELECT * FROM tasks ORDER BY execution_id, key) t`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRebuildProjections: deleted projection rows come back, exactly as
// they were, from the events alone.
func TestRebuildProjections(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	once := engine.RetryPolicy{MaximumAttempts: 1}
	later := engine.RetryPolicy{MaximumAttempts: 5, Schedule: []time.Duration{time.Hour}}

	ids := map[string]eventlog.ID{}
	ids["pending"] = b.enqueue(t, engine.NewJob{Queue: "pending", Priority: engine.PriorityHigh, Payload: json.RawMessage(`{"to":"ada@example.com","n":1.5}`)})
	ids["delayed"] = b.enqueue(t, engine.NewJob{Queue: "delayed", Delay: time.Hour, Priority: engine.PriorityLow})
	ids["running"] = b.enqueue(t, engine.NewJob{Queue: "running"})
	b.claim(t, "running", "worker-1")
	ids["succeeded"] = b.enqueue(t, engine.NewJob{Queue: "succeeded"})
	b.complete(t, b.claim(t, "succeeded", "worker-1"), nil)
	ids["retrying"] = b.enqueue(t, engine.NewJob{Queue: "retrying", RetryPolicy: later})
	b.complete(t, b.claim(t, "retrying", "worker-1"), errors.New("connection refused"))
	ids["dead"] = b.enqueue(t, engine.NewJob{Queue: "dead", RetryPolicy: once})
	b.complete(t, b.claim(t, "dead", "worker-1"), errors.New("mailbox full"))
	ids["canceled"] = b.enqueue(t, engine.NewJob{Queue: "canceled"})
	if _, err := b.eng.Execute(ctx, ids["canceled"], engine.Cancel{Actor: "ops", Reason: "duplicate"}); err != nil {
		t.Fatal(err)
	}
	ids["keyed"] = b.enqueue(t, engine.NewJob{Queue: "keyed", IdempotencyKey: "k1", IdempotencyTTL: time.Hour})

	want := map[string]engine.Status{"pending": engine.StatusPending, "delayed": engine.StatusPending, "running": engine.StatusRunning,
		"succeeded": engine.StatusSucceeded, "retrying": engine.StatusRetrying, "dead": engine.StatusDeadLettered,
		"canceled": engine.StatusCanceled, "keyed": engine.StatusPending}
	for name, id := range ids {
		j, err := b.eng.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status != want[name] {
			t.Fatalf("job %s is %s, want %s", name, j.Status, want[name])
		}
	}
	if r, err := b.eng.Verify(ctx, nil); err != nil || !r.OK() {
		t.Fatalf("verify before deleting: %v %v", r, err)
	}
	before := snapshot(t, b)

	if _, err := b.pool.Exec(ctx, `DELETE FROM tasks`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `DELETE FROM executions WHERE id = ANY($1)`, [][16]byte{ids["pending"], ids["dead"], ids["running"]}); err != nil {
		t.Fatal(err)
	}
	r, err := b.eng.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var named []string
	for _, p := range r.Problems {
		for name, id := range ids {
			if p.ID == id && !slices.Contains(named, name) {
				named = append(named, name)
			}
		}
	}
	slices.Sort(named)
	// Every job that needs a task lost it; three lost their row too.
	wantNamed := []string{"dead", "delayed", "keyed", "pending", "retrying", "running"}
	if !slices.Equal(named, wantNamed) {
		t.Fatalf("verify after deleting named %v, want %v (problems: %v)", named, wantNamed, r.Problems)
	}

	n, err := b.eng.RebuildProjections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(ids) {
		t.Fatalf("rebuilt %d executions, want %d", n, len(ids))
	}
	after := snapshot(t, b)
	if !slices.Equal(before, after) {
		t.Fatalf("projections differ after rebuild:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
	r, err = b.eng.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || r.Executions != len(ids) {
		t.Fatalf("verify after rebuild: %d executions, problems %v", r.Executions, r.Problems)
	}

	// The rebuilt ready queue works: the pending high-priority job is claimable.
	c := b.claim(t, "pending", "worker-2")
	if c.Job.ID != ids["pending"] || c.Lease.Attempt != 1 {
		t.Fatalf("claimed %s attempt %d, want %s attempt 1", c.Job.ID, c.Lease.Attempt, ids["pending"])
	}
}
