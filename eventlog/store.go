package eventlog

import (
	"context"
	"encoding/json"
	"time"
)

// Execution is the projection of one execution's current state: what folding
// its history gives, kept in a table so that reads and dispatch need not
// replay. It is written in the same transaction as the events it derives
// from, and can always be rebuilt from them.
type Execution struct {
	ID       ID
	Kind     string // "job" or "workflow"
	Type     string
	Queue    string
	Priority int
	Status   string
	Payload  json.RawMessage
	// Attempt counts the attempts started over the execution's whole life.
	Attempt int
	// BudgetStart is the value of Attempt when the current retry budget began
	// (0, or the attempt count at the last manual retry of a dead letter).
	BudgetStart int
	MaxAttempts int
	RetryPolicy json.RawMessage
	// RunAt is when the execution is next due to run.
	RunAt          time.Time
	LastError      string
	IdempotencyKey string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	// FinishedAt is set once the execution reached a final state.
	FinishedAt *time.Time
	LastSeq    int64
	LastHash   []byte
}

// Task is a row of the ready queue: a unit of work some worker can claim.
// A job has at most one task; a workflow has one per pending workflow or
// activity task, told apart by Key.
type Task struct {
	ExecutionID ID
	Key         string
	Queue       string
	Priority    int
	RunAt       time.Time
	// Attempt is the fencing token: the attempt that holds (or last held) the lease.
	Attempt int
	// LeasedBy and LeaseExpiresAt are empty while the task waits to be claimed.
	LeasedBy       string
	LeaseExpiresAt *time.Time
}

// TaskRef names one task.
type TaskRef struct {
	ExecutionID ID
	Key         string
}

// Lease names a claimed task as its holder knows it: the fencing token is
// the attempt number.
type Lease struct {
	ExecutionID ID
	Key         string
	Attempt     int
	WorkerID    string
}

// Changes is everything one decision writes: new events and the projection
// rows they imply. Apply writes it atomically with the rest of its
// transaction.
type Changes struct {
	// Events to append. Each must carry the next seq of its history and be
	// sealed (see Seal); a seq already taken fails with a *ConflictError.
	Events []Event
	// NewExecutions to insert.
	NewExecutions []Execution
	// Executions to update. Only the fields a decision can change are
	// written: status, attempt, budget, run time, error, timestamps and the
	// end of the history (LastSeq, LastHash).
	Executions []Execution
	// Tasks to insert or overwrite.
	Tasks []Task
	// DeleteTasks removes tasks that are finished.
	DeleteTasks []TaskRef
}

// Empty reports whether there is nothing to write.
func (c *Changes) Empty() bool {
	return len(c.Events) == 0 && len(c.NewExecutions) == 0 && len(c.Executions) == 0 && len(c.Tasks) == 0 && len(c.DeleteTasks) == 0
}

// Merge appends other's changes to c.
func (c *Changes) Merge(other Changes) {
	c.Events = append(c.Events, other.Events...)
	c.NewExecutions = append(c.NewExecutions, other.NewExecutions...)
	c.Executions = append(c.Executions, other.Executions...)
	c.Tasks = append(c.Tasks, other.Tasks...)
	c.DeleteTasks = append(c.DeleteTasks, other.DeleteTasks...)
}

// LeaseParams selects and leases ready tasks.
type LeaseParams struct {
	Queues   []string
	Limit    int
	WorkerID string
	// Duration is how long the lease lasts from the database's now().
	Duration time.Duration
}

// Leased is one task just leased, with its execution's state as it was
// before the claim.
type Leased struct {
	Task      Task
	Execution Execution
}

