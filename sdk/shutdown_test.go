package sdk_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/sdk"
)

// A panicking handler is an ordinary failure: recorded with its stack and
// retried by the policy; the worker keeps running.
func TestPanicIsRecordedAsFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if err := b.client.RegisterJobType("panicky.job", sdk.JobType{RetryPolicy: sdk.RetryPolicy{MaximumAttempts: 2, Schedule: []time.Duration{0}}}); err != nil {
		t.Fatal(err)
	}
	w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	if err := w.Handle("panicky.job", func(context.Context, json.RawMessage) error {
		calls++
		if calls == 1 {
			panic("nil map write")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	res, err := b.client.Enqueue(ctx, "panicky.job", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "success after the panic", 10*time.Second, func() bool {
		j, err := b.client.Job(ctx, res.ID)
		return err == nil && j.Status == sdk.StatusSucceeded
	})
	h, err := b.client.History(ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	var failed engine.AttemptFailed
	for _, e := range h {
		if e.Type == engine.EventAttemptFailed {
			if err := e.Decode(&failed); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !strings.Contains(failed.Error, "panic: nil map write") || !strings.Contains(failed.Error, "shutdown_test.go") || failed.ErrorType != "panic" || failed.RetryAt == nil {
		t.Fatalf("AttemptFailed = %+v", failed)
	}
}

// Stop lets running jobs finish within its deadline and records them.
func TestStopLetsRunningJobsFinish(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w, err := b.client.NewWorker(sdk.WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	if err := w.Handle("slow.job", func(ctx context.Context, _ json.RawMessage) error {
		close(started)
		time.Sleep(300 * time.Millisecond)
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := b.client.Enqueue(ctx, "slow.job", nil)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := w.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	// Stop returned only after the outcome was recorded.
	j, err := b.client.Job(ctx, res.ID)
	if err != nil || j.Status != sdk.StatusSucceeded {
		t.Fatalf("after Stop: job %+v, %v", j, err)
	}
}

// When the deadline passes, Stop cancels the handlers that are still
// running and records what they return; the job is retried later.
func TestStopCancelsJobsPastTheDeadline(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w, err := b.client.NewWorker(sdk.WorkerConfig{DisableMaintenance: true})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	if err := w.Handle("stuck.job", func(ctx context.Context, _ json.RawMessage) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := b.client.Enqueue(ctx, "stuck.job", nil)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_ = w.Stop(sctx) // returns the deadline error
	j, err := b.client.Job(ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != sdk.StatusRetrying || !strings.Contains(j.LastError, "worker shutting down") {
		t.Fatalf("after Stop: status %s, last error %q", j.Status, j.LastError)
	}
}
