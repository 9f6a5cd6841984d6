package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

// failAttempt claims the job (which must be the only one ready in queue),
// fails it, and returns the events the failure appended.
func failAttempt(t *testing.T, b *bundle, id eventlog.ID, queue string, attempt int) []eventlog.Event {
	t.Helper()
	before := len(historyOf(t, b, id))
	c := claimOne(t, b, queue, "retry-test-worker", time.Minute)
	if c.Job.ID != id || c.Lease.Attempt != attempt {
		t.Fatalf("claimed %s attempt %d, want %s attempt %d", c.Job.ID, c.Lease.Attempt, id, attempt)
	}
	if err := complete(t, b, engine.Outcome{Lease: c.Lease, Err: fmt.Errorf("smtp: 451 try again later (attempt %d)", attempt), ErrorType: "SMTPError"}); err != nil {
		t.Fatalf("failing attempt %d: %v", attempt, err)
	}
	h := historyOf(t, b, id)
	return h[before+1:] // after AttemptStarted
}

// retryDelay checks that an AttemptFailed chose a retry and returns how far
// after the failure (both in database time) the retry is due.
func retryDelay(t *testing.T, b *bundle, e eventlog.Event) time.Duration {
	t.Helper()
	f := decodeEvent[engine.AttemptFailed](t, e, engine.EventAttemptFailed)
	if f.RetryAt == nil {
		t.Fatalf("attempt %d: retry_at is null, want a retry", f.Attempt)
	}
	j := jobOf(t, b, e.ExecutionID)
	if j.Status != sdk.StatusRetrying || !j.RunAt.Equal(*f.RetryAt) {
		t.Fatalf("after attempt %d the job is %s due %s, want retrying due %s", f.Attempt, j.Status, j.RunAt, f.RetryAt)
	}
	return f.RetryAt.Sub(e.RecordedAt)
}

// makeDue moves a retrying job's ready-queue row to now(), so that the test
// can claim the next attempt without waiting minutes for it. Only the task
// (a projection row) is touched; the history, which holds the retry time
// the policy chose and which this test checks, is not.
func makeDue(t *testing.T, b *bundle, id eventlog.ID) {
	t.Helper()
	execSQL(t, b, `UPDATE tasks SET run_at = now() WHERE execution_id = $1`, [16]byte(id))
}

// TestEmailSendRetrySchedule: the runbook's email.send retries after 1m,
// 5m and 15m, then dead-letters after the fourth failure.
func TestEmailSendRetrySchedule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	res, err := b.client.Enqueue(ctx, "email.send", map[string]string{"to": "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute} {
		events := failAttempt(t, b, res.ID, "default", i+1)
		if len(events) != 1 {
			t.Fatalf("attempt %d appended %v, want only AttemptFailed", i+1, eventTypesOf(events))
		}
		if got := retryDelay(t, b, events[0]); got != want {
			t.Fatalf("retry after attempt %d is due %s after the failure, want %s", i+1, got, want)
		}
		// The retry is not due yet, so nothing can claim it...
		claimNone(t, b, "default")
		makeDue(t, b, res.ID)
	}
	events := failAttempt(t, b, res.ID, "default", 4)
	if got := eventTypesOf(events); len(got) != 2 || got[0] != engine.EventAttemptFailed || got[1] != engine.EventJobDeadLettered {
		t.Fatalf("the fourth failure appended %v, want AttemptFailed, JobDeadLettered", got)
	}
	if raw, ok := rawField(t, events[0], "retry_at"); !ok || raw != "null" {
		t.Fatalf("last AttemptFailed retry_at = %q (present %v), want null", raw, ok)
	}
	dl := decodeEvent[engine.JobDeadLettered](t, events[1], engine.EventJobDeadLettered)
	if dl.Attempts != 4 || !strings.Contains(dl.LastError, "attempt 4") || dl.Reason != "all 4 attempts failed" {
		t.Fatalf("JobDeadLettered = %+v", dl)
	}
	j := jobOf(t, b, res.ID)
	if j.Status != sdk.StatusDeadLettered || j.Attempt != 4 {
		t.Fatalf("job is %s after %d attempts, want dead_lettered after 4", j.Status, j.Attempt)
	}
	if n := countRows(t, b, `SELECT count(*) FROM tasks`); n != 0 {
		t.Fatalf("a dead letter still has %d ready-queue rows", n)
	}
	claimNone(t, b, "default")
}

