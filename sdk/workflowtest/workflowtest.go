// Package workflowtest runs workflows in-process for unit tests, on a
// virtual clock: a 30-day sleep finishes at once. Activities are the
// registered functions or mocks given with OnActivity. The history it
// records is made by the engine's own deciders, so assertions on it hold
// for production histories too.
//
//	env := workflowtest.NewEnvironment(t)
//	env.RegisterWorkflow(Approval)
//	env.OnActivity(Charge, func(ctx context.Context, o Order) (Receipt, error) { return Receipt{ID: "r1"}, nil })
//	env.RegisterDelayedCallback(func() { env.SignalWorkflow("approve", true) }, 48*time.Hour)
//	env.ExecuteWorkflow(Approval, order)
//	var out string
//	err := env.WorkflowResult(&out)
package workflowtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk/internal/wfrt"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

// DefaultStartTime is where the virtual clock starts.
var DefaultStartTime = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)

// workerID names the test environment in the history.
const workerID = "workflowtest"

type delayed struct {
	at time.Time
	fn func()
}

// Environment runs one workflow at a time on a virtual clock.
type Environment struct {
	t     testing.TB
	reg   *wfrt.Registry
	mocks *wfrt.Registry
	now   time.Time

	w         engine.Workflow
	history   []eventlog.Event
	run       *wfrt.Run
	callbacks []delayed
	taskErr   error
	attempts  int
	calls     map[string]int
	started   bool
}

// NewEnvironment returns an environment whose clock is at
// DefaultStartTime.
func NewEnvironment(t testing.TB) *Environment {
	e := &Environment{t: t, reg: wfrt.NewRegistry(), mocks: wfrt.NewRegistry(), now: DefaultStartTime, calls: map[string]int{}}
	t.Cleanup(func() {
		if e.run != nil {
			e.run.Close()
		}
	})
	return e
}

// RegisterWorkflow registers a workflow function.
func (e *Environment) RegisterWorkflow(fn any) { e.must(e.reg.RegisterWorkflow(fn, "")) }

// RegisterWorkflowWithOptions registers a workflow function under a name.
func (e *Environment) RegisterWorkflowWithOptions(fn any, o workflow.RegisterOptions) {
	e.must(e.reg.RegisterWorkflow(fn, o.Name))
}

// RegisterActivity registers an activity function that runs for real.
func (e *Environment) RegisterActivity(fn any) { e.must(e.reg.RegisterActivity(fn, "")) }

// OnActivity replaces the activity (its function or name) with impl, a
// function of the same shape: the mock.
func (e *Environment) OnActivity(activity any, impl any) {
	e.must(e.mocks.RegisterActivity(impl, wfrt.FunctionName(activity)))
}

// SetStartTime sets the virtual clock before the workflow starts.
func (e *Environment) SetStartTime(t time.Time) { e.now = t.UTC() }

// Now is the virtual clock.
func (e *Environment) Now() time.Time { return e.now }

// RegisterDelayedCallback runs fn when the virtual clock has moved d past
// the start; fn may signal, query or cancel the workflow.
func (e *Environment) RegisterDelayedCallback(fn func(), d time.Duration) {
	e.callbacks = append(e.callbacks, delayed{at: e.now.Add(d), fn: fn})
}

func (e *Environment) must(err error) {
	if err != nil {
		e.t.Helper()
		e.t.Fatal(err)
	}
}

// ExecuteWorkflow runs the workflow until it ends, or until nothing is left
// that could move it on (it waits for a signal no callback sends).
func (e *Environment) ExecuteWorkflow(wf any, args ...any) {
	e.t.Helper()
	name := wfrt.FunctionName(wf)
	input, err := wfrt.EncodeArgs(args)
	e.must(err)
	e.must(e.reg.CheckWorkflowInput(name, input))
	id := eventlog.NewID(e.now)
	e.run = wfrt.NewRun(e.reg, nil)
	e.w, e.history, e.started = engine.Workflow{ID: id}, nil, true
	e.record(engine.Workflow{ID: id}, []engine.Decision{{Type: engine.EventWorkflowStarted, Data: engine.WorkflowStarted{
		WorkflowID: "workflowtest-" + id.String(), Type: name, Queue: "default", Priority: engine.PriorityNormal, Input: input}}})
	e.drive()
}

