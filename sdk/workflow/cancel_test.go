package workflow_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/activity"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

var (
	longStarted  atomic.Int32
	longCanceled atomic.Int32
	cleanedUp    atomic.Int32
)

// Long heartbeats until its context is canceled.
func Long(ctx context.Context) error {
	longStarted.Add(1)
	for {
		activity.RecordHeartbeat(ctx, "working")
		select {
		case <-ctx.Done():
			longCanceled.Add(1)
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Cleanup is the compensation run after a cancellation.
func Cleanup(ctx context.Context) error {
	cleanedUp.Add(1)
	return nil
}

// Cancelable runs Long; when canceled it runs Cleanup in a disconnected
// context and ends canceled.
func Cancelable(ctx workflow.Context) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, HeartbeatTimeout: 500 * time.Millisecond})
	err := workflow.ExecuteActivity(ctx, Long).Get(ctx, nil)
	if workflow.IsCanceledError(err) {
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		if err := workflow.ExecuteActivity(dctx, Cleanup).Get(dctx, nil); err != nil {
			return err
		}
		return workflow.ErrCanceled
	}
	return err
}

// TestCancellationReachesRunningActivity: canceling the workflow cancels
// its running activity (whose context is canceled at its next heartbeat)
// and the workflow's cleanup runs in a disconnected context.
func TestCancellationReachesRunningActivity(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.worker("w1", func(w *sdk.Worker) error {
		if err := w.RegisterWorkflow(Cancelable); err != nil {
			return err
		}
		if err := w.RegisterActivity(Long); err != nil {
			return err
		}
		return w.RegisterActivity(Cleanup)
	})
	ctx := context.Background()
	run, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "cancel-me"}, Cancelable)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the activity to start", 10*time.Second, func() bool { return longStarted.Load() == 1 })
	if err := h.client.CancelWorkflow(ctx, "cancel-me", ""); err != nil {
		t.Fatal(err)
	}
	gctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err = run.Get(gctx, nil)
	var we *sdk.WorkflowExecutionError
	if !errors.As(err, &we) || !workflow.IsCanceledError(err) {
		t.Fatalf("result: %v, want a canceled workflow", err)
	}
	waitFor(t, "the activity to see its context canceled", 5*time.Second, func() bool { return longCanceled.Load() == 1 })
	if cleanedUp.Load() != 1 {
		t.Fatalf("cleanup ran %d times", cleanedUp.Load())
	}
	events := h.history(run.GetRunID())
	for _, typ := range []string{"WorkflowCancelRequested", "ActivityCancelRequested", "ActivityCanceled", "WorkflowCanceled"} {
		if count(events, typ) != 1 {
			t.Errorf("history lacks one %s: %v", typ, eventTypes(events))
		}
	}
	h.verifyOK()
}

// TestTerminate ends a run without running its code.
func TestTerminate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.worker("w1", registerCollect)
	ctx := context.Background()
	run, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "term"}, Collect, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.client.TerminateWorkflow(ctx, "term", "", "no longer needed"); err != nil {
		t.Fatal(err)
	}
	var te *workflow.TerminatedError
	if err := run.Get(ctx, nil); !errors.As(err, &te) || te.Reason != "no longer needed" {
		t.Fatalf("result: %v", err)
	}
	if err := h.client.TerminateWorkflow(ctx, "term", "", "again"); !errors.Is(err, sdk.ErrWorkflowNotRunning) {
		t.Fatalf("second terminate: %v", err)
	}
	h.verifyOK()
}
