package engine

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// ScheduleKind is the kind of a schedule's execution: a schedule has a
// history of its own, like a job, but its projection row lives in the
// schedules table.
const ScheduleKind = "schedule"

// Schedule event types. docs/events.md describes each with its fields.
const (
	EventScheduleCreated   = "ScheduleCreated"
	EventScheduleUpdated   = "ScheduleUpdated"
	EventSchedulePaused    = "SchedulePaused"
	EventScheduleResumed   = "ScheduleResumed"
	EventScheduleFired     = "ScheduleFired"
	EventScheduleSkipped   = "ScheduleSkipped"
	EventScheduleBuffered  = "ScheduleBuffered"
	EventScheduleMissed    = "ScheduleMissed"
	EventScheduleTriggered = "ScheduleTriggered"
	EventScheduleDeleted   = "ScheduleDeleted"
)

// ScheduleCreated starts a schedule's history.
type ScheduleCreated struct {
	Name       string             `json:"name"`
	Definition ScheduleDefinition `json:"definition"`
	Actor      string             `json:"actor"`
	Reason     string             `json:"reason,omitempty"`
}

// ScheduleUpdated replaces a schedule's definition; ticks are counted from
// the update on.
type ScheduleUpdated struct {
	Definition ScheduleDefinition `json:"definition"`
	Actor      string             `json:"actor"`
	Reason     string             `json:"reason,omitempty"`
}

// SchedulePaused stops a schedule from firing; ticks while paused never run.
type SchedulePaused struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
}

// ScheduleResumed lets a paused schedule fire again from its next tick.
type ScheduleResumed struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
}

// ScheduleFired records that a tick enqueued a job, in the same transaction
// as the job's JobEnqueued.
type ScheduleFired struct {
	// Tick is the time the expression named, not when the leader saw it.
	Tick  time.Time   `json:"tick"`
	JobID eventlog.ID `json:"job_id"`
	// Buffered is set when the tick was held back by buffer_one.
	Buffered bool `json:"buffered,omitempty"`
	// Late is set when the tick was missed and run by the latest catch-up policy.
	Late bool `json:"late,omitempty"`
}

// ScheduleSkipped records a tick that did not run because of the overlap
// policy.
type ScheduleSkipped struct {
	Tick         time.Time   `json:"tick"`
	Reason       string      `json:"reason"`
	RunningJobID eventlog.ID `json:"running_job_id"`
}

// ScheduleBuffered records a tick held back by buffer_one until the
// running job finishes.
type ScheduleBuffered struct {
	Tick         time.Time   `json:"tick"`
	RunningJobID eventlog.ID `json:"running_job_id"`
}

// ScheduleMissed records ticks that passed while no leader ran, beyond
// the catch-up window, and did not run.
type ScheduleMissed struct {
	FirstTick time.Time `json:"first_tick"`
	LastTick  time.Time `json:"last_tick"`
	Count     int       `json:"count"`
}

// ScheduleTriggered records an operator running the schedule's job now,
// outside its ticks.
type ScheduleTriggered struct {
	JobID  eventlog.ID `json:"job_id"`
	Actor  string      `json:"actor"`
	Reason string      `json:"reason,omitempty"`
}

// ScheduleDeleted ends a schedule. Final; its name may be used again.
type ScheduleDeleted struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
}

// ScheduleStatus is where a schedule stands.
type ScheduleStatus string

// Schedule statuses.
const (
	ScheduleStatusActive  ScheduleStatus = "active"
	ScheduleStatusPaused  ScheduleStatus = "paused"
	ScheduleStatusDeleted ScheduleStatus = "deleted"
)

// Schedule is a schedule's state: the fold of its history.
type Schedule struct {
	ID         eventlog.ID
	Name       string
	Definition ScheduleDefinition
	Status     ScheduleStatus
	// Cursor: every tick at or before it has been decided (fired, skipped,
	// buffered or missed). It starts at the creation and moves past pauses.
	Cursor time.Time
	// NextFireAt is the first tick after Cursor; nil unless active (or when
	// the expression fires no more).
	NextFireAt *time.Time
	// Buffered is a tick held back by buffer_one.
	Buffered      *time.Time
	LastFiredTick *time.Time
	// LastJobID is the job of the latest run (fired or triggered); zero
	// when none. The overlap policy looks at its status.
	LastJobID eventlog.ID
	// Runs counts the jobs the schedule enqueued.
	Runs      int64
	CreatedAt time.Time
	UpdatedAt time.Time
	Seq       int64
	LastHash  []byte

	sched cron.Schedule
}

