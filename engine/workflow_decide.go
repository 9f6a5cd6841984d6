package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// WorkflowCommand is what workflow code asks for in a workflow task. Each
// becomes one command event, in order, right after WorkflowTaskCompleted.
type WorkflowCommand interface {
	// EventType is the type of the event the command becomes.
	EventType() string
	// Describe names the command the way non-determinism errors do.
	Describe() string
}

// ActivityOptions are the timeouts and retry policy of one activity.
type ActivityOptions struct {
	// StartToCloseTimeout bounds one attempt. Defaults to
	// ScheduleToCloseTimeout; one of the two is required.
	StartToCloseTimeout time.Duration
	// ScheduleToCloseTimeout bounds all attempts together, from scheduling.
	ScheduleToCloseTimeout time.Duration
	// HeartbeatTimeout, when set, times an attempt out when it has not
	// heartbeated for that long.
	HeartbeatTimeout time.Duration
	// RetryPolicy defaults to DefaultActivityRetryPolicy: unlimited
	// attempts (bounded by ScheduleToCloseTimeout), from 1s doubling up to
	// 100s.
	RetryPolicy *RetryPolicy
}

// ScheduleActivity runs an activity.
type ScheduleActivity struct {
	ActivityID   int64
	ActivityType string
	// Queue defaults to the workflow's queue.
	Queue   string
	Input   json.RawMessage
	Options ActivityOptions
}

// RequestCancelActivity cancels a pending activity.
type RequestCancelActivity struct{ ActivityID int64 }

// StartTimer starts a durable timer.
type StartTimer struct {
	TimerID  int64
	Duration time.Duration
}

// CancelTimer cancels a pending timer.
type CancelTimer struct{ TimerID int64 }

// RecordMarker records a value, such as a side effect's result.
type RecordMarker struct {
	MarkerID int64
	Name     string
	Data     json.RawMessage
}

// CompleteWorkflow ends the run with a result.
type CompleteWorkflow struct{ Result json.RawMessage }

// FailWorkflow ends the run with an error.
type FailWorkflow struct{ Error, ErrorType string }

// CancelWorkflow ends the run as canceled.
type CancelWorkflow struct{}

func (ScheduleActivity) EventType() string      { return EventActivityScheduled }
func (RequestCancelActivity) EventType() string { return EventActivityCancelRequested }
func (StartTimer) EventType() string            { return EventTimerStarted }
func (CancelTimer) EventType() string           { return EventTimerCanceled }
func (RecordMarker) EventType() string          { return EventMarkerRecorded }
func (CompleteWorkflow) EventType() string      { return EventWorkflowCompleted }
func (FailWorkflow) EventType() string          { return EventWorkflowFailed }
func (CancelWorkflow) EventType() string        { return EventWorkflowCanceled }

func (c ScheduleActivity) Describe() string {
	return fmt.Sprintf("%s(%s, id %d)", EventActivityScheduled, c.ActivityType, c.ActivityID)
}
func (c RequestCancelActivity) Describe() string {
	return fmt.Sprintf("%s(id %d)", EventActivityCancelRequested, c.ActivityID)
}
func (c StartTimer) Describe() string { return fmt.Sprintf("%s(id %d)", EventTimerStarted, c.TimerID) }
func (c CancelTimer) Describe() string {
	return fmt.Sprintf("%s(id %d)", EventTimerCanceled, c.TimerID)
}
func (c RecordMarker) Describe() string {
	return fmt.Sprintf("%s(%s, id %d)", EventMarkerRecorded, c.Name, c.MarkerID)
}
func (CompleteWorkflow) Describe() string { return EventWorkflowCompleted }
func (FailWorkflow) Describe() string     { return EventWorkflowFailed }
func (CancelWorkflow) Describe() string   { return EventWorkflowCanceled }

// DefaultActivityRetryPolicy is the retry policy of activities that set
// none: Temporal's default.
var DefaultActivityRetryPolicy = RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 100 * time.Second}

