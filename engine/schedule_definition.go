package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // schedules name IANA zones; do not depend on the host's zoneinfo

	"github.com/robfig/cron/v3"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// OverlapPolicy says what a schedule does when a tick comes while the job
// of its previous run is still pending, running or retrying. The names
// follow Temporal's ScheduleOverlapPolicy.
type OverlapPolicy string

// Overlap policies.
const (
	// OverlapSkip skips the tick (recording ScheduleSkipped). The default.
	OverlapSkip OverlapPolicy = "skip"
	// OverlapBufferOne holds the tick back (ScheduleBuffered) and fires it
	// as soon as the running job finishes; ticks that come while one is
	// held back are skipped.
	OverlapBufferOne OverlapPolicy = "buffer_one"
	// OverlapAllowAll fires every tick, so runs may overlap.
	OverlapAllowAll OverlapPolicy = "allow_all"
)

// CatchUpPolicy says what a schedule does with ticks that were missed
// because no leader ran (downtime): ticks older than the catch-up window
// when the leader first sees them.
type CatchUpPolicy string

// Catch-up policies.
const (
	// CatchUpSkip records missed ticks (ScheduleMissed) and runs none of
	// them; the schedule goes on from its next tick. The default.
	CatchUpSkip CatchUpPolicy = "skip"
	// CatchUpLatest runs the most recent missed tick once, late, when no
	// tick within the window is due; the older missed ticks are recorded
	// as missed.
	CatchUpLatest CatchUpPolicy = "latest"
)

// Schedule defaults and limits.
const (
	// DefaultCatchUpWindow is how late a tick may be seen and still count
	// as on time: a leader failover (DefaultLeaderTTL, 10s) stays well
	// within it.
	DefaultCatchUpWindow = time.Minute
	// MinCatchUpWindow keeps the window above the maintenance interval, so
	// that ordinary ticks, seen up to one interval late, are never missed.
	MinCatchUpWindow = time.Second
	// ScheduleKeyTTL is how long the enqueue idempotency key of a fired
	// tick, schedule:<id>:<tick>, is kept.
	ScheduleKeyTTL = 24 * time.Hour
	// maxTicksPerPass bounds the ticks one schedule decides in one pass;
	// the rest are decided in the next pass.
	maxTicksPerPass = 1000
	// maxMissedTicksCounted bounds the walk over missed ticks after a long
	// downtime; more are counted as this many.
	maxMissedTicksCounted = 1_000_000
)

// ScheduledJob is the job a schedule enqueues at each tick, resolved when
// the schedule is defined so that every fire is derived from the history.
type ScheduledJob struct {
	Type     string   `json:"type"`
	Queue    string   `json:"queue"`
	Priority Priority `json:"priority"`
	// Payload is canonical JSON.
	Payload     json.RawMessage `json:"payload"`
	RetryPolicy RetryPolicy     `json:"retry_policy"`
}

// ScheduleDefinition is what a schedule enqueues and when.
type ScheduleDefinition struct {
	// Cron is a standard 5-field expression (minute hour day-of-month
	// month day-of-week), a 6-field one with leading seconds, or a
	// descriptor: @yearly, @monthly, @weekly, @daily, @hourly or
	// @every <duration>. A CRON_TZ=<zone> prefix sets the time zone.
	Cron string
	// TimeZone is the IANA zone the expression is read in, such as
	// Europe/Berlin. Defaults to UTC.
	TimeZone string
	Job      ScheduledJob
	// Overlap defaults to OverlapSkip.
	Overlap OverlapPolicy
	// CatchUp defaults to CatchUpSkip.
	CatchUp CatchUpPolicy
	// CatchUpWindow is how late a tick may be and still run as usual.
	// Defaults to DefaultCatchUpWindow (1 minute); at least MinCatchUpWindow.
	CatchUpWindow time.Duration
}

type scheduleDefinitionJSON struct {
	Cron          string        `json:"cron"`
	TimeZone      string        `json:"time_zone"`
	Job           ScheduledJob  `json:"job"`
	Overlap       OverlapPolicy `json:"overlap"`
	CatchUp       CatchUpPolicy `json:"catch_up"`
	CatchUpWindow string        `json:"catch_up_window"`
}

