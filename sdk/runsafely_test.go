package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

// fastBackoff keeps RunJobSafely's retries quick in tests.
var fastBackoff = &sdk.RetryPolicy{InitialInterval: time.Millisecond, BackoffCoefficient: 1}

// counterValue reads a counter of the client's registry; 0 when absent.
func counterValue(t *testing.T, b *bundle, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := b.client.MetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for k, v := range labels {
				if !hasLabel(m, k, v) {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

// TestRunJobSafelySucceedsAfterRetry: a body that fails once and then
// succeeds returns nil, writes nothing, and counts both attempts.
func TestRunJobSafelySucceedsAfterRetry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var calls atomic.Int32
	err := b.client.RunJobSafely(context.Background(), "email.send", "job-1", map[string]string{"to": "ada@example.com"},
		func(ctx context.Context) error {
			if calls.Add(1) == 1 {
				return errors.New("smtp 451")
			}
			if sdk.CorrelationIDFromContext(ctx) != "job-1" {
				return sdk.Permanent(errors.New("correlation ID is not the caller's job ID"))
			}
			return nil
		}, sdk.SafeRunOptions{MaxRetries: 3, Backoff: fastBackoff})
	if err != nil {
		t.Fatalf("RunJobSafely: %v", err)
	}
	if calls.Load() != 2 {
		t.Fatalf("fn ran %d times, want 2", calls.Load())
	}
	if n := countRows(t, b, `SELECT count(*) FROM events`); n != 0 {
		t.Fatalf("a successful run wrote %d events, want none", n)
	}
	for status, want := range map[string]float64{"failure": 1, "success": 1} {
		if got := counterValue(t, b, "job_processed_total", map[string]string{"type": "email.send", "status": status}); got != want {
			t.Errorf("job_processed_total{type=email.send,status=%s} = %v, want %v", status, got, want)
		}
	}
}

// TestRunJobSafelyDeadLetters: a body that always fails runs MaxRetries+1
// times and is then a dead letter whose history holds every attempt; an
// operator's retry runs it on a worker with the same payload.
func TestRunJobSafelyDeadLetters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	smtpDown := errors.New("smtp: connection refused")
	var calls atomic.Int32
	err := b.client.RunJobSafely(ctx, "email.send", "order-7", map[string]string{"to": "ada@example.com"},
		func(context.Context) error { calls.Add(1); return smtpDown }, sdk.SafeRunOptions{MaxRetries: 2, Backoff: fastBackoff})
	var re *sdk.RunError
	if !errors.As(err, &re) || !errors.Is(err, sdk.ErrDeadLettered) || !errors.Is(err, smtpDown) {
		t.Fatalf("error %v, want a *RunError that is ErrDeadLettered and wraps the body's error", err)
	}
	if calls.Load() != 3 || re.Attempts != 3 || !re.DeadLettered {
		t.Fatalf("fn ran %d times, error %+v; want 3 attempts, dead-lettered", calls.Load(), re)
	}
	h := historyOf(t, b, re.ID)
	wantEventTypes(t, h, "JobEnqueued", "AttemptStarted", "AttemptFailed", "AttemptStarted", "AttemptFailed",
		"AttemptStarted", "AttemptFailed", "JobDeadLettered")
	enq := decodeEvent[engine.JobEnqueued](t, h[0], engine.EventJobEnqueued)
	if enq.CorrelationID != "order-7" || enq.Type != "email.send" || enq.RetryPolicy.MaximumAttempts != 3 {
		t.Errorf("JobEnqueued %+v, want email.send, correlation order-7, 3 attempts", enq)
	}
	for i, seq := range []int{2, 4} {
		f := decodeEvent[engine.AttemptFailed](t, h[seq], engine.EventAttemptFailed)
		if f.RetryAt == nil || f.Error != smtpDown.Error() {
			t.Errorf("failure %d: %+v, want the error and the retry time the run used", i+1, f)
		}
	}
	if f := decodeEvent[engine.AttemptFailed](t, h[6], engine.EventAttemptFailed); f.RetryAt != nil {
		t.Errorf("last failure chose a retry at %v, want none", f.RetryAt)
	}
	if got := jobOf(t, b, re.ID); got.Status != sdk.StatusDeadLettered || got.LastError != smtpDown.Error() {
		t.Fatalf("job %+v, want dead-lettered with the last error", got)
	}
	if got := counterValue(t, b, "job_dead_lettered_total", map[string]string{"type": "email.send"}); got != 1 {
		t.Errorf("job_dead_lettered_total = %v, want 1", got)
	}
	verifyOK(t, b)

	// An operator retries it; a worker with a handler runs the payload.
	w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	if err := sdk.RegisterJobHandler(w, "email.send", func(_ context.Context, p struct{ To string }) error {
		got <- p.To
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	if _, err := b.client.RetryDeadLetter(ctx, re.ID, "ops", "SMTP is back"); err != nil {
		t.Fatal(err)
	}
	if to := recv(t, "the retried job", got, 10*time.Second); to != "ada@example.com" {
		t.Fatalf("the worker ran payload to=%q", to)
	}
	waitFor(t, "the job to succeed", 10*time.Second, func() bool { return jobOf(t, b, re.ID).Status == sdk.StatusSucceeded })
	verifyOK(t, b)
}

// TestRunJobSafelyPermanent: a permanent error is not retried; a ULID job
// ID becomes the dead letter's ID.
func TestRunJobSafelyPermanent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := eventlog.NewID(time.Now())
	var calls atomic.Int32
	err := b.client.RunJobSafely(context.Background(), "webhook.deliver", id.String(), nil,
		func(context.Context) error { calls.Add(1); return sdk.Permanent(errors.New("410 gone")) }, sdk.SafeRunOptions{})
	var re *sdk.RunError
	if !errors.As(err, &re) || re.ID != id || !re.DeadLettered || calls.Load() != 1 {
		t.Fatalf("error %v after %d calls, want job %s dead-lettered after 1 attempt", err, calls.Load(), id)
	}
	h := historyOf(t, b, id)
	if d := decodeEvent[engine.JobDeadLettered](t, h[len(h)-1], engine.EventJobDeadLettered); d.Reason != "permanent error" {
		t.Fatalf("dead-letter reason %q, want permanent error", d.Reason)
	}
}

// TestRunJobSafelyCanceled: when ctx ends while waiting to retry, the job
// is recorded as retrying, for workers to finish.
func TestRunJobSafelyCanceled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	err := b.client.RunJobSafely(ctx, "data.export", "export-1", map[string]int{"user": 1},
		func(context.Context) error { cancel(); return errors.New("disk full") },
		sdk.SafeRunOptions{Backoff: &sdk.RetryPolicy{InitialInterval: time.Hour}})
	var re *sdk.RunError
	if !errors.As(err, &re) || re.DeadLettered || errors.Is(err, sdk.ErrDeadLettered) {
		t.Fatalf("error %v, want a *RunError that is not dead-lettered", err)
	}
	if j := jobOf(t, b, re.ID); j.Status != sdk.StatusRetrying || j.Attempt != 1 {
		t.Fatalf("job %+v, want retrying after 1 attempt", j)
	}
	if n := countRows(t, b, `SELECT count(*) FROM tasks WHERE execution_id = $1`, [16]byte(re.ID)); n != 1 {
		t.Fatalf("%d tasks for the job, want it in the ready queue", n)
	}
	verifyOK(t, b)
}

// TestRunJobSafelyRejectsBadInput: a bad type or payload writes nothing and
// never calls fn.
func TestRunJobSafelyRejectsBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	fn := func(context.Context) error { t.Fatal("fn ran"); return nil }
	if err := b.client.RunJobSafely(context.Background(), "Bad Type", "x", nil, fn, sdk.SafeRunOptions{}); !errors.Is(err, sdk.ErrInvalidInput) {
		t.Fatalf("bad type: %v, want ErrInvalidInput", err)
	}
	if err := b.client.RunJobSafely(context.Background(), "email.send", "x", json.RawMessage(`{`), fn, sdk.SafeRunOptions{}); !errors.Is(err, sdk.ErrInvalidInput) {
		t.Fatalf("bad payload: %v, want ErrInvalidInput", err)
	}
}
