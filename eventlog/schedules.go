package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// ErrScheduleNameTaken is returned when a schedule row would give a second
// schedule that is not deleted the name of another.
var ErrScheduleNameTaken = errors.New("schedule name taken")

// ScheduleRow is the projection of one schedule: what folding its history
// gives, kept in its own table so that the leader finds due schedules
// without replaying, and so that schedules stay out of the job tables.
type ScheduleRow struct {
	ID     ID
	Name   string
	Status string // "active", "paused" or "deleted"
	// Definition is the schedule's definition as its history records it.
	Definition json.RawMessage
	// CursorTick: every tick at or before it has been decided.
	CursorTick time.Time
	// NextFireAt is the first tick after CursorTick; nil unless active.
	NextFireAt *time.Time
	// BufferedTick is a tick held back until the running job finishes.
	BufferedTick  *time.Time
	LastFiredTick *time.Time
	// LastJobID is the job the schedule enqueued last; zero when none.
	LastJobID ID
	// Runs counts the jobs the schedule enqueued.
	Runs      int64
	CreatedAt time.Time
	UpdatedAt time.Time
	LastSeq   int64
	LastHash  []byte
}

// ScheduleStore reads and rebuilds the schedule projection.
type ScheduleStore interface {
	// GetSchedule returns a schedule's row by ID, deleted or not, or
	// ErrNotFound.
	GetSchedule(ctx context.Context, id ID) (ScheduleRow, error)
	// GetScheduleByName returns the schedule named name that is not
	// deleted, or ErrNotFound.
	GetScheduleByName(ctx context.Context, name string) (ScheduleRow, error)
	// ListSchedules returns schedules ordered by name, then ID; deleted ones
	// only when includeDeleted is true.
	ListSchedules(ctx context.Context, includeDeleted bool) ([]ScheduleRow, error)
	// ScheduleNamesUsed returns those of names that any schedule has had,
	// deleted ones included.
	ScheduleNamesUsed(ctx context.Context, names []string) ([]string, error)
	// RebuildSchedules replaces every schedule row with what fold derives
	// from each history whose first event has type firstEventType, in one
	// transaction, and returns how many rows it wrote.
	RebuildSchedules(ctx context.Context, firstEventType string, fold func(history []Event) (*ScheduleRow, error)) (int, error)
}

// ScheduleTx is what a transaction offers schedules.
type ScheduleTx interface {
	// LockDueSchedules row-locks up to limit active schedules whose
	// next_fire_at has come or that hold a buffered tick, skipping rows
	// other transactions hold, and returns them with the database time.
	LockDueSchedules(ctx context.Context, limit int) ([]ScheduleRow, time.Time, error)
	// LockSchedule row-locks one schedule, waiting for other holders, or
	// returns ErrNotFound.
	LockSchedule(ctx context.Context, id ID) (ScheduleRow, error)
	// ExecutionStatuses returns the status of each of ids that has a
	// projection row, without locking it.
	ExecutionStatuses(ctx context.Context, ids []ID) (map[ID]string, error)
	// PutSchedules inserts or overwrites schedule rows. A row that would
	// give a live schedule a taken name fails with ErrScheduleNameTaken.
	PutSchedules(ctx context.Context, rows []ScheduleRow) error
}
