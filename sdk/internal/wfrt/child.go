package wfrt

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// ParentClosePolicy says what happens to a running child workflow when its
// parent run ends.
type ParentClosePolicy int

// Parent-close policies, as in Temporal.
const (
	// ParentClosePolicyUnspecified is ParentClosePolicyTerminate.
	ParentClosePolicyUnspecified ParentClosePolicy = iota
	// ParentClosePolicyTerminate terminates the child when the parent ends.
	ParentClosePolicyTerminate
	// ParentClosePolicyRequestCancel asks the child to cancel when the
	// parent ends; the child's code decides how to end.
	ParentClosePolicyRequestCancel
	// ParentClosePolicyAbandon leaves the child running. An abandoned child
	// is not canceled with its parent's context either.
	ParentClosePolicyAbandon
)

func (p ParentClosePolicy) engine() engine.ParentClosePolicy {
	switch p {
	case ParentClosePolicyRequestCancel:
		return engine.ParentCloseRequestCancel
	case ParentClosePolicyAbandon:
		return engine.ParentCloseAbandon
	}
	return engine.ParentCloseTerminate
}

// ChildWorkflowOptions configure the child workflows a context starts.
type ChildWorkflowOptions struct {
	// WorkflowID of the child. Defaults to the parent's run ID, "-child-"
	// and a number, the same in every replay.
	WorkflowID string
	// TaskQueue defaults to the parent's queue.
	TaskQueue string
	// WorkflowExecutionTimeout, when set, bounds each run of the child.
	WorkflowExecutionTimeout time.Duration
	// RetryPolicy, when set, runs the child again (a new run of the same
	// workflow ID, with the same input) when a run fails or times out, per
	// the policy; MaximumAttempts 0 means unlimited. Without one, a child
	// runs once.
	RetryPolicy *RetryPolicy
	// ParentClosePolicy defaults to ParentClosePolicyTerminate.
	ParentClosePolicy ParentClosePolicy
}

type childOptionsKey struct{}

// WithChildOptions returns a context whose child workflows use o.
func WithChildOptions(ctx Context, o ChildWorkflowOptions) Context {
	return WithValue(ctx, childOptionsKey{}, o)
}

// GetChildWorkflowOptions returns the child workflow options of ctx.
func GetChildWorkflowOptions(ctx Context) ChildWorkflowOptions {
	o, _ := ctx.Value(childOptionsKey{}).(ChildWorkflowOptions)
	return o
}

// ChildWorkflowFuture is the result of a child workflow.
type ChildWorkflowFuture interface {
	Future
	// GetChildWorkflowExecution is ready with the child's
	// WorkflowExecution once it started, or an error if it could not.
	GetChildWorkflowExecution() Future
}

type childFuture struct {
	*future
	exec *future
}

func (f *childFuture) GetChildWorkflowExecution() Future { return f.exec }

type childRec struct {
	f          *childFuture
	typ        string
	workflowID string
	runID      string
}

// ChildWorkflowExecutionError is how a child workflow that did not
// complete reaches its parent: Cause is an *ApplicationError (failed),
// *CanceledError, *TerminatedError or *TimeoutError.
type ChildWorkflowExecutionError struct {
	WorkflowID   string
	RunID        string
	WorkflowType string
	Cause        error
}

func (e *ChildWorkflowExecutionError) Error() string {
	return fmt.Sprintf("child workflow %s %q (run %s): %v", e.WorkflowType, e.WorkflowID, e.RunID, e.Cause)
}
func (e *ChildWorkflowExecutionError) Unwrap() error { return e.Cause }

// ErrorType names the error for retry policies: its cause's.
func (e *ChildWorkflowExecutionError) ErrorType() string { return ErrorTypeOf(e.Cause) }

