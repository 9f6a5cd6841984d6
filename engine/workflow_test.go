package engine

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// wfRecorder records decisions onto a fresh workflow, failing the test on error.
type wfRecorder struct {
	t       *testing.T
	w       Workflow
	history []eventlog.Event
}

func newWorkflow(t *testing.T) *wfRecorder {
	r := &wfRecorder{t: t, w: Workflow{ID: eventlog.NewID(t0)}}
	r.record(t0, Decision{EventWorkflowStarted, WorkflowStarted{WorkflowID: "wf-1", Type: "Order", Queue: "default", Priority: PriorityNormal, Input: json.RawMessage(`[]`)}})
	return r
}

func (r *wfRecorder) record(at time.Time, d ...Decision) {
	r.t.Helper()
	w, events, err := RecordWorkflow(r.w, d, at)
	if err != nil {
		r.t.Fatal(err)
	}
	r.w, r.history = w, append(r.history, events...)
}

func (r *wfRecorder) decide(at time.Time, cmd any) error {
	r.t.Helper()
	d, err := DecideWorkflow(r.w, cmd, Env{Now: at})
	if err != nil {
		return err
	}
	r.record(at, d...)
	return nil
}

func (r *wfRecorder) must(at time.Time, cmd any) {
	r.t.Helper()
	if err := r.decide(at, cmd); err != nil {
		r.t.Fatal(err)
	}
}

func keys(tasks []eventlog.Task) []string {
	out := make([]string, len(tasks))
	for i, t := range tasks {
		out[i] = t.Key
	}
	return out
}

func TestWorkflowTaskLifecycle(t *testing.T) {
	r := newWorkflow(t)
	if !r.w.NeedsTask() || len(r.w.Tasks()) != 1 || r.w.Tasks()[0].Key != TaskKeyWorkflow {
		t.Fatalf("a started workflow needs a workflow task: %v", keys(r.w.Tasks()))
	}
	opts := ActivityOptions{StartToCloseTimeout: time.Minute}
	r.must(t0, CompleteWorkflowTask{Attempt: 1, WorkerID: "w", SeenSeq: 1, StartedAt: t0, Commands: []WorkflowCommand{
		ScheduleActivity{ActivityID: 1, ActivityType: "Charge", Options: opts},
		StartTimer{TimerID: 2, Duration: time.Hour},
	}})
	if r.w.NeedsTask() {
		t.Fatal("no input since the task: no workflow task is due")
	}
	if got := keys(r.w.Tasks()); len(got) != 2 || got[0] != "activity:3" || got[1] != "timer:4" {
		t.Fatalf("tasks %v", got)
	}
	if r.w.Timers[4].FireAt != t0.Add(time.Hour) {
		t.Fatalf("timer fires at %s", r.w.Timers[4].FireAt)
	}
	// A stale attempt is fenced off.
	if err := r.decide(t0, CompleteActivity{ScheduledSeq: 3, Attempt: 2}); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("stale attempt: %v", err)
	}
	r.must(t0.Add(time.Second), CompleteActivity{ScheduledSeq: 3, Attempt: 1, WorkerID: "w", StartedAt: t0, Result: json.RawMessage(`"ok"`)})
	if !r.w.NeedsTask() || len(r.w.Activities) != 0 {
		t.Fatal("a completed activity makes a workflow task due")
	}
	// A signal arrives while the next task runs; the task had seen event 7.
	seen := r.w.Seq
	r.must(t0.Add(2*time.Second), SignalWorkflow{Name: "approve", Input: json.RawMessage(`true`)})
	err := r.decide(t0.Add(3*time.Second), CompleteWorkflowTask{Attempt: 2, WorkerID: "w", SeenSeq: seen, Commands: []WorkflowCommand{CompleteWorkflow{}}})
	if !errors.Is(err, ErrUnhandledEvents) {
		t.Fatalf("completing over an unseen signal: %v", err)
	}
	r.must(t0.Add(3*time.Second), CompleteWorkflowTask{Attempt: 2, WorkerID: "w", SeenSeq: seen, Commands: []WorkflowCommand{CancelTimer{TimerID: 2}}})
	if !r.w.NeedsTask() || len(r.w.Timers) != 0 {
		t.Fatalf("the signal after the task's view keeps a task due; the timer is canceled: %+v", r.w)
	}
	r.must(t0.Add(4*time.Second), CompleteWorkflowTask{Attempt: 3, WorkerID: "w", SeenSeq: r.w.Seq, Commands: []WorkflowCommand{CompleteWorkflow{Result: json.RawMessage(`1`)}}})
	if r.w.Status != StatusWorkflowCompleted || r.w.Tasks() != nil || r.w.FinishedAt == nil {
		t.Fatalf("status %s, tasks %v", r.w.Status, r.w.Tasks())
	}
	if err := r.decide(t0, SignalWorkflow{Name: "late"}); !errors.Is(err, ErrWorkflowNotRunning) {
		t.Fatalf("signal to a finished workflow: %v", err)
	}
}