// Tx is one database transaction, seen through named operations.
type Tx interface {
	IdempotencyTx
	ScheduleTx
	FirstEventFields
	WorkflowTx
	WorkflowRunsTx
	// Now returns the transaction's database time.
	Now(ctx context.Context) (time.Time, error)
	// LockTasks row-locks the tasks of executions, waiting for other holders.
	// An execution that has tasks is guarded by their locks: take them
	// before LockExecutions.
	LockTasks(ctx context.Context, ids []ID) error
	// LockExecutions loads and row-locks executions. Missing IDs are absent
	// from the result.
	LockExecutions(ctx context.Context, ids []ID) ([]Execution, error)
	// LeaseTasks claims up to Limit ready tasks of the given queues (the
	// first queue first), ordered by priority then run time, skipping rows
	// other transactions hold. Each
	// claimed task's Attempt is incremented and its lease set. It returns the
	// leased tasks and the database time of the claim.
	LeaseTasks(ctx context.Context, p LeaseParams) ([]Leased, time.Time, error)
	// LockLeases row-locks the tasks whose lease is still held by the given
	// attempt and worker and has not expired, and returns them with their
	// executions. Leases that were lost are absent from the result.
	LockLeases(ctx context.Context, leases []Lease) ([]Leased, time.Time, error)
	// LockExpiredLeases row-locks up to limit tasks whose lease expired,
	// skipping rows other transactions hold.
	LockExpiredLeases(ctx context.Context, limit int) ([]Leased, time.Time, error)
	// ClaimEnqueueKey reserves an enqueue idempotency key for id until
	// expiresAt. When a live reservation exists it returns that execution's
	// ID and false.
	ClaimEnqueueKey(ctx context.Context, key string, id ID, expiresAt time.Time) (ID, bool, error)
	// Apply writes changes.
	Apply(ctx context.Context, c Changes) error
}

// ListParams filters ListExecutions. Zero fields do not filter.
type ListParams struct {
	// Kind selects one kind of execution ("job", "workflow", …).
	Kind     string
	Statuses []string
	Types    []string
	Queue    string
	// After pages: only executions with a larger ID.
	After ID
	// Limit defaults to 100.
	Limit int
}

// QueueCount is the number of executions in one queue, type and status.
type QueueCount struct {
	Queue, Type, Status string
	Count               int64
}

// Store is the storage seam. Every SQL statement Chronicle runs is behind it.
type Store interface {
	IdempotencyKeys
	Operations
	ScheduleStore
	TimeTravel
	Observability
	WorkflowStore
	AdminReads
	// InTx runs fn in a transaction, committing when fn returns nil.
	InTx(ctx context.Context, fn func(Tx) error) error
	// GetExecution returns one execution's projection row, or ErrNotFound.
	GetExecution(ctx context.Context, id ID) (Execution, error)
	// History returns an execution's events in order, or ErrNotFound.
	History(ctx context.Context, id ID) ([]Event, error)
	// ListExecutions returns executions matching p, ordered by ID.
	ListExecutions(ctx context.Context, p ListParams) ([]Execution, error)
	// CountExecutions counts executions by queue, type and status.
	CountExecutions(ctx context.Context) ([]QueueCount, error)
	// ExtendLeases pushes the expiry of the leases still held to now()+d and
	// returns those that were lost.
	ExtendLeases(ctx context.Context, leases []Lease, d time.Duration) (lost []Lease, err error)
	// AcquireLeadership takes or renews the named leader lease for holder
	// until now()+ttl. It reports whether holder is the leader.
	AcquireLeadership(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLeadership gives up the named lease if holder has it.
	ReleaseLeadership(ctx context.Context, name, holder string) error
	// DueQueues returns the queues that have unleased tasks which became due
	// after since and are due now, and the database time.
	DueQueues(ctx context.Context, since time.Time) ([]string, time.Time, error)
	// ScanHistories calls fn with every execution's projection row (nil when
	// missing), tasks and full history (empty when missing), in ID order.
	ScanHistories(ctx context.Context, fn func(row *Execution, tasks []Task, history []Event) error) error
	// RebuildProjections replaces every projection row with what fold
	// derives from each history, in one transaction.
	RebuildProjections(ctx context.Context, fold func(history []Event) (*Execution, []Task, error)) (int, error)
	// Ping checks the database is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's connections.
	Close()
}
