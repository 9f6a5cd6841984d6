package workflow_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

func Upper(ctx context.Context, s string) (string, error) { return strings.ToUpper(s), nil }

func Exclaim(ctx context.Context, s string) (string, error) { return s + "!", nil }

func Pipeline(ctx workflow.Context, in string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	s := in
	for _, act := range []any{Upper, Exclaim, Exclaim} {
		if err := workflow.ExecuteActivity(ctx, act, s).Get(ctx, &s); err != nil {
			return "", err
		}
	}
	if err := workflow.Sleep(ctx, 50*time.Millisecond); err != nil {
		return "", err
	}
	return s, nil
}

func registerPipeline(w *sdk.Worker) error {
	if err := w.RegisterWorkflow(Pipeline); err != nil {
		return err
	}
	if err := w.RegisterActivity(Upper); err != nil {
		return err
	}
	return w.RegisterActivity(Exclaim)
}

// TestWorkflowEndToEnd runs a workflow of three activities and a durable
// timer through a real worker, then checks its history, that it replays,
// that verify agrees with the projections, and that a rebuild recreates
// them.
func TestWorkflowEndToEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.worker("w1", registerPipeline)
	ctx := context.Background()
	run, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "order-1"}, Pipeline, "hi")
	if err != nil {
		t.Fatal(err)
	}
	gctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var out string
	if err := run.Get(gctx, &out); err != nil {
		t.Fatal(err)
	}
	if out != "HI!!" {
		t.Fatalf("result %q", out)
	}
	events := h.history(run.GetRunID())
	want := []string{"WorkflowStarted", "WorkflowTaskCompleted", "ActivityScheduled", "ActivityStarted", "ActivityCompleted",
		"WorkflowTaskCompleted", "ActivityScheduled", "ActivityStarted", "ActivityCompleted",
		"WorkflowTaskCompleted", "ActivityScheduled", "ActivityStarted", "ActivityCompleted",
		"WorkflowTaskCompleted", "TimerStarted", "TimerFired", "WorkflowTaskCompleted", "WorkflowCompleted"}
	if got := eventTypes(events); !slices.Equal(got, want) {
		t.Fatalf("history\n got %v\nwant %v", got, want)
	}
	r := workflow.NewReplayer()
	if err := r.RegisterWorkflow(Pipeline); err != nil {
		t.Fatal(err)
	}
	if err := r.ReplayWorkflowHistory(events); err != nil {
		t.Fatal(err)
	}
	d, err := h.client.DescribeWorkflow(ctx, "order-1", "")
	if err != nil || d.Status != "completed" {
		t.Fatalf("describe: %+v, %v", d, err)
	}
	h.verifyOK()
	if _, err := h.client.Engine().RebuildProjections(ctx); err != nil {
		t.Fatal(err)
	}
	h.verifyOK()
}
