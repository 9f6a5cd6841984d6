package eventlog

import (
	"context"
	"time"
)

// SearchParams selects executions for the admin UI and the HTTP API's
// lists, newest first. Zero fields do not filter.
type SearchParams struct {
	// Kind is "job" or "workflow".
	Kind     string
	Statuses []string
	// Types keeps these types; a type ending in ".*" keeps its family.
	Types  []string
	Queues []string
	// Text keeps executions whose last error or idempotency key (for a
	// workflow run, its workflow ID) contains it, ignoring case, or whose
	// ID is TextID.
	Text   string
	TextID *ID
	// CreatedFrom and CreatedTo bound the creation time: from inclusive,
	// to exclusive.
	CreatedFrom, CreatedTo time.Time
	// Before pages towards older executions: only IDs smaller than it.
	// After pages towards newer ones: only IDs larger than it. The result
	// is newest first either way.
	Before, After *ID
	// Limit defaults to 50.
	Limit int
}

// EventCountParams selects what CountEventsByTime counts.
type EventCountParams struct {
	// Types are the event types to count, such as AttemptSucceeded.
	Types []string
	// Window is how far back from the database's now() to count.
	Window time.Duration
	// Bucket is the width of each count, such as one minute; buckets are
	// aligned on multiples of it since the Unix epoch.
	Bucket time.Duration
}

// EventCount is how many events of one type were recorded in one bucket.
type EventCount struct {
	// Start is the beginning of the bucket.
	Start time.Time
	Type  string
	Count int64
}

// LeasedTask is a task some worker holds, with what it works on.
type LeasedTask struct {
	Task Task
	// Kind and Type of its execution; WorkflowID is a workflow run's
	// workflow ID.
	Kind, Type string
	WorkflowID string
}

// AdminReads are the store's reads for the admin UI and the HTTP API:
// listing executions newest first, the recent event rate and the leases
// workers hold. They never write.
type AdminReads interface {
	// SearchExecutions returns up to p.Limit executions matching p, newest
	// (largest ID) first.
	SearchExecutions(ctx context.Context, p SearchParams) ([]Execution, error)
	// CountEventsByTime counts the events of p.Types recorded within
	// p.Window by bucket and type, oldest bucket first, and returns the
	// database time the window ends at.
	CountEventsByTime(ctx context.Context, p EventCountParams) ([]EventCount, time.Time, error)
	// LeasedTasks returns the tasks whose lease is held, of execution id
	// only when id is not nil, ordered by lease expiry, and the database
	// time.
	LeasedTasks(ctx context.Context, id *ID) ([]LeasedTask, time.Time, error)
}
