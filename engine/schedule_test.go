package engine_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// scheduleHistory is a schedule's history built with DecideSchedule and
// RecordSchedule, the way the engine builds it, with a clock the test sets.
type scheduleHistory struct {
	t       tb
	s       engine.Schedule
	history []eventlog.Event
	// active is what the latest run's job status says: see ScheduleEnv.
	active bool
	jobs   int
}

// at parses a time of day on 2026-03-02 (UTC), such as "10:02:30".
func at(t tb, clock string) time.Time {
	t.Helper()
	v, err := time.Parse("2006-01-02 15:04:05", "2026-03-02 "+clock)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func scheduleDef(cron string, mutate ...func(*engine.ScheduleDefinition)) engine.ScheduleDefinition {
	d := engine.ScheduleDefinition{Cron: cron, Job: engine.ScheduledJob{Type: "report.build", Queue: "reports",
		Payload: json.RawMessage(`{"kind":"daily"}`), RetryPolicy: engine.RetryPolicy{MaximumAttempts: 2}}}
	for _, m := range mutate {
		m(&d)
	}
	return d
}

// newSchedule creates a schedule at created.
func newSchedule(t tb, created time.Time, def engine.ScheduleDefinition) *scheduleHistory {
	t.Helper()
	def, err := def.Normalize(created)
	if err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	h := &scheduleHistory{t: t, s: engine.Schedule{ID: eventlog.NewID(created)}}
	h.do(created, engine.CreateSchedule{Name: "nightly-report", Definition: def, Actor: "ada"})
	return h
}

func (h *scheduleHistory) env(now time.Time) engine.ScheduleEnv {
	return engine.ScheduleEnv{Now: now, LastRunActive: h.active, NewID: func(t time.Time) eventlog.ID {
		h.jobs++
		return eventlog.NewID(t)
	}}
}

// try decides cmd at now and records its events; a refused command must
// change nothing.
func (h *scheduleHistory) try(now time.Time, cmd engine.ScheduleCommand) ([]eventlog.Event, error) {
	h.t.Helper()
	before := h.s.Row()
	decisions, err := engine.DecideSchedule(h.s, cmd, h.env(now))
	if err != nil {
		if len(decisions) != 0 {
			h.t.Fatalf("DecideSchedule(%#v) returned decisions with error %v", cmd, err)
		}
		if after := h.s.Row(); !reflect.DeepEqual(before, after) {
			h.t.Fatalf("refused %#v changed the state", cmd)
		}
		return nil, err
	}
	s, events, err := engine.RecordSchedule(h.s, decisions, now)
	if err != nil {
		h.t.Fatalf("RecordSchedule(%#v): %v", cmd, err)
	}
	h.s = s
	h.history = append(h.history, events...)
	for _, e := range events {
		if e.Type == engine.EventScheduleFired || e.Type == engine.EventScheduleTriggered {
			h.active = true // the new run's job is pending
		}
	}
	h.verify()
	return events, nil
}

func (h *scheduleHistory) do(now time.Time, cmd engine.ScheduleCommand) []eventlog.Event {
	h.t.Helper()
	events, err := h.try(now, cmd)
	if err != nil {
		h.t.Fatalf("%#v: %v", cmd, err)
	}
	return events
}

func (h *scheduleHistory) fire(now time.Time) []eventlog.Event {
	h.t.Helper()
	return h.do(now, engine.FireDue{})
}

// verify checks the chain, and that the fold of the history and the row
// round trip give the state RecordSchedule evolved.
func (h *scheduleHistory) verify() {
	h.t.Helper()
	if len(h.history) == 0 {
		return
	}
	if err := eventlog.CheckChain(h.history); err != nil {
		h.t.Fatalf("CheckChain: %v", err)
	}
	folded, err := engine.FoldSchedule(h.history)
	if err != nil {
		h.t.Fatalf("FoldSchedule: %v", err)
	}
	want := h.s.Row()
	if got := folded.Row(); !reflect.DeepEqual(got, want) {
		h.t.Fatalf("FoldSchedule(history).Row() =\n%+v\nwant\n%+v", got, want)
	}
	fromRow, err := engine.ScheduleFromRow(want)
	if err != nil {
		h.t.Fatalf("ScheduleFromRow: %v", err)
	}
	if got := fromRow.Row(); !reflect.DeepEqual(got, want) {
		h.t.Fatalf("ScheduleFromRow(row).Row() =\n%+v\nwant\n%+v", got, want)
	}
}

// fired summarizes events as "Type@tick" strings, such as
// "ScheduleFired@10:05:00" or "ScheduleMissed@10:05:00-10:55:00x11".
func summarize(t tb, events []eventlog.Event) []string {
	t.Helper()
	clock := func(v time.Time) string { return v.UTC().Format("15:04:05") }
	out := make([]string, 0, len(events))
	for _, e := range events {
		s := e.Type
		switch e.Type {
		case engine.EventScheduleFired:
			d := decode[engine.ScheduleFired](t, e)
			s += "@" + clock(d.Tick)
			if d.Buffered {
				s += " buffered"
			}
			if d.Late {
				s += " late"
			}
		case engine.EventScheduleSkipped:
			s += "@" + clock(decode[engine.ScheduleSkipped](t, e).Tick)
		case engine.EventScheduleBuffered:
			s += "@" + clock(decode[engine.ScheduleBuffered](t, e).Tick)
		case engine.EventScheduleMissed:
			d := decode[engine.ScheduleMissed](t, e)
			s += "@" + clock(d.FirstTick) + "-" + clock(d.LastTick) + "x" + strconv.Itoa(d.Count)
		}
		out = append(out, s)
	}
	return out
}

func wantEvents(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: events\n  %v\nwant\n  %v", what, got, want)
	}
}

