package eventlog

import (
	"context"
	"encoding/json"
	"time"
)

// WorkerHeartbeat is a worker process's row in worker_heartbeats: who it
// is, what it works, and when it was last seen alive.
type WorkerHeartbeat struct {
	WorkerID string
	Host     string
	PID      int
	// Queues are the names of the queues the worker claims from.
	Queues  []string
	Version string
	// StartedAt is the database time of the worker's first heartbeat.
	StartedAt time.Time
	// LastSeenAt is the database time of its latest heartbeat.
	LastSeenAt time.Time
	// JobsRunning is how many attempts it was running at that heartbeat.
	JobsRunning int
}

// QueueDepth counts one queue's work for gauges and health checks. The
// counts come from the ready queue (tasks) and from the executions whose
// status is retrying or dead-lettered, both served by indexes: neither
// grows with the number of finished jobs.
type QueueDepth struct {
	Queue string
	// Pending tasks wait for a worker and are due now.
	Pending int64
	// Scheduled tasks wait for a worker and are due later (delayed jobs
	// and scheduled retries).
	Scheduled int64
	// Processing tasks are leased to a worker.
	Processing int64
	// Retrying executions failed their last attempt and wait for a retry.
	Retrying int64
	// DeadLettered executions ran out of attempts and wait for an operator.
	DeadLettered int64
	// NewestDeadLetterAt is when the most recent of them was dead-lettered;
	// nil when there is none.
	NewestDeadLetterAt *time.Time
}

// Observability is what metrics, heartbeats and health checks read and
// write.
type Observability interface {
	// BeatWorker inserts hb's row, or refreshes it, setting last_seen_at to
	// the database's now(); started_at keeps the value of the first beat.
	BeatWorker(ctx context.Context, hb WorkerHeartbeat) error
	// RemoveWorker deletes a worker's row; a missing row is not an error.
	RemoveWorker(ctx context.Context, workerID string) error
	// ListWorkers returns every worker row, oldest heartbeat first, and the
	// database time to measure their age against.
	ListWorkers(ctx context.Context) ([]WorkerHeartbeat, time.Time, error)
	// QueueDepths counts the work of every queue that has any, and returns
	// the database time of the count.
	QueueDepths(ctx context.Context) ([]QueueDepth, time.Time, error)
}

// FirstEventFields reads fields of the event that started each execution
// (event 1), inside a transaction.
type FirstEventFields interface {
	// FirstEventFields returns, per execution in ids, the named top-level
	// fields of event 1's data that are present. Executions without event 1
	// are absent from the result. Only the named fields leave the database,
	// however large the rest of the event is.
	FirstEventFields(ctx context.Context, ids []ID, fields []string) (map[ID]map[string]json.RawMessage, error)
}