func (e *Environment) record(w engine.Workflow, d []engine.Decision) {
	w, events, err := engine.RecordWorkflow(w, d, e.now)
	e.must(err)
	e.w, e.history = w, append(e.history, events...)
}

func (e *Environment) apply(cmd any) error {
	d, err := engine.DecideWorkflow(e.w, cmd, engine.Env{Now: e.now})
	if err != nil {
		return err
	}
	e.record(e.w, d)
	return nil
}

// drive moves the workflow on until it ends or is stuck.
func (e *Environment) drive() {
	for !e.w.Status.Final() && e.taskErr == nil {
		if e.w.NeedsTask() {
			e.runTask()
			continue
		}
		if e.runDue() {
			continue
		}
		next, ok := e.nextDue()
		if !ok {
			return // waiting for something no one will send
		}
		e.now = next
	}
}

func (e *Environment) runTask() {
	if err := e.run.Apply(e.history[e.run.LastSeq():]); err != nil {
		e.taskErr = err
		return
	}
	e.attempts++
	cmds, err := e.run.Decide(e.now, e.attempts, workerID)
	if err != nil {
		e.taskErr = err
		return
	}
	if err := e.apply(engine.CompleteWorkflowTask{Attempt: e.attempts, WorkerID: workerID, SeenSeq: e.run.LastSeq(), StartedAt: e.now, Commands: cmds}); err != nil {
		e.taskErr = err
	}
}

// runDue runs one due activity, timer or callback.
func (e *Environment) runDue() bool {
	for seq, t := range e.w.Timers {
		if !t.FireAt.After(e.now) {
			e.must(e.apply(engine.FireTimer{StartedSeq: seq}))
			return true
		}
	}
	for seq, a := range e.w.Activities {
		if !a.RunAt.After(e.now) {
			e.runActivity(seq, a)
			return true
		}
	}
	if e.w.ExecutionTimeout > 0 && !e.w.CreatedAt.Add(e.w.ExecutionTimeout).After(e.now) {
		e.must(e.apply(engine.TimeOutWorkflow{}))
		return true
	}
	for i, c := range e.callbacks {
		if !c.at.After(e.now) {
			e.callbacks = append(e.callbacks[:i], e.callbacks[i+1:]...)
			c.fn()
			return true
		}
	}
	return false
}

func (e *Environment) nextDue() (time.Time, bool) {
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, t := range e.w.Timers {
		consider(t.FireAt)
	}
	for _, a := range e.w.Activities {
		consider(a.RunAt)
	}
	for _, c := range e.callbacks {
		consider(c.at)
	}
	if e.w.ExecutionTimeout > 0 {
		consider(e.w.CreatedAt.Add(e.w.ExecutionTimeout))
	}
	return next, !next.IsZero()
}

func (e *Environment) runActivity(seq int64, a *engine.ActivityState) {
	attempt := a.Attempt + 1
	env := &wfrt.ActivityEnv{Info: wfrt.ActivityInfo{ActivityID: a.ActivityID, ActivityType: a.ActivityType, Attempt: attempt,
		WorkflowID: e.w.WorkflowID, RunID: e.w.ID.String(), WorkflowType: e.w.Type, TaskQueue: a.Queue,
		ScheduledTime: a.ScheduledAt, StartedTime: e.now, HeartbeatTimeout: time.Duration(a.HeartbeatTimeout)},
		Throttle: time.Hour}
	ctx := wfrt.WithActivityEnv(context.Background(), env)
	e.calls[a.ActivityType]++
	reg := e.reg
	if e.mocks.HasActivity(a.ActivityType) {
		reg = e.mocks
	}
	out, err := reg.ExecuteActivity(ctx, a.ActivityType, a.Input)
	if err != nil {
		var app *wfrt.ApplicationError
		nonRetryable := errors.As(err, &app) && app.NonRetryable
		e.must(e.apply(engine.FailActivity{ScheduledSeq: seq, Attempt: attempt, WorkerID: workerID, StartedAt: e.now, Error: err.Error(),
			ErrorType: wfrt.ErrorTypeOf(err), NonRetryable: nonRetryable || errors.Is(err, wfrt.ErrNotRegistered), Details: env.LastDetails()}))
		return
	}
	e.must(e.apply(engine.CompleteActivity{ScheduledSeq: seq, Attempt: attempt, WorkerID: workerID, StartedAt: e.now, Result: out}))
}

