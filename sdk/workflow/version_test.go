package workflow_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

// Label is the activity of the versioned workflows: it returns its input.
func Label(ctx context.Context, s string) (string, error) { return s, nil }

func versionedSteps(ctx workflow.Context, first string) (string, error) {
	var a, b string
	if err := workflow.ExecuteActivity(ctx, Label, first).Get(ctx, &a); err != nil {
		return "", err
	}
	workflow.GetSignalChannel(ctx, "go").Receive(ctx, nil)
	if err := workflow.ExecuteActivity(ctx, Label, "finish").Get(ctx, &b); err != nil {
		return "", err
	}
	return a + "+" + b, nil
}

func labelCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
}

// ChangingV1 is the code before the change.
func ChangingV1(ctx workflow.Context) (string, error) {
	return versionedSteps(labelCtx(ctx), "old")
}

// ChangingV2 changes the first step behind GetVersion.
func ChangingV2(ctx workflow.Context) (string, error) {
	ctx = labelCtx(ctx)
	if workflow.GetVersion(ctx, "first-step", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return versionedSteps(ctx, "old")
	}
	return versionedSteps(ctx, "new")
}

// ChangingV3 removed the old branch: only right once no run needs it.
func ChangingV3(ctx workflow.Context) (string, error) {
	ctx = labelCtx(ctx)
	workflow.GetVersion(ctx, "first-step", 1, 1)
	return versionedSteps(ctx, "new")
}

func registerVersioned(fn any) func(w *sdk.Worker) error {
	return func(w *sdk.Worker) error {
		if err := w.RegisterWorkflowWithOptions(fn, workflow.RegisterOptions{Name: "Versioned"}); err != nil {
			return err
		}
		return w.RegisterActivity(Label)
	}
}

func TestGetVersion(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v1 := h.worker("v1", registerVersioned(ChangingV1))
	oldRun, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "versioned-old"}, "Versioned")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the old run's first step", 10*time.Second, func() bool { return count(h.history(oldRun.GetRunID()), "ActivityCompleted") == 1 })
	stopWorker(v1) // deploy: the old code is gone while the old run waits

	h.worker("v2", registerVersioned(ChangingV2))
	newRun, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "versioned-new"}, "Versioned")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new run's first step", 10*time.Second, func() bool { return count(h.history(newRun.GetRunID()), "ActivityCompleted") == 1 })
	for _, id := range []string{"versioned-old", "versioned-new"} {
		if err := h.client.SignalWorkflow(ctx, id, "", "go", nil); err != nil {
			t.Fatal(err)
		}
	}
	var oldOut, newOut string
	if err := oldRun.Get(ctx, &oldOut); err != nil {
		t.Fatal(err)
	}
	if err := newRun.Get(ctx, &newOut); err != nil {
		t.Fatal(err)
	}
	if oldOut != "old+finish" || newOut != "new+finish" {
		t.Fatalf("old run %q, new run %q; want old+finish and new+finish", oldOut, newOut)
	}
	if n := count(h.history(newRun.GetRunID()), "MarkerRecorded"); n != 1 {
		t.Errorf("new run has %d markers, want 1 version marker", n)
	}

	replay := func(fn any, runID string) error {
		r := workflow.NewReplayer()
		if err := r.RegisterWorkflowWithOptions(fn, workflow.RegisterOptions{Name: "Versioned"}); err != nil {
			t.Fatal(err)
		}
		return r.ReplayWorkflowHistory(h.history(runID))
	}
	for _, c := range []struct {
		fn   any
		name string
	}{{ChangingV2, "v2"}, {ChangingV3, "v3"}} {
		if err := replay(c.fn, newRun.GetRunID()); err != nil {
			t.Errorf("%s does not replay the new run: %v", c.name, err)
		}
	}
	if err := replay(ChangingV2, oldRun.GetRunID()); err != nil {
		t.Errorf("v2 does not replay the old run: %v", err)
	}
	// Removing the old branch while old runs exist is refused clearly.
	err = replay(ChangingV3, oldRun.GetRunID())
	var ve *workflow.VersionError
	if !errors.As(err, &ve) || ve.Version != workflow.DefaultVersion || !strings.Contains(err.Error(), `workflow.GetVersion("first-step")`) {
		t.Fatalf("v3 on the old run: %v, want a *VersionError for DefaultVersion", err)
	}
	t.Log(err)
	h.verifyOK()
}