// ExecuteChildWorkflow starts a child workflow, given as its function or
// registered name, with args encoded as JSON, under the context's
// ChildWorkflowOptions. The future is ready with the child's result, or a
// *ChildWorkflowExecutionError. Canceling ctx cancels the child, unless
// its policy is ParentClosePolicyAbandon.
func ExecuteChildWorkflow(ctx Context, wf any, args ...any) ChildWorkflowFuture {
	r := runOf(ctx)
	f := &childFuture{future: newFuture(r), exec: newFuture(r)}
	fail := func(err error) ChildWorkflowFuture {
		f.SetError(err)
		f.exec.SetError(err)
		return f
	}
	name := FunctionName(wf)
	if name == "" {
		return fail(NewApplicationError(fmt.Sprintf("ExecuteChildWorkflow: workflow must be a function or a registered name, got %T", wf), "InvalidArgument", true, nil))
	}
	o := GetChildWorkflowOptions(ctx)
	input, err := EncodeArgs(args)
	if err != nil {
		return fail(NewApplicationError(fmt.Sprintf("ExecuteChildWorkflow %s: %v", name, err), "InvalidArgument", true, err))
	}
	if ctx.Err() != nil {
		return fail(&ChildWorkflowExecutionError{WorkflowID: o.WorkflowID, WorkflowType: name, Cause: &CanceledError{}})
	}
	id := r.newID()
	wid := o.WorkflowID
	if wid == "" {
		wid = fmt.Sprintf("%s-child-%d", r.info.WorkflowExecution.RunID, id)
	}
	rec := &childRec{f: f, typ: name, workflowID: wid}
	r.children[id] = rec
	r.issue(engine.StartChildWorkflow{ChildID: id, WorkflowID: wid, Type: name, Queue: o.TaskQueue, Input: input,
		ExecutionTimeout: o.WorkflowExecutionTimeout, RetryPolicy: o.RetryPolicy, ParentClosePolicy: o.ParentClosePolicy.engine()})
	if o.ParentClosePolicy != ParentClosePolicyAbandon {
		r.unregister[id] = scopeOf(ctx).onCancel(func() {
			if f.ready {
				return
			}
			delete(r.unregister, id)
			delete(r.children, id)
			r.issue(engine.RequestCancelChildWorkflow{ChildID: id})
			err := &ChildWorkflowExecutionError{WorkflowID: wid, RunID: rec.runID, WorkflowType: name, Cause: &CanceledError{}}
			f.SetError(err)
			f.exec.SetError(err)
		})
	}
	return f
}

// deliverPart2 hands a child workflow's event to the code.
func (r *Run) deliverPart2(e eventlog.Event) error {
	var d struct {
		ChildID   int64                 `json:"child_id"`
		RunID     string                `json:"run_id"`
		Result    json.RawMessage       `json:"result"`
		Status    engine.WorkflowStatus `json:"status"`
		Error     string                `json:"error"`
		ErrorType string                `json:"error_type"`
	}
	switch e.Type {
	case engine.EventChildWorkflowStarted, engine.EventChildWorkflowStartFailed, engine.EventChildWorkflowCompleted, engine.EventChildWorkflowFailed:
	default:
		return nil
	}
	if err := e.Decode(&d); err != nil {
		return err
	}
	rec := r.children[d.ChildID]
	if rec == nil {
		return nil // canceled by the code meanwhile
	}
	done := func() {
		delete(r.children, d.ChildID)
		r.forget(d.ChildID)
	}
	switch e.Type {
	case engine.EventChildWorkflowStarted:
		rec.runID = d.RunID
		rec.f.exec.SetValue(WorkflowExecution{ID: rec.workflowID, RunID: d.RunID})
	case engine.EventChildWorkflowStartFailed:
		err := &ChildWorkflowExecutionError{WorkflowID: rec.workflowID, WorkflowType: rec.typ,
			Cause: &ApplicationError{Message: d.Error, Type: "ChildWorkflowExecutionAlreadyStartedError", NonRetryable: true}}
		rec.f.exec.SetError(err)
		rec.f.SetError(err)
		done()
	case engine.EventChildWorkflowCompleted:
		rec.f.SetValue(d.Result)
		done()
	case engine.EventChildWorkflowFailed:
		var cause error
		switch d.Status {
		case engine.StatusWorkflowCanceled:
			cause = &CanceledError{}
		case engine.StatusWorkflowTerminated:
			cause = &TerminatedError{Reason: d.Error}
		case engine.StatusWorkflowTimedOut:
			cause = &TimeoutError{TimeoutType: "execution"}
		default:
			cause = &ApplicationError{Message: d.Error, Type: d.ErrorType}
		}
		rec.f.SetError(&ChildWorkflowExecutionError{WorkflowID: rec.workflowID, RunID: d.RunID, WorkflowType: rec.typ, Cause: cause})
		done()
	}
	return nil
}

