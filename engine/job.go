package engine

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// Status is where a job stands, derived from its history.
type Status string

// Job statuses.
const (
	// StatusPending: waiting for its first attempt (possibly scheduled later).
	StatusPending Status = "pending"
	// StatusRunning: a worker holds a lease on it.
	StatusRunning Status = "running"
	// StatusRetrying: an attempt failed or timed out; the next is scheduled.
	StatusRetrying Status = "retrying"
	// StatusSucceeded: an attempt succeeded. Final.
	StatusSucceeded Status = "succeeded"
	// StatusDeadLettered: out of attempts or failed permanently; waits for an
	// operator to retry or resolve it.
	StatusDeadLettered Status = "dead_lettered"
	// StatusResolved: a dead letter closed by an operator. Final.
	StatusResolved Status = "resolved"
	// StatusCanceled: stopped before it finished. Final.
	StatusCanceled Status = "canceled"
)

// Final reports whether nothing more will happen to a job in this status.
func (s Status) Final() bool {
	return s == StatusSucceeded || s == StatusResolved || s == StatusCanceled
}

// Priority orders ready jobs: high before normal before low.
type Priority string

// Priorities.
const (
	PriorityHigh   Priority = "high"
	PriorityNormal Priority = "normal"
	PriorityLow    Priority = "low"
)

// Rank is the priority's sort key: lower runs first.
func (p Priority) Rank() int {
	switch p {
	case PriorityHigh:
		return 1
	case PriorityLow:
		return 3
	default:
		return 2
	}
}

// Valid reports whether p is one of the three priorities.
func (p Priority) Valid() bool {
	return p == PriorityHigh || p == PriorityNormal || p == PriorityLow
}

func priorityOfRank(r int) Priority {
	switch r {
	case 1:
		return PriorityHigh
	case 3:
		return PriorityLow
	default:
		return PriorityNormal
	}
}

// Job is a job's state: the fold of its history.
type Job struct {
	ID             eventlog.ID
	Type           string
	Queue          string
	Priority       Priority
	Payload        json.RawMessage
	RetryPolicy    RetryPolicy
	IdempotencyKey string
	Status         Status
	// Attempt counts the attempts started over the job's life.
	Attempt int
	// BudgetStart is Attempt at the last manual retry; attempts in the
	// current budget are Attempt - BudgetStart.
	BudgetStart int
	// RunAt is when the job is next due (the first attempt or a retry).
	RunAt          time.Time
	WorkerID       string
	LeaseExpiresAt *time.Time
	LastError      string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	FinishedAt     *time.Time
	// Seq and LastHash locate the end of the history: the next event is
	// Seq+1 and chains onto LastHash.
	Seq      int64
	LastHash []byte
}

// AttemptsInBudget is how many attempts the current retry budget has used.
func (j *Job) AttemptsInBudget() int { return j.Attempt - j.BudgetStart }

// Evolve applies one event to a job's state. It is a pure function: folding
// a history from its first event with Evolve gives the current state.
func Evolve(j Job, e eventlog.Event) (Job, error) {
	if e.Seq != j.Seq+1 {
		return j, fmt.Errorf("event %d of %s follows event %d: the history has a gap", e.Seq, e.ExecutionID, j.Seq)
	}
	at := e.RecordedAt
	switch e.Type {
	case EventJobEnqueued:
		var d JobEnqueued
		if err := e.Decode(&d); err != nil {
			return j, err
		}
		j = Job{ID: e.ExecutionID, Type: d.Type, Queue: d.Queue, Priority: d.Priority, Payload: d.Payload,
			RetryPolicy: d.RetryPolicy, IdempotencyKey: d.IdempotencyKey, Status: StatusPending,
			RunAt: d.RunAt, CreatedAt: at}
	case EventAttemptStarted:
		var d AttemptStarted
		if err := e.Decode(&d); err != nil {
			return j, err
		}
		lease := d.LeaseExpiresAt
		j.Status, j.Attempt, j.WorkerID, j.LeaseExpiresAt = StatusRunning, d.Attempt, d.WorkerID, &lease
	case EventAttemptSucceeded:
		j.Status, j.WorkerID, j.LeaseExpiresAt, j.FinishedAt = StatusSucceeded, "", nil, &at
	case EventAttemptFailed:
		var d AttemptFailed
		if err := e.Decode(&d); err != nil {
			return j, err
		}
		j.LastError = d.Error
		j.endAttempt(d.RetryAt)
	case EventAttemptTimedOut:
		var d AttemptTimedOut
		if err := e.Decode(&d); err != nil {
			return j, err
		}
		j.LastError = fmt.Sprintf("attempt %d timed out: lease held by %s expired at %s", d.Attempt, d.WorkerID, d.LeaseExpiredAt.Format(time.RFC3339Nano))
		j.endAttempt(d.RetryAt)
	case EventJobDeadLettered:
		j.Status = StatusDeadLettered
	case EventJobRetried:
		j.Status, j.BudgetStart, j.RunAt = StatusPending, j.Attempt, at
	case EventJobResolved:
		j.Status, j.FinishedAt = StatusResolved, &at
	case EventJobCanceled:
		j.Status, j.WorkerID, j.LeaseExpiresAt, j.FinishedAt = StatusCanceled, "", nil, &at
	case EventStepCompleted:
		// A step's result is read back from the history by the step itself
		// (CompletedSteps); the job's status does not change.
	default:
		return j, fmt.Errorf("event %d of %s has unknown type %q", e.Seq, e.ExecutionID, e.Type)
	}
	j.Seq, j.LastHash, j.UpdatedAt = e.Seq, e.Hash, at
	return j, nil
}

