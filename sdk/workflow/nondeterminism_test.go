package workflow_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

// VersionedV1 runs Echo, waits for "go", then runs Echo again.
func VersionedV1(ctx workflow.Context) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var a, b string
	if err := workflow.ExecuteActivity(ctx, Echo, "a").Get(ctx, &a); err != nil {
		return "", err
	}
	workflow.GetSignalChannel(ctx, "go").Receive(ctx, nil)
	if err := workflow.ExecuteActivity(ctx, Echo, "b").Get(ctx, &b); err != nil {
		return "", err
	}
	return a + b, nil
}

// VersionedV2 is a changed deployment that calls another activity first.
func VersionedV2(ctx workflow.Context) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var a string
	if err := workflow.ExecuteActivity(ctx, Upper, "a").Get(ctx, &a); err != nil {
		return "", err
	}
	return a, nil
}

func registerVersion(fn any) func(*sdk.Worker) error {
	return func(w *sdk.Worker) error {
		if err := w.RegisterWorkflowWithOptions(fn, workflow.RegisterOptions{Name: "Versioned"}); err != nil {
			return err
		}
		if err := w.RegisterActivity(Upper); err != nil {
			return err
		}
		return w.RegisterActivity(Echo)
	}
}

// TestNonDeterminismBlocksUntilFixed: code that changed an activity call
// under a running workflow fails its workflow task with the typed error,
// writes nothing to the history, and shows the run as blocked; once the
// original code runs again, the workflow continues.
func TestNonDeterminismBlocksUntilFixed(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	v1 := h.worker("v1", registerVersion(VersionedV1))
	run, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "versioned"}, "Versioned")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the workflow to wait for its signal", 10*time.Second, func() bool {
		events := h.history(run.GetRunID())
		return count(events, engine.EventActivityCompleted) == 1 && events[len(events)-1].Type == engine.EventWorkflowTaskCompleted
	})
	stopWorker(v1)

	v2 := h.worker("v2", registerVersion(VersionedV2))
	if err := h.client.SignalWorkflow(ctx, "versioned", "", "go", nil); err != nil {
		t.Fatal(err)
	}
	before := h.history(run.GetRunID())
	want := "non-deterministic workflow at event 3: history has ActivityScheduled(Echo, id 1), code issued ActivityScheduled(Upper, id 1)"
	waitFor(t, "the run to be blocked by the failing task, twice", 10*time.Second, func() bool {
		d, err := h.client.DescribeWorkflow(ctx, "versioned", "")
		return err == nil && d.Status == engine.StatusWorkflowBlocked && d.LastError == want &&
			h.count(`SELECT attempt FROM executions WHERE idempotency_key = 'versioned'`) >= 2
	})
	after := h.history(run.GetRunID())
	if len(after) != len(before) || !bytes.Equal(after[len(after)-1].Hash, before[len(before)-1].Hash) {
		t.Fatalf("the failing task changed the history:\nbefore %v\nafter  %v", eventTypes(before), eventTypes(after))
	}
	// The same error, typed, from a replay of the history in a test.
	r := workflow.NewReplayer()
	if err := r.RegisterWorkflowWithOptions(VersionedV2, workflow.RegisterOptions{Name: "Versioned"}); err != nil {
		t.Fatal(err)
	}
	var nde *workflow.NonDeterminismError
	if err := r.ReplayWorkflowHistory(after); !errors.As(err, &nde) || nde.Seq != 3 || err.Error() != want {
		t.Fatalf("replay: %v", err)
	}
	h.verifyOK() // blocked is a projection state verify accepts

	stopWorker(v2)
	h.worker("v1-again", registerVersion(VersionedV1))
	gctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var out string
	if err := run.Get(gctx, &out); err != nil || out != "ab" {
		t.Fatalf("after the fix: %q, %v", out, err)
	}
	d, err := h.client.DescribeWorkflow(ctx, "versioned", "")
	if err != nil || d.Status != engine.StatusWorkflowCompleted {
		t.Fatalf("describe: %+v, %v", d, err)
	}
	h.verifyOK()
}

// TestBadInput: each mistake is a clear, typed error.
func TestBadInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.worker("w1", registerCollect)
	ctx := context.Background()

	_, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{}, "NoSuchWorkflow")
	if !errors.Is(err, sdk.ErrUnknownWorkflowType) || !strings.Contains(err.Error(), `"NoSuchWorkflow"`) {
		t.Errorf("unregistered type: %v", err)
	}
	_, err = h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{}, Collect, "three")
	if !errors.Is(err, sdk.ErrInvalidInput) || !strings.Contains(err.Error(), "argument 1 of Collect does not decode as int") {
		t.Errorf("undecodable input: %v", err)
	}
	_, err = h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{}, Collect, 1, 2)
	if !errors.Is(err, sdk.ErrInvalidInput) {
		t.Errorf("too many arguments: %v", err)
	}

	first, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "dup"}, Collect, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "dup"}, Collect, 1)
	var exists *engine.WorkflowExistsError
	if !errors.Is(err, sdk.ErrWorkflowExists) || !errors.As(err, &exists) || exists.RunID.String() != first.GetRunID() {
		t.Errorf("duplicate ID: %v", err)
	}
	same, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "dup", WorkflowIDConflictPolicy: sdk.WorkflowIDConflictPolicyUseExisting}, Collect, 1)
	if err != nil || same.GetRunID() != first.GetRunID() {
		t.Errorf("use existing: %v, %v", same, err)
	}
	if err := h.client.TerminateWorkflow(ctx, "dup", "", "test"); err != nil {
		t.Fatal(err)
	}
	if err := h.client.SignalWorkflow(ctx, "dup", "", "item", "x"); !errors.Is(err, sdk.ErrWorkflowNotRunning) ||
		!strings.Contains(err.Error(), "terminated") {
		t.Errorf("signal to a finished workflow: %v", err)
	}
	// A finished run's ID can be reused.
	again, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "dup"}, Collect, 1)
	if err != nil || again.GetRunID() == first.GetRunID() {
		t.Errorf("reuse of a finished ID: %v", err)
	}
	if err := h.client.SignalWorkflow(ctx, "nobody", "", "item", "x"); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("signal to an unknown workflow: %v", err)
	}

	// A type no worker has blocks the run with an error naming it.
	loose, err := sdk.NewClient(ctx, sdk.Config{Pool: h.client.Pool(), WakeSubjectPrefix: "test." + h.schema, AllowUnregisteredTypes: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer loose.Close()
	if _, err := loose.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "ghost"}, "Ghost"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ghost run to be blocked", 10*time.Second, func() bool {
		d, err := h.client.DescribeWorkflow(ctx, "ghost", "")
		return err == nil && d.Status == engine.StatusWorkflowBlocked && strings.Contains(d.LastError, `workflow type "Ghost" is not registered`)
	})
}
