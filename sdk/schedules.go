package sdk

import (
	"context"
	"fmt"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// Schedule is a schedule's state, derived from its history.
type Schedule = engine.Schedule

// ScheduleStatus is where a schedule stands: active, paused or deleted.
type ScheduleStatus = engine.ScheduleStatus

// Schedule statuses.
const (
	ScheduleStatusActive  = engine.ScheduleStatusActive
	ScheduleStatusPaused  = engine.ScheduleStatusPaused
	ScheduleStatusDeleted = engine.ScheduleStatusDeleted
)

// OverlapPolicy says what a tick does while the previous run's job is
// still pending, running or retrying.
type OverlapPolicy = engine.OverlapPolicy

// Overlap policies.
const (
	// OverlapSkip skips the tick. The default.
	OverlapSkip = engine.OverlapSkip
	// OverlapBufferOne runs the tick when the previous run finishes;
	// ticks meanwhile beyond that one are skipped.
	OverlapBufferOne = engine.OverlapBufferOne
	// OverlapAllowAll runs every tick.
	OverlapAllowAll = engine.OverlapAllowAll
)

// CatchUpPolicy says what happens to ticks missed while no leader ran.
type CatchUpPolicy = engine.CatchUpPolicy

// Catch-up policies.
const (
	// CatchUpSkip runs none of the missed ticks. The default.
	CatchUpSkip = engine.CatchUpSkip
	// CatchUpLatest runs the most recent missed tick once.
	CatchUpLatest = engine.CatchUpLatest
)

// ErrScheduleExists: a schedule that is not deleted already has the name.
var ErrScheduleExists = engine.ErrScheduleExists

// DefaultScheduleActor is the actor recorded for schedules created or
// changed in code when ScheduleOptions.Actor is empty.
const DefaultScheduleActor = "sdk"

// ScheduleOptions defines a schedule: when it fires and the job it
// enqueues at each tick.
type ScheduleOptions struct {
	// Name identifies the schedule, such as "nightly-report". Required.
	Name string
	// Cron is a standard 5-field expression ("0 3 * * *": 03:00 every
	// day), a 6-field one with leading seconds, or a descriptor (@hourly,
	// @daily, @weekly, @monthly, @yearly, @every 10m). Required. A
	// CRON_TZ=Zone prefix sets the time zone.
	Cron string
	// TimeZone is the IANA zone the expression is read in. Defaults to UTC.
	TimeZone string
	// JobType is the type of the job each tick enqueues. Required; it must
	// be registered with the client unless Config.AllowUnregisteredTypes.
	JobType string
	// Payload of each job, encoded as Enqueue encodes it. Defaults to {}.
	Payload any
	// Queue, Priority and RetryPolicy default to the job type's.
	Queue       string
	Priority    Priority
	RetryPolicy *RetryPolicy
	// Overlap defaults to OverlapSkip.
	Overlap OverlapPolicy
	// CatchUp defaults to CatchUpSkip.
	CatchUp CatchUpPolicy
	// CatchUpWindow is how late a tick may be seen and still run as usual;
	// older ticks count as missed. Defaults to 1 minute.
	CatchUpWindow time.Duration
	// Actor and Reason are recorded in the schedule's history. Actor
	// defaults to DefaultScheduleActor.
	Actor  string
	Reason string
}

// definition resolves the job template the way Enqueue resolves a job.
func (c *Client) scheduleDefinition(o ScheduleOptions) (engine.ScheduleDefinition, error) {
	var opts []EnqueueOption
	if o.Queue != "" {
		opts = append(opts, WithQueue(o.Queue))
	}
	if o.Priority != "" {
		opts = append(opts, WithPriority(o.Priority))
	}
	if o.RetryPolicy != nil {
		opts = append(opts, WithRetryPolicy(*o.RetryPolicy))
	}
	nj, err := c.prepareOne(JobRequest{Type: o.JobType, Payload: o.Payload, Options: opts})
	if err != nil {
		return engine.ScheduleDefinition{}, err
	}
	return engine.ScheduleDefinition{
		Cron: o.Cron, TimeZone: o.TimeZone, Overlap: o.Overlap, CatchUp: o.CatchUp, CatchUpWindow: o.CatchUpWindow,
		Job: engine.ScheduledJob{Type: nj.Type, Queue: nj.Queue, Priority: nj.Priority, Payload: nj.Payload, RetryPolicy: nj.RetryPolicy},
	}, nil
}

func (o ScheduleOptions) actor() string { return firstOf(o.Actor, DefaultScheduleActor) }

// CreateSchedule creates a schedule. An invalid cron expression, time
// zone or job fails with ErrInvalidInput and writes nothing; a live
// schedule with the same name fails with ErrScheduleExists.
func (c *Client) CreateSchedule(ctx context.Context, o ScheduleOptions) (Schedule, error) {
	if err := engine.ValidScheduleName(o.Name); err != nil {
		return Schedule{}, err
	}
	def, err := c.scheduleDefinition(o)
	if err != nil {
		return Schedule{}, err
	}
	return c.eng.CreateSchedule(ctx, o.Name, def, o.actor(), o.Reason)
}

// RegisterSchedule makes the schedule named o.Name match o: it creates it,
// or records ScheduleUpdated when its definition changed, or leaves it as
// it is. Call it on every start for schedules defined in code. A paused
// schedule stays paused.
func (c *Client) RegisterSchedule(ctx context.Context, o ScheduleOptions) (Schedule, error) {
	if err := engine.ValidScheduleName(o.Name); err != nil {
		return Schedule{}, err
	}
	def, err := c.scheduleDefinition(o)
	if err != nil {
		return Schedule{}, err
	}
	s, _, err := c.eng.PutSchedule(ctx, o.Name, def, o.actor(), o.Reason)
	return s, err
}

// GetSchedule returns a schedule by name, or by ID (deleted ones too).
func (c *Client) GetSchedule(ctx context.Context, ref string) (Schedule, error) {
	return c.eng.GetSchedule(ctx, ref)
}

// ListSchedules returns schedules by name; deleted ones only when
// includeDeleted is true.
func (c *Client) ListSchedules(ctx context.Context, includeDeleted bool) ([]Schedule, error) {
	return c.eng.ListSchedules(ctx, includeDeleted)
}

// ScheduleHistory returns every event of a schedule, oldest first: its
// creation, every fire, skip and miss, and every operator action.
func (c *Client) ScheduleHistory(ctx context.Context, ref string) ([]eventlog.Event, error) {
	return c.eng.ScheduleHistory(ctx, ref)
}

// PauseSchedule stops a schedule from firing until it is resumed; ticks
// meanwhile never run.
func (c *Client) PauseSchedule(ctx context.Context, ref, actor, reason string) (Schedule, error) {
	return c.eng.ExecuteSchedule(ctx, ref, engine.PauseSchedule{Actor: actor, Reason: reason})
}

// ResumeSchedule lets a paused schedule fire again from its next tick.
func (c *Client) ResumeSchedule(ctx context.Context, ref, actor, reason string) (Schedule, error) {
	return c.eng.ExecuteSchedule(ctx, ref, engine.ResumeSchedule{Actor: actor, Reason: reason})
}

// DeleteSchedule ends a schedule; its history is kept and its name may be
// used again.
func (c *Client) DeleteSchedule(ctx context.Context, ref, actor, reason string) (Schedule, error) {
	return c.eng.ExecuteSchedule(ctx, ref, engine.DeleteSchedule{Actor: actor, Reason: reason})
}

// TriggerSchedule enqueues the schedule's job now, outside its ticks, and
// returns the job's ID.
func (c *Client) TriggerSchedule(ctx context.Context, ref, actor, reason string) (eventlog.ID, error) {
	s, err := c.eng.ExecuteSchedule(ctx, ref, engine.TriggerSchedule{Actor: actor, Reason: reason})
	if err != nil {
		return eventlog.ID{}, err
	}
	return s.LastJobID, nil
}

// DefaultSchedules are the built-in schedules of the cleanup jobs (whose
// handlers RegisterCleanupJobs registers), each named after its job type,
// daily in UTC, with an empty payload so that the handlers' CleanupConfig
// decides the retention. Migrate (and so `chronicle migrate` and
// `chronicle worker`) creates each unless a schedule of that name ever
// existed, so that an operator's change or deletion sticks:
//
//	cleanup.dead_letters       03:00  resolved dead letters older than 90 days
//	cleanup.idempotency_keys   03:10  expired idempotency keys
//	cleanup.histories          03:20  finished executions past retention (30 days)
//	cleanup.workers            03:30  heartbeat rows of workers gone for a day
//
// A tick while the previous run is still going is skipped; after downtime
// the most recent missed run is run once.
var DefaultSchedules = []ScheduleOptions{
	defaultCleanup(JobTypeCleanupDeadLetters, "0 3 * * *"),
	defaultCleanup(JobTypeCleanupIdempotencyKeys, "10 3 * * *"),
	defaultCleanup(JobTypeCleanupHistories, "20 3 * * *"),
	defaultCleanup(JobTypeCleanupWorkers, "30 3 * * *"),
}

func defaultCleanup(jobType, cron string) ScheduleOptions {
	return ScheduleOptions{Name: jobType, Cron: cron, JobType: jobType, Overlap: OverlapSkip, CatchUp: CatchUpLatest,
		Actor: "chronicle", Reason: "built-in cleanup schedule"}
}

// CreateDefaultSchedules creates those of DefaultSchedules whose name no
// schedule has ever had, and returns the ones it created.
func (c *Client) CreateDefaultSchedules(ctx context.Context) ([]Schedule, error) {
	defs := make([]engine.NamedSchedule, 0, len(DefaultSchedules))
	for _, o := range DefaultSchedules {
		def, err := c.scheduleDefinition(o)
		if err != nil {
			return nil, err
		}
		defs = append(defs, engine.NamedSchedule{Name: o.Name, Definition: def})
	}
	created, err := c.eng.CreateSchedules(ctx, defs, "chronicle", "built-in cleanup schedule")
	if err != nil {
		return created, fmt.Errorf("create the built-in cleanup schedules: %w", err)
	}
	return created, nil
}
