package workflow_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
	"github.com/chronicle-engine/chronicle/sdk/workflowtest"
)

var update = flag.Bool("update", false, "rewrite the golden histories in testdata/")

func Reserve(ctx context.Context, order string) (string, error) { return "reserved " + order, nil }

func Charge(ctx context.Context, order string) (string, error) { return "charged " + order, nil }

// GoldenOrder is the workflow whose recorded histories live in testdata:
// a side effect, an activity, a signal raced against a timer, another
// activity.
func GoldenOrder(ctx workflow.Context, order string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var ref string
	if err := workflow.SideEffect(ctx, func(workflow.Context) any { return "ref-" + order }).Get(&ref); err != nil {
		return "", err
	}
	var reserved, charged string
	if err := workflow.ExecuteActivity(ctx, Reserve, order).Get(ctx, &reserved); err != nil {
		return "", err
	}
	approved := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(workflow.GetSignalChannel(ctx, "approve"), func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &approved) })
	sel.AddFuture(workflow.NewTimer(ctx, 24*time.Hour), func(workflow.Future) {})
	sel.Select(ctx)
	if !approved {
		return ref + ": expired", nil
	}
	if err := workflow.ExecuteActivity(ctx, Charge, order).Get(ctx, &charged); err != nil {
		return "", err
	}
	return ref + ": " + reserved + ", " + charged, nil
}

// Earlier versions of GoldenOrder, whose histories the current code must
// refuse to continue.

func goldenOrderReordered(ctx workflow.Context, order string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	workflow.SideEffect(ctx, func(workflow.Context) any { return "ref-" + order })
	_ = workflow.ExecuteActivity(ctx, Charge, order).Get(ctx, nil)
	_ = workflow.ExecuteActivity(ctx, Reserve, order).Get(ctx, nil)
	return "done", nil
}

func goldenOrderExtraTimer(ctx workflow.Context, order string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	workflow.SideEffect(ctx, func(workflow.Context) any { return "ref-" + order })
	_ = workflow.Sleep(ctx, time.Hour)
	_ = workflow.ExecuteActivity(ctx, Reserve, order).Get(ctx, nil)
	return "done", nil
}

func goldenOrderNoSideEffect(ctx workflow.Context, order string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	_ = workflow.ExecuteActivity(ctx, Reserve, order).Get(ctx, nil)
	return "done", nil
}

func goldenOrderNoCharge(ctx workflow.Context, order string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var ref string
	_ = workflow.SideEffect(ctx, func(workflow.Context) any { return "ref-" + order }).Get(&ref)
	_ = workflow.ExecuteActivity(ctx, Reserve, order).Get(ctx, nil)
	workflow.GetSignalChannel(ctx, "approve").Receive(ctx, nil)
	return ref, nil
}

// goldens lists each history file, the code that recorded it, and what
// replaying it with the current GoldenOrder must give ("" for success).
var goldens = []struct {
	file     string
	recorder any
	signal   bool
	want     string
}{
	{"order_approved.json", GoldenOrder, true, ""},
	{"order_expired.json", GoldenOrder, false, ""},
	{"order_reordered.json", goldenOrderReordered, false,
		"non-deterministic workflow at event 4: history has ActivityScheduled(Charge, id 2), code issued ActivityScheduled(Reserve, id 2)"},
	{"order_extra_timer.json", goldenOrderExtraTimer, false,
		"non-deterministic workflow at event 4: history has TimerStarted(id 2), code issued ActivityScheduled(Reserve, id 2)"},
	{"order_no_side_effect.json", goldenOrderNoSideEffect, false,
		"non-deterministic workflow at event 3: history has ActivityScheduled(Reserve, id 1), code issued MarkerRecorded(SideEffect, id 1)"},
	{"order_no_charge.json", goldenOrderNoCharge, true,
		"non-deterministic workflow at event 8: history has nothing, code issued TimerStarted(id 3)"},
}

// TestGoldenHistories replays the recorded histories in testdata with the
// current code: good ones replay, bad ones fail with the exact message.
// go test ./sdk/workflow -run TestGoldenHistories -update rewrites them.
func TestGoldenHistories(t *testing.T) {
	t.Parallel()
	for _, g := range goldens {
		t.Run(g.file, func(t *testing.T) {
			path := filepath.Join("testdata", g.file)
			if *update {
				env := workflowtest.NewEnvironment(t)
				env.RegisterWorkflowWithOptions(g.recorder, workflow.RegisterOptions{Name: "GoldenOrder"})
				env.RegisterActivity(Reserve)
				env.RegisterActivity(Charge)
				if g.signal {
					env.RegisterDelayedCallback(func() { env.SignalWorkflow("approve", true) }, time.Hour)
				}
				env.ExecuteWorkflow("GoldenOrder", "A-17")
				if !env.IsWorkflowCompleted() {
					t.Fatalf("recorder did not complete: %v", env.WorkflowError())
				}
				b, err := eventlog.MarshalHistory(env.History())
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			history, err := eventlog.UnmarshalHistory(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := eventlog.CheckChain(history); err != nil {
				t.Fatalf("golden history's hash chain: %v", err)
			}
			r := workflow.NewReplayer()
			if err := r.RegisterWorkflow(GoldenOrder); err != nil {
				t.Fatal(err)
			}
			err = r.ReplayWorkflowHistory(history)
			switch {
			case g.want == "" && err != nil:
				t.Fatalf("replay: %v", err)
			case g.want != "" && (err == nil || err.Error() != g.want):
				t.Fatalf("replay: %v\nwant: %s", err, g.want)
			}
		})
	}
}