// next returns the first tick after t, or the zero time when there is none.
func (s *Schedule) next(t time.Time) time.Time {
	if s.sched == nil {
		return time.Time{}
	}
	return s.sched.Next(t).UTC()
}

// ValidScheduleName checks a schedule's name: 1 to 200 characters of
// letters, digits, '_', '-', '.' and ':', such as cleanup.dead_letters or
// nightly-report.
func ValidScheduleName(name string) error {
	if name == "" || len(name) > 200 {
		return &InputError{Field: "schedule name", Reason: fmt.Sprintf("%q must be 1 to 200 characters", name)}
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-.:", r)) {
			return &InputError{Field: "schedule name", Reason: fmt.Sprintf("%q contains %q; use letters, digits, '_', '-', '.' and ':'", name, r)}
		}
	}
	if _, err := eventlog.ParseID(name); err == nil {
		return &InputError{Field: "schedule name", Reason: fmt.Sprintf("%q reads as a schedule ID; choose a name that is not a ULID", name)}
	}
	return nil
}

// EvolveSchedule applies one event to a schedule's state. It is a pure
// function: folding a history from its first event gives the current state.
func EvolveSchedule(s Schedule, e eventlog.Event) (Schedule, error) {
	if e.Seq != s.Seq+1 {
		return s, fmt.Errorf("event %d of schedule %s follows event %d: the history has a gap", e.Seq, e.ExecutionID, s.Seq)
	}
	at := e.RecordedAt
	advance := func(t time.Time) {
		if t.After(s.Cursor) {
			s.Cursor = t
		}
	}
	switch e.Type {
	case EventScheduleCreated:
		var d ScheduleCreated
		if err := e.Decode(&d); err != nil {
			return s, err
		}
		s = Schedule{ID: e.ExecutionID, Name: d.Name, Status: ScheduleStatusActive, Cursor: at, CreatedAt: at}
		if err := s.define(d.Definition); err != nil {
			return s, fmt.Errorf("event %d of schedule %s: %w", e.Seq, e.ExecutionID, err)
		}
	case EventScheduleUpdated:
		var d ScheduleUpdated
		if err := e.Decode(&d); err != nil {
			return s, err
		}
		if err := s.define(d.Definition); err != nil {
			return s, fmt.Errorf("event %d of schedule %s: %w", e.Seq, e.ExecutionID, err)
		}
		if s.Definition.Overlap != OverlapBufferOne {
			s.Buffered = nil
		}
		advance(at)
	case EventSchedulePaused:
		s.Status = ScheduleStatusPaused
	case EventScheduleResumed:
		s.Status = ScheduleStatusActive
		advance(at)
	case EventScheduleFired:
		var d ScheduleFired
		if err := e.Decode(&d); err != nil {
			return s, err
		}
		tick := d.Tick
		s.LastJobID, s.LastFiredTick = d.JobID, &tick
		s.Runs++
		if d.Buffered {
			s.Buffered = nil
		}
		advance(tick)
	case EventScheduleSkipped:
		var d ScheduleSkipped
		if err := e.Decode(&d); err != nil {
			return s, err
		}
		advance(d.Tick)
	case EventScheduleBuffered:
		var d ScheduleBuffered
		if err := e.Decode(&d); err != nil {
			return s, err
		}
		tick := d.Tick
		s.Buffered = &tick
		advance(tick)
	case EventScheduleMissed:
		var d ScheduleMissed
		if err := e.Decode(&d); err != nil {
			return s, err
		}
		advance(d.LastTick)
	case EventScheduleTriggered:
		var d ScheduleTriggered
		if err := e.Decode(&d); err != nil {
			return s, err
		}
		s.LastJobID = d.JobID
		s.Runs++
	case EventScheduleDeleted:
		s.Status, s.Buffered = ScheduleStatusDeleted, nil
	default:
		return s, fmt.Errorf("event %d of schedule %s has unknown type %q", e.Seq, e.ExecutionID, e.Type)
	}
	s.NextFireAt = nil
	if s.Status == ScheduleStatusActive {
		if next := s.next(s.Cursor); !next.IsZero() {
			s.NextFireAt = &next
		}
	}
	s.Seq, s.LastHash, s.UpdatedAt = e.Seq, e.Hash, at
	return s, nil
}

