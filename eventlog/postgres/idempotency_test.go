package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// TestIdempotencyKeyLifecycle walks one key through every transition the
// store allows: a free key is claimed; a live claim is returned to others
// untouched; the owner completes it; a completed key is returned until it
// expires and then claimed again; a claim whose attempt ended is taken
// over; only the owner's attempt releases or completes a claim.
func TestIdempotencyKeyLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.enqueue(t, engine.NewJob{})
	b.enqueue(t, engine.NewJob{})
	first := b.claim(t, "default", "w1")
	second := b.claim(t, "default", "w2")
	claim := func(c engine.Claimed) eventlog.KeyClaim {
		t.Helper()
		got, err := b.store.ClaimIdempotencyKey(ctx, eventlog.ClaimKeyParams{Key: "payment:1:capture", OwnerID: c.Job.ID, OwnerAttempt: c.Lease.Attempt, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	completeKey := func(c engine.Claimed, ttl time.Duration) bool {
		t.Helper()
		var ok bool
		err := b.store.InTx(ctx, func(tx eventlog.Tx) error {
			var err error
			ok, err = tx.CompleteIdempotencyKey(ctx, "payment:1:capture", c.Job.ID, c.Lease.Attempt, json.RawMessage(`{"charge":"ch_1"}`), ttl)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	if got := claim(first); !got.Claimed || got.Key.State != eventlog.KeyRunning || got.Key.OwnerID != first.Job.ID {
		t.Fatalf("first claim = %+v", got)
	}
	if got := claim(second); got.Claimed || got.Key.OwnerID != first.Job.ID || got.Key.State != eventlog.KeyRunning {
		t.Fatalf("claim of a live key = %+v, want the holder's row", got)
	}
	if ok, err := b.store.ReleaseIdempotencyKey(ctx, "payment:1:capture", second.Job.ID, second.Lease.Attempt); err != nil || ok {
		t.Fatalf("release by a non-owner = %v, %v", ok, err)
	}
	if completeKey(second, time.Hour) {
		t.Fatal("a non-owner completed the key")
	}
	if !completeKey(first, time.Hour) {
		t.Fatal("the owner could not complete the key")
	}
	got := claim(second)
	if got.Claimed || got.Key.State != eventlog.KeyCompleted || string(got.Key.Result) != `{"charge": "ch_1"}` && string(got.Key.Result) != `{"charge":"ch_1"}` || got.Key.CompletedAt == nil {
		t.Fatalf("claim of a completed key = %+v", got)
	}
	if n, err := b.store.DeleteExpiredIdempotencyKeys(ctx, 10); err != nil || n != 0 {
		t.Fatalf("deleted %d live keys (%v)", n, err)
	}
	// Expired: claimed afresh.
	if _, err := b.pool.Exec(ctx, `UPDATE idempotency_keys SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if got := claim(second); !got.Claimed || got.Key.OwnerID != second.Job.ID || got.Key.Result != nil {
		t.Fatalf("claim of an expired key = %+v", got)
	}
	// The holder's attempt ends (it fails and waits for a retry): its claim
	// is dead, and the next caller takes the key over.
	b.complete(t, second, errors.New("boom"))
	if got := claim(first); !got.Claimed || got.Key.OwnerID != first.Job.ID {
		t.Fatalf("claim over an ended attempt's claim = %+v", got)
	}
	if ok, err := b.store.ReleaseIdempotencyKey(ctx, "payment:1:capture", first.Job.ID, first.Lease.Attempt); err != nil || !ok {
		t.Fatalf("owner's release = %v, %v", ok, err)
	}
	if n := b.count(t, `SELECT count(*) FROM idempotency_keys`); n != 0 {
		t.Fatalf("%d keys after the release", n)
	}
}

// TestPurgeExecutions: a purge deletes only finished executions of the
// named kinds and statuses past the age, with all their events, and never
// a job that still runs.
func TestPurgeExecutions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	done := b.enqueue(t, engine.NewJob{})
	b.complete(t, b.claim(t, "default", "w"), nil)
	running := b.enqueue(t, engine.NewJob{})
	b.claim(t, "default", "w")
	if _, err := b.store.PurgeExecutions(ctx, eventlog.PurgeParams{Kinds: []string{"job"}}); err == nil {
		t.Fatal("a purge without statuses was accepted")
	}
	r, err := b.store.PurgeExecutions(ctx, eventlog.PurgeParams{Kinds: []string{"job"}, Statuses: []string{"succeeded"}, OlderThan: time.Hour})
	if err != nil || r != (eventlog.PurgeResult{}) {
		t.Fatalf("purge of jobs younger than the age = %+v, %v", r, err)
	}
	// "running" is named on purpose: a job without finished_at is never purged.
	r, err = b.store.PurgeExecutions(ctx, eventlog.PurgeParams{Kinds: []string{"job"}, Statuses: []string{"succeeded", "running"}, Limit: 10})
	if err != nil || r != (eventlog.PurgeResult{Executions: 1, Events: 3}) {
		t.Fatalf("purge = %+v, %v; want 1 execution with 3 events", r, err)
	}
	if _, err := b.store.History(ctx, done); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("history of the purged job: %v", err)
	}
	if _, err := b.store.History(ctx, running); err != nil {
		t.Fatalf("history of the running job: %v", err)
	}
}
