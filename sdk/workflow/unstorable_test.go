package workflow_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

// NulResult returns a string the event log cannot store (jsonb refuses NUL).
func NulResult(ctx context.Context) (string, error) { return "before\x00after", nil }

// StoresNul runs NulResult once, without retries.
func StoresNul(ctx workflow.Context) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second,
		RetryPolicy: &sdk.RetryPolicy{MaximumAttempts: 1}})
	var s string
	err := workflow.ExecuteActivity(ctx, NulResult).Get(ctx, &s)
	return s, err
}

// An activity result the event log cannot store fails that activity with
// a clear error; it does not fail the transaction that records outcomes.
func TestUnstorableActivityResultFailsTheActivity(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.worker("w1", func(w *sdk.Worker) error {
		if err := w.RegisterWorkflow(StoresNul); err != nil {
			return err
		}
		return w.RegisterActivity(NulResult)
	})
	ctx := context.Background()
	run, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "nul-result"}, StoresNul)
	if err != nil {
		t.Fatal(err)
	}
	gctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var out string
	err = run.Get(gctx, &out)
	if err == nil || !strings.Contains(err.Error(), "cannot be recorded") || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("workflow result %q, error %v; want the activity's unstorable-result failure", out, err)
	}
	h.verifyOK()
}