// TestExponentialRetrySchedule: with no jitter, retry n waits
// InitialInterval × BackoffCoefficient^(n-1), capped at MaximumInterval.
func TestExponentialRetrySchedule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	p := sdk.RetryPolicy{MaximumAttempts: 7, InitialInterval: 2 * time.Second, BackoffCoefficient: 3, MaximumInterval: time.Minute}
	if err := b.client.RegisterJobType("report.build", sdk.JobType{RetryPolicy: p, Queue: "reports"}); err != nil {
		t.Fatal(err)
	}
	res, err := b.client.Enqueue(ctx, "report.build", nil)
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n < p.MaximumAttempts; n++ {
		want := min(time.Duration(float64(p.InitialInterval)*math.Pow(p.BackoffCoefficient, float64(n-1))), p.MaximumInterval)
		events := failAttempt(t, b, res.ID, "reports", n)
		if got := retryDelay(t, b, events[0]); got != want {
			t.Fatalf("retry %d is due %s after the failure, want %s", n, got, want)
		}
		makeDue(t, b, res.ID)
	}
	events := failAttempt(t, b, res.ID, "reports", p.MaximumAttempts)
	if got := eventTypesOf(events); len(got) != 2 || got[1] != engine.EventJobDeadLettered {
		t.Fatalf("the last failure appended %v, want AttemptFailed, JobDeadLettered", got)
	}
}

// TestWebhookRetryJitter: the runbook's webhook.deliver retries after 30s,
// 1m and 2m, each spread by up to ±20%.
func TestWebhookRetryJitter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res, err := b.client.Enqueue(context.Background(), "webhook.deliver", map[string]string{"url": "https://example.com/hook"})
	if err != nil {
		t.Fatal(err)
	}
	for i, base := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute} {
		events := failAttempt(t, b, res.ID, "default", i+1)
		got := retryDelay(t, b, events[0])
		lo, hi := time.Duration(float64(base)*0.8), time.Duration(float64(base)*1.2)
		if got < lo || got > hi {
			t.Fatalf("retry %d is due %s after the failure, want %s ± 20%% (%s to %s)", i+1, got, base, lo, hi)
		}
		makeDue(t, b, res.ID)
	}
}

type invalidRecipientError struct{ addr string }

func (e *invalidRecipientError) Error() string     { return "invalid recipient " + e.addr }
func (e *invalidRecipientError) ErrorType() string { return "InvalidRecipient" }

type badTemplateError struct{}

func (badTemplateError) Error() string { return "template does not parse" }