func TestActivityRetryDecisions(t *testing.T) {
	schedule := func(o ActivityOptions) *wfRecorder {
		r := newWorkflow(t)
		r.must(t0, CompleteWorkflowTask{Attempt: 1, SeenSeq: 1, Commands: []WorkflowCommand{ScheduleActivity{ActivityID: 1, ActivityType: "A", Options: o}}})
		return r
	}
	t.Run("default policy retries with backoff", func(t *testing.T) {
		r := schedule(ActivityOptions{StartToCloseTimeout: time.Minute})
		r.must(t0, FailActivity{ScheduledSeq: 3, Attempt: 1, Error: "boom"})
		a := r.w.Activities[3]
		if a == nil || !a.RunAt.Equal(t0.Add(time.Second)) || r.w.NeedsTask() {
			t.Fatalf("after a first failure: %+v", a)
		}
		r.must(t0, FailActivity{ScheduledSeq: 3, Attempt: 2, Error: "boom"})
		if a := r.w.Activities[3]; !a.RunAt.Equal(t0.Add(2 * time.Second)) {
			t.Fatalf("second retry at %s", a.RunAt)
		}
	})
	t.Run("maximum attempts", func(t *testing.T) {
		r := schedule(ActivityOptions{StartToCloseTimeout: time.Minute, RetryPolicy: &RetryPolicy{MaximumAttempts: 1}})
		r.must(t0, FailActivity{ScheduledSeq: 3, Attempt: 1, Error: "boom"})
		if len(r.w.Activities) != 0 || !r.w.NeedsTask() {
			t.Fatal("the last attempt's failure reaches the workflow")
		}
	})
	t.Run("non-retryable type", func(t *testing.T) {
		r := schedule(ActivityOptions{StartToCloseTimeout: time.Minute, RetryPolicy: &RetryPolicy{NonRetryableErrorTypes: []string{"Declined"}}})
		r.must(t0, FailActivity{ScheduledSeq: 3, Attempt: 1, Error: "card declined", ErrorType: "Declined"})
		if len(r.w.Activities) != 0 {
			t.Fatal("a non-retryable error type fails the activity at once")
		}
	})
	t.Run("schedule to close bounds retries", func(t *testing.T) {
		r := schedule(ActivityOptions{ScheduleToCloseTimeout: 1500 * time.Millisecond})
		r.must(t0, FailActivity{ScheduledSeq: 3, Attempt: 1, Error: "boom"})
		r.must(t0.Add(time.Second), FailActivity{ScheduledSeq: 3, Attempt: 2, Error: "boom"})
		if len(r.w.Activities) != 0 {
			t.Fatal("a retry past ScheduleToCloseTimeout is not scheduled")
		}
	})
	t.Run("timeouts are classified", func(t *testing.T) {
		for _, c := range []struct {
			opts    ActivityOptions
			expired time.Time
			want    string
		}{
			{ActivityOptions{StartToCloseTimeout: time.Minute}, t0.Add(time.Minute), TimeoutStartToClose},
			{ActivityOptions{StartToCloseTimeout: time.Minute, HeartbeatTimeout: time.Second}, t0.Add(time.Second), TimeoutHeartbeat},
			{ActivityOptions{ScheduleToCloseTimeout: time.Second}, t0.Add(time.Second), TimeoutScheduleToClose},
		} {
			r := schedule(c.opts)
			d, err := DecideWorkflow(r.w, TimeOutActivity{ScheduledSeq: 3, Attempt: 1, StartedAt: t0, LeaseExpiredAt: c.expired}, Env{Now: c.expired})
			if err != nil {
				t.Fatal(err)
			}
			if got := d[1].Data.(ActivityTimedOut).TimeoutType; got != c.want {
				t.Errorf("%+v: timeout type %s, want %s", c.opts, got, c.want)
			}
		}
	})
}