// activityRetry returns when an activity's next attempt is due after
// `attempt` attempts ended without success, or nil when it may not retry.
// MaximumAttempts 0 means unlimited, as in Temporal.
func activityRetry(a *ActivityState, attempt int, nonRetryable bool, errorType string, env Env) *time.Time {
	p := DefaultActivityRetryPolicy
	if a.RetryPolicy != nil {
		p = *a.RetryPolicy
		if p.InitialInterval == 0 {
			p.InitialInterval = DefaultActivityRetryPolicy.InitialInterval
		}
		if p.MaximumInterval == 0 && len(p.Schedule) == 0 {
			p.MaximumInterval = 100 * p.InitialInterval
		}
	}
	if nonRetryable || !p.retryable(errorType) || (p.MaximumAttempts > 0 && attempt >= p.MaximumAttempts) {
		return nil
	}
	if p.MaximumAttempts == 0 {
		p.MaximumAttempts = math.MaxInt32
	}
	at := env.Now.Add(p.Delay(attempt, env.random())).Truncate(time.Microsecond)
	if s2c := time.Duration(a.ScheduleToCloseTimeout); s2c > 0 && !at.Before(a.ScheduledAt.Add(s2c)) {
		return nil
	}
	return &at
}

// Commands a workflow takes from outside its code.

// CompleteWorkflowTask records what a workflow task's code decided.
type CompleteWorkflowTask struct {
	Attempt   int
	WorkerID  string
	SeenSeq   int64
	StartedAt time.Time
	Commands  []WorkflowCommand
}

// CompleteActivity records an activity attempt's result.
type CompleteActivity struct {
	ScheduledSeq int64
	Attempt      int
	WorkerID     string
	StartedAt    time.Time
	Result       json.RawMessage
	Duration     time.Duration
}

// FailActivity records an activity attempt's error.
type FailActivity struct {
	ScheduledSeq int64
	Attempt      int
	WorkerID     string
	StartedAt    time.Time
	Error        string
	ErrorType    string
	NonRetryable bool
	Details      json.RawMessage
	Duration     time.Duration
}

// TimeOutActivity records that an activity attempt's lease ran out.
type TimeOutActivity struct {
	ScheduledSeq   int64
	Attempt        int
	WorkerID       string
	StartedAt      time.Time
	LeaseExpiredAt time.Time
	Details        json.RawMessage
}

// FireTimer fires a due timer.
type FireTimer struct{ StartedSeq int64 }

// SignalWorkflow delivers a signal.
type SignalWorkflow struct {
	Name  string
	Input json.RawMessage
	// Actor, when set, is recorded in SignalReceived: an operator who
	// signaled through the HTTP API or the admin UI.
	Actor string
}

// RequestCancelWorkflow asks the workflow to cancel.
type RequestCancelWorkflow struct{ Actor, Reason string }

// TerminateWorkflow ends the workflow without running its code.
type TerminateWorkflow struct{ Actor, Reason string }

// TimeOutWorkflow ends a run that exceeded its execution timeout.
type TimeOutWorkflow struct{}

// Sentinel errors of workflow commands.
var (
	// ErrWorkflowNotRunning: the run has ended; it takes no more signals,
	// cancellations or results.
	ErrWorkflowNotRunning = errors.New("workflow is not running")
	// ErrUnhandledEvents: the code tried to end the run, but events it has
	// not seen (such as a signal) arrived meanwhile. The task is run again
	// at once with them.
	ErrUnhandledEvents = errors.New("new events arrived while the workflow task ran")
	// ErrInvalidCommand: a workflow task's commands cannot be applied (a
	// bug in the SDK, not in the workflow).
	ErrInvalidCommand = errors.New("invalid workflow command")
)

func notRunning(w *Workflow, what string) error {
	return fmt.Errorf("%s: workflow %s (run %s) is %s: %w", what, w.WorkflowID, w.ID, w.Status, ErrWorkflowNotRunning)
}

