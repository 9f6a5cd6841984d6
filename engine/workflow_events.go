package engine

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// Workflow event types. docs/events.md describes each with its fields.
const (
	EventWorkflowStarted         = "WorkflowStarted"
	EventWorkflowTaskCompleted   = "WorkflowTaskCompleted"
	EventActivityScheduled       = "ActivityScheduled"
	EventActivityStarted         = "ActivityStarted"
	EventActivityCompleted       = "ActivityCompleted"
	EventActivityFailed          = "ActivityFailed"
	EventActivityTimedOut        = "ActivityTimedOut"
	EventActivityCancelRequested = "ActivityCancelRequested"
	EventActivityCanceled        = "ActivityCanceled"
	EventTimerStarted            = "TimerStarted"
	EventTimerFired              = "TimerFired"
	EventTimerCanceled           = "TimerCanceled"
	EventSignalReceived          = "SignalReceived"
	EventMarkerRecorded          = "MarkerRecorded"
	EventWorkflowCancelRequested = "WorkflowCancelRequested"
	EventWorkflowCompleted       = "WorkflowCompleted"
	EventWorkflowFailed          = "WorkflowFailed"
	EventWorkflowCanceled        = "WorkflowCanceled"
	EventWorkflowTerminated      = "WorkflowTerminated"
	EventWorkflowTimedOut        = "WorkflowTimedOut"
)

// KindWorkflow and KindJob are the values of an execution's kind.
const (
	KindJob      = "job"
	KindWorkflow = "workflow"
)

// Duration is a time.Duration written in events as a string such as
// "1m30s", so that an operator can read the audit trail.
type Duration time.Duration

// MarshalJSON writes the duration as a string; zero is "0s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads what MarshalJSON writes.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// WorkflowStarted starts a workflow run's history.
type WorkflowStarted struct {
	// WorkflowID is the caller's ID of the workflow; one run at a time may
	// be running under it.
	WorkflowID string   `json:"workflow_id"`
	Type       string   `json:"type"`
	Queue      string   `json:"queue"`
	Priority   Priority `json:"priority"`
	// Input is the JSON array of the workflow function's arguments.
	Input json.RawMessage `json:"input"`
	// ExecutionTimeout, when not zero, ends the run with WorkflowTimedOut
	// if it has not finished that long after it started.
	ExecutionTimeout Duration `json:"execution_timeout,omitempty"`
	// TraceContext and CorrelationID are the starter's, as in JobEnqueued:
	// every workflow task and activity span joins the starter's trace, and
	// every log line about the run carries the correlation ID.
	TraceContext  map[string]string `json:"trace_context,omitempty"`
	CorrelationID string            `json:"correlation_id,omitempty"`
	// Parent is set for a child workflow's runs (see ChildWorkflowInitiated).
	Parent *ParentRef `json:"parent,omitempty"`
	// RetryPolicy and Attempt: a child workflow's retry policy, and which
	// run of it this is (from 1; absent means 1).
	RetryPolicy *RetryPolicy `json:"retry_policy,omitempty"`
	Attempt     int          `json:"attempt,omitempty"`
	// StartDelay holds back the first workflow task (a retry's backoff).
	StartDelay Duration `json:"start_delay,omitempty"`
	// ContinuedFrom is the run that continued as this one, or that this
	// one retries; ResetFrom and ResetToSeq name the run and event a reset
	// copied this run's history from.
	ContinuedFrom *eventlog.ID `json:"continued_from,omitempty"`
	ResetFrom     *eventlog.ID `json:"reset_from,omitempty"`
	ResetToSeq    int64        `json:"reset_to_seq,omitempty"`
}

// WorkflowTaskCompleted records one run of the workflow code: which events
// it had seen and how many commands it issued. The command events follow
// it at once, in the order the code issued them.
type WorkflowTaskCompleted struct {
	// Attempt is the workflow task's fencing token.
	Attempt  int    `json:"attempt"`
	WorkerID string `json:"worker_id"`
	// SeenSeq is the last event the code had seen. Events between it and
	// this one arrived while the code ran; the next workflow task gets them.
	SeenSeq int64 `json:"seen_seq"`
	// StartedAt is the database time the task was claimed: workflow.Now
	// during this task, in the first run and in every replay.
	StartedAt time.Time `json:"started_at"`
	// Commands is how many command events follow.
	Commands int `json:"commands"`
}

// ActivityScheduled records the command to run an activity.
type ActivityScheduled struct {
	ActivityID   int64           `json:"activity_id"`
	ActivityType string          `json:"activity_type"`
	Queue        string          `json:"queue"`
	Input        json.RawMessage `json:"input"`
	// Timeouts and retry policy; see ActivityOptions.
	StartToCloseTimeout    Duration     `json:"start_to_close_timeout,omitempty"`
	ScheduleToCloseTimeout Duration     `json:"schedule_to_close_timeout,omitempty"`
	HeartbeatTimeout       Duration     `json:"heartbeat_timeout,omitempty"`
	RetryPolicy            *RetryPolicy `json:"retry_policy,omitempty"`
}

