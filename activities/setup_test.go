package activities

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/internal/testdb"
	"github.com/chronicle-engine/chronicle/sdk"
)

// quiet discards the logs of the code under test.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fastRetries replaces a runbook policy in tests that wait for retries.
var fastRetries = sdk.RetryPolicy{MaximumAttempts: 4, Schedule: []time.Duration{10 * time.Millisecond}}

type bundle struct {
	client *sdk.Client
	worker *sdk.Worker
}

// setup returns a client on a fresh schema, with NATS wakeups private to
// the test, and a worker of it that register adds handlers to before it
// starts. The worker stops when the test ends.
func setup(t *testing.T, register func(c *sdk.Client, w *sdk.Worker) error) *bundle {
	t.Helper()
	pool, schema := testdb.Schema(t)
	c, err := sdk.NewClient(context.Background(), sdk.Config{Pool: pool, WakeSubjectPrefix: "test." + schema, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	w, err := c.NewWorker(sdk.WorkerConfig{PollInterval: 50 * time.Millisecond, MaintenanceInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := register(c, w); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return &bundle{client: c, worker: w}
}

// enqueue adds a job and returns its ID.
func (b *bundle) enqueue(t *testing.T, jobType string, payload any, opts ...sdk.EnqueueOption) eventlog.ID {
	t.Helper()
	res, err := b.client.Enqueue(context.Background(), jobType, payload, opts...)
	if err != nil {
		t.Fatalf("enqueue %s: %v", jobType, err)
	}
	return res.ID
}

// waitSettled waits until the job succeeded or was dead-lettered, and
// returns it.
func (b *bundle) waitSettled(t *testing.T, id eventlog.ID) sdk.Job {
	t.Helper()
	var j sdk.Job
	waitFor(t, "job "+id.String()+" to settle", 15*time.Second, func() bool {
		var err error
		if j, err = b.client.Job(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		return j.Status == sdk.StatusSucceeded || j.Status == sdk.StatusDeadLettered
	})
	return j
}

// history returns the job's events of one type.
func (b *bundle) events(t *testing.T, id eventlog.ID, eventType string) []eventlog.Event {
	t.Helper()
	h, err := b.client.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []eventlog.Event
	for _, e := range h {
		if e.Type == eventType {
			out = append(out, e)
		}
	}
	return out
}

// failures decodes the job's AttemptFailed events.
func (b *bundle) failures(t *testing.T, id eventlog.ID) []engine.AttemptFailed {
	t.Helper()
	var out []engine.AttemptFailed
	for _, e := range b.events(t, id, engine.EventAttemptFailed) {
		var f engine.AttemptFailed
		if err := e.Decode(&f); err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}

// steps decodes the job's StepCompleted events.
func (b *bundle) steps(t *testing.T, id eventlog.ID) []engine.StepCompleted {
	t.Helper()
	var out []engine.StepCompleted
	for _, e := range b.events(t, id, engine.EventStepCompleted) {
		var s engine.StepCompleted
		if err := e.Decode(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
