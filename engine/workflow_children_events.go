package engine

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// Workflow event types of part 2: child workflows, continue-as-new, the
// history size limit and reset. docs/events.md describes each.
const (
	EventChildWorkflowInitiated       = "ChildWorkflowInitiated"
	EventChildWorkflowStarted         = "ChildWorkflowStarted"
	EventChildWorkflowStartFailed     = "ChildWorkflowStartFailed"
	EventChildWorkflowCompleted       = "ChildWorkflowCompleted"
	EventChildWorkflowFailed          = "ChildWorkflowFailed"
	EventChildWorkflowCancelRequested = "ChildWorkflowCancelRequested"
	EventWorkflowContinuedAsNew       = "WorkflowContinuedAsNew"
	EventWorkflowHistoryLimitExceeded = "WorkflowHistoryLimitExceeded"
)

// StatusWorkflowContinuedAsNew is the status of a run that ended by
// starting a fresh run of the same workflow ID.
const StatusWorkflowContinuedAsNew WorkflowStatus = "continued_as_new"

// ParentClosePolicy says what happens to a running child workflow when its
// parent run ends, as in Temporal.
type ParentClosePolicy string

// Parent-close policies.
const (
	// ParentCloseTerminate terminates the child. The default.
	ParentCloseTerminate ParentClosePolicy = "terminate"
	// ParentCloseRequestCancel asks the child to cancel; its code decides.
	ParentCloseRequestCancel ParentClosePolicy = "request_cancel"
	// ParentCloseAbandon leaves the child running, and it is not canceled
	// with its parent's context either.
	ParentCloseAbandon ParentClosePolicy = "abandon"
)

// Valid reports whether p is a known policy (empty means terminate).
func (p ParentClosePolicy) Valid() bool {
	switch p {
	case "", ParentCloseTerminate, ParentCloseRequestCancel, ParentCloseAbandon:
		return true
	}
	return false
}

// ParentRef names the parent of a child workflow run: recorded in the
// child's WorkflowStarted and carried to its retries and continuations.
type ParentRef struct {
	WorkflowID string      `json:"workflow_id"`
	RunID      eventlog.ID `json:"run_id"`
	// ChildID is the ID the parent's code gave the child; InitiatedSeq the
	// seq of the parent's ChildWorkflowInitiated.
	ChildID      int64             `json:"child_id"`
	InitiatedSeq int64             `json:"initiated_seq"`
	ClosePolicy  ParentClosePolicy `json:"close_policy"`
}

// ChildWorkflowInitiated records the parent code's command to start a
// child workflow. The engine starts it in the same transaction and records
// ChildWorkflowStarted or ChildWorkflowStartFailed.
type ChildWorkflowInitiated struct {
	ChildID           int64             `json:"child_id"`
	WorkflowID        string            `json:"workflow_id"`
	Type              string            `json:"type"`
	Queue             string            `json:"queue"`
	Input             json.RawMessage   `json:"input"`
	ExecutionTimeout  Duration          `json:"execution_timeout,omitempty"`
	RetryPolicy       *RetryPolicy      `json:"retry_policy,omitempty"`
	ParentClosePolicy ParentClosePolicy `json:"parent_close_policy"`
}

// ChildWorkflowStarted records the child's first run.
type ChildWorkflowStarted struct {
	ChildID      int64       `json:"child_id"`
	InitiatedSeq int64       `json:"initiated_seq"`
	WorkflowID   string      `json:"workflow_id"`
	RunID        eventlog.ID `json:"run_id"`
}

// ChildWorkflowStartFailed records that the child could not start: a run
// of its workflow ID is already running.
type ChildWorkflowStartFailed struct {
	ChildID      int64  `json:"child_id"`
	InitiatedSeq int64  `json:"initiated_seq"`
	WorkflowID   string `json:"workflow_id"`
	Error        string `json:"error"`
}

// ChildWorkflowCompleted records a child's result (of its last run, when
// it continued as new or was retried).
type ChildWorkflowCompleted struct {
	ChildID      int64           `json:"child_id"`
	InitiatedSeq int64           `json:"initiated_seq"`
	RunID        eventlog.ID     `json:"run_id"`
	Result       json.RawMessage `json:"result"`
}