func TestScheduleFiresEachTickOnTime(t *testing.T) {
	t.Parallel()
	h := newSchedule(t, at(t, "10:02:30"), scheduleDef("*/5 * * * *"))
	if h.s.NextFireAt == nil || !h.s.NextFireAt.Equal(at(t, "10:05:00")) {
		t.Fatalf("next fire %v, want 10:05", h.s.NextFireAt)
	}
	wantEvents(t, "before the tick", summarize(t, h.fire(at(t, "10:04:59"))))
	events := h.fire(at(t, "10:05:00.4"))
	wantEvents(t, "at the tick", summarize(t, events), "ScheduleFired@10:05:00")
	fired := decode[engine.ScheduleFired](t, events[0])
	if fired.JobID != h.s.LastJobID || h.s.Runs != 1 || !h.s.LastFiredTick.Equal(at(t, "10:05:00")) {
		t.Fatalf("after the fire: %+v", h.s)
	}
	wantEvents(t, "the same tick again", summarize(t, h.fire(at(t, "10:05:01"))))
	if !h.s.NextFireAt.Equal(at(t, "10:10:00")) {
		t.Fatalf("next fire %v, want 10:10", h.s.NextFireAt)
	}
	h.active = false
	// A leader that comes 40s late still fires the tick: it is within the window.
	wantEvents(t, "late within the window", summarize(t, h.fire(at(t, "10:10:40"))), "ScheduleFired@10:10:00")
}

func TestScheduleFiresTicksThatCameTogether(t *testing.T) {
	t.Parallel()
	h := newSchedule(t, at(t, "10:00:00.3"), scheduleDef("@every 1s", func(d *engine.ScheduleDefinition) { d.Overlap = engine.OverlapAllowAll }))
	// A pass that comes 2.5s after creation fires both ticks, each once.
	wantEvents(t, "two ticks", summarize(t, h.fire(at(t, "10:00:02.8"))), "ScheduleFired@10:00:01", "ScheduleFired@10:00:02")
	if h.jobs != 2 {
		t.Fatalf("%d job IDs handed out, want 2", h.jobs)
	}
}