// define sets the definition and compiles its expression.
func (s *Schedule) define(d ScheduleDefinition) error {
	sched, err := d.compile()
	if err != nil {
		return err
	}
	s.Definition, s.sched = d, sched
	return nil
}

// FoldSchedule replays a whole schedule history.
func FoldSchedule(history []eventlog.Event) (Schedule, error) {
	var s Schedule
	for _, e := range history {
		var err error
		if s, err = EvolveSchedule(s, e); err != nil {
			return s, err
		}
	}
	if s.Seq == 0 {
		return s, fmt.Errorf("empty history: %w", eventlog.ErrNotFound)
	}
	return s, nil
}

// IsScheduleHistory reports whether a history is a schedule's.
func IsScheduleHistory(history []eventlog.Event) bool {
	return len(history) > 0 && history[0].Type == EventScheduleCreated
}

// Row is the schedule's projection row.
func (s *Schedule) Row() eventlog.ScheduleRow {
	def, _ := json.Marshal(s.Definition)
	if c, err := eventlog.Canonicalize(def); err == nil {
		def = c
	}
	return eventlog.ScheduleRow{ID: s.ID, Name: s.Name, Status: string(s.Status), Definition: def,
		CursorTick: s.Cursor, NextFireAt: s.NextFireAt, BufferedTick: s.Buffered, LastFiredTick: s.LastFiredTick,
		LastJobID: s.LastJobID, Runs: s.Runs, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, LastSeq: s.Seq, LastHash: s.LastHash}
}

// ScheduleFromRow reads a schedule's state from its projection row.
func ScheduleFromRow(r eventlog.ScheduleRow) (Schedule, error) {
	s := Schedule{ID: r.ID, Name: r.Name, Status: ScheduleStatus(r.Status), Cursor: r.CursorTick, NextFireAt: r.NextFireAt,
		Buffered: r.BufferedTick, LastFiredTick: r.LastFiredTick, LastJobID: r.LastJobID, Runs: r.Runs,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Seq: r.LastSeq, LastHash: r.LastHash}
	var d ScheduleDefinition
	if err := json.Unmarshal(r.Definition, &d); err != nil {
		return s, fmt.Errorf("schedule %s: definition in projection: %w", r.ID, err)
	}
	if err := s.define(d); err != nil {
		return s, fmt.Errorf("schedule %s: %w", r.ID, err)
	}
	return s, nil
}

// ScheduleCommand is a request to change a schedule.
type ScheduleCommand interface{ scheduleCommand() string }

// CreateSchedule starts a schedule. Its definition must be normalized.
type CreateSchedule struct {
	Name       string
	Definition ScheduleDefinition
	Actor      string
	Reason     string
}

// UpdateSchedule replaces a schedule's definition; an identical one
// changes nothing.
type UpdateSchedule struct {
	Definition ScheduleDefinition
	Actor      string
	Reason     string
}

// PauseSchedule stops an active schedule from firing.
type PauseSchedule struct{ Actor, Reason string }

// ResumeSchedule lets a paused schedule fire again from its next tick.
type ResumeSchedule struct{ Actor, Reason string }

// DeleteSchedule ends a schedule.
type DeleteSchedule struct{ Actor, Reason string }

// TriggerSchedule enqueues the schedule's job now, whatever its ticks and
// overlap policy say. Paused schedules may be triggered.
type TriggerSchedule struct{ Actor, Reason string }

// FireDue decides every tick that has come: the leader's command.
type FireDue struct{}

func (CreateSchedule) scheduleCommand() string  { return "create" }
func (UpdateSchedule) scheduleCommand() string  { return "update" }
func (PauseSchedule) scheduleCommand() string   { return "pause" }
func (ResumeSchedule) scheduleCommand() string  { return "resume" }
func (DeleteSchedule) scheduleCommand() string  { return "delete" }
func (TriggerSchedule) scheduleCommand() string { return "trigger" }
func (FireDue) scheduleCommand() string         { return "fire" }

// ScheduleEnv is what a schedule decision may depend on besides state and
// command. Tests pass fixed values.
type ScheduleEnv struct {
	// Now is the database time.
	Now time.Time
	// LastRunActive is true while the job of the schedule's latest run is
	// pending, running or retrying.
	LastRunActive bool
	// NewID returns the ID of a job about to be enqueued. Defaults to
	// eventlog.NewID.
	NewID func(time.Time) eventlog.ID
}

