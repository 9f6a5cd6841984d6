package workflow_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/activity"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

// cancelCounts counts what the activities of one workflow ID saw.
type cancelCounts struct{ started, canceled, cleanedUp atomic.Int32 }

var cancelCounters sync.Map // workflow ID → *cancelCounts

func countsOf(workflowID string) *cancelCounts {
	c, _ := cancelCounters.LoadOrStore(workflowID, &cancelCounts{})
	return c.(*cancelCounts)
}

// Long heartbeats until its context is canceled.
func Long(ctx context.Context) error {
	c := countsOf(activity.GetInfo(ctx).WorkflowID)
	c.started.Add(1)
	for {
		activity.RecordHeartbeat(ctx, "working")
		select {
		case <-ctx.Done():
			c.canceled.Add(1)
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Cleanup is the compensation run after a cancellation.
func Cleanup(ctx context.Context) error {
	countsOf(activity.GetInfo(ctx).WorkflowID).cleanedUp.Add(1)
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
	id := "cancel-me-" + h.schema
	counts := countsOf(id)
	run, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: id}, Cancelable)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the activity to start", 10*time.Second, func() bool { return counts.started.Load() == 1 })
	if err := h.client.CancelWorkflow(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	gctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err = run.Get(gctx, nil)
	var we *sdk.WorkflowExecutionError
	if !errors.As(err, &we) || !workflow.IsCanceledError(err) {
		t.Fatalf("result: %v, want a canceled workflow", err)
	}
	waitFor(t, "the activity to see its context canceled", 5*time.Second, func() bool { return counts.canceled.Load() == 1 })
	if n := counts.cleanedUp.Load(); n != 1 {
		t.Fatalf("cleanup ran %d times", n)
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

// TestExecutionTimeout ends a run that outlives its execution timeout, and
// job commands refuse workflow runs.
func TestExecutionTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.worker("w1", registerCollect)
	ctx := context.Background()
	run, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "slow", WorkflowExecutionTimeout: 300 * time.Millisecond}, Collect, 1)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := eventlogID(run.GetRunID())
	if _, err := h.client.Cancel(ctx, id, "ops", "wrong tool"); !errors.Is(err, sdk.ErrInvalidState) {
		t.Fatalf("job cancel of a workflow run: %v", err)
	}
	gctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var te *workflow.TimeoutError
	if err := run.Get(gctx, nil); !errors.As(err, &te) {
		t.Fatalf("result: %v", err)
	}
	events := h.history(run.GetRunID())
	if last := events[len(events)-1]; last.Type != "WorkflowTimedOut" || last.RecordedAt.Sub(events[0].RecordedAt) < 300*time.Millisecond {
		t.Fatalf("history ends with %s after %s", last.Type, last.RecordedAt.Sub(events[0].RecordedAt))
	}
	h.verifyOK()
}
