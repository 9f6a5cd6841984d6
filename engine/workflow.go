package engine

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// WorkflowStatus is where a workflow run stands, derived from its history.
type WorkflowStatus string

// Workflow statuses.
const (
	StatusWorkflowRunning    WorkflowStatus = "running"
	StatusWorkflowCompleted  WorkflowStatus = "completed"
	StatusWorkflowFailed     WorkflowStatus = "failed"
	StatusWorkflowCanceled   WorkflowStatus = "canceled"
	StatusWorkflowTerminated WorkflowStatus = "terminated"
	StatusWorkflowTimedOut   WorkflowStatus = "timed_out"
	// StatusWorkflowBlocked is not derived from the history: the projection shows
	// it while the workflow's last task failed (non-determinism, a panic, an
	// unregistered type). The history is untouched; the task is retried
	// with backoff until code that can run it is deployed.
	StatusWorkflowBlocked WorkflowStatus = "blocked"
)

// Final reports whether the run has ended.
func (s WorkflowStatus) Final() bool {
	return s != StatusWorkflowRunning && s != StatusWorkflowBlocked && s != ""
}

// Task keys of a workflow's rows in the ready queue. Jobs use the empty key.
const (
	// TaskKeyWorkflow is the workflow task: run the code on new events.
	TaskKeyWorkflow = "workflow"
	// TaskKeyTimeout fires the execution timeout.
	TaskKeyTimeout = "timeout"
	// taskKeyActivity and taskKeyTimer prefix the seq of the event that
	// scheduled the activity or started the timer.
	taskKeyActivity = "activity:"
	taskKeyTimer    = "timer:"
)

// ActivityTaskKey is the task key of the activity scheduled at seq.
func ActivityTaskKey(scheduledSeq int64) string {
	return taskKeyActivity + strconv.FormatInt(scheduledSeq, 10)
}

// TimerTaskKey is the task key of the timer started at seq.
func TimerTaskKey(startedSeq int64) string { return taskKeyTimer + strconv.FormatInt(startedSeq, 10) }

// TaskKind says what a workflow's task is.
type TaskKind int

// Task kinds.
const (
	TaskJob TaskKind = iota
	TaskWorkflow
	TaskActivity
	TaskTimer
	TaskTimeout
)

// ParseTaskKey returns a task key's kind and the seq it names (activities
// and timers).
func ParseTaskKey(key string) (TaskKind, int64, error) {
	switch {
	case key == "":
		return TaskJob, 0, nil
	case key == TaskKeyWorkflow:
		return TaskWorkflow, 0, nil
	case key == TaskKeyTimeout:
		return TaskTimeout, 0, nil
	case strings.HasPrefix(key, taskKeyActivity):
		n, err := strconv.ParseInt(key[len(taskKeyActivity):], 10, 64)
		return TaskActivity, n, err
	case strings.HasPrefix(key, taskKeyTimer):
		n, err := strconv.ParseInt(key[len(taskKeyTimer):], 10, 64)
		return TaskTimer, n, err
	}
	return 0, 0, fmt.Errorf("unknown task key %q", key)
}

// ActivityState is a pending activity of a workflow.
type ActivityState struct {
	ActivityScheduled
	ScheduledSeq int64
	ScheduledAt  time.Time
	// Attempt counts the attempts that ended.
	Attempt int
	// RunAt is when the next attempt is due.
	RunAt time.Time
	// LastFailure is the error of the last attempt.
	LastFailure string
}

// TimerState is a pending timer.
type TimerState struct {
	TimerID    int64
	StartedSeq int64
	FireAt     time.Time
}