// DecideWorkflow returns the events a command produces for workflow w, or
// a typed error saying why it is refused. It is a pure function.
func DecideWorkflow(w Workflow, cmd any, env Env) ([]Decision, error) {
	if w.Status.Final() {
		return nil, notRunning(&w, commandLabel(cmd))
	}
	switch c := cmd.(type) {
	case CompleteWorkflowTask:
		return decideTask(w, c, env)
	case CompleteActivity:
		a, err := attemptOf(w, c.ScheduledSeq, c.Attempt)
		if err != nil {
			return nil, err
		}
		return []Decision{
			{EventActivityStarted, ActivityStarted{ActivityID: a.ActivityID, ScheduledSeq: a.ScheduledSeq, Attempt: c.Attempt, WorkerID: c.WorkerID, StartedAt: c.StartedAt}},
			{EventActivityCompleted, ActivityCompleted{ActivityID: a.ActivityID, ScheduledSeq: a.ScheduledSeq, Attempt: c.Attempt, Result: orNull(c.Result), DurationMS: ms(c.Duration)}},
		}, nil
	case FailActivity:
		a, err := attemptOf(w, c.ScheduledSeq, c.Attempt)
		if err != nil {
			return nil, err
		}
		return []Decision{
			{EventActivityStarted, ActivityStarted{ActivityID: a.ActivityID, ScheduledSeq: a.ScheduledSeq, Attempt: c.Attempt, WorkerID: c.WorkerID, StartedAt: c.StartedAt}},
			{EventActivityFailed, ActivityFailed{ActivityID: a.ActivityID, ScheduledSeq: a.ScheduledSeq, Attempt: c.Attempt, Error: c.Error,
				ErrorType: c.ErrorType, NonRetryable: c.NonRetryable, Details: c.Details, DurationMS: ms(c.Duration),
				RetryAt: activityRetry(a, c.Attempt, c.NonRetryable, c.ErrorType, env)}},
		}, nil
	case TimeOutActivity:
		a, err := attemptOf(w, c.ScheduledSeq, c.Attempt)
		if err != nil {
			return nil, err
		}
		kind := TimeoutStartToClose
		switch {
		case a.ScheduleToCloseTimeout > 0 && !c.LeaseExpiredAt.Before(a.ScheduledAt.Add(time.Duration(a.ScheduleToCloseTimeout))):
			kind = TimeoutScheduleToClose
		case a.HeartbeatTimeout > 0 && c.LeaseExpiredAt.Before(c.StartedAt.Add(startToClose(a.ActivityScheduled))):
			kind = TimeoutHeartbeat
		}
		retry := activityRetry(a, c.Attempt, kind == TimeoutScheduleToClose, "", env)
		return []Decision{
			{EventActivityStarted, ActivityStarted{ActivityID: a.ActivityID, ScheduledSeq: a.ScheduledSeq, Attempt: c.Attempt, WorkerID: c.WorkerID, StartedAt: c.StartedAt}},
			{EventActivityTimedOut, ActivityTimedOut{ActivityID: a.ActivityID, ScheduledSeq: a.ScheduledSeq, Attempt: c.Attempt, TimeoutType: kind, Details: c.Details, RetryAt: retry}},
		}, nil
	case FireTimer:
		t := w.Timers[c.StartedSeq]
		if t == nil {
			return nil, nil // canceled meanwhile
		}
		return []Decision{{EventTimerFired, TimerFired{TimerID: t.TimerID, StartedSeq: t.StartedSeq}}}, nil
	case SignalWorkflow:
		if strings.TrimSpace(c.Name) == "" {
			return nil, &InputError{Field: "signal name", Reason: "is empty"}
		}
		return []Decision{{EventSignalReceived, SignalReceived{Name: c.Name, Input: orNull(c.Input), Actor: c.Actor}}}, nil
	case RequestCancelWorkflow:
		if w.CancelRequested {
			return nil, nil
		}
		return []Decision{{EventWorkflowCancelRequested, WorkflowCancelRequested{Actor: c.Actor, Reason: c.Reason}}}, nil
	case TerminateWorkflow:
		if strings.TrimSpace(c.Actor) == "" {
			return nil, &InputError{Field: "actor", Reason: "say who is terminating the workflow"}
		}
		return []Decision{{EventWorkflowTerminated, WorkflowTerminated{Actor: c.Actor, Reason: c.Reason}}}, nil
	case TimeOutWorkflow:
		return []Decision{{EventWorkflowTimedOut, WorkflowTimedOut{ExecutionTimeout: Duration(w.ExecutionTimeout)}}}, nil
	}
	if out, ok, err := decidePart2(w, cmd); ok {
		return out, err
	}
	return nil, fmt.Errorf("unknown workflow command %T", cmd)
}