func TestScheduleOverlapPolicies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		overlap engine.OverlapPolicy
		// events of the passes at 10:05 (previous run active), 10:10 (still
		// active), 10:12 (finished) and 10:15.
		want [4][]string
	}{
		{engine.OverlapSkip, [4][]string{{"ScheduleSkipped@10:05:00"}, {"ScheduleSkipped@10:10:00"}, nil, {"ScheduleFired@10:15:00"}}},
		{engine.OverlapAllowAll, [4][]string{{"ScheduleFired@10:05:00"}, {"ScheduleFired@10:10:00"}, nil, {"ScheduleFired@10:15:00"}}},
		{engine.OverlapBufferOne, [4][]string{{"ScheduleBuffered@10:05:00"}, {"ScheduleSkipped@10:10:00"}, {"ScheduleFired@10:05:00 buffered"}, {"ScheduleBuffered@10:15:00"}}},
	} {
		t.Run(string(tc.overlap), func(t *testing.T) {
			t.Parallel()
			h := newSchedule(t, at(t, "10:02:30"), scheduleDef("*/5 * * * *", func(d *engine.ScheduleDefinition) { d.Overlap = tc.overlap }))
			h.do(at(t, "10:03:00"), engine.TriggerSchedule{Actor: "ada", Reason: "a first run by hand"})
			wantEvents(t, "10:05, previous run active", summarize(t, h.fire(at(t, "10:05:01"))), tc.want[0]...)
			wantEvents(t, "10:10, still active", summarize(t, h.fire(at(t, "10:10:01"))), tc.want[1]...)
			h.active = false
			wantEvents(t, "10:12, finished", summarize(t, h.fire(at(t, "10:12:00"))), tc.want[2]...)
			wantEvents(t, "10:15", summarize(t, h.fire(at(t, "10:15:01"))), tc.want[3]...)
		})
	}
}

func TestScheduleBufferedTickFiresBeforeTheDueOne(t *testing.T) {
	t.Parallel()
	h := newSchedule(t, at(t, "10:02:30"), scheduleDef("*/5 * * * *", func(d *engine.ScheduleDefinition) { d.Overlap = engine.OverlapBufferOne }))
	h.do(at(t, "10:03:00"), engine.TriggerSchedule{Actor: "ada"})
	wantEvents(t, "buffered", summarize(t, h.fire(at(t, "10:05:01"))), "ScheduleBuffered@10:05:00")
	h.active = false
	// The run finished just as the next tick came: the buffered tick runs,
	// and the due one is buffered behind it.
	wantEvents(t, "both", summarize(t, h.fire(at(t, "10:10:01"))), "ScheduleFired@10:05:00 buffered", "ScheduleBuffered@10:10:00")
	if h.s.Buffered == nil || !h.s.Buffered.Equal(at(t, "10:10:00")) {
		t.Fatalf("buffered tick %v, want 10:10", h.s.Buffered)
	}
}

func TestScheduleCatchUpPolicies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		catchUp engine.CatchUpPolicy
		now     string
		want    []string
	}{
		// Down from 10:02:30 to 11:02:30: twelve ticks, all older than the
		// one-minute window.
		{"skip", engine.CatchUpSkip, "11:02:30", []string{"ScheduleMissed@10:05:00-11:00:00x12"}},
		{"latest", engine.CatchUpLatest, "11:02:30", []string{"ScheduleMissed@10:05:00-10:55:00x11", "ScheduleFired@11:00:00 late"}},
		// Back at 11:00:20: the 11:00 tick is on time and runs under both
		// policies; the rest were missed.
		{"skip with a tick on time", engine.CatchUpSkip, "11:00:20", []string{"ScheduleMissed@10:05:00-10:55:00x11", "ScheduleFired@11:00:00"}},
		{"latest with a tick on time", engine.CatchUpLatest, "11:00:20", []string{"ScheduleMissed@10:05:00-10:55:00x11", "ScheduleFired@11:00:00"}},
		// One missed tick under latest: it runs late and nothing is missed.
		{"latest, one tick", engine.CatchUpLatest, "10:07:00", []string{"ScheduleFired@10:05:00 late"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newSchedule(t, at(t, "10:02:30"), scheduleDef("*/5 * * * *", func(d *engine.ScheduleDefinition) { d.CatchUp = tc.catchUp }))
			wantEvents(t, "after the downtime", summarize(t, h.fire(at(t, tc.now))), tc.want...)
			h.active = false
			wantEvents(t, "right after", summarize(t, h.fire(at(t, tc.now).Add(time.Second))))
		})
	}
}

