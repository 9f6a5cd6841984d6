package workflow_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

// Greet is a child workflow: it upper-cases its input, or fails on "fail".
func Greet(ctx workflow.Context, name string) (string, error) {
	if name == "fail" {
		return "", workflow.NewApplicationError("no greeting for "+name, "GreetError", nil)
	}
	return "hello " + strings.ToUpper(name), nil
}

// GreetAll runs a child per name and joins their results; a child's
// failure fails it with the child's error as the cause.
func GreetAll(ctx workflow.Context, names []string) (string, error) {
	var out []string
	for _, n := range names {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: "greet-" + n})
		var s string
		if err := workflow.ExecuteChildWorkflow(cctx, Greet, n).Get(ctx, &s); err != nil {
			var ce *workflow.ChildWorkflowExecutionError
			if !errors.As(err, &ce) {
				return "", workflow.NewApplicationError("not a child error: "+err.Error(), "Unexpected", nil)
			}
			return "", err
		}
		out = append(out, s)
	}
	return strings.Join(out, ", "), nil
}

// Waiter is a child that waits until it is canceled.
func Waiter(ctx workflow.Context) error {
	err := workflow.Await(ctx, func() bool { return false })
	return err
}

// PolicyParent starts a Waiter child per policy, then waits for a
// "finish" signal (and completes) or for its own cancellation.
func PolicyParent(ctx workflow.Context, prefix string) error {
	policies := []workflow.ParentClosePolicy{workflow.ParentClosePolicyTerminate, workflow.ParentClosePolicyRequestCancel, workflow.ParentClosePolicyAbandon}
	for i, p := range policies {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: prefix + []string{"-terminate", "-cancel", "-abandon"}[i], ParentClosePolicy: p})
		if err := workflow.ExecuteChildWorkflow(cctx, Waiter).GetChildWorkflowExecution().Get(ctx, nil); err != nil {
			return err
		}
	}
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(workflow.GetSignalChannel(ctx, "finish"), func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
	sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
	sel.Select(ctx)
	if ctx.Err() != nil {
		return workflow.ErrCanceled
	}
	return nil
}

func registerChildren(w *sdk.Worker) error {
	for _, f := range []any{Greet, GreetAll, Waiter, PolicyParent} {
		if err := w.RegisterWorkflow(f); err != nil {
			return err
		}
	}
	return nil
}

func TestChildWorkflowResultAndFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.worker("w1", registerChildren)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	run, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "greet-ok"}, GreetAll, []string{"ann", "bob"})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := run.Get(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if got != "hello ANN, hello BOB" {
		t.Fatalf("result %q", got)
	}
	events := h.history(run.GetRunID())
	for typ, want := range map[string]int{engine.EventChildWorkflowInitiated: 2, engine.EventChildWorkflowStarted: 2, engine.EventChildWorkflowCompleted: 2} {
		if n := count(events, typ); n != want {
			t.Errorf("%d %s events, want %d: %v", n, typ, want, eventTypes(events))
		}
	}
	child, err := h.client.DescribeWorkflow(ctx, "greet-ann", "")
	if err != nil || child.Status != engine.StatusWorkflowCompleted {
		t.Fatalf("child greet-ann: %+v, %v", child, err)
	}

	run, err = h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "greetall-fail"}, GreetAll, []string{"cy", "fail", "dee"})
	if err != nil {
		t.Fatal(err)
	}
	err = run.Get(ctx, nil)
	var we *sdk.WorkflowExecutionError
	if !errors.As(err, &we) || !strings.Contains(err.Error(), "no greeting for fail") || !strings.Contains(err.Error(), `"greet-fail"`) {
		t.Fatalf("parent error = %v, want the child's failure with its cause", err)
	}
	if _, err := h.client.DescribeWorkflow(ctx, "greet-dee", ""); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("greet-dee started after the failure: %v", err)
	}
	failed := h.history(run.GetRunID())
	if n := count(failed, engine.EventChildWorkflowFailed); n != 1 {
		t.Errorf("%d ChildWorkflowFailed, want 1: %v", n, eventTypes(failed))
	}
	h.verifyOK()
}

func waitStatus(t *testing.T, h *harness, id string, want engine.WorkflowStatus) {
	t.Helper()
	waitFor(t, id+" "+string(want), 15*time.Second, func() bool {
		d, err := h.client.DescribeWorkflow(context.Background(), id, "")
		return err == nil && d.Status == want
	})
}

func TestParentClosePolicies(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.worker("w1", registerChildren)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The parent completes: each child gets its policy.
	run, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "pp-done"}, PolicyParent, "done")
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, h, "done-abandon", engine.StatusWorkflowRunning)
	if err := h.client.SignalWorkflow(ctx, "pp-done", "", "finish", true); err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, h, "done-terminate", engine.StatusWorkflowTerminated)
	waitStatus(t, h, "done-cancel", engine.StatusWorkflowCanceled)
	if d, _ := h.client.DescribeWorkflow(ctx, "done-abandon", ""); d.Status != engine.StatusWorkflowRunning {
		t.Errorf("abandoned child is %s, want running", d.Status)
	}

	// The parent is canceled: its context asks the terminate and
	// request-cancel children to cancel, and as the parent ends in the
	// same task the terminate child is terminated; the abandoned one runs
	// on.
	run, err = h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "pp-cancel"}, PolicyParent, "cx")
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, h, "cx-abandon", engine.StatusWorkflowRunning)
	if err := h.client.CancelWorkflow(ctx, "pp-cancel", ""); err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, nil); !workflow.IsCanceledError(err) {
		t.Fatalf("parent ended with %v, want canceled", err)
	}
	waitStatus(t, h, "cx-terminate", engine.StatusWorkflowTerminated)
	waitStatus(t, h, "cx-cancel", engine.StatusWorkflowCanceled)
	if d, _ := h.client.DescribeWorkflow(ctx, "cx-abandon", ""); d.Status != engine.StatusWorkflowRunning {
		t.Errorf("abandoned child is %s, want running", d.Status)
	}

	// Terminating a parent applies the policies too.
	_, err = h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "pp-term"}, PolicyParent, "tm")
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, h, "tm-abandon", engine.StatusWorkflowRunning)
	if err := h.client.TerminateWorkflowBy(ctx, "pp-term", "", "ops@example.com", "test"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, h, "tm-terminate", engine.StatusWorkflowTerminated)
	waitStatus(t, h, "tm-cancel", engine.StatusWorkflowCanceled)
	h.verifyOK()
}