// Workflow is a workflow run's state as the engine sees it: the fold of its
// history. (The workflow code's own state is rebuilt by the SDK, which
// replays the same history through the code.)
type Workflow struct {
	ID               eventlog.ID
	WorkflowID       string
	Type             string
	Queue            string
	Priority         Priority
	Input            json.RawMessage
	ExecutionTimeout time.Duration
	Status           WorkflowStatus
	Result           json.RawMessage
	Failure          string
	CancelRequested  bool
	// Activities and Timers that are pending, by the seq that created them.
	Activities map[int64]*ActivityState
	Timers     map[int64]*TimerState
	// Children are the child workflows initiated and not yet ended, by the
	// seq of their ChildWorkflowInitiated. They are kept when the run ends,
	// for its parent-close policy.
	Children map[int64]*ChildState
	// Parent is set for a child workflow's runs.
	Parent *ParentRef
	// RetryPolicy and Attempt are a child workflow's retry policy and which
	// run of it this is (from 1).
	RetryPolicy *RetryPolicy
	Attempt     int
	// HistoryBytes is the size of the history's event data.
	HistoryBytes int64
	// LastSeen is the SeenSeq of the last WorkflowTaskCompleted; LastInput
	// the seq of the last event the code must react to. A workflow task is
	// due while LastInput > LastSeen.
	LastSeen  int64
	LastInput int64
	// TaskReadyAt is when the due workflow task became due.
	TaskReadyAt time.Time
	// TaskAttempt is the fencing token of the last completed workflow task.
	TaskAttempt int
	// TasksCompleted counts completed workflow tasks.
	TasksCompleted int
	CreatedAt      time.Time
	UpdatedAt      time.Time
	FinishedAt     *time.Time
	Seq            int64
	LastHash       []byte
}

// NeedsTask reports whether a workflow task is due.
func (w *Workflow) NeedsTask() bool {
	return w.Status == StatusWorkflowRunning && w.LastInput > w.LastSeen
}

// IsWorkflowInput reports whether the workflow code must see e: it
// resolves a future, delivers a signal or cancels the workflow. Each such
// event makes a workflow task due.
func IsWorkflowInput(e eventlog.Event) bool {
	switch e.Type {
	case EventWorkflowStarted, EventActivityCompleted, EventTimerFired, EventSignalReceived, EventWorkflowCancelRequested,
		EventChildWorkflowStarted, EventChildWorkflowStartFailed, EventChildWorkflowCompleted, EventChildWorkflowFailed:
		return true
	case EventActivityFailed, EventActivityTimedOut:
		// Only the last attempt's failure reaches the code.
		var d struct {
			RetryAt *time.Time `json:"retry_at"`
		}
		return json.Unmarshal(e.Data, &d) == nil && d.RetryAt == nil
	}
	return false
}

// IsCommandEvent reports whether events of type t are written only for a
// command of the workflow code, right after its WorkflowTaskCompleted.
func IsCommandEvent(t string) bool {
	switch t {
	case EventActivityScheduled, EventActivityCancelRequested, EventTimerStarted, EventTimerCanceled,
		EventMarkerRecorded, EventWorkflowCompleted, EventWorkflowFailed, EventWorkflowCanceled,
		EventChildWorkflowInitiated, EventChildWorkflowCancelRequested, EventWorkflowContinuedAsNew:
		return true
	}
	return false
}