func (env ScheduleEnv) newID() eventlog.ID {
	if env.NewID == nil {
		return eventlog.NewID(env.Now)
	}
	return env.NewID(env.Now)
}

// ScheduleStateError says why a command was refused in a schedule's
// current status. It matches ErrInvalidState.
type ScheduleStateError struct {
	Name    string
	Command string
	Status  ScheduleStatus
}

func (e *ScheduleStateError) Error() string {
	return fmt.Sprintf("cannot %s schedule %s: it is %s", e.Command, e.Name, e.Status)
}

// Is makes errors.Is(err, ErrInvalidState) true.
func (e *ScheduleStateError) Is(target error) bool { return target == ErrInvalidState }

// DecideSchedule returns the events a command produces for a schedule in
// state s, or a typed error saying why it is refused. It is a pure
// function. Fired and triggered runs name their job in the event; the
// caller enqueues those jobs in the same transaction.
func DecideSchedule(s Schedule, cmd ScheduleCommand, env ScheduleEnv) ([]Decision, error) {
	refuse := func() error {
		return &ScheduleStateError{Name: s.Name, Command: cmd.scheduleCommand(), Status: s.Status}
	}
	needActor := func(actor string) error {
		if strings.TrimSpace(actor) == "" {
			return &InputError{Field: "actor", Reason: fmt.Sprintf("say who is asking to %s the schedule", cmd.scheduleCommand())}
		}
		return nil
	}
	switch c := cmd.(type) {
	case CreateSchedule:
		if s.Seq != 0 {
			return nil, fmt.Errorf("schedule %s: %w", c.Name, ErrScheduleExists)
		}
		if err := ValidScheduleName(c.Name); err != nil {
			return nil, err
		}
		if err := needActor(c.Actor); err != nil {
			return nil, err
		}
		if _, err := c.Definition.compile(); err != nil {
			return nil, err
		}
		return []Decision{{EventScheduleCreated, ScheduleCreated{Name: c.Name, Definition: c.Definition, Actor: c.Actor, Reason: c.Reason}}}, nil
	case UpdateSchedule:
		if s.Status == ScheduleStatusDeleted {
			return nil, refuse()
		}
		if err := needActor(c.Actor); err != nil {
			return nil, err
		}
		if _, err := c.Definition.compile(); err != nil {
			return nil, err
		}
		if c.Definition.equal(s.Definition) {
			return nil, nil
		}
		return []Decision{{EventScheduleUpdated, ScheduleUpdated{Definition: c.Definition, Actor: c.Actor, Reason: c.Reason}}}, nil
	case PauseSchedule:
		if s.Status != ScheduleStatusActive {
			return nil, refuse()
		}
		if err := needActor(c.Actor); err != nil {
			return nil, err
		}
		return []Decision{{EventSchedulePaused, SchedulePaused{Actor: c.Actor, Reason: c.Reason}}}, nil
	case ResumeSchedule:
		if s.Status != ScheduleStatusPaused {
			return nil, refuse()
		}
		if err := needActor(c.Actor); err != nil {
			return nil, err
		}
		return []Decision{{EventScheduleResumed, ScheduleResumed{Actor: c.Actor, Reason: c.Reason}}}, nil
	case DeleteSchedule:
		if s.Status == ScheduleStatusDeleted {
			return nil, refuse()
		}
		if err := needActor(c.Actor); err != nil {
			return nil, err
		}
		return []Decision{{EventScheduleDeleted, ScheduleDeleted{Actor: c.Actor, Reason: c.Reason}}}, nil
	case TriggerSchedule:
		if s.Status == ScheduleStatusDeleted {
			return nil, refuse()
		}
		if err := needActor(c.Actor); err != nil {
			return nil, err
		}
		return []Decision{{EventScheduleTriggered, ScheduleTriggered{JobID: env.newID(), Actor: c.Actor, Reason: c.Reason}}}, nil
	case FireDue:
		return decideFire(s, env), nil
	}
	return nil, fmt.Errorf("unknown schedule command %T", cmd)
}

