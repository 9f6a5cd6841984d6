package workflow_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

var flakyCalls atomic.Int32

// NextCall counts its calls.
func NextCall(ctx context.Context) (int, error) { return int(flakyCalls.Add(1)), nil }

// FlakyChild fails its first two runs.
func FlakyChild(ctx workflow.Context) (int, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var n int
	if err := workflow.ExecuteActivity(ctx, NextCall).Get(ctx, &n); err != nil {
		return 0, err
	}
	if n < 3 {
		return 0, workflow.NewApplicationError("not yet", "Flaky", nil)
	}
	return n, nil
}

// RetryingParent runs FlakyChild with a retry policy.
func RetryingParent(ctx workflow.Context) (int, error) {
	ctx = workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: "flaky-child",
		RetryPolicy: &workflow.RetryPolicy{InitialInterval: 20 * time.Millisecond, MaximumAttempts: 3}})
	var n int
	err := workflow.ExecuteChildWorkflow(ctx, FlakyChild).Get(ctx, &n)
	return n, err
}

func TestChildWorkflowRetryPolicy(t *testing.T) {
	t.Parallel()
	flakyCalls.Store(0) // for -count: only this test calls NextCall
	h := newHarness(t)
	h.worker("w1", func(w *sdk.Worker) error {
		for _, f := range []any{FlakyChild, RetryingParent} {
			if err := w.RegisterWorkflow(f); err != nil {
				return err
			}
		}
		return w.RegisterActivity(NextCall)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	run, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "retrying-parent"}, RetryingParent)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := run.Get(ctx, &n); err != nil || n != 3 {
		t.Fatalf("parent: %d, %v; want the third run's result", n, err)
	}
	if runs := h.count(`SELECT count(*) FROM executions WHERE idempotency_key = 'flaky-child'`); runs != 3 {
		t.Errorf("%d runs of the child, want 3", runs)
	}
	if c := count(h.history(run.GetRunID()), "ChildWorkflowCompleted"); c != 1 {
		t.Errorf("parent saw %d ChildWorkflowCompleted, want 1 (retries are the child's business)", c)
	}
	h.verifyOK()
}