func TestScheduleCatchUpLatestRespectsOverlap(t *testing.T) {
	t.Parallel()
	h := newSchedule(t, at(t, "10:02:30"), scheduleDef("*/5 * * * *", func(d *engine.ScheduleDefinition) { d.CatchUp = engine.CatchUpLatest }))
	h.do(at(t, "10:03:00"), engine.TriggerSchedule{Actor: "ada"})
	wantEvents(t, "downtime while a run is active", summarize(t, h.fire(at(t, "10:17:00"))),
		"ScheduleMissed@10:05:00-10:10:00x2", "ScheduleSkipped@10:15:00")
}

func TestSchedulePauseResume(t *testing.T) {
	t.Parallel()
	h := newSchedule(t, at(t, "10:02:30"), scheduleDef("*/5 * * * *", func(d *engine.ScheduleDefinition) { d.CatchUp = engine.CatchUpLatest }))
	wantEvents(t, "pause", summarize(t, h.do(at(t, "10:03:00"), engine.PauseSchedule{Actor: "ada", Reason: "maintenance window"})), "SchedulePaused")
	if h.s.Status != engine.ScheduleStatusPaused || h.s.NextFireAt != nil {
		t.Fatalf("paused: %+v", h.s)
	}
	wantEvents(t, "fire while paused", summarize(t, h.fire(at(t, "10:20:00"))))
	// Ticks while paused never run, whatever the catch-up policy says.
	wantEvents(t, "resume", summarize(t, h.do(at(t, "10:21:00"), engine.ResumeSchedule{Actor: "ada"})), "ScheduleResumed")
	if !h.s.NextFireAt.Equal(at(t, "10:25:00")) {
		t.Fatalf("next fire after resuming: %v", h.s.NextFireAt)
	}
	wantEvents(t, "after resuming", summarize(t, h.fire(at(t, "10:24:00"))))
	wantEvents(t, "the next tick", summarize(t, h.fire(at(t, "10:25:00"))), "ScheduleFired@10:25:00")
	paused := decode[engine.SchedulePaused](t, h.history[1])
	if paused.Actor != "ada" || paused.Reason != "maintenance window" {
		t.Fatalf("SchedulePaused %+v", paused)
	}
}

func TestScheduleRefusedCommands(t *testing.T) {
	t.Parallel()
	h := newSchedule(t, at(t, "10:02:30"), scheduleDef("@hourly"))
	now := at(t, "10:03:00")
	for _, tc := range []struct {
		cmd  engine.ScheduleCommand
		want error
	}{
		{engine.ResumeSchedule{Actor: "ada"}, engine.ErrInvalidState},
		{engine.PauseSchedule{}, engine.ErrInvalidInput},
		{engine.TriggerSchedule{Actor: " "}, engine.ErrInvalidInput},
		{engine.CreateSchedule{Name: "again", Definition: h.s.Definition, Actor: "ada"}, engine.ErrScheduleExists},
	} {
		if _, err := h.try(now, tc.cmd); !errors.Is(err, tc.want) {
			t.Fatalf("%#v: error %v, want %v", tc.cmd, err, tc.want)
		}
	}
	h.do(now, engine.PauseSchedule{Actor: "ada"})
	if _, err := h.try(now, engine.PauseSchedule{Actor: "ada"}); !errors.Is(err, engine.ErrInvalidState) || !strings.Contains(err.Error(), "cannot pause schedule nightly-report: it is paused") {
		t.Fatalf("pause a paused schedule: %v", err)
	}
	h.do(now, engine.DeleteSchedule{Actor: "ada", Reason: "replaced"})
	for _, cmd := range []engine.ScheduleCommand{engine.DeleteSchedule{Actor: "ada"}, engine.TriggerSchedule{Actor: "ada"},
		engine.ResumeSchedule{Actor: "ada"}, engine.UpdateSchedule{Definition: h.s.Definition, Actor: "ada"}} {
		if _, err := h.try(now, cmd); !errors.Is(err, engine.ErrInvalidState) {
			t.Fatalf("%#v on a deleted schedule: %v", cmd, err)
		}
	}
	wantEvents(t, "fire a deleted schedule", summarize(t, h.fire(at(t, "12:00:00"))))
}