// ChildWorkflowFailed records that a child ended without a result: Status
// is failed, canceled, terminated or timed_out, with its error.
type ChildWorkflowFailed struct {
	ChildID      int64          `json:"child_id"`
	InitiatedSeq int64          `json:"initiated_seq"`
	RunID        eventlog.ID    `json:"run_id"`
	Status       WorkflowStatus `json:"status"`
	Error        string         `json:"error,omitempty"`
	ErrorType    string         `json:"error_type,omitempty"`
}

// ChildWorkflowCancelRequested records the parent code's command to cancel
// a child; the engine records WorkflowCancelRequested in the child in the
// same transaction.
type ChildWorkflowCancelRequested struct {
	ChildID      int64 `json:"child_id"`
	InitiatedSeq int64 `json:"initiated_seq"`
}

// WorkflowContinuedAsNew ends the run and starts a fresh one of the same
// workflow ID with new input and an empty history, in the same
// transaction. Final.
type WorkflowContinuedAsNew struct {
	Type  string          `json:"type"`
	Queue string          `json:"queue"`
	Input json.RawMessage `json:"input"`
}

// WorkflowHistoryLimitExceeded fails a run whose history outgrew the
// engine's limit. Final.
type WorkflowHistoryLimitExceeded struct {
	Events      int64  `json:"events"`
	Bytes       int64  `json:"bytes"`
	LimitEvents int64  `json:"limit_events"`
	LimitBytes  int64  `json:"limit_bytes"`
	Error       string `json:"error"`
}

// ChildState is a child workflow a run has initiated and that has not yet
// ended.
type ChildState struct {
	ChildWorkflowInitiated
	InitiatedSeq int64
	// RunID is set once the child started.
	RunID eventlog.ID
}

// Commands of workflow code (part 2).

// StartChildWorkflow starts a child workflow.
type StartChildWorkflow struct {
	ChildID           int64
	WorkflowID        string
	Type              string
	Queue             string
	Input             json.RawMessage
	ExecutionTimeout  time.Duration
	RetryPolicy       *RetryPolicy
	ParentClosePolicy ParentClosePolicy
}

// RequestCancelChildWorkflow cancels a running child workflow.
type RequestCancelChildWorkflow struct{ ChildID int64 }

// ContinueAsNew ends the run and starts a fresh one of the same workflow ID.
type ContinueAsNew struct {
	Type  string
	Queue string
	Input json.RawMessage
}

func (StartChildWorkflow) EventType() string         { return EventChildWorkflowInitiated }
func (RequestCancelChildWorkflow) EventType() string { return EventChildWorkflowCancelRequested }
func (ContinueAsNew) EventType() string              { return EventWorkflowContinuedAsNew }

func (c StartChildWorkflow) Describe() string {
	return fmt.Sprintf("%s(%s, id %d)", EventChildWorkflowInitiated, c.Type, c.ChildID)
}
func (c RequestCancelChildWorkflow) Describe() string {
	return fmt.Sprintf("%s(id %d)", EventChildWorkflowCancelRequested, c.ChildID)
}
func (ContinueAsNew) Describe() string { return EventWorkflowContinuedAsNew }

// Commands from outside the workflow code (part 2), applied by the engine.

// RecordChildStarted records that a child's first run started.
type RecordChildStarted struct {
	InitiatedSeq int64
	RunID        eventlog.ID
}

// RecordChildStartFailed records that a child could not start.
type RecordChildStartFailed struct {
	InitiatedSeq int64
	Error        string
}

// RecordChildClosed records how a child's last run ended.
type RecordChildClosed struct {
	InitiatedSeq int64
	RunID        eventlog.ID
	Status       WorkflowStatus
	Result       json.RawMessage
	Error        string
	ErrorType    string
}

// ExceedHistoryLimit fails a run whose history is over the limit.
type ExceedHistoryLimit struct {
	Limits HistoryLimits
}