// ContinueAsNewError, returned by a workflow function, ends its run and
// starts a fresh one of the same workflow ID with new input and an empty
// history. Make it with NewContinueAsNewError.
type ContinueAsNewError struct {
	WorkflowType string
	Input        json.RawMessage
	TaskQueue    string
}

func (e *ContinueAsNewError) Error() string {
	return "continue as new: " + e.WorkflowType
}

// NewContinueAsNewError returns the error that continues the workflow as
// new: wf (its function or registered name, usually the same workflow)
// with args.
func NewContinueAsNewError(ctx Context, wf any, args ...any) error {
	name := FunctionName(wf)
	if name == "" {
		return NewApplicationError(fmt.Sprintf("NewContinueAsNewError: workflow must be a function or a registered name, got %T", wf), "InvalidArgument", true, nil)
	}
	input, err := EncodeArgs(args)
	if err != nil {
		return NewApplicationError("NewContinueAsNewError "+name+": "+err.Error(), "InvalidArgument", true, err)
	}
	return &ContinueAsNewError{WorkflowType: name, Input: input, TaskQueue: runOf(ctx).info.TaskQueueName}
}

// IsContinueAsNewError reports whether err is a *ContinueAsNewError.
func IsContinueAsNewError(err error) bool {
	var c *ContinueAsNewError
	return errors.As(err, &c)
}

// Version is a workflow code version returned by GetVersion.
type Version int

// DefaultVersion is the version of code that ran before the change was
// made: runs whose history has no marker for the change.
const DefaultVersion Version = -1

// versionMarker is the name of GetVersion's markers.
const versionMarker = "Version"

type versionData struct {
	ChangeID string  `json:"change_id"`
	Version  Version `json:"version"`
}

// VersionError says that a run's recorded version of a change is outside
// what the code supports: a branch was removed while runs still need it.
type VersionError struct {
	ChangeID     string
	Version      Version
	MinSupported Version
	MaxSupported Version
}

func (e *VersionError) Error() string {
	v := fmt.Sprint(int(e.Version))
	if e.Version == DefaultVersion {
		v = "DefaultVersion (-1, the code before the change)"
	}
	return fmt.Sprintf("workflow.GetVersion(%q): this run is at version %s, but the code supports only %d to %d: "+
		"its branch was removed while runs still need it; deploy code whose minSupported is at most %d until those runs have finished",
		e.ChangeID, v, e.MinSupported, e.MaxSupported, e.Version)
}

// ErrorType names the error.
func (e *VersionError) ErrorType() string { return "VersionError" }

// GetVersion returns the version of change changeID this run follows: the
// recorded one when its history has a marker for it, DefaultVersion when
// the run passed this point before the change (its history has no marker
// here), and maxSupported, recorded as a marker, in new code paths. A
// recorded version outside [minSupported, maxSupported] blocks the run
// with a *VersionError.
func GetVersion(ctx Context, changeID string, minSupported, maxSupported Version) Version {
	r := runOf(ctx)
	v, ok := r.versions[changeID]
	if !ok {
		v = r.recordVersion(changeID, maxSupported)
		r.versions[changeID] = v
	}
	if v < minSupported || v > maxSupported {
		r.nde = &VersionError{ChangeID: changeID, Version: v, MinSupported: minSupported, MaxSupported: maxSupported}
		r.sched.stop()
	}
	return v
}

func (r *Run) recordVersion(changeID string, v Version) Version {
	if !r.replaying {
		raw, _ := json.Marshal(versionData{ChangeID: changeID, Version: v})
		r.issue(engine.RecordMarker{Name: versionMarker, Data: raw})
		return v
	}
	if len(r.expected) > 0 && r.expected[0].Type == engine.EventMarkerRecorded {
		var m engine.MarkerRecorded
		var d versionData
		if r.expected[0].Decode(&m) == nil && m.Name == versionMarker && json.Unmarshal(m.Data, &d) == nil && d.ChangeID == changeID {
			r.issue(engine.RecordMarker{Name: versionMarker})
			return d.Version
		}
	}
	return DefaultVersion
}