// MarshalJSON writes the window as a duration string such as "1m0s".
func (d ScheduleDefinition) MarshalJSON() ([]byte, error) {
	return json.Marshal(scheduleDefinitionJSON{Cron: d.Cron, TimeZone: d.TimeZone, Job: d.Job, Overlap: d.Overlap,
		CatchUp: d.CatchUp, CatchUpWindow: durString(d.CatchUpWindow)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (d *ScheduleDefinition) UnmarshalJSON(b []byte) error {
	var j scheduleDefinitionJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	w, err := parseDur(j.CatchUpWindow)
	if err != nil {
		return fmt.Errorf("schedule catch_up_window: %w", err)
	}
	*d = ScheduleDefinition{Cron: j.Cron, TimeZone: j.TimeZone, Job: j.Job, Overlap: j.Overlap, CatchUp: j.CatchUp, CatchUpWindow: w}
	return nil
}

// cronParser reads standard expressions, an optional leading seconds field
// and descriptors.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Normalize validates d and returns it with its defaults filled in and a
// CRON_TZ= prefix moved into TimeZone. Errors are *InputError naming the
// field. now is used to check that the expression ever fires.
func (d ScheduleDefinition) Normalize(now time.Time) (ScheduleDefinition, error) {
	d.Cron = strings.Join(strings.Fields(d.Cron), " ")
	if tz, rest, ok := cutTimeZone(d.Cron); ok {
		if d.TimeZone != "" && d.TimeZone != tz {
			return d, &InputError{Field: "time zone", Reason: fmt.Sprintf("the cron expression says CRON_TZ=%s but the time zone is %s; give one of them", tz, d.TimeZone)}
		}
		d.TimeZone, d.Cron = tz, rest
	}
	if d.TimeZone == "" {
		d.TimeZone = "UTC"
	}
	if _, err := loadZone(d.TimeZone); err != nil {
		return d, err
	}
	if d.Cron == "" {
		return d, &InputError{Field: "cron", Reason: `is empty; write an expression such as "0 3 * * *" (03:00 every day) or a descriptor such as @hourly`}
	}
	sched, err := d.compile()
	if err != nil {
		return d, err
	}
	if sched.Next(now).IsZero() {
		return d, &InputError{Field: "cron", Reason: fmt.Sprintf("%q never fires (no time matches it within five years)", d.Cron)}
	}
	if d.Overlap == "" {
		d.Overlap = OverlapSkip
	}
	switch d.Overlap {
	case OverlapSkip, OverlapBufferOne, OverlapAllowAll:
	default:
		return d, &InputError{Field: "overlap policy", Reason: fmt.Sprintf("%q is not one of skip, buffer_one, allow_all", d.Overlap)}
	}
	if d.CatchUp == "" {
		d.CatchUp = CatchUpSkip
	}
	switch d.CatchUp {
	case CatchUpSkip, CatchUpLatest:
	default:
		return d, &InputError{Field: "catch-up policy", Reason: fmt.Sprintf("%q is not one of skip, latest", d.CatchUp)}
	}
	if d.CatchUpWindow == 0 {
		d.CatchUpWindow = DefaultCatchUpWindow
	}
	if d.CatchUpWindow < MinCatchUpWindow {
		return d, &InputError{Field: "catch-up window", Reason: fmt.Sprintf("%s is shorter than %s: ticks seen one maintenance interval late would count as missed", d.CatchUpWindow, MinCatchUpWindow)}
	}
	if strings.TrimSpace(d.Job.Type) == "" {
		return d, &InputError{Field: "job type", Reason: "a schedule needs the type of the job it enqueues"}
	}
	if err := ValidQueueName(d.Job.Queue); err != nil {
		return d, err
	}
	if d.Job.Priority == "" {
		d.Job.Priority = PriorityNormal
	}
	if !d.Job.Priority.Valid() {
		return d, &InputError{Field: "priority", Reason: fmt.Sprintf("%q is not one of high, normal, low", d.Job.Priority)}
	}
	if len(d.Job.Payload) == 0 {
		d.Job.Payload = json.RawMessage(`{}`)
	}
	payload, err := eventlog.Canonicalize(d.Job.Payload)
	if err != nil {
		return d, &InputError{Field: "payload", Reason: err.Error()}
	}
	d.Job.Payload = payload
	if err := d.Job.RetryPolicy.Validate(); err != nil {
		return d, &InputError{Field: "retry policy", Reason: err.Error()}
	}
	return d, nil
}

// cutTimeZone splits a CRON_TZ= or TZ= prefix off an expression.
func cutTimeZone(expr string) (tz, rest string, ok bool) {
	for _, prefix := range []string{"CRON_TZ=", "TZ="} {
		if after, found := strings.CutPrefix(expr, prefix); found {
			tz, rest, _ = strings.Cut(after, " ")
			return tz, strings.TrimSpace(rest), true
		}
	}
	return "", expr, false
}

func loadZone(tz string) (*time.Location, error) {
	if tz == "Local" {
		return nil, &InputError{Field: "time zone", Reason: `"Local" differs between servers; name the zone, such as Europe/Berlin or UTC`}
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, &InputError{Field: "time zone", Reason: fmt.Sprintf("%q is not a known IANA time zone; use a name such as UTC, Europe/Berlin or America/New_York", tz)}
	}
	return loc, nil
}

// compile parses the expression in the definition's time zone.
func (d ScheduleDefinition) compile() (cron.Schedule, error) {
	tz := d.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	if _, err := loadZone(tz); err != nil {
		return nil, err
	}
	sched, err := cronParser.Parse("CRON_TZ=" + tz + " " + d.Cron)
	if err != nil {
		return nil, &InputError{Field: "cron", Reason: fmt.Sprintf("%q: %v; write 5 fields (minute hour day-of-month month day-of-week) such as \"0 3 * * *\", 6 fields with leading seconds, or a descriptor such as @daily or @every 10m", d.Cron, err)}
	}
	return sched, nil
}

// equal reports whether two normalized definitions are the same.
func (d ScheduleDefinition) equal(o ScheduleDefinition) bool {
	a, err1 := json.Marshal(d)
	b, err2 := json.Marshal(o)
	if err1 != nil || err2 != nil {
		return false
	}
	ca, err1 := eventlog.Canonicalize(a)
	cb, err2 := eventlog.Canonicalize(b)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}