// EvolveWorkflow applies one event to a workflow's state. Folding a
// history from its first event gives the current state.
func EvolveWorkflow(w Workflow, e eventlog.Event) (Workflow, error) {
	if e.Seq != w.Seq+1 {
		return w, fmt.Errorf("event %d of %s follows event %d: the history has a gap", e.Seq, e.ExecutionID, w.Seq)
	}
	if w.Seq == 0 && e.Type != EventWorkflowStarted {
		return w, fmt.Errorf("event 1 of %s is %s; a workflow history starts with %s", e.ExecutionID, e.Type, EventWorkflowStarted)
	}
	at := e.RecordedAt
	activity := func(seq int64) (*ActivityState, error) {
		a := w.Activities[seq]
		if a == nil {
			return nil, fmt.Errorf("event %d (%s) of %s names activity scheduled at %d, which is not pending", e.Seq, e.Type, e.ExecutionID, seq)
		}
		return a, nil
	}
	finish := func(s WorkflowStatus) {
		w.Status, w.FinishedAt = s, &at
		w.Activities, w.Timers = map[int64]*ActivityState{}, map[int64]*TimerState{}
	}
	switch e.Type {
	case EventWorkflowStarted:
		var d WorkflowStarted
		if err := e.Decode(&d); err != nil {
			return w, err
		}
		w = Workflow{ID: e.ExecutionID, WorkflowID: d.WorkflowID, Type: d.Type, Queue: d.Queue, Priority: d.Priority,
			Input: d.Input, ExecutionTimeout: time.Duration(d.ExecutionTimeout), Status: StatusWorkflowRunning,
			Activities: map[int64]*ActivityState{}, Timers: map[int64]*TimerState{}, CreatedAt: at,
			Children: map[int64]*ChildState{}, Parent: d.Parent, RetryPolicy: d.RetryPolicy, Attempt: max(d.Attempt, 1)}
	case EventWorkflowTaskCompleted:
		var d WorkflowTaskCompleted
		if err := e.Decode(&d); err != nil {
			return w, err
		}
		w.LastSeen, w.TaskAttempt = d.SeenSeq, d.Attempt
		w.TasksCompleted++
		// Events that arrived while the code ran make the next task due now.
		w.TaskReadyAt = at
	case EventActivityScheduled:
		var d ActivityScheduled
		if err := e.Decode(&d); err != nil {
			return w, err
		}
		w.Activities[e.Seq] = &ActivityState{ActivityScheduled: d, ScheduledSeq: e.Seq, ScheduledAt: at, RunAt: at}
	case EventActivityStarted:
		var d ActivityStarted
		if err := e.Decode(&d); err != nil {
			return w, err
		}
		a, err := activity(d.ScheduledSeq)
		if err != nil {
			return w, err
		}
		a.Attempt = d.Attempt
	case EventActivityCompleted, EventActivityCanceled:
		var d ActivityCanceled // both carry the activity's seq
		if err := e.Decode(&d); err != nil {
			return w, err
		}
		if _, err := activity(d.ScheduledSeq); err != nil {
			return w, err
		}
		delete(w.Activities, d.ScheduledSeq)
	case EventActivityFailed:
		var d ActivityFailed
		if err := e.Decode(&d); err != nil {
			return w, err
		}
		a, err := activity(d.ScheduledSeq)
		if err != nil {
			return w, err
		}
		a.LastFailure = d.Error
		if d.RetryAt == nil {
			delete(w.Activities, d.ScheduledSeq)
		} else {
			a.RunAt = *d.RetryAt
		}
	case EventActivityTimedOut:
		var d ActivityTimedOut
		if err := e.Decode(&d); err != nil {
			return w, err
		}
		a, err := activity(d.ScheduledSeq)
		if err != nil {
			return w, err
		}
		a.LastFailure = fmt.Sprintf("attempt %d timed out (%s)", d.Attempt, d.TimeoutType)
		if d.RetryAt == nil {
			delete(w.Activities, d.ScheduledSeq)
		} else {
			a.RunAt = *d.RetryAt
		}
	case EventActivityCancelRequested:
		// The engine decides what follows (ActivityCanceled) in the same
		// transaction; the request itself changes nothing here.
	case EventTimerStarted:
		var d TimerStarted
		if err := e.Decode(&d); err != nil {
			return w, err
		}
		w.Timers[e.Seq] = &TimerState{TimerID: d.TimerID, StartedSeq: e.Seq, FireAt: d.FireAt}
	case EventTimerFired, EventTimerCanceled:
		var d TimerFired
		if err := e.Decode(&d); err != nil {
			return w, err
		}
		if e.Type == EventTimerFired && w.Timers[d.StartedSeq] == nil {
			return w, fmt.Errorf("event %d of %s fires timer %d, which is not pending", e.Seq, e.ExecutionID, d.StartedSeq)
		}
		delete(w.Timers, d.StartedSeq)
	case EventSignalReceived, EventMarkerRecorded:
	case EventWorkflowCancelRequested:
		w.CancelRequested = true
	case EventWorkflowCompleted:
		var d WorkflowCompleted
		if err := e.Decode(&d); err != nil {
			return w, err
		}
		w.Result = d.Result
		finish(StatusWorkflowCompleted)
	case EventWorkflowFailed:
		var d WorkflowFailed
		if err := e.Decode(&d); err != nil {
			return w, err
		}
		w.Failure = d.Error
		finish(StatusWorkflowFailed)
	case EventWorkflowCanceled:
		finish(StatusWorkflowCanceled)
	case EventWorkflowTerminated:
		var d WorkflowTerminated
		if err := e.Decode(&d); err != nil {
			return w, err
		}
		w.Failure = "terminated by " + d.Actor
		if d.Reason != "" {
			w.Failure += ": " + d.Reason
		}
		finish(StatusWorkflowTerminated)
	case EventWorkflowTimedOut:
		w.Failure = fmt.Sprintf("execution timeout of %s exceeded", w.ExecutionTimeout)
		finish(StatusWorkflowTimedOut)
	default:
		var err error
		if w, err = evolveWorkflowPart2(w, e); err != nil {
			return w, err
		}
		if w.Status.Final() && w.FinishedAt == nil {
			finish(w.Status)
		}
	}
	if e.Type == EventWorkflowStarted {
		w.HistoryBytes = 0
	}
	w.HistoryBytes += int64(len(e.Data))
	if IsWorkflowInput(e) {
		if !(w.LastInput > w.LastSeen) {
			w.TaskReadyAt = at
			if e.Type == EventWorkflowStarted {
				w.TaskReadyAt = at.Add(startDelay(e))
			}
		}
		w.LastInput = e.Seq
	}
	w.Seq, w.LastHash, w.UpdatedAt = e.Seq, e.Hash, at
	return w, nil
}