func TestScheduleUpdate(t *testing.T) {
	t.Parallel()
	h := newSchedule(t, at(t, "10:02:30"), scheduleDef("*/5 * * * *"))
	same := h.s.Definition
	if events := h.do(at(t, "10:03:00"), engine.UpdateSchedule{Definition: same, Actor: "code"}); len(events) != 0 {
		t.Fatalf("an identical definition recorded %v", types(events))
	}
	changed, err := scheduleDef("0 * * * *").Normalize(at(t, "10:03:00"))
	if err != nil {
		t.Fatal(err)
	}
	wantEvents(t, "update", summarize(t, h.do(at(t, "10:03:00"), engine.UpdateSchedule{Definition: changed, Actor: "code"})), "ScheduleUpdated")
	if !h.s.NextFireAt.Equal(at(t, "11:00:00")) || h.s.Definition.Cron != "0 * * * *" {
		t.Fatalf("after the update: next %v, cron %q", h.s.NextFireAt, h.s.Definition.Cron)
	}
}

func TestScheduleTimeZones(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		def      engine.ScheduleDefinition
		created  time.Time
		wantNext time.Time
	}{
		// 03:00 in Berlin is 02:00 UTC in winter (CET) and 01:00 UTC in summer (CEST).
		{scheduleDef("0 3 * * *", func(d *engine.ScheduleDefinition) { d.TimeZone = "Europe/Berlin" }),
			time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 10, 2, 0, 0, 0, time.UTC)},
		{scheduleDef("CRON_TZ=Europe/Berlin 0 3 * * *"),
			time.Date(2026, 7, 10, 0, 0, 0, 0, time.UTC), time.Date(2026, 7, 10, 1, 0, 0, 0, time.UTC)},
		{scheduleDef("0 3 * * *"), time.Date(2026, 7, 10, 0, 0, 0, 0, time.UTC), time.Date(2026, 7, 10, 3, 0, 0, 0, time.UTC)},
		{scheduleDef("@daily", func(d *engine.ScheduleDefinition) { d.TimeZone = "America/New_York" }),
			time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC), time.Date(2026, 1, 11, 5, 0, 0, 0, time.UTC)},
		// Six fields: the first is seconds.
		{scheduleDef("30 0 3 * * *"), time.Date(2026, 7, 10, 0, 0, 0, 0, time.UTC), time.Date(2026, 7, 10, 3, 0, 30, 0, time.UTC)},
	} {
		h := newSchedule(t, tc.created, tc.def)
		if h.s.NextFireAt == nil || !h.s.NextFireAt.Equal(tc.wantNext) {
			t.Fatalf("%q in %q created %s: next fire %v, want %s", tc.def.Cron, tc.def.TimeZone, tc.created, h.s.NextFireAt, tc.wantNext)
		}
	}
}

