package eventlog

import (
	"context"
	"encoding/json"
	"time"
)

// EventRef names one event.
type EventRef struct {
	ExecutionID ID
	Seq         int64
}

// ScheduledActivity is an ActivityScheduled event with the heartbeat
// details its attempts last recorded (nil when none).
type ScheduledActivity struct {
	Event            Event
	HeartbeatDetails json.RawMessage
}

// LockedWorkflows is what LockWorkflows read under its locks.
type LockedWorkflows struct {
	Executions []Execution
	Tasks      []Task
	Histories  map[ID][]Event
	Now        time.Time
}

// WorkflowTx is what a transaction offers for workflows, beyond Tx.
//
// A workflow has several tasks (its workflow task, activities, timers), so
// no single task row can be its lock: its execution row is. Every
// operation that appends to a workflow's history takes LockWorkflows,
// which locks the execution rows and then all their task rows. Rows of a
// workflow's tasks are inserted and deleted only under its execution
// lock, so the task rows read after it are all there are. Claims, lease
// extensions and lease expiry lock single task rows without waiting for
// anything else, so they never close a cycle with it. (Jobs, with one
// task each, take the task first; the two orders never meet, because no
// operation locks rows of both a job and a workflow while waiting.)
type WorkflowTx interface {
	// LockWorkflows row-locks the executions, then their tasks, of ids in
	// ID order, waiting for other holders. It returns the execution rows,
	// their tasks, their full histories and the database time, in one round
	// trip.
	LockWorkflows(ctx context.Context, ids []ID) (LockedWorkflows, error)
	// ScheduledActivities returns the named events (each an activity's
	// ActivityScheduled) with the last heartbeat details recorded for the
	// activity, in one statement; missing events are absent.
	ScheduledActivities(ctx context.Context, refs []EventRef) ([]ScheduledActivity, error)
	// ActivityHeartbeats returns the last heartbeat details recorded for
	// activity tasks; tasks without any are absent.
	ActivityHeartbeats(ctx context.Context, refs []TaskRef) (map[TaskRef]json.RawMessage, error)
	// DeleteActivityHeartbeats forgets the details of the named tasks and of
	// every task of the executions ids.
	DeleteActivityHeartbeats(ctx context.Context, refs []TaskRef, ids []ID) error
	// LockWorkflowID serializes starts of one workflow ID until the
	// transaction ends, and returns its latest run's row, or nil.
	LockWorkflowID(ctx context.Context, workflowID string) (*Execution, error)
}

// WorkflowStore is what the store offers for workflows, beyond Store.
type WorkflowStore interface {
	// HistoryAfter returns an execution's events after afterSeq, in order.
	HistoryAfter(ctx context.Context, id ID, afterSeq int64) ([]Event, error)
	// LatestRun returns the row of the latest run of a workflow ID, or
	// ErrNotFound.
	LatestRun(ctx context.Context, workflowID string) (Execution, error)
	// HeartbeatActivity records an activity attempt's heartbeat details while
	// its lease is held, and sets the lease's expiry to the earlier of
	// now()+extend and until (extend 0 leaves it). It reports whether the
	// lease was still held: false means the attempt timed out or the
	// activity was canceled.
	HeartbeatActivity(ctx context.Context, lease Lease, details json.RawMessage, extend time.Duration, until time.Time) (bool, error)
}