// ActivityStarted records an attempt of an activity. It is written when the
// attempt ends, in the same transaction as its outcome: while an attempt
// runs, its lease in the tasks table is all there is.
type ActivityStarted struct {
	ActivityID   int64     `json:"activity_id"`
	ScheduledSeq int64     `json:"scheduled_seq"`
	Attempt      int       `json:"attempt"`
	WorkerID     string    `json:"worker_id"`
	StartedAt    time.Time `json:"started_at"`
}

// ActivityCompleted records an activity's result.
type ActivityCompleted struct {
	ActivityID   int64           `json:"activity_id"`
	ScheduledSeq int64           `json:"scheduled_seq"`
	Attempt      int             `json:"attempt"`
	Result       json.RawMessage `json:"result"`
	DurationMS   float64         `json:"duration_ms"`
}

// ActivityFailed records an attempt's error and the retry decision.
type ActivityFailed struct {
	ActivityID   int64  `json:"activity_id"`
	ScheduledSeq int64  `json:"scheduled_seq"`
	Attempt      int    `json:"attempt"`
	Error        string `json:"error"`
	ErrorType    string `json:"error_type,omitempty"`
	NonRetryable bool   `json:"non_retryable,omitempty"`
	// Details are the last heartbeat details of the attempt.
	Details    json.RawMessage `json:"details,omitempty"`
	DurationMS float64         `json:"duration_ms"`
	// RetryAt is when the next attempt is due; nil means the activity
	// failed for good and the workflow sees the error.
	RetryAt *time.Time `json:"retry_at"`
}

// Activity timeout types.
const (
	TimeoutStartToClose    = "start_to_close"
	TimeoutScheduleToClose = "schedule_to_close"
	TimeoutHeartbeat       = "heartbeat"
)

// ActivityTimedOut records that an attempt's lease ran out: the worker
// died, or the activity ran past StartToCloseTimeout or missed its
// HeartbeatTimeout.
type ActivityTimedOut struct {
	ActivityID   int64           `json:"activity_id"`
	ScheduledSeq int64           `json:"scheduled_seq"`
	Attempt      int             `json:"attempt"`
	TimeoutType  string          `json:"timeout_type"`
	Details      json.RawMessage `json:"details,omitempty"`
	RetryAt      *time.Time      `json:"retry_at"`
}

// ActivityCancelRequested records the workflow's command to cancel an
// activity.
type ActivityCancelRequested struct {
	ActivityID   int64 `json:"activity_id"`
	ScheduledSeq int64 `json:"scheduled_seq"`
}

// ActivityCanceled records that an activity will not run again. A running
// attempt loses its lease; the activity sees its context canceled at its
// next heartbeat.
type ActivityCanceled struct {
	ActivityID   int64 `json:"activity_id"`
	ScheduledSeq int64 `json:"scheduled_seq"`
}

// TimerStarted records a durable timer.
type TimerStarted struct {
	TimerID  int64     `json:"timer_id"`
	Duration Duration  `json:"duration"`
	FireAt   time.Time `json:"fire_at"`
}

// TimerFired records that a timer came due.
type TimerFired struct {
	TimerID    int64 `json:"timer_id"`
	StartedSeq int64 `json:"started_seq"`
}

// TimerCanceled records the workflow's command to cancel a timer.
type TimerCanceled struct {
	TimerID    int64 `json:"timer_id"`
	StartedSeq int64 `json:"started_seq"`
}

// SignalReceived records a signal sent to the workflow.
type SignalReceived struct {
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
	// Actor is who sent it, when an operator did (the HTTP API records
	// the authenticated user); empty for signals sent in code.
	Actor string `json:"actor,omitempty"`
}

// MarkerRecorded records a value the workflow code produced once and must
// see again in every replay, such as the result of a side effect.
type MarkerRecorded struct {
	MarkerID int64           `json:"marker_id"`
	Name     string          `json:"name"`
	Data     json.RawMessage `json:"data"`
}

// WorkflowCancelRequested records a request to cancel the workflow: its
// context is canceled and the code decides how to end.
type WorkflowCancelRequested struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
}

// WorkflowCompleted records the workflow function's result. Final.
type WorkflowCompleted struct {
	Result json.RawMessage `json:"result"`
}

// WorkflowFailed records the workflow function's error. Final.
type WorkflowFailed struct {
	Error     string `json:"error"`
	ErrorType string `json:"error_type,omitempty"`
}

// WorkflowCanceled records that the workflow ended after a cancel request.
// Final.
type WorkflowCanceled struct{}

// WorkflowTerminated records that an operator ended the workflow without
// running its code. Final.
type WorkflowTerminated struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
}

// WorkflowTimedOut records that the run exceeded its execution timeout.
// Final.
type WorkflowTimedOut struct {
	ExecutionTimeout Duration `json:"execution_timeout"`
}
