package workflow_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

var (
	resetMu    sync.Mutex
	resetCalls = map[int]int{}
)

// Tally counts its calls per step.
func Tally(ctx context.Context, n int) (int, error) {
	resetMu.Lock()
	defer resetMu.Unlock()
	resetCalls[n]++
	return n, nil
}

// ThreeSteps runs Tally 1, 2 and 3 one after the other.
func ThreeSteps(ctx workflow.Context) (int, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	sum := 0
	for n := 1; n <= 3; n++ {
		var v int
		if err := workflow.ExecuteActivity(ctx, Tally, n).Get(ctx, &v); err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

func TestResetWorkflow(t *testing.T) {
	t.Parallel()
	resetMu.Lock()
	resetCalls = map[int]int{} // for -count: only this test calls Tally
	resetMu.Unlock()
	h := newHarness(t)
	h.worker("w1", func(w *sdk.Worker) error {
		if err := w.RegisterWorkflow(ThreeSteps); err != nil {
			return err
		}
		return w.RegisterActivity(Tally)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	run, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "reset-me"}, ThreeSteps)
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	events := h.history(run.GetRunID())
	points := engine.ResetPoints(events)
	if len(points) != 4 {
		t.Fatalf("reset points %v, want 4 workflow tasks", points)
	}
	if _, err := h.client.ResetWorkflow(ctx, "reset-me", "", 3, "ops@example.com", "bad"); !errors.Is(err, sdk.ErrInvalidResetPoint) {
		t.Fatalf("reset to a non-task event: %v", err)
	}
	// The second workflow task scheduled Tally(2): reset to it.
	newRun, err := h.client.ResetWorkflow(ctx, "reset-me", "", points[1], "ops@example.com", "Tally 2 had a bug")
	if err != nil {
		t.Fatal(err)
	}
	var sum int
	if err := newRun.Get(ctx, &sum); err != nil || sum != 6 {
		t.Fatalf("new run: %d, %v", sum, err)
	}
	resetMu.Lock()
	got := map[int]int{1: resetCalls[1], 2: resetCalls[2], 3: resetCalls[3]}
	resetMu.Unlock()
	if got[1] != 1 || got[2] != 2 || got[3] != 2 {
		t.Fatalf("calls per step %v, want step 1 once and steps 2 and 3 twice", got)
	}
	d, err := h.client.DescribeWorkflow(ctx, "reset-me", "")
	if err != nil || d.RunID != newRun.GetRunID() || d.Status != engine.StatusWorkflowCompleted {
		t.Fatalf("latest run %+v %v", d, err)
	}
	copied := h.history(newRun.GetRunID())
	var started engine.WorkflowStarted
	if err := copied[0].Decode(&started); err != nil || started.ResetFrom == nil || started.ResetFrom.String() != run.GetRunID() || started.ResetToSeq != points[1] {
		t.Fatalf("new run's WorkflowStarted %+v %v", started, err)
	}
	for i := int64(0); i < points[1]-1; i++ {
		if copied[i].Type != events[i].Type || string(copied[i].Data) != string(events[i].Data) && i > 0 {
			t.Fatalf("event %d not copied: %s vs %s", i+1, copied[i].Type, events[i].Type)
		}
	}
	h.verifyOK()
}