func commandLabel(cmd any) string {
	switch cmd.(type) {
	case CompleteWorkflowTask:
		return "complete workflow task"
	case CompleteActivity, FailActivity, TimeOutActivity:
		return "record activity outcome"
	case FireTimer:
		return "fire timer"
	case SignalWorkflow:
		return "signal"
	case RequestCancelWorkflow:
		return "cancel"
	case TerminateWorkflow:
		return "terminate"
	}
	return "time out"
}

func orNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}

// startToClose is an attempt's time limit: StartToCloseTimeout, else
// ScheduleToCloseTimeout.
func startToClose(a ActivityScheduled) time.Duration {
	if a.StartToCloseTimeout > 0 {
		return time.Duration(a.StartToCloseTimeout)
	}
	return time.Duration(a.ScheduleToCloseTimeout)
}

// attemptOf is the fencing check of an activity outcome.
func attemptOf(w Workflow, seq int64, attempt int) (*ActivityState, error) {
	a := w.Activities[seq]
	if a == nil || attempt != a.Attempt+1 {
		return nil, fmt.Errorf("attempt %d of the activity scheduled at event %d of %s: %w", attempt, seq, w.ID, ErrLeaseLost)
	}
	return a, nil
}

func decideTask(w Workflow, c CompleteWorkflowTask, env Env) ([]Decision, error) {
	if c.SeenSeq < w.LastSeen || c.SeenSeq > w.Seq {
		return nil, fmt.Errorf("workflow task of %s saw event %d, but the last task saw %d and the history ends at %d: %w", w.ID, c.SeenSeq, w.LastSeen, w.Seq, ErrLeaseLost)
	}
	out := []Decision{{EventWorkflowTaskCompleted, WorkflowTaskCompleted{Attempt: c.Attempt, WorkerID: c.WorkerID, SeenSeq: c.SeenSeq,
		StartedAt: c.StartedAt.Truncate(time.Microsecond), Commands: len(c.Commands)}}}
	var effects []Decision
	seq := w.Seq + 1 // the WorkflowTaskCompleted
	scheduled := map[int64]int64{}
	for id, a := range w.Activities {
		scheduled[a.ActivityID] = id
	}
	timers := map[int64]int64{}
	for seq, t := range w.Timers {
		timers[t.TimerID] = seq
	}
	children := map[int64]int64{}
	for seq, c := range w.Children {
		children[c.ChildID] = seq
	}
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("workflow task of %s: %s: %w", w.ID, fmt.Sprintf(format, args...), ErrInvalidCommand)
	}
	for i, cmd := range c.Commands {
		seq++
		if i > 0 && isClosing(c.Commands[i-1]) {
			return nil, invalid("%s follows the command that ended the workflow", cmd.Describe())
		}
		switch cmd := cmd.(type) {
		case ScheduleActivity:
			o := cmd.Options
			if o.StartToCloseTimeout <= 0 && o.ScheduleToCloseTimeout <= 0 {
				return nil, invalid("activity %s has neither StartToCloseTimeout nor ScheduleToCloseTimeout", cmd.ActivityType)
			}
			queue := cmd.Queue
			if queue == "" {
				queue = w.Queue
			}
			if err := ValidQueueName(queue); err != nil {
				return nil, err
			}
			scheduled[cmd.ActivityID] = seq
			out = append(out, Decision{EventActivityScheduled, ActivityScheduled{ActivityID: cmd.ActivityID, ActivityType: cmd.ActivityType, Queue: queue,
				Input: orNull(cmd.Input), StartToCloseTimeout: Duration(o.StartToCloseTimeout), ScheduleToCloseTimeout: Duration(o.ScheduleToCloseTimeout),
				HeartbeatTimeout: Duration(o.HeartbeatTimeout), RetryPolicy: o.RetryPolicy}})
		case RequestCancelActivity:
			s, ok := scheduled[cmd.ActivityID]
			if !ok {
				// Already finished: the request is recorded, and changes nothing.
				out = append(out, Decision{EventActivityCancelRequested, ActivityCancelRequested{ActivityID: cmd.ActivityID}})
				continue
			}
			out = append(out, Decision{EventActivityCancelRequested, ActivityCancelRequested{ActivityID: cmd.ActivityID, ScheduledSeq: s}})
			effects = append(effects, Decision{EventActivityCanceled, ActivityCanceled{ActivityID: cmd.ActivityID, ScheduledSeq: s}})
			delete(scheduled, cmd.ActivityID)
		case StartTimer:
			if cmd.Duration < 0 {
				return nil, invalid("timer %d has negative duration %s", cmd.TimerID, cmd.Duration)
			}
			timers[cmd.TimerID] = seq
			out = append(out, Decision{EventTimerStarted, TimerStarted{TimerID: cmd.TimerID, Duration: Duration(cmd.Duration),
				FireAt: env.Now.Add(cmd.Duration).Truncate(time.Microsecond)}})
		case CancelTimer:
			s := timers[cmd.TimerID]
			delete(timers, cmd.TimerID)
			out = append(out, Decision{EventTimerCanceled, TimerCanceled{TimerID: cmd.TimerID, StartedSeq: s}})
		case RecordMarker:
			out = append(out, Decision{EventMarkerRecorded, MarkerRecorded{MarkerID: cmd.MarkerID, Name: cmd.Name, Data: orNull(cmd.Data)}})
		case CompleteWorkflow, FailWorkflow, CancelWorkflow, ContinueAsNew:
			if w.LastInput > c.SeenSeq {
				return nil, fmt.Errorf("workflow task of %s ended the workflow, but events after %d were not seen: %w", w.ID, c.SeenSeq, ErrUnhandledEvents)
			}
			switch cmd := cmd.(type) {
			case CompleteWorkflow:
				out = append(out, Decision{EventWorkflowCompleted, WorkflowCompleted{Result: orNull(cmd.Result)}})
			case FailWorkflow:
				out = append(out, Decision{EventWorkflowFailed, WorkflowFailed{Error: cmd.Error, ErrorType: cmd.ErrorType}})
			case ContinueAsNew:
				d, _, err := decideTaskPart2(w, cmd, children)
				if err != nil {
					return nil, err
				}
				out = append(out, d)
			default:
				out = append(out, Decision{EventWorkflowCanceled, WorkflowCanceled{}})
			}
		default:
			d, ok, err := decideTaskPart2(w, cmd, children)
			if !ok {
				return nil, invalid("unknown command %T", cmd)
			}
			if err != nil {
				return nil, invalid("%v", err)
			}
			if sc, isStart := cmd.(StartChildWorkflow); isStart {
				children[sc.ChildID] = seq
			}
			out = append(out, d)
		}
	}
	if n := len(c.Commands); n > 0 && isClosing(c.Commands[n-1]) {
		return out, nil // pending activities and timers end with the run
	}
	return append(out, effects...), nil
}

