package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk/internal/wfrt"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

// Errors of workflow operations, matched with errors.Is.
var (
	// ErrUnknownWorkflowType: the workflow type is not registered with the
	// client (through a worker of it, or RegisterWorkflow).
	ErrUnknownWorkflowType = errors.New("unknown workflow type")
	// ErrWorkflowExists: a run of the workflow ID is already running.
	ErrWorkflowExists = engine.ErrWorkflowExists
	// ErrWorkflowNotRunning: the run has ended; it takes no more signals,
	// cancellations or terminations.
	ErrWorkflowNotRunning = engine.ErrWorkflowNotRunning
	// ErrNonDeterminism: replayed workflow code departed from its history.
	ErrNonDeterminism = engine.ErrNonDeterminism
)

// WorkflowIDConflictPolicy says what StartWorkflow does when a run of the
// workflow ID is already running.
type WorkflowIDConflictPolicy int

// Workflow ID conflict policies.
const (
	// WorkflowIDConflictPolicyFail returns a *engine.WorkflowExistsError
	// (errors.Is ErrWorkflowExists). The default.
	WorkflowIDConflictPolicyFail WorkflowIDConflictPolicy = iota
	// WorkflowIDConflictPolicyUseExisting returns the running run.
	WorkflowIDConflictPolicyUseExisting
)

// StartWorkflowOptions configure a workflow run.
type StartWorkflowOptions struct {
	// ID is the workflow ID: one run of it runs at a time; a finished
	// one's ID may be reused. Defaults to a fresh ULID.
	ID string
	// TaskQueue is the queue its workflow tasks (and, by default, its
	// activities and timers) go to. Defaults to DefaultQueue.
	TaskQueue string
	// WorkflowExecutionTimeout, when set, ends the run as timed out if it
	// has not finished that long after it started.
	WorkflowExecutionTimeout time.Duration
	// WorkflowIDConflictPolicy defaults to WorkflowIDConflictPolicyFail.
	WorkflowIDConflictPolicy WorkflowIDConflictPolicy
	// Priority of its tasks. Defaults to PriorityNormal.
	Priority Priority
}

// clientWorkflows is the client's registry of workflow types: workers of
// the client add theirs. It checks inputs at start and answers queries.
type clientWorkflows struct {
	once sync.Once
	reg  *wfrt.Registry
}

func (c *Client) workflowRegistry() *wfrt.Registry {
	c.wf.once.Do(func() { c.wf.reg = wfrt.NewRegistry() })
	return c.wf.reg
}

// RegisterWorkflow tells the client about a workflow function that workers
// in other processes run, so that it can start it (checking its input)
// and answer its queries.
func (c *Client) RegisterWorkflow(fn any) error { return c.workflowRegistry().RegisterWorkflow(fn, "") }

// WorkflowRun is a workflow run started or found by the client.
type WorkflowRun interface {
	// GetID is the workflow ID.
	GetID() string
	// GetRunID is the run's execution ID.
	GetRunID() string
	// Get waits for the run to end and stores its result in valuePtr
	// (which may be nil), or returns a *WorkflowExecutionError.
	Get(ctx context.Context, valuePtr any) error
}

// WorkflowExecutionError is how a run that did not complete ends Get: its
// Cause is a *workflow.ApplicationError (failed), *workflow.CanceledError,
// *workflow.TerminatedError or *workflow.TimeoutError.
type WorkflowExecutionError struct {
	WorkflowID string
	RunID      string
	Cause      error
}

func (e *WorkflowExecutionError) Error() string {
	return fmt.Sprintf("workflow %s (run %s): %v", e.WorkflowID, e.RunID, e.Cause)
}
func (e *WorkflowExecutionError) Unwrap() error { return e.Cause }

type workflowRun struct {
	c          *Client
	workflowID string
	runID      eventlog.ID
}

func (r *workflowRun) GetID() string    { return r.workflowID }
func (r *workflowRun) GetRunID() string { return r.runID.String() }