func TestScheduleDefinitionRejectsBadInput(t *testing.T) {
	t.Parallel()
	now := at(t, "10:00:00")
	for _, tc := range []struct {
		def  engine.ScheduleDefinition
		want string
	}{
		{scheduleDef("61 * * * *"), `invalid cron: "61 * * * *": end of range (61) above maximum (59)`},
		{scheduleDef("every day"), `invalid cron: "every day"`},
		{scheduleDef("@fortnightly"), `invalid cron: "@fortnightly"`},
		{scheduleDef(""), "invalid cron: is empty"},
		{scheduleDef("0 0 30 2 *"), `invalid cron: "0 0 30 2 *" never fires`},
		{scheduleDef("0 3 * * *", func(d *engine.ScheduleDefinition) { d.TimeZone = "Mars/Olympus" }), `invalid time zone: "Mars/Olympus" is not a known IANA time zone`},
		{scheduleDef("CRON_TZ=Nowhere 0 3 * * *"), `invalid time zone: "Nowhere" is not a known IANA time zone`},
		{scheduleDef("0 3 * * *", func(d *engine.ScheduleDefinition) { d.TimeZone = "Local" }), `invalid time zone: "Local" differs between servers`},
		{scheduleDef("CRON_TZ=UTC 0 3 * * *", func(d *engine.ScheduleDefinition) { d.TimeZone = "Europe/Berlin" }), "says CRON_TZ=UTC but the time zone is Europe/Berlin"},
		{scheduleDef("@daily", func(d *engine.ScheduleDefinition) { d.Overlap = "queue" }), `invalid overlap policy: "queue" is not one of skip, buffer_one, allow_all`},
		{scheduleDef("@daily", func(d *engine.ScheduleDefinition) { d.CatchUp = "all" }), `invalid catch-up policy: "all" is not one of skip, latest`},
		{scheduleDef("@daily", func(d *engine.ScheduleDefinition) { d.CatchUpWindow = time.Millisecond }), "invalid catch-up window: 1ms is shorter than 1s"},
		{scheduleDef("@daily", func(d *engine.ScheduleDefinition) { d.Job.Type = "" }), "invalid job type"},
		{scheduleDef("@daily", func(d *engine.ScheduleDefinition) { d.Job.Queue = "a queue" }), "invalid queue"},
		{scheduleDef("@daily", func(d *engine.ScheduleDefinition) { d.Job.Payload = json.RawMessage(`{`) }), "invalid payload"},
	} {
		_, err := tc.def.Normalize(now)
		if !errors.Is(err, engine.ErrInvalidInput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Normalize(%q, %q): error %v, want one containing %q", tc.def.Cron, tc.def.TimeZone, err, tc.want)
		}
	}
	for _, name := range []string{"", "two words", strings.Repeat("x", 201), "01JDQ3Z6V5N8G1Y1Y6Q9W4T2XH"} {
		if err := engine.ValidScheduleName(name); !errors.Is(err, engine.ErrInvalidInput) {
			t.Errorf("ValidScheduleName(%q) = %v, want an input error", name, err)
		}
	}
	d, err := scheduleDef("  0  3 * * *  ").Normalize(now)
	if err != nil || d.Cron != "0 3 * * *" || d.TimeZone != "UTC" || d.Overlap != engine.OverlapSkip || d.CatchUp != engine.CatchUpSkip ||
		d.CatchUpWindow != engine.DefaultCatchUpWindow || d.Job.Priority != engine.PriorityNormal {
		t.Fatalf("defaults: %+v, %v", d, err)
	}
}

// TestScheduleDaylightSaving pins down what docs/schedules.md says: 02:30
// in Berlin does not exist on 2026-03-29 and is not fired; it occurs twice
// on 2026-10-25 and fires at both instants.
func TestScheduleDaylightSaving(t *testing.T) {
	t.Parallel()
	def := scheduleDef("30 2 * * *", func(d *engine.ScheduleDefinition) {
		d.TimeZone = "Europe/Berlin"
		d.Overlap = engine.OverlapAllowAll
	})
	spring := newSchedule(t, time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC), def)
	if want := time.Date(2026, 3, 30, 0, 30, 0, 0, time.UTC); !spring.s.NextFireAt.Equal(want) {
		t.Fatalf("spring forward: next fire %s, want %s", spring.s.NextFireAt, want)
	}
	autumn := newSchedule(t, time.Date(2026, 10, 24, 12, 0, 0, 0, time.UTC), def)
	wantEvents(t, "fall back, CEST", summarize(t, autumn.fire(time.Date(2026, 10, 25, 0, 30, 1, 0, time.UTC))), "ScheduleFired@00:30:00")
	wantEvents(t, "fall back, CET", summarize(t, autumn.fire(time.Date(2026, 10, 25, 1, 30, 1, 0, time.UTC))), "ScheduleFired@01:30:00")
}
