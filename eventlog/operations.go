package eventlog

import (
	"context"
	"time"
)

// ExecutionFilter selects executions for operator work: listing dead
// letters, bulk retries and resolves. Zero fields do not filter. Ages are
// measured against the database's now().
type ExecutionFilter struct {
	Statuses []string
	Types    []string
	Queues   []string
	// ErrorContains keeps executions whose last error contains it, ignoring
	// case.
	ErrorContains string
	// MinAge keeps executions whose last change (updated_at: for a dead
	// letter, when it was dead-lettered) is at least this old.
	MinAge time.Duration
	// MaxAge keeps executions whose last change is at most this old.
	MaxAge time.Duration
	// After pages: only executions with a larger ID.
	After ID
	// Limit defaults to 100.
	Limit int
}

// PurgeParams selects finished executions to delete with their histories.
type PurgeParams struct {
	// Kinds to purge, such as "job". Required.
	Kinds []string
	// Statuses to purge. Required: the caller names final statuses only.
	Statuses []string
	// OlderThan keeps executions that finished less than this long ago
	// (database time).
	OlderThan time.Duration
	// Limit caps the executions deleted by one call (one transaction).
	// Defaults to 1000.
	Limit int
}

// PurgeResult counts what a purge deleted.
type PurgeResult struct {
	Executions int64
	Events     int64
}

// AuditParams selects operator events: events whose data names an actor.
type AuditParams struct {
	// Within keeps events recorded at most this long ago (database time).
	// Zero means no lower bound.
	Within time.Duration
	// Types keeps events of these types; empty means every type.
	Types []string
	// Actor keeps events of this actor; empty means every actor.
	Actor string
	// Limit defaults to 1000.
	Limit int
}

// AuditEntry is one operator event with what it acted on.
type AuditEntry struct {
	Event Event
	// Kind, ExecutionType and Queue describe the execution; empty when its
	// projection row is gone.
	Kind          string
	ExecutionType string
	Queue         string
}

// Operations are the store's queries and deletions for operators:
// filtering executions, retention and the audit trail.
type Operations interface {
	// FindExecutions returns executions matching f, ordered by ID.
	FindExecutions(ctx context.Context, f ExecutionFilter) ([]Execution, error)
	// CountMatching counts executions matching f, ignoring After and Limit.
	CountMatching(ctx context.Context, f ExecutionFilter) (int64, error)
	// PurgeExecutions deletes up to p.Limit finished executions matching p
	// in one transaction, with their events, tasks and enqueue keys. Deleting
	// whole histories is the only deletion of events there is: explicit
	// retention. Call it until it deletes fewer than p.Limit.
	PurgeExecutions(ctx context.Context, p PurgeParams) (PurgeResult, error)
	// DeleteStaleWorkers deletes worker heartbeat rows last seen more than
	// olderThan ago and returns how many it deleted.
	DeleteStaleWorkers(ctx context.Context, olderThan time.Duration) (int64, error)
	// AuditEvents returns operator events matching p, oldest first.
	AuditEvents(ctx context.Context, p AuditParams) ([]AuditEntry, error)
}