// TestNonRetryableErrorsDeadLetterAtOnce: a Permanent error, an error that
// names a non-retryable type, and an error whose Go type is listed all end
// the job on the first failure; an error of another type is retried.
func TestNonRetryableErrorsDeadLetterAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	policy := sdk.RetryPolicy{MaximumAttempts: 5, Schedule: []time.Duration{0},
		NonRetryableErrorTypes: []string{"InvalidRecipient", "sdk_test.badTemplateError"}}
	tests := []struct {
		jobType    string
		err        error
		wantType   string
		wantReason string
	}{
		{"fail.permanent", sdk.Permanent(errors.New("mailbox does not exist")), "errors.errorString", "permanent error"},
		{"fail.typed", fmt.Errorf("send welcome mail: %w", &invalidRecipientError{addr: "nobody@"}), "InvalidRecipient", "error type InvalidRecipient is not retryable"},
		{"fail.gotype", badTemplateError{}, "sdk_test.badTemplateError", "error type sdk_test.badTemplateError is not retryable"},
	}
	w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]*atomic.Int32{}
	handle := func(jobType string, ret error) {
		if err := b.client.RegisterJobType(jobType, sdk.JobType{RetryPolicy: policy}); err != nil {
			t.Fatal(err)
		}
		n := &atomic.Int32{}
		calls[jobType] = n
		if err := w.Handle(jobType, func(context.Context, json.RawMessage) error {
			n.Add(1)
			return ret
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range tests {
		handle(tt.jobType, tt.err)
	}
	handle("fail.retryable", errors.New("timeout"))
	startWorker(t, w)

	ids := map[string]eventlog.ID{}
	for jt := range calls {
		res, err := b.client.Enqueue(ctx, jt, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[jt] = res.ID
	}
	for _, tt := range tests {
		waitFor(t, tt.jobType+" dead-lettered", 10*time.Second, func() bool {
			j, err := b.client.Job(ctx, ids[tt.jobType])
			return err == nil && j.Status == sdk.StatusDeadLettered
		})
		if n := calls[tt.jobType].Load(); n != 1 {
			t.Fatalf("%s ran %d times, want 1", tt.jobType, n)
		}
		h := historyOf(t, b, ids[tt.jobType])
		wantEventTypes(t, h, "JobEnqueued", "AttemptStarted", "AttemptFailed", "JobDeadLettered")
		f := decodeEvent[engine.AttemptFailed](t, h[2], engine.EventAttemptFailed)
		if !f.Permanent || f.RetryAt != nil || f.ErrorType != tt.wantType {
			t.Fatalf("%s: AttemptFailed = %+v, want permanent, no retry, error type %s", tt.jobType, f, tt.wantType)
		}
		if dl := decodeEvent[engine.JobDeadLettered](t, h[3], engine.EventJobDeadLettered); dl.Reason != tt.wantReason {
			t.Fatalf("%s: dead-letter reason %q, want %q", tt.jobType, dl.Reason, tt.wantReason)
		}
	}
	waitFor(t, "fail.retryable dead-lettered after 5 attempts", 10*time.Second, func() bool {
		j, err := b.client.Job(ctx, ids["fail.retryable"])
		return err == nil && j.Status == sdk.StatusDeadLettered
	})
	if n := calls["fail.retryable"].Load(); n != 5 {
		t.Fatalf("fail.retryable ran %d times, want 5", n)
	}
}

// TestDeadLetterOperations: Retry gives a dead letter a fresh budget and
// records who and why; Resolve needs notes; both refuse other states and
// write nothing when they refuse.
func TestDeadLetterOperations(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if err := b.client.RegisterJobType("invoice.send", sdk.JobType{RetryPolicy: sdk.RetryPolicy{MaximumAttempts: 2, Schedule: []time.Duration{0}}}); err != nil {
		t.Fatal(err)
	}
	res, err := b.client.Enqueue(ctx, "invoice.send", map[string]int{"invoice": 7})
	if err != nil {
		t.Fatal(err)
	}
	id := res.ID
	failAttempt(t, b, id, "default", 1)
	failAttempt(t, b, id, "default", 2)
	if j := jobOf(t, b, id); j.Status != sdk.StatusDeadLettered {
		t.Fatalf("job is %s, want dead_lettered", j.Status)
	}

	// Refusals write nothing.
	events := func() int64 {
		return countRows(t, b, `SELECT count(*) FROM events WHERE execution_id = $1`, [16]byte(id))
	}
	n := events()
	for _, notes := range []string{"", "   \n"} {
		_, err := b.client.ResolveDeadLetter(ctx, id, "alice@ops", notes)
		wantErrIs(t, err, sdk.ErrInvalidInput)
	}
	_, err = b.client.RetryDeadLetter(ctx, id, "", "no actor")
	wantErrIs(t, err, sdk.ErrInvalidInput)
	if got := events(); got != n {
		t.Fatalf("refused operations appended %d events", got-n)
	}
	other, err := b.client.Enqueue(ctx, "invoice.send", map[string]int{"invoice": 8}, sdk.WithDelay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.client.RetryDeadLetter(ctx, other.ID, "alice@ops", "not dead")
	wantErrIs(t, err, sdk.ErrInvalidState)
	_, err = b.client.ResolveDeadLetter(ctx, other.ID, "alice@ops", "not dead")
	wantErrIs(t, err, sdk.ErrInvalidState)
	wantEventTypes(t, historyOf(t, b, other.ID), "JobEnqueued")
	_, err = b.client.RetryDeadLetter(ctx, eventlog.NewID(time.Now()), "alice@ops", "no such job")
	wantErrIs(t, err, sdk.ErrNotFound)

	// Retry: a fresh budget of MaximumAttempts attempts.
	j, err := b.client.RetryDeadLetter(ctx, id, "alice@ops", "SMTP credentials rotated")
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != sdk.StatusPending || j.BudgetStart != 2 {
		t.Fatalf("after retry the job is %s with budget start %d, want pending from 2", j.Status, j.BudgetStart)
	}
	h := historyOf(t, b, id)
	retried := decodeEvent[engine.JobRetried](t, h[len(h)-1], engine.EventJobRetried)
	if retried.Actor != "alice@ops" || retried.Note != "SMTP credentials rotated" {
		t.Fatalf("JobRetried = %+v", retried)
	}
	ev := failAttempt(t, b, id, "default", 3)
	if len(ev) != 1 || retryDelay(t, b, ev[0]) != 0 {
		t.Fatalf("attempt 3 (first of the new budget) appended %v, want a retry", eventTypesOf(ev))
	}
	ev = failAttempt(t, b, id, "default", 4)
	if got := eventTypesOf(ev); len(got) != 2 || got[1] != engine.EventJobDeadLettered {
		t.Fatalf("attempt 4 (last of the new budget) appended %v, want AttemptFailed, JobDeadLettered", got)
	}
	if dl := decodeEvent[engine.JobDeadLettered](t, ev[1], engine.EventJobDeadLettered); dl.Attempts != 2 {
		t.Fatalf("JobDeadLettered.Attempts = %d, want 2 (the new budget)", dl.Attempts)
	}

	// Resolve closes it for good.
	j, err = b.client.ResolveDeadLetter(ctx, id, "bob@ops", "customer deleted their account; invoice voided")
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != sdk.StatusResolved || j.FinishedAt == nil {
		t.Fatalf("after resolve the job is %s (finished %v)", j.Status, j.FinishedAt)
	}
	h = historyOf(t, b, id)
	resolved := decodeEvent[engine.JobResolved](t, h[len(h)-1], engine.EventJobResolved)
	if resolved.Actor != "bob@ops" || resolved.Notes != "customer deleted their account; invoice voided" {
		t.Fatalf("JobResolved = %+v", resolved)
	}
	_, err = b.client.RetryDeadLetter(ctx, id, "alice@ops", "again")
	wantErrIs(t, err, sdk.ErrInvalidState)
	claimNone(t, b, "default")
	verifyOK(t, b)
}
