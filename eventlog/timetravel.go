package eventlog

import (
	"context"
	"time"
)

// LastEventParams selects what CountLastEvents counts.
type LastEventParams struct {
	// At is the moment to look back from: only events recorded at or
	// before it count.
	At time.Time
	// Kind of executions to count, such as "job".
	Kind string
	// Types are the event types that count; the others are passed over.
	Types []string
}

// LastEventCount is how many executions of one queue and type had an event
// of EventType as their last counted event at the moment asked about.
type LastEventCount struct {
	Queue, Type, EventType string
	Count                  int64
}

// HistoryScanParams selects histories for ScanHistoriesOf.
type HistoryScanParams struct {
	// Kind and Type of the executions, such as "job" and "email.send".
	Kind, Type string
	// Within keeps executions created at most this long before the
	// database's now(). Zero keeps all.
	Within time.Duration
}

// TimeTravel are the store's reads of the past: they look at the events
// as they stood at an earlier moment, and never write.
type TimeTravel interface {
	// CountLastEvents finds, for every execution of p.Kind that existed at
	// p.At and had not finished by then, its last event of p.Types
	// recorded at or before p.At, and counts them by queue, type and that
	// event's type.
	CountLastEvents(ctx context.Context, p LastEventParams) ([]LastEventCount, error)
	// CountStatuses counts the executions of kind in the given statuses by
	// queue, type and status, from the projection: the present moment.
	CountStatuses(ctx context.Context, kind string, statuses []string) ([]QueueCount, error)
	// ScanHistoriesOf calls fn with the full history of every execution
	// matching p, in ID order.
	ScanHistoriesOf(ctx context.Context, p HistoryScanParams, fn func(history []Event) error) error
}