// endAttempt moves a job out of running after a failure or timeout. With no
// retry time the job stays where it is until JobDeadLettered follows.
func (j *Job) endAttempt(retryAt *time.Time) {
	j.WorkerID, j.LeaseExpiresAt = "", nil
	if retryAt != nil {
		j.Status, j.RunAt = StatusRetrying, *retryAt
	}
}

// Fold replays a whole history into a job's state.
func Fold(history []eventlog.Event) (Job, error) {
	var j Job
	for _, e := range history {
		var err error
		if j, err = Evolve(j, e); err != nil {
			return j, err
		}
	}
	if j.Seq == 0 {
		return j, fmt.Errorf("empty history: %w", eventlog.ErrNotFound)
	}
	return j, nil
}

// Row is the job's projection row.
func (j *Job) Row() eventlog.Execution {
	policy, _ := json.Marshal(j.RetryPolicy)
	return eventlog.Execution{
		ID: j.ID, Kind: "job", Type: j.Type, Queue: j.Queue, Priority: j.Priority.Rank(), Status: string(j.Status),
		Payload: j.Payload, Attempt: j.Attempt, BudgetStart: j.BudgetStart, MaxAttempts: j.RetryPolicy.WithDefaults().MaximumAttempts,
		RetryPolicy: policy, RunAt: j.RunAt, LastError: j.LastError, IdempotencyKey: j.IdempotencyKey,
		CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt, FinishedAt: j.FinishedAt, LastSeq: j.Seq, LastHash: j.LastHash,
	}
}

// Task is the job's row in the ready queue, or nil when no worker needs to
// see it.
func (j *Job) Task() *eventlog.Task {
	t := &eventlog.Task{ExecutionID: j.ID, Queue: j.Queue, Priority: j.Priority.Rank(), RunAt: j.RunAt, Attempt: j.Attempt}
	switch j.Status {
	case StatusPending, StatusRetrying:
		return t
	case StatusRunning:
		t.LeasedBy, t.LeaseExpiresAt = j.WorkerID, j.LeaseExpiresAt
		return t
	}
	return nil
}

// JobFromRow reads a job's state from its projection row. The row is the
// fold of the history, written with it, so this is the state a decision
// starts from without replaying.
func JobFromRow(x eventlog.Execution, lease *eventlog.Task) (Job, error) {
	j := Job{ID: x.ID, Type: x.Type, Queue: x.Queue, Priority: priorityOfRank(x.Priority), Payload: x.Payload,
		IdempotencyKey: x.IdempotencyKey, Status: Status(x.Status), Attempt: x.Attempt, BudgetStart: x.BudgetStart,
		RunAt: x.RunAt, LastError: x.LastError, CreatedAt: x.CreatedAt, UpdatedAt: x.UpdatedAt, FinishedAt: x.FinishedAt,
		Seq: x.LastSeq, LastHash: x.LastHash}
	if err := json.Unmarshal(x.RetryPolicy, &j.RetryPolicy); err != nil {
		return j, fmt.Errorf("job %s: retry policy in projection: %w", x.ID, err)
	}
	if lease != nil && j.Status == StatusRunning {
		j.WorkerID, j.LeaseExpiresAt = lease.LeasedBy, lease.LeaseExpiresAt
	}
	return j, nil
}