func isClosing(c WorkflowCommand) bool {
	switch c.(type) {
	case CompleteWorkflow, FailWorkflow, CancelWorkflow, ContinueAsNew:
		return true
	}
	return false
}

// RecordWorkflow numbers, timestamps, canonicalizes and seals decisions as
// events appended to w's history, and returns the state after them.
func RecordWorkflow(w Workflow, decisions []Decision, now time.Time) (Workflow, []eventlog.Event, error) {
	now = now.Truncate(time.Microsecond)
	events := make([]eventlog.Event, 0, len(decisions))
	for _, d := range decisions {
		raw, err := json.Marshal(d.Data)
		if err != nil {
			return w, nil, fmt.Errorf("encode %s: %w", d.Type, err)
		}
		data, err := eventlog.Canonicalize(raw)
		if err != nil {
			return w, nil, fmt.Errorf("encode %s: %w", d.Type, err)
		}
		prev := w.LastHash
		if w.Seq == 0 {
			prev = eventlog.GenesisHash
		}
		e := eventlog.Event{ExecutionID: w.ID, Seq: w.Seq + 1, Type: d.Type, Data: data, RecordedAt: now, PrevHash: prev}
		e.Hash = eventlog.HashEvent(prev, e)
		if w, err = EvolveWorkflow(w, e); err != nil {
			return w, nil, err
		}
		events = append(events, e)
	}
	return w, events, nil
}