// SignalWorkflow sends a signal, as Client.SignalWorkflow does.
func (e *Environment) SignalWorkflow(name string, arg any) {
	raw, err := json.Marshal(arg)
	e.must(err)
	e.must(e.apply(engine.SignalWorkflow{Name: name, Input: raw}))
}

// CancelWorkflow requests cancellation, as Client.CancelWorkflow does.
func (e *Environment) CancelWorkflow() {
	e.must(e.apply(engine.RequestCancelWorkflow{Actor: workerID}))
}

// QueryWorkflow answers a query from the workflow's replayed state.
func (e *Environment) QueryWorkflow(queryType string, args ...any) (workflow.EncodedValue, error) {
	raw, err := wfrt.EncodeArgs(args)
	if err != nil {
		return nil, err
	}
	run := wfrt.NewRun(e.reg, nil)
	defer run.Close()
	if err := run.Apply(e.history); err != nil {
		return nil, err
	}
	out, err := run.Query(queryType, raw)
	if err != nil {
		return nil, err
	}
	return wfrt.NewEncodedValue(out), nil
}

// IsWorkflowCompleted reports whether the run ended (in any way).
func (e *Environment) IsWorkflowCompleted() bool { return e.started && e.w.Status.Final() }

// WorkflowError returns the run's error: a failed workflow task (such as
// non-determinism or a panic), or how the run ended if not successfully.
func (e *Environment) WorkflowError() error {
	if e.taskErr != nil {
		return e.taskErr
	}
	switch e.w.Status {
	case engine.StatusWorkflowFailed:
		var d engine.WorkflowFailed
		_ = e.history[len(e.history)-1].Decode(&d)
		return &wfrt.ApplicationError{Message: d.Error, Type: d.ErrorType}
	case engine.StatusWorkflowCanceled:
		return &wfrt.CanceledError{}
	case engine.StatusWorkflowTimedOut:
		return &wfrt.TimeoutError{TimeoutType: "execution"}
	case engine.StatusWorkflowCompleted:
		return nil
	}
	if !e.started {
		return errors.New("workflowtest: no workflow was executed")
	}
	return fmt.Errorf("workflowtest: the workflow is still %s: it waits for something no callback provides", e.w.Status)
}

// WorkflowResult stores the run's result in valuePtr, or returns
// WorkflowError.
func (e *Environment) WorkflowResult(valuePtr any) error {
	if err := e.WorkflowError(); err != nil {
		return err
	}
	return json.Unmarshal(e.w.Result, valuePtr)
}

// History returns the events recorded so far.
func (e *Environment) History() []eventlog.Event { return e.history }

// EventTypes returns the types of the events recorded so far, in order.
func (e *Environment) EventTypes() []string {
	out := make([]string, len(e.history))
	for i, ev := range e.history {
		out[i] = ev.Type
	}
	return out
}

// ActivityCalls returns how many attempts of an activity (its function or
// name) ran.
func (e *Environment) ActivityCalls(activity any) int { return e.calls[wfrt.FunctionName(activity)] }

// ReplayWorkflowHistory replays history through fn (registered under its
// function name) and fails t when the code departs from it. It returns
// the error for tests that expect one: use it with t of a subtest, or
// check the error with a Replayer directly.
func ReplayWorkflowHistory(t testing.TB, fn any, history []eventlog.Event) error {
	t.Helper()
	r := workflow.NewReplayer()
	if err := r.RegisterWorkflow(fn); err != nil {
		t.Fatal(err)
	}
	err := r.ReplayWorkflowHistory(history)
	if err != nil {
		t.Errorf("replay of %s: %v", wfrt.FunctionName(fn), err)
	}
	return err
}
