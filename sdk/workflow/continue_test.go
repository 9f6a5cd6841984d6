package workflow_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/internal/testdb"
	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

// Looper takes one "tick" signal per run and continues as new with the
// count until it reaches max.
func Looper(ctx workflow.Context, count, max int) (int, error) {
	workflow.GetSignalChannel(ctx, "tick").Receive(ctx, nil)
	count++
	if count < max {
		return 0, workflow.NewContinueAsNewError(ctx, Looper, count, max)
	}
	return count, nil
}

func TestContinueAsNew(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.worker("w1", func(w *sdk.Worker) error { return w.RegisterWorkflow(Looper) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "looper"}, Looper, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	runs := []string{first.GetRunID()}
	for i := 0; i < 3; i++ {
		if err := h.client.SignalWorkflow(ctx, "looper", "", "tick", nil); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			waitFor(t, "the next run", 10*time.Second, func() bool {
				d, err := h.client.DescribeWorkflow(ctx, "looper", "")
				if err == nil && d.RunID != runs[len(runs)-1] {
					runs = append(runs, d.RunID)
					return true
				}
				return false
			})
		}
	}
	// Get on the first run follows the chain to the last one's result.
	var n int
	if err := first.Get(ctx, &n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("result %d, want 3", n)
	}
	if len(runs) != 3 {
		t.Fatalf("runs %v, want 3", runs)
	}
	for i, id := range runs {
		d, err := h.client.DescribeWorkflow(ctx, "looper", id)
		if err != nil || d.WorkflowID != "looper" {
			t.Fatalf("run %d: %+v %v", i, d, err)
		}
		events := h.history(id)
		if events[0].Type != engine.EventWorkflowStarted {
			t.Fatalf("run %d starts with %s", i, events[0].Type)
		}
		var started engine.WorkflowStarted
		if err := events[0].Decode(&started); err != nil {
			t.Fatal(err)
		}
		if want := []int{0, 1, 2}[i]; !strings.HasPrefix(string(started.Input), "["+string(rune('0'+want))+",") {
			t.Errorf("run %d input %s, want count %d handed over", i, started.Input, want)
		}
		last := events[len(events)-1].Type
		if i < 2 && (d.Status != engine.StatusWorkflowContinuedAsNew || last != engine.EventWorkflowContinuedAsNew) {
			t.Errorf("run %d is %s ending with %s", i, d.Status, last)
		}
		if i > 0 && (started.ContinuedFrom == nil || started.ContinuedFrom.String() != runs[i-1]) {
			t.Errorf("run %d continued from %v, want %s", i, started.ContinuedFrom, runs[i-1])
		}
	}
	h.verifyOK()
}

// Chatty runs an activity n times and never continues as new.
func Chatty(ctx workflow.Context, n int) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	for i := 0; i < n; i++ {
		if err := workflow.ExecuteActivity(ctx, Noop).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// Noop does nothing.
func Noop(ctx context.Context) error { return nil }

func TestHistorySizeLimit(t *testing.T) {
	t.Parallel()
	pool, schema := testdb.Schema(t)
	c, err := sdk.NewClient(context.Background(), sdk.Config{Pool: pool, WakeSubjectPrefix: "test." + schema, Logger: quietLogger(),
		WorkflowHistoryLimits: sdk.WorkflowHistoryLimits{WarnEvents: 10, MaxEvents: 30}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	h := &harness{t: t, client: c, schema: schema}
	h.worker("w1", func(w *sdk.Worker) error {
		if err := w.RegisterWorkflow(Chatty); err != nil {
			return err
		}
		return w.RegisterActivity(Noop)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	run, err := c.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "chatty"}, Chatty, 100)
	if err != nil {
		t.Fatal(err)
	}
	err = run.Get(ctx, nil)
	var app *workflow.ApplicationError
	if !errors.As(err, &app) || app.Type != sdk.HistorySizeLimitExceeded || !strings.Contains(err.Error(), "continue as new") {
		t.Fatalf("run ended with %v, want a %s error suggesting continue-as-new", err, sdk.HistorySizeLimitExceeded)
	}
	events := h.history(run.GetRunID())
	if last := events[len(events)-1].Type; last != engine.EventWorkflowHistoryLimitExceeded {
		t.Fatalf("last event %s", last)
	}
	if n := len(events); n < 31 || n > 36 {
		t.Errorf("history has %d events; the limit is 30", n)
	}
	d, _ := c.DescribeWorkflow(ctx, "chatty", "")
	if d.Status != engine.StatusWorkflowFailed {
		t.Errorf("status %s, want failed", d.Status)
	}
	h.verifyOK()
}