func (r *workflowRun) Get(ctx context.Context, valuePtr any) error {
	wait := 2 * time.Millisecond
	for {
		row, err := r.c.eng.Store().GetExecution(ctx, r.runID)
		if err != nil {
			return err
		}
		if row.FinishedAt != nil && row.Status == string(engine.StatusWorkflowContinuedAsNew) {
			// Follow the chain to the run it continued as.
			next, err := r.c.eng.Store().LatestRun(ctx, r.workflowID)
			if err != nil {
				return err
			}
			if next.ID != r.runID {
				r.runID = next.ID
				continue
			}
		} else if row.FinishedAt != nil {
			return r.c.outcome(ctx, row, valuePtr)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(wait*3/2, 250*time.Millisecond)
	}
}

// outcome reads how a finished run ended.
func (c *Client) outcome(ctx context.Context, row eventlog.Execution, valuePtr any) error {
	events, err := c.eng.Store().HistoryAfter(ctx, row.ID, row.LastSeq-1)
	if err != nil {
		return err
	}
	if len(events) == 0 {
		return fmt.Errorf("workflow run %s: the history is empty", row.ID)
	}
	last := events[len(events)-1]
	var cause error
	switch last.Type {
	case engine.EventWorkflowCompleted:
		var d engine.WorkflowCompleted
		if err := last.Decode(&d); err != nil {
			return err
		}
		if valuePtr == nil {
			return nil
		}
		return json.Unmarshal(d.Result, valuePtr)
	case engine.EventWorkflowFailed:
		var d engine.WorkflowFailed
		if err := last.Decode(&d); err != nil {
			return err
		}
		cause = wfrt.NewApplicationError(d.Error, d.ErrorType, false, nil)
	case engine.EventWorkflowCanceled:
		cause = &wfrt.CanceledError{}
	case engine.EventWorkflowTerminated:
		var d engine.WorkflowTerminated
		_ = last.Decode(&d)
		cause = &wfrt.TerminatedError{Reason: d.Reason}
	case engine.EventWorkflowTimedOut:
		cause = &wfrt.TimeoutError{TimeoutType: "execution"}
	case engine.EventWorkflowHistoryLimitExceeded:
		var d engine.WorkflowHistoryLimitExceeded
		_ = last.Decode(&d)
		cause = wfrt.NewApplicationError(d.Error, HistorySizeLimitExceeded, true, nil)
	default:
		return fmt.Errorf("workflow run %s ended with event %s", row.ID, last.Type)
	}
	return &WorkflowExecutionError{WorkflowID: row.IdempotencyKey, RunID: row.ID.String(), Cause: cause}
}

// StartWorkflow starts a run of a workflow, given as its function or
// registered name, with args encoded as JSON. The type must be registered
// with this client (by a worker of it, or RegisterWorkflow) unless
// Config.AllowUnregisteredTypes is set; args are checked against its
// parameters. Temporal's name for it, ExecuteWorkflow, does the same.
func (c *Client) StartWorkflow(ctx context.Context, o StartWorkflowOptions, wf any, args ...any) (WorkflowRun, error) {
	return c.startWorkflow(ctx, o, nil, wf, args)
}

// ExecuteWorkflow is StartWorkflow under Temporal's name.
func (c *Client) ExecuteWorkflow(ctx context.Context, o StartWorkflowOptions, wf any, args ...any) (WorkflowRun, error) {
	return c.startWorkflow(ctx, o, nil, wf, args)
}

// SignalWithStartWorkflow signals the running run of workflowID, or starts
// one with the signal already in its history.
func (c *Client) SignalWithStartWorkflow(ctx context.Context, workflowID, signalName string, signalArg any, o StartWorkflowOptions, wf any, args ...any) (WorkflowRun, error) {
	raw, err := json.Marshal(signalArg)
	if err != nil {
		return nil, &engine.InputError{Field: "signal argument", Reason: "cannot be encoded as JSON: " + err.Error()}
	}
	o.ID = workflowID
	return c.startWorkflow(ctx, o, &engine.SignalWorkflow{Name: signalName, Input: raw}, wf, args)
}

func (c *Client) startWorkflow(ctx context.Context, o StartWorkflowOptions, signal *engine.SignalWorkflow, wf any, args []any) (WorkflowRun, error) {
	name := wfrt.FunctionName(wf)
	if name == "" {
		return nil, &engine.InputError{Field: "workflow", Reason: fmt.Sprintf("want a workflow function or its registered name, got %T", wf)}
	}
	reg := c.workflowRegistry()
	if !reg.HasWorkflow(name) && !c.cfg.AllowUnregisteredTypes {
		return nil, fmt.Errorf("%w %q: register it on a worker of this client (Worker.RegisterWorkflow) or with Client.RegisterWorkflow", ErrUnknownWorkflowType, name)
	}
	input, err := wfrt.EncodeArgs(args)
	if err != nil {
		return nil, &engine.InputError{Field: "workflow input", Reason: err.Error()}
	}
	if len(input) > c.cfg.MaxPayloadBytes {
		return nil, &engine.InputError{Field: "workflow input", Reason: fmt.Sprintf("is %d bytes, over the %d-byte limit (Config.MaxPayloadBytes)", len(input), c.cfg.MaxPayloadBytes)}
	}
	if err := reg.CheckWorkflowInput(name, input); err != nil {
		return nil, &engine.InputError{Field: "workflow input", Reason: err.Error()}
	}
	if o.ID == "" {
		o.ID = eventlog.NewID(time.Now()).String()
	}
	if o.TaskQueue == "" {
		o.TaskQueue = DefaultQueue
	}
	if o.Priority != "" && !o.Priority.Valid() {
		return nil, &engine.InputError{Field: "priority", Reason: fmt.Sprintf("%q is not one of high, normal, low", o.Priority)}
	}
	res, err := c.eng.StartWorkflow(ctx, engine.StartWorkflowParams{WorkflowID: o.ID, Type: name, Queue: o.TaskQueue, Priority: o.Priority,
		Input: input, ExecutionTimeout: o.WorkflowExecutionTimeout, UseExisting: o.WorkflowIDConflictPolicy == WorkflowIDConflictPolicyUseExisting, Signal: signal})
	if err != nil {
		return nil, err
	}
	return &workflowRun{c: c, workflowID: o.ID, runID: res.RunID}, nil
}

// resolveRun finds a run: runID when given (it must belong to workflowID
// when that is given too), else the latest run of workflowID.
func (c *Client) resolveRun(ctx context.Context, workflowID, runID string) (eventlog.Execution, error) {
	if runID == "" {
		if workflowID == "" {
			return eventlog.Execution{}, &engine.InputError{Field: "workflow ID", Reason: "give a workflow ID or a run ID"}
		}
		return c.eng.Store().LatestRun(ctx, workflowID)
	}
	id, err := eventlog.ParseID(runID)
	if err != nil {
		return eventlog.Execution{}, &engine.InputError{Field: "run ID", Reason: err.Error()}
	}
	row, err := c.eng.Store().GetExecution(ctx, id)
	if err != nil {
		return row, fmt.Errorf("workflow run %s: %w", runID, err)
	}
	if row.Kind != engine.KindWorkflow {
		return row, fmt.Errorf("execution %s is a job: %w", runID, engine.ErrNotWorkflow)
	}
	if workflowID != "" && row.IdempotencyKey != workflowID {
		return row, fmt.Errorf("run %s belongs to workflow %q, not %q: %w", runID, row.IdempotencyKey, workflowID, ErrNotFound)
	}
	return row, nil
}

// GetWorkflow returns a handle on a run: runID, or the latest run of
// workflowID when runID is empty.
func (c *Client) GetWorkflow(ctx context.Context, workflowID, runID string) (WorkflowRun, error) {
	row, err := c.resolveRun(ctx, workflowID, runID)
	if err != nil {
		return nil, err
	}
	return &workflowRun{c: c, workflowID: row.IdempotencyKey, runID: row.ID}, nil
}

// SignalWorkflow sends a signal to a running run (the latest run of
// workflowID when runID is empty). It is recorded in the history once, in
// one transaction; a run that has ended refuses it with
// ErrWorkflowNotRunning.
func (c *Client) SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error {
	raw, err := json.Marshal(arg)
	if err != nil {
		return &engine.InputError{Field: "signal argument", Reason: "cannot be encoded as JSON: " + err.Error()}
	}
	row, err := c.resolveRun(ctx, workflowID, runID)
	if err != nil {
		return err
	}
	_, err = c.eng.UpdateWorkflow(ctx, row.ID, engine.SignalWorkflow{Name: signalName, Input: raw})
	return err
}

// CancelWorkflow asks a run to cancel: its context is canceled, which
// cancels its activities and timers, and its code decides how to end.
func (c *Client) CancelWorkflow(ctx context.Context, workflowID, runID string) error {
	row, err := c.resolveRun(ctx, workflowID, runID)
	if err != nil {
		return err
	}
	_, err = c.eng.UpdateWorkflow(ctx, row.ID, engine.RequestCancelWorkflow{Actor: "client"})
	return err
}

// TerminateWorkflow ends a run at once, without running its code: its
// activities lose their leases and its timers are dropped.
func (c *Client) TerminateWorkflow(ctx context.Context, workflowID, runID, reason string) error {
	row, err := c.resolveRun(ctx, workflowID, runID)
	if err != nil {
		return err
	}
	_, err = c.eng.UpdateWorkflow(ctx, row.ID, engine.TerminateWorkflow{Actor: "client", Reason: reason})
	return err
}

// QueryWorkflow answers a query by replaying the run's history through its
// code (which must be registered with this client) and calling the
// handler the code set with workflow.SetQueryHandler.
func (c *Client) QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (workflow.EncodedValue, error) {
	row, err := c.resolveRun(ctx, workflowID, runID)
	if err != nil {
		return nil, err
	}
	raw, err := wfrt.EncodeArgs(args)
	if err != nil {
		return nil, &engine.InputError{Field: "query arguments", Reason: err.Error()}
	}
	if !c.workflowRegistry().HasWorkflow(row.Type) {
		return nil, fmt.Errorf("query %s of workflow %s: %w %q: queries replay the history with the workflow code, so register it with this client", queryType, row.IdempotencyKey, ErrUnknownWorkflowType, row.Type)
	}
	history, err := c.eng.Store().History(ctx, row.ID)
	if err != nil {
		return nil, err
	}
	run := wfrt.NewRun(c.workflowRegistry(), nil)
	defer run.Close()
	if err := run.Apply(history); err != nil {
		return nil, fmt.Errorf("query %s of workflow %s: replay: %w", queryType, row.IdempotencyKey, err)
	}
	out, err := run.Query(queryType, raw)
	if err != nil {
		return nil, err
	}
	return wfrt.NewEncodedValue(out), nil
}

// WorkflowDescription is a run's current state.
type WorkflowDescription struct {
	WorkflowID string
	RunID      string
	Type       string
	TaskQueue  string
	// Status is running, blocked (its last workflow task failed: see
	// LastError), completed, failed, canceled, terminated or timed_out.
	Status          engine.WorkflowStatus
	LastError       string
	CancelRequested bool
	// PendingActivities and PendingTimers count what the run waits on.
	PendingActivities int
	PendingTimers     int
	Events            int64
	StartedAt         time.Time
	FinishedAt        *time.Time
}

// DescribeWorkflow returns a run's current state, from its history and
// its projection row.
func (c *Client) DescribeWorkflow(ctx context.Context, workflowID, runID string) (WorkflowDescription, error) {
	row, err := c.resolveRun(ctx, workflowID, runID)
	if err != nil {
		return WorkflowDescription{}, err
	}
	w, row, err := c.eng.GetWorkflow(ctx, row.ID)
	if err != nil {
		return WorkflowDescription{}, err
	}
	return WorkflowDescription{WorkflowID: w.WorkflowID, RunID: w.ID.String(), Type: w.Type, TaskQueue: w.Queue,
		Status: engine.WorkflowStatus(row.Status), LastError: row.LastError, CancelRequested: w.CancelRequested,
		PendingActivities: len(w.Activities), PendingTimers: len(w.Timers), Events: w.Seq, StartedAt: w.CreatedAt, FinishedAt: w.FinishedAt}, nil
}
