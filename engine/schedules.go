package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// ErrScheduleExists: a schedule that is not deleted already has the name.
var ErrScheduleExists = errors.New("schedule exists")

// fireBatch is how many due schedules one transaction fires.
const fireBatch = 100

// NamedSchedule is a schedule definition with its name, for CreateSchedules.
type NamedSchedule struct {
	Name       string
	Definition ScheduleDefinition
}

// CreateSchedule records a new schedule. The definition is normalized (see
// ScheduleDefinition.Normalize); nothing is written when it is invalid. A
// live schedule with the same name fails with ErrScheduleExists.
func (e *Engine) CreateSchedule(ctx context.Context, name string, def ScheduleDefinition, actor, reason string) (Schedule, error) {
	var s Schedule
	err := e.store.InTx(ctx, func(tx eventlog.Tx) error {
		now, err := tx.Now(ctx)
		if err != nil {
			return err
		}
		s, err = createSchedule(ctx, tx, now, name, def, actor, reason)
		return err
	})
	return s, err
}

func createSchedule(ctx context.Context, tx eventlog.Tx, now time.Time, name string, def ScheduleDefinition, actor, reason string) (Schedule, error) {
	def, err := def.Normalize(now)
	if err != nil {
		return Schedule{}, fmt.Errorf("schedule %s: %w", name, err)
	}
	s := Schedule{ID: eventlog.NewID(now)}
	decisions, err := DecideSchedule(s, CreateSchedule{Name: name, Definition: def, Actor: actor, Reason: reason}, ScheduleEnv{Now: now})
	if err != nil {
		return s, err
	}
	s, events, err := RecordSchedule(s, decisions, now)
	if err != nil {
		return s, err
	}
	if err := tx.Apply(ctx, eventlog.Changes{Events: events}); err != nil {
		return s, err
	}
	if err := tx.PutSchedules(ctx, []eventlog.ScheduleRow{s.Row()}); err != nil {
		if errors.Is(err, eventlog.ErrScheduleNameTaken) {
			return s, fmt.Errorf("schedule %s: %w; delete it first, or update it", name, ErrScheduleExists)
		}
		return s, err
	}
	return s, nil
}

// PutSchedule makes the live schedule named name have def: it creates the
// schedule, or records ScheduleUpdated when its definition differs, or
// changes nothing. It does not resume a paused schedule. It reports
// whether anything was written. Schedules registered in code use it on
// every start.
func (e *Engine) PutSchedule(ctx context.Context, name string, def ScheduleDefinition, actor, reason string) (Schedule, bool, error) {
	for range 3 {
		row, err := e.store.GetScheduleByName(ctx, name)
		if errors.Is(err, eventlog.ErrNotFound) {
			s, err := e.CreateSchedule(ctx, name, def, actor, reason)
			if errors.Is(err, ErrScheduleExists) {
				continue // created concurrently: update that one
			}
			return s, err == nil, err
		}
		if err != nil {
			return Schedule{}, false, err
		}
		var changed bool
		s, err := e.executeSchedule(ctx, row.ID, func(now time.Time) (ScheduleCommand, error) {
			norm, err := def.Normalize(now)
			if err != nil {
				return nil, fmt.Errorf("schedule %s: %w", name, err)
			}
			return UpdateSchedule{Definition: norm, Actor: actor, Reason: reason}, nil
		}, &changed)
		if errors.Is(err, ErrInvalidState) {
			continue // deleted concurrently: create it again
		}
		return s, changed, err
	}
	return Schedule{}, false, fmt.Errorf("schedule %s changed concurrently three times; try again", name)
}

// CreateSchedules creates each schedule whose name no schedule has ever
// had, so that a schedule an operator deleted stays deleted. It returns
// those it created. The built-in cleanup schedules are created with it.
func (e *Engine) CreateSchedules(ctx context.Context, defs []NamedSchedule, actor, reason string) ([]Schedule, error) {
	names := make([]string, len(defs))
	for i, d := range defs {
		names[i] = d.Name
	}
	used, err := e.store.ScheduleNamesUsed(ctx, names)
	if err != nil {
		return nil, err
	}
	taken := make(map[string]bool, len(used))
	for _, n := range used {
		taken[n] = true
	}
	var out []Schedule
	for _, d := range defs {
		if taken[d.Name] {
			continue
		}
		s, err := e.CreateSchedule(ctx, d.Name, d.Definition, actor, reason)
		if errors.Is(err, ErrScheduleExists) {
			continue // another process created it first
		}
		if err != nil {
			return out, err
		}
		out = append(out, s)
	}
	return out, nil
}

