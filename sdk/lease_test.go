package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/sdk"
)

// TestLateCompletionAfterLeaseLoss: worker A's lease expires, the job is
// timed out and run by worker B; whatever A reports afterwards is fenced
// off, and the history holds exactly B's success.
func TestLateCompletionAfterLeaseLoss(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if err := b.client.RegisterJobType("lease.job", sdk.JobType{RetryPolicy: sdk.RetryPolicy{MaximumAttempts: 3, Schedule: []time.Duration{0}}}); err != nil {
		t.Fatal(err)
	}
	res, err := b.client.Enqueue(ctx, "lease.job", nil)
	if err != nil {
		t.Fatal(err)
	}
	eng := b.client.Engine()
	a := claimOne(t, b, "default", "worker-a", time.Second)
	if a.Job.ID != res.ID || a.Lease.Attempt != 1 {
		t.Fatalf("A claimed %s attempt %d", a.Job.ID, a.Lease.Attempt)
	}

	// Wait, in database time, for A's lease to run out.
	waitFor(t, "A's lease to expire", 5*time.Second, func() bool {
		return countRows(t, b, `SELECT count(*) FROM tasks WHERE execution_id = $1 AND lease_expires_at < now()`, [16]byte(res.ID)) == 1
	})
	// Expired but not yet timed out: A's result is refused all the same.
	wantErrIs(t, complete(t, b, engine.Outcome{Lease: a.Lease}), sdk.ErrLeaseLost)
	wantEventTypes(t, historyOf(t, b, res.ID), "JobEnqueued", "AttemptStarted")

	n, err := eng.ExpireLeases(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("ExpireLeases timed out %d attempts, want 1", n)
	}
	h := historyOf(t, b, res.ID)
	wantEventTypes(t, h, "JobEnqueued", "AttemptStarted", "AttemptTimedOut")
	to := decodeEvent[engine.AttemptTimedOut](t, h[2], engine.EventAttemptTimedOut)
	if to.Attempt != 1 || to.WorkerID != "worker-a" || to.RetryAt == nil || !to.LeaseExpiredAt.Equal(a.LeaseExpiresAt) {
		t.Fatalf("AttemptTimedOut = %+v; want attempt 1 of worker-a, lease expired at %s, with a retry", to, a.LeaseExpiresAt)
	}

	bc := claimOne(t, b, "default", "worker-b", time.Minute)
	if bc.Job.ID != res.ID || bc.Lease.Attempt != 2 {
		t.Fatalf("B claimed %s attempt %d, want %s attempt 2", bc.Job.ID, bc.Lease.Attempt, res.ID)
	}
	// While B holds the lease, A can neither fail nor complete the job.
	wantErrIs(t, complete(t, b, engine.Outcome{Lease: a.Lease, Err: errors.New("late failure from A")}), sdk.ErrLeaseLost)
	// A fencing token is the attempt: B's worker ID with A's attempt is refused too.
	forged := bc.Lease
	forged.Attempt = 1
	wantErrIs(t, complete(t, b, engine.Outcome{Lease: forged}), sdk.ErrLeaseLost)

	if err := complete(t, b, engine.Outcome{Lease: bc.Lease, Duration: 10 * time.Millisecond}); err != nil {
		t.Fatalf("B's completion: %v", err)
	}
	wantErrIs(t, complete(t, b, engine.Outcome{Lease: a.Lease}), sdk.ErrLeaseLost)
	// B reporting twice changes nothing either.
	wantErrIs(t, complete(t, b, engine.Outcome{Lease: bc.Lease}), sdk.ErrLeaseLost)

	h = historyOf(t, b, res.ID)
	wantEventTypes(t, h, "JobEnqueued", "AttemptStarted", "AttemptTimedOut", "AttemptStarted", "AttemptSucceeded")
	if s := decodeEvent[engine.AttemptSucceeded](t, h[4], engine.EventAttemptSucceeded); s.Attempt != 2 {
		t.Fatalf("AttemptSucceeded is for attempt %d, want 2 (B's)", s.Attempt)
	}
	if j := jobOf(t, b, res.ID); j.Status != sdk.StatusSucceeded || j.Attempt != 2 {
		t.Fatalf("job is %s after %d attempts", j.Status, j.Attempt)
	}
	if n, err := eng.ExpireLeases(ctx, 100); err != nil || n != 0 {
		t.Fatalf("ExpireLeases after success = %d, %v; want 0", n, err)
	}
	verifyOK(t, b)
}

// TestCancelCancelsRunningHandler: canceling a running job takes away its
// lease, and the worker's next heartbeat cancels the handler's context with
// ErrLeaseLost as the cause. What the handler returns is not recorded.
func TestCancelCancelsRunningHandler(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w, err := b.client.NewWorker(sdk.WorkerConfig{LeaseDuration: time.Second, HeartbeatInterval: 300 * time.Millisecond, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 1)
	causes := make(chan error, 1)
	if err := w.Handle("export.big", func(ctx context.Context, _ json.RawMessage) error {
		started <- struct{}{}
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	res, err := b.client.Enqueue(ctx, "export.big", nil)
	if err != nil {
		t.Fatal(err)
	}
	recv(t, "the handler to start", started, 5*time.Second)
	j, err := b.client.Cancel(ctx, res.ID, "alice@ops", "customer withdrew the request")
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != sdk.StatusCanceled {
		t.Fatalf("job is %s after cancel", j.Status)
	}
	cause := recv(t, "the handler's context to be canceled", causes, 5*time.Second)
	if !errors.Is(cause, sdk.ErrLeaseLost) {
		t.Fatalf("context cause = %v, want one matching ErrLeaseLost", cause)
	}

	// Stop waits for the handler's outcome to be dealt with; it must not
	// have been recorded.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := w.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	h := historyOf(t, b, res.ID)
	wantEventTypes(t, h, "JobEnqueued", "AttemptStarted", "JobCanceled")
	c := decodeEvent[engine.JobCanceled](t, h[2], engine.EventJobCanceled)
	if c.Actor != "alice@ops" || c.Reason != "customer withdrew the request" {
		t.Fatalf("JobCanceled = %+v", c)
	}
	if n := countRows(t, b, `SELECT count(*) FROM tasks`); n != 0 {
		t.Fatalf("a canceled job still has %d ready-queue rows", n)
	}
	_, err = b.client.Cancel(ctx, res.ID, "alice@ops", "again")
	wantErrIs(t, err, sdk.ErrInvalidState)
	verifyOK(t, b)
}
