package workflowtest_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
	"github.com/chronicle-engine/chronicle/sdk/workflowtest"
)

func Greet(ctx context.Context, name string) (string, error) { return "hello " + name, nil }

func Shout(ctx context.Context, s string) (string, error) { return s + "!", nil }

func Sequence(ctx workflow.Context, name string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var s string
	if err := workflow.ExecuteActivity(ctx, Greet, name).Get(ctx, &s); err != nil {
		return "", err
	}
	if err := workflow.Sleep(ctx, 30*24*time.Hour); err != nil {
		return "", err
	}
	if err := workflow.ExecuteActivity(ctx, Shout, s).Get(ctx, &s); err != nil {
		return "", err
	}
	return s, nil
}

func TestThirtyDaySleepFinishesAtOnce(t *testing.T) {
	t.Parallel()
	env := workflowtest.NewEnvironment(t)
	env.RegisterWorkflow(Sequence)
	env.RegisterActivity(Greet)
	env.RegisterActivity(Shout)
	began := time.Now()
	env.ExecuteWorkflow(Sequence, "ada")
	var out string
	if err := env.WorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	if out != "hello ada!" {
		t.Fatalf("result %q", out)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("took %s of real time", d)
	}
	if got := env.Now().Sub(workflowtest.DefaultStartTime); got < 30*24*time.Hour {
		t.Fatalf("virtual clock moved %s, want 30 days", got)
	}
	want := []string{"WorkflowStarted", "WorkflowTaskCompleted", "ActivityScheduled", "ActivityStarted", "ActivityCompleted",
		"WorkflowTaskCompleted", "TimerStarted", "TimerFired", "WorkflowTaskCompleted", "ActivityScheduled", "ActivityStarted",
		"ActivityCompleted", "WorkflowTaskCompleted", "WorkflowCompleted"}
	if got := env.EventTypes(); !slices.Equal(got, want) {
		t.Fatalf("history\n got %v\nwant %v", got, want)
	}
	if err := workflowtest.ReplayWorkflowHistory(t, Sequence, env.History()); err != nil {
		t.Fatal(err)
	}
}

func TestMockedActivityAndRetries(t *testing.T) {
	t.Parallel()
	env := workflowtest.NewEnvironment(t)
	env.RegisterWorkflow(Sequence)
	calls := 0
	env.OnActivity(Greet, func(ctx context.Context, name string) (string, error) {
		calls++
		if calls < 3 {
			return "", errors.New("flaky")
		}
		return "hi " + name, nil
	})
	env.OnActivity(Shout, func(ctx context.Context, s string) (string, error) { return s + "?", nil })
	env.ExecuteWorkflow(Sequence, "bob")
	var out string
	if err := env.WorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	if out != "hi bob?" || calls != 3 {
		t.Fatalf("result %q after %d calls", out, calls)
	}
}

func Approve(ctx workflow.Context) (string, error) {
	state := "waiting"
	if err := workflow.SetQueryHandler(ctx, "state", func() (string, error) { return state, nil }); err != nil {
		return "", err
	}
	var ok bool
	timedOut := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(workflow.GetSignalChannel(ctx, "approve"), func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &ok) })
	sel.AddFuture(workflow.NewTimer(ctx, 72*time.Hour), func(workflow.Future) { timedOut = true })
	sel.Select(ctx)
	if timedOut {
		state = "expired"
		return state, nil
	}
	if ok {
		state = "approved"
	} else {
		state = "rejected"
	}
	return state, nil
}

func TestSignalBeforeTimeoutAndQuery(t *testing.T) {
	t.Parallel()
	env := workflowtest.NewEnvironment(t)
	env.RegisterWorkflow(Approve)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow("state")
		var s string
		if err != nil || v.Get(&s) != nil || s != "waiting" {
			t.Errorf("query before the signal: %q, %v", s, err)
		}
		env.SignalWorkflow("approve", true)
	}, 48*time.Hour)
	env.ExecuteWorkflow(Approve)
	var out string
	if err := env.WorkflowResult(&out); err != nil || out != "approved" {
		t.Fatalf("result %q, %v", out, err)
	}
	if !slices.Contains(env.EventTypes(), "TimerCanceled") && !slices.Contains(env.EventTypes(), "SignalReceived") {
		t.Fatalf("history %v", env.EventTypes())
	}
}

func TestTimeoutPath(t *testing.T) {
	t.Parallel()
	env := workflowtest.NewEnvironment(t)
	env.RegisterWorkflow(Approve)
	env.ExecuteWorkflow(Approve)
	var out string
	if err := env.WorkflowResult(&out); err != nil || out != "expired" {
		t.Fatalf("result %q, %v", out, err)
	}
}

// Changed code: Refund instead of Shout.
func SequenceChanged(ctx workflow.Context, name string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var s string
	if err := workflow.ExecuteActivity(ctx, Shout, name).Get(ctx, &s); err != nil {
		return "", err
	}
	return s, nil
}

func TestNonDeterminismDetected(t *testing.T) {
	t.Parallel()
	env := workflowtest.NewEnvironment(t)
	env.RegisterWorkflow(Sequence)
	env.RegisterActivity(Greet)
	env.RegisterActivity(Shout)
	env.ExecuteWorkflow(Sequence, "x")
	r := workflow.NewReplayer()
	if err := r.RegisterWorkflowWithOptions(SequenceChanged, workflow.RegisterOptions{Name: "Sequence"}); err != nil {
		t.Fatal(err)
	}
	err := r.ReplayWorkflowHistory(env.History())
	var nde *engine.NonDeterminismError
	if !errors.As(err, &nde) {
		t.Fatalf("err = %v, want non-determinism", err)
	}
	want := "non-deterministic workflow at event 3: history has ActivityScheduled(Greet, id 1), code issued ActivityScheduled(Shout, id 1)"
	if err.Error() != want {
		t.Fatalf("err = %q\nwant %q", err, want)
	}
}

func Fanout(ctx workflow.Context, n int) (int, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	ch := workflow.NewChannel(ctx)
	for i := 0; i < n; i++ {
		workflow.Go(ctx, func(ctx workflow.Context) {
			var s string
			_ = workflow.ExecuteActivity(ctx, Greet, "x").Get(ctx, &s)
			ch.Send(ctx, len(s))
		})
	}
	total := 0
	for i := 0; i < n; i++ {
		var v int
		ch.Receive(ctx, &v)
		total += v
	}
	id := workflow.SideEffect(ctx, func(workflow.Context) any { return 42 })
	var x int
	if err := id.Get(&x); err != nil {
		return 0, err
	}
	return total + x, nil
}

func TestCoroutinesChannelsAndSideEffect(t *testing.T) {
	t.Parallel()
	env := workflowtest.NewEnvironment(t)
	env.RegisterWorkflow(Fanout)
	env.RegisterActivity(Greet)
	env.ExecuteWorkflow(Fanout, 5)
	var out int
	if err := env.WorkflowResult(&out); err != nil || out != 5*7+42 {
		t.Fatalf("result %d, %v", out, err)
	}
	if err := workflowtest.ReplayWorkflowHistory(t, Fanout, env.History()); err != nil {
		t.Fatal(err)
	}
}