// ScheduleRef names a schedule by name or, failing that, by ID.
func (e *Engine) resolveSchedule(ctx context.Context, ref string) (eventlog.ScheduleRow, error) {
	row, err := e.store.GetScheduleByName(ctx, ref)
	if err == nil || !errors.Is(err, eventlog.ErrNotFound) {
		return row, err
	}
	if id, perr := eventlog.ParseID(ref); perr == nil {
		return e.store.GetSchedule(ctx, id)
	}
	return row, fmt.Errorf("schedule %q: %w (chronicle schedules list shows every schedule)", ref, eventlog.ErrNotFound)
}

// GetSchedule returns a schedule's state by name, or by ID (deleted ones
// too).
func (e *Engine) GetSchedule(ctx context.Context, ref string) (Schedule, error) {
	row, err := e.resolveSchedule(ctx, ref)
	if err != nil {
		return Schedule{}, err
	}
	return ScheduleFromRow(row)
}

// ListSchedules returns schedules ordered by name; deleted ones only when
// includeDeleted is true.
func (e *Engine) ListSchedules(ctx context.Context, includeDeleted bool) ([]Schedule, error) {
	rows, err := e.store.ListSchedules(ctx, includeDeleted)
	if err != nil {
		return nil, err
	}
	out := make([]Schedule, 0, len(rows))
	for _, r := range rows {
		s, err := ScheduleFromRow(r)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// ScheduleHistory returns every event of a schedule, oldest first.
func (e *Engine) ScheduleHistory(ctx context.Context, ref string) ([]eventlog.Event, error) {
	row, err := e.resolveSchedule(ctx, ref)
	if err != nil {
		return nil, err
	}
	return e.store.History(ctx, row.ID)
}

// ExecuteSchedule applies an operator command (pause, resume, delete,
// trigger) to the schedule named ref (or with that ID) and returns its
// new state. A trigger enqueues the job in the same transaction; its ID
// is in the schedule's LastJobID.
func (e *Engine) ExecuteSchedule(ctx context.Context, ref string, cmd ScheduleCommand) (Schedule, error) {
	row, err := e.resolveSchedule(ctx, ref)
	if err != nil {
		return Schedule{}, err
	}
	return e.executeSchedule(ctx, row.ID, func(time.Time) (ScheduleCommand, error) { return cmd, nil }, nil)
}

// executeSchedule locks a schedule, decides the command that cmdAt returns
// for the database time, and writes the events, the row and any job.
func (e *Engine) executeSchedule(ctx context.Context, id eventlog.ID, cmdAt func(time.Time) (ScheduleCommand, error), changed *bool) (Schedule, error) {
	var s Schedule
	var enq []Enqueued
	err := e.store.InTx(ctx, func(tx eventlog.Tx) error {
		row, err := tx.LockSchedule(ctx, id)
		if err != nil {
			return err
		}
		now, err := tx.Now(ctx)
		if err != nil {
			return err
		}
		if s, err = ScheduleFromRow(row); err != nil {
			return err
		}
		cmd, err := cmdAt(now)
		if err != nil {
			return err
		}
		decisions, err := DecideSchedule(s, cmd, ScheduleEnv{Now: now})
		if err != nil || len(decisions) == 0 {
			return err
		}
		before := s
		var events []eventlog.Event
		if s, events, err = RecordSchedule(s, decisions, now); err != nil {
			return err
		}
		if enq, err = e.enqueueRuns(ctx, tx, before, decisions); err != nil {
			return err
		}
		if err := tx.Apply(ctx, eventlog.Changes{Events: events}); err != nil {
			return err
		}
		if changed != nil {
			*changed = true
		}
		return tx.PutSchedules(ctx, []eventlog.ScheduleRow{s.Row()})
	})
	if err != nil {
		return s, err
	}
	e.wakeDue(enq)
	return s, nil
}

// enqueueRuns enqueues, in tx, the job of every run that decisions record.
func (e *Engine) enqueueRuns(ctx context.Context, tx eventlog.Tx, s Schedule, decisions []Decision) ([]Enqueued, error) {
	return e.enqueueJobs(ctx, tx, runJobs(s, decisions))
}

// scheduledJob is a job a schedule's run enqueues, with its schedule's
// name for errors.
type scheduledJob struct {
	schedule string
	job      NewJob
}

// runJobs returns the job of every run that decisions record. A fired
// tick's job carries the enqueue idempotency key schedule:<id>:<tick>, a
// third guard besides the schedule's row lock and its history's sequence
// numbers: a tick can never enqueue two jobs.
func runJobs(s Schedule, decisions []Decision) []scheduledJob {
	var out []scheduledJob
	for _, d := range decisions {
		j := s.Definition.Job
		nj := NewJob{Type: j.Type, Queue: j.Queue, Priority: j.Priority, Payload: j.Payload, RetryPolicy: j.RetryPolicy}
		switch data := d.Data.(type) {
		case ScheduleFired:
			nj.ID = data.JobID
			nj.IdempotencyKey, nj.IdempotencyTTL = ScheduleTickKey(s.ID, data.Tick), ScheduleKeyTTL
		case ScheduleTriggered:
			nj.ID = data.JobID
		default:
			continue
		}
		out = append(out, scheduledJob{schedule: s.Name, job: nj})
	}
	return out
}

// enqueueJobs enqueues the jobs of runs in tx, in one batch. A tick whose
// key already names a job means the schedule's row is behind its history:
// the transaction is refused rather than recording a run twice.
func (e *Engine) enqueueJobs(ctx context.Context, tx eventlog.Tx, runs []scheduledJob) ([]Enqueued, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	jobs := make([]NewJob, len(runs))
	for i, r := range runs {
		jobs[i] = r.job
	}
	out, err := e.Enqueue(ctx, tx, jobs)
	if err != nil {
		return nil, fmt.Errorf("enqueue the runs of schedule %s: %w", runs[0].schedule, err)
	}
	for i, o := range out {
		if o.Existing {
			return nil, fmt.Errorf("schedule %s: tick already enqueued as job %s (key %s): the schedule's projection is behind its history; run chronicle verify",
				runs[i].schedule, o.ID, jobs[i].IdempotencyKey)
		}
	}
	return out, nil
}

// ScheduleTickKey is the enqueue idempotency key of a schedule's tick.
func ScheduleTickKey(id eventlog.ID, tick time.Time) string {
	return fmt.Sprintf("schedule:%s:%s", id, tick.UTC().Format(time.RFC3339Nano))
}

// fireHookKey carries a function that FireSchedules calls inside its
// transaction after writing and before committing; tests use it to stop a
// leader mid-tick.
type fireHookKey struct{}

// FireSchedules decides every due tick of up to limit schedules in one
// transaction: each fired tick appends ScheduleFired at the schedule's
// next seq and enqueues its job in that same transaction. Schedules
// another leader is firing are skipped. It returns how many jobs it
// enqueued.
func (e *Engine) FireSchedules(ctx context.Context, limit int) (int, error) {
	_, n, err := e.fireSchedules(ctx, limit)
	return n, err
}

// fireSchedules is FireSchedules that also returns how many due schedules
// it locked.
func (e *Engine) fireSchedules(ctx context.Context, limit int) (int, int, error) {
	var enq []Enqueued
	locked := 0
	err := e.store.InTx(ctx, func(tx eventlog.Tx) error {
		enq = enq[:0]
		rows, now, err := tx.LockDueSchedules(ctx, limit)
		locked = len(rows)
		if err != nil || len(rows) == 0 {
			return err
		}
		states := make([]Schedule, 0, len(rows))
		var lastJobs []eventlog.ID
		for _, r := range rows {
			s, err := ScheduleFromRow(r)
			if err != nil {
				e.log.Error("schedule row cannot be read; skipping it (run chronicle verify)", "schedule_id", r.ID.String(), "err", err)
				continue
			}
			states = append(states, s)
			if s.LastJobID != (eventlog.ID{}) {
				lastJobs = append(lastJobs, s.LastJobID)
			}
		}
		statuses, err := tx.ExecutionStatuses(ctx, lastJobs)
		if err != nil {
			return err
		}
		var c eventlog.Changes
		var put []eventlog.ScheduleRow
		var runs []scheduledJob
		for _, s := range states {
			env := ScheduleEnv{Now: now, LastRunActive: runActive(statuses[s.LastJobID])}
			decisions, err := DecideSchedule(s, FireDue{}, env)
			if err != nil {
				return err
			}
			if len(decisions) == 0 {
				continue
			}
			after, events, err := RecordSchedule(s, decisions, now)
			if err != nil {
				return err
			}
			runs = append(runs, runJobs(s, decisions)...)
			c.Events = append(c.Events, events...)
			put = append(put, after.Row())
		}
		if enq, err = e.enqueueJobs(ctx, tx, runs); err != nil {
			return err
		}
		if err := tx.Apply(ctx, c); err != nil {
			return err
		}
		if err := tx.PutSchedules(ctx, put); err != nil {
			return err
		}
		if hook, ok := ctx.Value(fireHookKey{}).(func(context.Context, eventlog.Tx) error); ok && len(put) > 0 {
			return hook(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("fire schedules: %w", err)
	}
	e.wakeDue(enq)
	return locked, len(enq), nil
}

// runActive reports whether a job in status is still pending, running or
// retrying: the overlap policy waits for it.
func runActive(status string) bool {
	switch Status(status) {
	case StatusPending, StatusRunning, StatusRetrying:
		return true
	}
	return false
}