// FoldWorkflow replays a whole history into a workflow's state.
func FoldWorkflow(history []eventlog.Event) (Workflow, error) {
	var w Workflow
	for _, e := range history {
		var err error
		if w, err = EvolveWorkflow(w, e); err != nil {
			return w, err
		}
	}
	if w.Seq == 0 {
		return w, fmt.Errorf("empty history: %w", eventlog.ErrNotFound)
	}
	return w, nil
}

// Row is the workflow's projection row. Attempt holds how many workflow
// tasks failed in a row (0 while the workflow is healthy); it is not
// derived from the history, like the blocked status it goes with.
func (w *Workflow) Row() eventlog.Execution {
	return eventlog.Execution{
		ID: w.ID, Kind: KindWorkflow, Type: w.Type, Queue: w.Queue, Priority: w.Priority.Rank(), Status: string(w.Status),
		Payload: w.Input, RetryPolicy: json.RawMessage(`{}`), RunAt: w.CreatedAt, LastError: w.Failure,
		IdempotencyKey: w.WorkflowID, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt, FinishedAt: w.FinishedAt,
		LastSeq: w.Seq, LastHash: w.LastHash,
	}
}

// Tasks returns the ready-queue rows the workflow's state implies, none of
// them leased, ordered by key.
func (w *Workflow) Tasks() []eventlog.Task {
	if w.Status.Final() {
		return nil
	}
	prio := w.Priority.Rank()
	var out []eventlog.Task
	if w.NeedsTask() {
		out = append(out, eventlog.Task{ExecutionID: w.ID, Key: TaskKeyWorkflow, Queue: w.Queue, Priority: prio, RunAt: w.TaskReadyAt, Attempt: w.TaskAttempt})
	}
	if w.ExecutionTimeout > 0 {
		out = append(out, eventlog.Task{ExecutionID: w.ID, Key: TaskKeyTimeout, Queue: w.Queue, Priority: prio, RunAt: w.CreatedAt.Add(w.ExecutionTimeout)})
	}
	for seq, a := range w.Activities {
		out = append(out, eventlog.Task{ExecutionID: w.ID, Key: ActivityTaskKey(seq), Queue: a.Queue, Priority: prio, RunAt: a.RunAt, Attempt: a.Attempt})
	}
	for seq, t := range w.Timers {
		out = append(out, eventlog.Task{ExecutionID: w.ID, Key: TimerTaskKey(seq), Queue: w.Queue, Priority: prio, RunAt: t.FireAt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
