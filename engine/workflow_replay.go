package engine

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// ErrNonDeterminism is matched by every *NonDeterminismError.
var ErrNonDeterminism = errors.New("non-deterministic workflow")

// NonDeterminismError says where replayed workflow code departed from its
// history: at event Seq the history has Expected, and the code asked for
// Got ("nothing" when one side has no command there). The workflow task
// that found it fails without writing anything; the workflow stays
// blocked until code that replays its history is deployed.
type NonDeterminismError struct {
	Seq      int64
	Expected string
	Got      string
}

func (e *NonDeterminismError) Error() string {
	return fmt.Sprintf("non-deterministic workflow at event %d: history has %s, code issued %s", e.Seq, e.Expected, e.Got)
}

// Is makes errors.Is(err, ErrNonDeterminism) true.
func (e *NonDeterminismError) Is(target error) bool { return target == ErrNonDeterminism }

// ErrorType names the error for retry policies and projections.
func (e *NonDeterminismError) ErrorType() string { return "NonDeterminismError" }

// Nothing is how a non-determinism error names a missing command.
const Nothing = "nothing"

// DescribeEvent names a command event the way DescribeCommand names
// commands, so that the two can be compared in an error message.
func DescribeEvent(e eventlog.Event) string {
	var d struct {
		ActivityID   int64  `json:"activity_id"`
		ActivityType string `json:"activity_type"`
		TimerID      int64  `json:"timer_id"`
		MarkerID     int64  `json:"marker_id"`
		Name         string `json:"name"`
	}
	_ = json.Unmarshal(e.Data, &d)
	switch e.Type {
	case EventActivityScheduled:
		return ScheduleActivity{ActivityID: d.ActivityID, ActivityType: d.ActivityType}.Describe()
	case EventActivityCancelRequested:
		return RequestCancelActivity{ActivityID: d.ActivityID}.Describe()
	case EventTimerStarted:
		return StartTimer{TimerID: d.TimerID}.Describe()
	case EventTimerCanceled:
		return CancelTimer{TimerID: d.TimerID}.Describe()
	case EventMarkerRecorded:
		return RecordMarker{MarkerID: d.MarkerID, Name: d.Name}.Describe()
	case EventChildWorkflowInitiated:
		var c ChildWorkflowInitiated
		_ = json.Unmarshal(e.Data, &c)
		return StartChildWorkflow{ChildID: c.ChildID, Type: c.Type}.Describe()
	case EventChildWorkflowCancelRequested:
		var c ChildWorkflowCancelRequested
		_ = json.Unmarshal(e.Data, &c)
		return RequestCancelChildWorkflow{ChildID: c.ChildID}.Describe()
	}
	return e.Type
}

// MatchCommand checks that command c, issued by replayed code, is the one
// event e of the history records. It returns a *NonDeterminismError when
// it is not.
func MatchCommand(e eventlog.Event, c WorkflowCommand) error {
	if c == nil {
		return &NonDeterminismError{Seq: e.Seq, Expected: DescribeEvent(e), Got: Nothing}
	}
	if e.Type != c.EventType() || DescribeEvent(e) != c.Describe() {
		return &NonDeterminismError{Seq: e.Seq, Expected: DescribeEvent(e), Got: c.Describe()}
	}
	return nil
}

// TaskBoundary is one completed workflow task in a history: the inputs the
// code had seen and the command events it produced.
type TaskBoundary struct {
	// Completed is the WorkflowTaskCompleted event.
	Completed eventlog.Event
	Task      WorkflowTaskCompleted
	// Commands are the command events that follow it.
	Commands []eventlog.Event
}

// ReadTaskBoundary decodes the workflow task completed at events[i] and
// the command events that follow it.
func ReadTaskBoundary(events []eventlog.Event, i int) (TaskBoundary, error) {
	b := TaskBoundary{Completed: events[i]}
	if err := events[i].Decode(&b.Task); err != nil {
		return b, err
	}
	end := i + 1 + b.Task.Commands
	if end > len(events) {
		return b, fmt.Errorf("workflow task completed at event %d recorded %d commands, but the history ends at event %d", events[i].Seq, b.Task.Commands, events[len(events)-1].Seq)
	}
	b.Commands = events[i+1 : end]
	for _, c := range b.Commands {
		if !IsCommandEvent(c.Type) {
			return b, fmt.Errorf("event %d (%s) follows the workflow task completed at event %d as one of its commands, but is not a command event", c.Seq, c.Type, events[i].Seq)
		}
	}
	return b, nil
}
