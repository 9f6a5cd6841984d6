package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

// assertNothingWritten checks that no job, event or idempotency key exists.
func assertNothingWritten(t *testing.T, b *bundle) {
	t.Helper()
	jobs, err := b.client.ListJobs(context.Background(), sdk.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 0 {
		t.Fatalf("ListJobs returned %d jobs, want none", len(jobs))
	}
	for _, table := range []string{"events", "executions", "tasks", "enqueue_keys"} {
		if n := countRows(t, b, "SELECT count(*) FROM "+table); n != 0 {
			t.Fatalf("%s holds %d rows, want none", table, n)
		}
	}
}

// jsonOfSize returns a JSON object of exactly n bytes (n >= 10).
func jsonOfSize(n int) json.RawMessage {
	const head, tail = `{"blob":"`, `"}`
	return json.RawMessage(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}

func TestEnqueueRejectsBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if err := b.client.RegisterJobType("report.build", sdk.JobType{}); err != nil {
		t.Fatal(err)
	}
	w, err := b.client.NewWorker(sdk.WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// Registered but never started: enqueues of this type check that the
	// payload decodes into greeting.
	if err := sdk.RegisterJobHandler(w, "greet.typed", func(context.Context, greeting) error { return nil }); err != nil {
		t.Fatal(err)
	}
	type withString struct {
		S string `json:"s"`
	}
	tests := []struct {
		name    string
		jobType string
		payload any
		opts    []sdk.EnqueueOption
		want    error
		mention string // a substring the error must contain
	}{
		{"unknown job type", "no.such.type", nil, nil, sdk.ErrUnknownJobType, "no.such.type"},
		{"malformed job type", "Report.Build", nil, nil, sdk.ErrInvalidInput, "job type"},
		{"truncated JSON", "report.build", json.RawMessage(`{"a":`), nil, sdk.ErrInvalidInput, "payload"},
		{"JSON with trailing data", "report.build", json.RawMessage(`{"a":1} x`), nil, sdk.ErrInvalidInput, "payload"},
		{"not JSON as bytes", "report.build", []byte("not json"), nil, sdk.ErrInvalidInput, "payload"},
		{"unencodable value", "report.build", map[string]any{"f": func() {}}, nil, sdk.ErrInvalidInput, "payload"},
		{"payload of the wrong shape", "greet.typed", json.RawMessage(`{"name":42}`), nil, sdk.ErrInvalidInput, "greet.typed"},
		{"1 MiB + 1 payload", "report.build", jsonOfSize(sdk.DefaultMaxPayloadBytes + 1), nil, sdk.ErrInvalidInput, "1048577 bytes, over the 1048576-byte limit"},
		{"NUL in raw JSON", "report.build", json.RawMessage(`{"a":"x\u0000y"}`), nil, sdk.ErrInvalidInput, "NUL"},
		{"NUL in a Go string", "report.build", withString{S: "x\x00y"}, nil, sdk.ErrInvalidInput, "NUL"},
		{"NUL in a key", "report.build", json.RawMessage(`{"k\u0000":1}`), nil, sdk.ErrInvalidInput, "NUL"},
		{"number too large for jsonb", "report.build", json.RawMessage(`{"n":1e131072}`), nil, sdk.ErrInvalidInput, "range"},
		{"number too precise for jsonb", "report.build", json.RawMessage(`{"n":1e-16384}`), nil, sdk.ErrInvalidInput, "range"},
		{"unknown priority", "report.build", nil, []sdk.EnqueueOption{sdk.WithPriority("urgent")}, sdk.ErrInvalidInput, "priority"},
		{"upper-case priority", "report.build", nil, []sdk.EnqueueOption{sdk.WithPriority("HIGH")}, sdk.ErrInvalidInput, "priority"},
		{"empty priority", "report.build", nil, []sdk.EnqueueOption{sdk.WithPriority("")}, sdk.ErrInvalidInput, "priority"},
		{"empty queue", "report.build", nil, []sdk.EnqueueOption{sdk.WithQueue("")}, sdk.ErrInvalidInput, "queue"},
		{"queue with a space", "report.build", nil, []sdk.EnqueueOption{sdk.WithQueue("bulk mail")}, sdk.ErrInvalidInput, "queue"},
		{"queue with empty part", "report.build", nil, []sdk.EnqueueOption{sdk.WithQueue("a..b")}, sdk.ErrInvalidInput, "queue"},
		{"queue with a wildcard", "report.build", nil, []sdk.EnqueueOption{sdk.WithQueue("mail.*")}, sdk.ErrInvalidInput, "queue"},
		{"queue with a tail wildcard", "report.build", nil, []sdk.EnqueueOption{sdk.WithQueue("mail.>")}, sdk.ErrInvalidInput, "queue"},
		{"queue too long", "report.build", nil, []sdk.EnqueueOption{sdk.WithQueue(strings.Repeat("q", 101))}, sdk.ErrInvalidInput, "queue"},
		{"negative delay", "report.build", nil, []sdk.EnqueueOption{sdk.WithDelay(-time.Second)}, sdk.ErrInvalidInput, "delay"},
		{"zero idempotency TTL", "report.build", nil, []sdk.EnqueueOption{sdk.WithIdempotencyKey("k", 0)}, sdk.ErrInvalidInput, "TTL"},
		{"invalid retry policy", "report.build", nil, []sdk.EnqueueOption{sdk.WithRetryPolicy(sdk.RetryPolicy{Jitter: 2})}, sdk.ErrInvalidInput, "Jitter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A valid idempotency key rides along with every bad request, so
			// that a key written before the refusal would show up.
			opts := append([]sdk.EnqueueOption{sdk.WithIdempotencyKey("bad-input:"+tt.name, time.Hour)}, tt.opts...)
			res, err := b.client.Enqueue(ctx, tt.jobType, tt.payload, opts...)
			if err == nil {
				t.Fatalf("Enqueue = %+v, want an error matching %v", res, tt.want)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Enqueue error = %v, want one matching %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("Enqueue error = %q, want it to mention %q", err, tt.mention)
			}
			assertNothingWritten(t, b)
		})
	}
}

func TestEnqueuePayloadLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("default limit allows exactly 1 MiB", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if err := b.client.RegisterJobType("blob.store", sdk.JobType{}); err != nil {
			t.Fatal(err)
		}
		res, err := b.client.Enqueue(ctx, "blob.store", jsonOfSize(sdk.DefaultMaxPayloadBytes))
		if err != nil {
			t.Fatal(err)
		}
		stored, err := eventlog.Canonicalize(jobOf(t, b, res.ID).Payload)
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) != sdk.DefaultMaxPayloadBytes {
			t.Fatalf("stored payload is %d bytes, want %d", len(stored), sdk.DefaultMaxPayloadBytes)
		}
	})

	t.Run("custom limit", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *sdk.Config) { c.MaxPayloadBytes = 64 })
		if err := b.client.RegisterJobType("blob.store", sdk.JobType{}); err != nil {
			t.Fatal(err)
		}
		_, err := b.client.Enqueue(ctx, "blob.store", jsonOfSize(65))
		wantErrIs(t, err, sdk.ErrInvalidInput)
		if !strings.Contains(err.Error(), "65 bytes, over the 64-byte limit") {
			t.Fatalf("error = %q, want it to name the size and the limit", err)
		}
		assertNothingWritten(t, b)
		if _, err := b.client.Enqueue(ctx, "blob.store", jsonOfSize(64)); err != nil {
			t.Fatalf("a payload of exactly the limit: %v", err)
		}
	})
}

func TestEnqueueIdempotencyKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const key = "email:welcome:42:signup-1"

	first, err := b.client.Enqueue(ctx, "email.send", map[string]string{"to": "ada@example.com"}, sdk.WithIdempotencyKey(key, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if first.Existing {
		t.Fatal("first enqueue reported Existing")
	}
	second, err := b.client.Enqueue(ctx, "email.send", map[string]string{"to": "someone-else@example.com"}, sdk.WithIdempotencyKey(key, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if second.ID != first.ID || !second.Existing {
		t.Fatalf("second enqueue = %+v, want ID %s with Existing", second, first.ID)
	}
	if n := countRows(t, b, "SELECT count(*) FROM executions"); n != 1 {
		t.Fatalf("%d jobs, want 1", n)
	}
	if n := countRows(t, b, "SELECT count(*) FROM events"); n != 1 {
		t.Fatalf("%d events, want 1 (the second enqueue must append nothing)", n)
	}
	if j := jobOf(t, b, first.ID); !strings.Contains(string(j.Payload), "ada@") || j.IdempotencyKey != key {
		t.Fatalf("job = payload %s key %q; want the first enqueue's", j.Payload, j.IdempotencyKey)
	}

	// Expire the key without waiting for its TTL.
	execSQL(t, b, `UPDATE enqueue_keys SET expires_at = now() - interval '1s' WHERE key = $1`, key)
	third, err := b.client.Enqueue(ctx, "email.send", map[string]string{"to": "ada@example.com"}, sdk.WithIdempotencyKey(key, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if third.Existing || third.ID == first.ID {
		t.Fatalf("enqueue after the key expired = %+v, want a new job", third)
	}
	if n := countRows(t, b, "SELECT count(*) FROM executions"); n != 2 {
		t.Fatalf("%d jobs, want 2", n)
	}
	fourth, err := b.client.Enqueue(ctx, "email.send", nil, sdk.WithIdempotencyKey(key, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if fourth.ID != third.ID || !fourth.Existing {
		t.Fatalf("enqueue after the new job = %+v, want %s with Existing", fourth, third.ID)
	}

	// Two requests of one batch that share a new key make one job.
	batch, err := b.client.EnqueueMany(ctx, []sdk.JobRequest{
		{Type: "email.send", Options: []sdk.EnqueueOption{sdk.WithIdempotencyKey("email:digest:7", time.Hour)}},
		{Type: "email.send", Options: []sdk.EnqueueOption{sdk.WithIdempotencyKey("email:digest:7", time.Hour)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if batch[0].Existing || !batch[1].Existing || batch[0].ID != batch[1].ID {
		t.Fatalf("a batch sharing one key = %+v, want one new job returned twice", batch)
	}
	if n := countRows(t, b, "SELECT count(*) FROM executions"); n != 3 {
		t.Fatalf("%d jobs, want 3", n)
	}
	verifyOK(t, b)
}

// TestEnqueueIdempotencyKeyConcurrent: enqueues racing on one key create
// exactly one job and all return it.
func TestEnqueueIdempotencyKeyConcurrent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const n = 16
	var wg sync.WaitGroup
	results := make([]sdk.EnqueueResult, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = b.client.Enqueue(ctx, "webhook.deliver", map[string]int{"i": i}, sdk.WithIdempotencyKey("webhook:7:delivery-9", time.Hour))
		}()
	}
	close(start)
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("enqueue %d: %v", i, errs[i])
		}
		if results[i].ID != results[0].ID {
			t.Fatalf("enqueue %d returned %s, enqueue 0 returned %s", i, results[i].ID, results[0].ID)
		}
		if !results[i].Existing {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d enqueues created the job, want exactly 1", created)
	}
	if c := countRows(t, b, "SELECT count(*) FROM executions"); c != 1 {
		t.Fatalf("%d jobs, want 1", c)
	}
}

func TestEnqueueManyIsOneTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 1000
	requests := func() []sdk.JobRequest {
		reqs := make([]sdk.JobRequest, n)
		for i := range reqs {
			reqs[i] = sdk.JobRequest{Type: "bulk.item", Payload: map[string]int{"i": i},
				Options: []sdk.EnqueueOption{sdk.WithIdempotencyKey(fmt.Sprintf("bulk:%d", i), time.Hour)}}
		}
		return reqs
	}

	t.Run("all written", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if err := b.client.RegisterJobType("bulk.item", sdk.JobType{}); err != nil {
			t.Fatal(err)
		}
		res, err := b.client.EnqueueMany(ctx, requests())
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != n {
			t.Fatalf("%d results, want %d", len(res), n)
		}
		seen := map[eventlog.ID]bool{}
		for i, r := range res {
			if r.Existing || seen[r.ID] {
				t.Fatalf("result %d = %+v: want a new, distinct job", i, r)
			}
			seen[r.ID] = true
		}
		for _, table := range []string{"events", "executions", "tasks", "enqueue_keys"} {
			if c := countRows(t, b, "SELECT count(*) FROM "+table); c != n {
				t.Fatalf("%s holds %d rows, want %d", table, c, n)
			}
		}
		// recorded_at is the transaction's now(): one value means one transaction.
		if c := countRows(t, b, "SELECT count(DISTINCT recorded_at) FROM events"); c != 1 {
			t.Fatalf("events carry %d distinct recorded_at values, want 1 (one transaction)", c)
		}
		// Payloads line up with their requests.
		if p, err := eventlog.Canonicalize(jobOf(t, b, res[777].ID).Payload); err != nil || string(p) != `{"i":777}` {
			t.Fatalf("job 777 has payload %s (%v)", p, err)
		}
	})

	t.Run("one bad request writes none", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if err := b.client.RegisterJobType("bulk.item", sdk.JobType{}); err != nil {
			t.Fatal(err)
		}
		reqs := requests()
		reqs[499].Options = append(reqs[499].Options, sdk.WithQueue("no spaces allowed"))
		_, err := b.client.EnqueueMany(ctx, reqs)
		wantErrIs(t, err, sdk.ErrInvalidInput)
		if !strings.Contains(err.Error(), "job 500 of 1000") {
			t.Fatalf("error = %q, want it to name job 500 of 1000", err)
		}
		assertNothingWritten(t, b)
	})
}

// TestEnqueueTx: a job enqueued in the caller's transaction exists if and
// only if that transaction commits.
func TestEnqueueTx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("rolled back", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if err := b.client.RegisterJobType("order.confirm", sdk.JobType{}); err != nil {
			t.Fatal(err)
		}
		tx, err := poolOf(t, b).Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.client.EnqueueTx(ctx, tx, "order.confirm", map[string]int{"order": 1}, sdk.WithIdempotencyKey("order:1:confirm", time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		_, err = b.client.Job(ctx, res.ID)
		wantErrIs(t, err, sdk.ErrNotFound)
		_, err = b.client.History(ctx, res.ID)
		wantErrIs(t, err, sdk.ErrNotFound)
		assertNothingWritten(t, b)
		// The rolled-back key does not block a new enqueue.
		again, err := b.client.Enqueue(ctx, "order.confirm", map[string]int{"order": 1}, sdk.WithIdempotencyKey("order:1:confirm", time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if again.Existing || again.ID == res.ID {
			t.Fatalf("enqueue after rollback = %+v, want a new job", again)
		}
	})

	t.Run("committed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if err := b.client.RegisterJobType("order.confirm", sdk.JobType{}); err != nil {
			t.Fatal(err)
		}
		tx, err := poolOf(t, b).Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck // a no-op after commit
		// The caller's own write in the same transaction.
		if _, err := tx.Exec(ctx, `CREATE TABLE orders (id int PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO orders VALUES (1)`); err != nil {
			t.Fatal(err)
		}
		res, err := b.client.EnqueueTx(ctx, tx, "order.confirm", map[string]int{"order": 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		j := jobOf(t, b, res.ID)
		if j.Status != sdk.StatusPending || j.Type != "order.confirm" {
			t.Fatalf("job = %s %s, want a pending order.confirm", j.Status, j.Type)
		}
		wantEventTypes(t, historyOf(t, b, res.ID), "JobEnqueued")
		verifyOK(t, b)
	})

	t.Run("invisible to workers until commit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		var ran atomic.Int32
		done := make(chan struct{}, 1)
		if err := w.Handle("order.confirm", func(context.Context, json.RawMessage) error {
			ran.Add(1)
			done <- struct{}{}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		startWorker(t, w)

		tx, err := poolOf(t, b).Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck // a no-op after commit
		res, err := b.client.EnqueueTx(ctx, tx, "order.confirm", map[string]int{"order": 2})
		if err != nil {
			t.Fatal(err)
		}
		// Asserting that something does not happen needs a wait: six poll
		// intervals in which the worker must not see the uncommitted job.
		time.Sleep(300 * time.Millisecond)
		if n := ran.Load(); n != 0 {
			t.Fatalf("handler ran %d times before the transaction committed", n)
		}
		_, err = b.client.Job(ctx, res.ID)
		wantErrIs(t, err, sdk.ErrNotFound)
		if c := countRows(t, b, "SELECT count(*) FROM events"); c != 0 {
			t.Fatalf("another connection sees %d events before commit", c)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		recv(t, "the handler after commit", done, 5*time.Second)
		waitFor(t, "success recorded", 5*time.Second, func() bool {
			j, err := b.client.Job(ctx, res.ID)
			return err == nil && j.Status == sdk.StatusSucceeded
		})
		if n := ran.Load(); n != 1 {
			t.Fatalf("handler ran %d times, want 1", n)
		}
	})
}

// TestEnqueueNumbersAtJsonbLimits: the largest and smallest numbers jsonb
// stores are accepted, and their histories verify although PostgreSQL
// spells them out in full when read back.
func TestEnqueueNumbersAtJsonbLimits(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if err := b.client.RegisterJobType("numbers.edge", sdk.JobType{}); err != nil {
		t.Fatal(err)
	}
	res, err := b.client.Enqueue(context.Background(), "numbers.edge", json.RawMessage(`{"big":1e131071,"tiny":-1e-16383}`))
	if err != nil {
		t.Fatal(err)
	}
	historyOf(t, b, res.ID)
	verifyOK(t, b)
}
