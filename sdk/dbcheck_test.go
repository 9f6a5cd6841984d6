package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

// poolOf returns the pool of the test's schema, for checks from outside
// the client's API.
func poolOf(t *testing.T, b *bundle) *pgxpool.Pool {
	t.Helper()
	return b.client.Pool()
}

// countRows runs a count(*) query on the test's schema.
func countRows(t *testing.T, b *bundle, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := poolOf(t, b).QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// execSQL runs a statement on the test's schema.
func execSQL(t *testing.T, b *bundle, sql string, args ...any) {
	t.Helper()
	if _, err := poolOf(t, b).Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// historyOf returns a job's history and fails the test when its hash chain
// does not hold.
func historyOf(t *testing.T, b *bundle, id eventlog.ID) []eventlog.Event {
	t.Helper()
	h, err := b.client.History(context.Background(), id)
	if err != nil {
		t.Fatalf("history of %s: %v", id, err)
	}
	if err := eventlog.CheckChain(h); err != nil {
		t.Fatal(err)
	}
	return h
}

func eventTypesOf(h []eventlog.Event) []string {
	out := make([]string, len(h))
	for i, e := range h {
		out[i] = e.Type
	}
	return out
}

func wantEventTypes(t *testing.T, h []eventlog.Event, want ...string) {
	t.Helper()
	if got := eventTypesOf(h); !slices.Equal(got, want) {
		t.Fatalf("history = %v, want %v", got, want)
	}
}

// decodeEvent decodes an event's data, failing the test on a type mismatch.
func decodeEvent[T any](t *testing.T, e eventlog.Event, typ string) T {
	t.Helper()
	var v T
	if e.Type != typ {
		t.Fatalf("event %d is %s, want %s", e.Seq, e.Type, typ)
	}
	if err := e.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// rawField returns one field of an event's data as raw JSON, and whether
// the field is present at all.
func rawField(t *testing.T, e eventlog.Event, field string) (string, bool) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(e.Data, &m); err != nil {
		t.Fatal(err)
	}
	v, ok := m[field]
	return string(v), ok
}

// verifyOK runs the engine's verification over the whole schema.
func verifyOK(t *testing.T, b *bundle) {
	t.Helper()
	r, err := b.client.Engine().Verify(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Fatalf("verify found problems: %v", r.Problems)
	}
}

// claimOne claims exactly one job from queue with the engine directly.
func claimOne(t *testing.T, b *bundle, queue, worker string, lease time.Duration) engine.Claimed {
	t.Helper()
	got, err := b.client.Engine().Claim(context.Background(), engine.ClaimParams{Queues: []string{queue}, Limit: 1, WorkerID: worker, LeaseDuration: lease})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("claim from %s as %s returned %d jobs, want 1", queue, worker, len(got))
	}
	return got[0]
}

// claimNone asserts that queue holds nothing claimable.
func claimNone(t *testing.T, b *bundle, queue string) {
	t.Helper()
	got, err := b.client.Engine().Claim(context.Background(), engine.ClaimParams{Queues: []string{queue}, Limit: 10, WorkerID: "probe", LeaseDuration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("claim from %s returned %d jobs (first %s, attempt %d), want none", queue, len(got), got[0].Job.ID, got[0].Lease.Attempt)
	}
}

// complete reports one outcome and returns its per-outcome result.
func complete(t *testing.T, b *bundle, o engine.Outcome) error {
	t.Helper()
	res, err := b.client.Engine().Complete(context.Background(), []engine.Outcome{o})
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

func jobOf(t *testing.T, b *bundle, id eventlog.ID) sdk.Job {
	t.Helper()
	j, err := b.client.Job(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// recv waits for a value on ch or fails the test after timeout.
func recv[T any](t *testing.T, what string, ch <-chan T, timeout time.Duration) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
		panic("unreachable")
	}
}

func wantErrIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want one matching %v", err, target)
	}
}