// decideFire decides every tick up to env.Now: which run, which are
// skipped or buffered by the overlap policy, and which were missed.
func decideFire(s Schedule, env ScheduleEnv) []Decision {
	if s.Status != ScheduleStatusActive || s.sched == nil {
		return nil
	}
	var out []Decision
	def := s.Definition
	active, running := env.LastRunActive, s.LastJobID
	buffered := s.Buffered != nil
	fire := func(tick time.Time, fromBuffer, late bool) {
		id := env.newID()
		out = append(out, Decision{EventScheduleFired, ScheduleFired{Tick: tick, JobID: id, Buffered: fromBuffer, Late: late}})
		active, running = true, id
	}
	// tick applies the overlap policy to one tick.
	tick := func(t time.Time, late bool) {
		switch {
		case !active || def.Overlap == OverlapAllowAll:
			fire(t, false, late)
		case def.Overlap == OverlapBufferOne && !buffered:
			buffered = true
			out = append(out, Decision{EventScheduleBuffered, ScheduleBuffered{Tick: t, RunningJobID: running}})
		case def.Overlap == OverlapBufferOne:
			out = append(out, Decision{EventScheduleSkipped, ScheduleSkipped{Tick: t, Reason: "the previous run is still running and a tick is already buffered", RunningJobID: running}})
		default:
			out = append(out, Decision{EventScheduleSkipped, ScheduleSkipped{Tick: t, Reason: "the previous run is still running", RunningJobID: running}})
		}
	}
	if buffered && !active {
		buffered = false
		fire(*s.Buffered, true, false)
	}
	onTime, missed := dueTicks(&s, env.Now)
	late := false
	if missed.count > 0 {
		if def.CatchUp == CatchUpLatest && len(onTime) == 0 {
			// The most recent missed tick runs, late; the ones before it are missed.
			late = true
			if missed.count > 1 {
				out = append(out, Decision{EventScheduleMissed, ScheduleMissed{FirstTick: missed.first, LastTick: missed.beforeLast, Count: missed.count - 1}})
			}
			onTime = []time.Time{missed.last}
		} else {
			out = append(out, Decision{EventScheduleMissed, ScheduleMissed{FirstTick: missed.first, LastTick: missed.last, Count: missed.count}})
		}
	}
	for _, t := range onTime {
		tick(t, late)
	}
	return out
}

// missedTicks summarizes the ticks older than the catch-up window.
type missedTicks struct {
	first, beforeLast, last time.Time
	count                   int
}

// dueTicks walks the ticks after the cursor up to now: those within the
// catch-up window are on time, older ones were missed.
func dueTicks(s *Schedule, now time.Time) (onTime []time.Time, missed missedTicks) {
	window := s.Definition.CatchUpWindow
	if window <= 0 {
		window = DefaultCatchUpWindow
	}
	edge := now.Add(-window)
	t := s.next(s.Cursor)
	for !t.IsZero() && !t.After(now) {
		if t.Before(edge) {
			if missed.count == 0 {
				missed.first = t
			}
			missed.beforeLast, missed.last = missed.last, t
			missed.count++
			if missed.count >= maxMissedTicksCounted {
				// Jump over the rest of a very long downtime: ticks are
				// counted no further, and the walk resumes at the window.
				t = s.next(edge)
				continue
			}
		} else {
			onTime = append(onTime, t)
			if len(onTime) >= maxTicksPerPass {
				break
			}
		}
		t = s.next(t)
	}
	return onTime, missed
}

// RecordSchedule numbers, timestamps, canonicalizes and seals decisions as
// events appended to s's history, and returns the state after them.
func RecordSchedule(s Schedule, decisions []Decision, now time.Time) (Schedule, []eventlog.Event, error) {
	now = now.Truncate(time.Microsecond)
	events := make([]eventlog.Event, 0, len(decisions))
	for _, d := range decisions {
		raw, err := json.Marshal(d.Data)
		if err != nil {
			return s, nil, fmt.Errorf("encode %s: %w", d.Type, err)
		}
		data, err := eventlog.Canonicalize(raw)
		if err != nil {
			return s, nil, fmt.Errorf("encode %s: %w", d.Type, err)
		}
		prev := s.LastHash
		if s.Seq == 0 {
			prev = eventlog.GenesisHash
		}
		e := eventlog.Event{ExecutionID: s.ID, Seq: s.Seq + 1, Type: d.Type, Data: data, RecordedAt: now}
		e.PrevHash = prev
		e.Hash = eventlog.HashEvent(prev, e)
		if s, err = EvolveSchedule(s, e); err != nil {
			return s, nil, err
		}
		events = append(events, e)
	}
	return s, events, nil
}