func TestInvalidCommands(t *testing.T) {
	r := newWorkflow(t)
	err := r.decide(t0, CompleteWorkflowTask{Attempt: 1, SeenSeq: 1, Commands: []WorkflowCommand{CompleteWorkflow{}, StartTimer{TimerID: 1, Duration: time.Second}}})
	if !errors.Is(err, ErrInvalidCommand) {
		t.Fatalf("a command after the end: %v", err)
	}
	err = r.decide(t0, CompleteWorkflowTask{Attempt: 1, SeenSeq: 1, Commands: []WorkflowCommand{ScheduleActivity{ActivityID: 1, ActivityType: "A"}}})
	if !errors.Is(err, ErrInvalidCommand) {
		t.Fatalf("an activity without timeouts: %v", err)
	}
	if err := r.decide(t0, CompleteWorkflowTask{SeenSeq: 5}); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("a task that saw events past the history: %v", err)
	}
}

func TestMatchCommand(t *testing.T) {
	r := newWorkflow(t)
	d, _ := DecideWorkflow(r.w, CompleteWorkflowTask{SeenSeq: 1, Commands: []WorkflowCommand{ScheduleActivity{ActivityID: 1, ActivityType: "Charge", Options: ActivityOptions{StartToCloseTimeout: time.Second}}}}, Env{Now: t0})
	_, events, err := RecordWorkflow(r.w, d, t0)
	if err != nil {
		t.Fatal(err)
	}
	scheduled := events[1]
	if err := MatchCommand(scheduled, ScheduleActivity{ActivityID: 1, ActivityType: "Charge"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cmd  WorkflowCommand
		want string
	}{
		{ScheduleActivity{ActivityID: 1, ActivityType: "Refund"}, "non-deterministic workflow at event 3: history has ActivityScheduled(Charge, id 1), code issued ActivityScheduled(Refund, id 1)"},
		{StartTimer{TimerID: 1}, "non-deterministic workflow at event 3: history has ActivityScheduled(Charge, id 1), code issued TimerStarted(id 1)"},
	} {
		cmd, want := c.cmd, c.want
		err := MatchCommand(scheduled, cmd)
		var nde *NonDeterminismError
		if !errors.As(err, &nde) || !errors.Is(err, ErrNonDeterminism) || err.Error() != want {
			t.Errorf("%v: %v\nwant %s", cmd, err, want)
		}
	}
	if err := MatchCommand(scheduled, nil); err == nil || err.(*NonDeterminismError).Got != Nothing {
		t.Errorf("missing command: %v", err)
	}
}

func TestWorkflowFoldEqualsRecordedState(t *testing.T) {
	r := newWorkflow(t)
	r.must(t0, CompleteWorkflowTask{Attempt: 1, SeenSeq: 1, Commands: []WorkflowCommand{
		ScheduleActivity{ActivityID: 1, ActivityType: "A", Options: ActivityOptions{StartToCloseTimeout: time.Second}},
		RecordMarker{MarkerID: 2, Name: "SideEffect", Data: json.RawMessage(`7`)},
		RequestCancelActivity{ActivityID: 1},
	}})
	// The cancel of an activity that never ran closes it at once.
	if len(r.w.Activities) != 0 {
		t.Fatalf("activities %v", r.w.Activities)
	}
	r.must(t0, SignalWorkflow{Name: "s"})
	r.must(t0, RequestCancelWorkflow{Actor: "ops"})
	r.must(t0, RequestCancelWorkflow{Actor: "ops"}) // a second request adds nothing
	folded, err := FoldWorkflow(r.history)
	if err != nil {
		t.Fatal(err)
	}
	if folded.Seq != r.w.Seq || !folded.CancelRequested || folded.LastInput != r.w.LastInput || len(r.history) != 8 {
		t.Fatalf("fold gives seq %d, recording gave %d (%d events)", folded.Seq, r.w.Seq, len(r.history))
	}
	if err := eventlog.CheckChain(r.history); err != nil {
		t.Fatal(err)
	}
}
