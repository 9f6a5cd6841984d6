package engine_test

import (
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	"pgregory.net/rapid"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// TestPropertyScheduleDecidesEachTickOnce drives a schedule through random
// passes of the leader at random times, pauses, resumes, updates, triggers
// and finishing runs, under random overlap and catch-up policies, and
// checks that every tick of every active stretch up to the leader's last
// pass in it is decided exactly once (fired, skipped, buffered or
// missed), that no other tick is, that only a buffered tick fires from
// the buffer and only once, and that every run has its own job.
func TestPropertyScheduleDecidesEachTickOnce(t *testing.T) {
	t.Parallel()
	const expr = "*/5 * * * * *" // every five seconds
	spec, err := cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow).Parse(expr)
	if err != nil {
		t.Fatal(err)
	}
	overlaps := []engine.OverlapPolicy{engine.OverlapSkip, engine.OverlapBufferOne, engine.OverlapAllowAll}
	catchUps := []engine.CatchUpPolicy{engine.CatchUpSkip, engine.CatchUpLatest}
	drawDef := func(t *rapid.T) engine.ScheduleDefinition {
		return scheduleDef(expr, func(d *engine.ScheduleDefinition) {
			d.Overlap = rapid.SampledFrom(overlaps).Draw(t, "overlap")
			d.CatchUp = rapid.SampledFrom(catchUps).Draw(t, "catch-up")
			d.CatchUpWindow = time.Duration(rapid.IntRange(1, 20).Draw(t, "window s")) * time.Second
		})
	}
	rapid.Check(t, func(t *rapid.T) {
		now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC).Add(time.Duration(rapid.IntRange(0, 999).Draw(t, "start ms")) * time.Millisecond)
		h := newSchedule(t, now, drawDef(t))
		// Active stretches: each begins at a creation, resume or update and
		// is decided up to the last pass of the leader within it.
		type stretch struct{ from, decidedTo time.Time }
		stretches := []stretch{{from: now}}
		for range rapid.IntRange(1, 60).Draw(t, "steps") {
			now = now.Add(time.Duration(rapid.IntRange(0, 40_000).Draw(t, "advance ms")) * time.Millisecond)
			switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
			case op < 5:
				h.fire(now)
				if h.s.Status == engine.ScheduleStatusActive {
					stretches[len(stretches)-1].decidedTo = now
				}
			case op == 5:
				h.active = false // the latest run finished
			case op == 6:
				if _, err := h.try(now, engine.TriggerSchedule{Actor: "ada"}); err != nil {
					t.Fatalf("trigger: %v", err)
				}
			case op == 7:
				wasActive := h.s.Status == engine.ScheduleStatusActive
				if _, err := h.try(now, engine.PauseSchedule{Actor: "ada"}); (err == nil) != wasActive {
					t.Fatalf("pause of a schedule that is %s: %v", h.s.Status, err)
				}
			case op == 8:
				if _, err := h.try(now, engine.ResumeSchedule{Actor: "ada"}); err == nil {
					stretches = append(stretches, stretch{from: now})
				}
			default:
				def, err := drawDef(t).Normalize(now)
				if err != nil {
					t.Fatal(err)
				}
				before := h.s.Seq
				h.do(now, engine.UpdateSchedule{Definition: def, Actor: "code"})
				if h.s.Seq != before && h.s.Status == engine.ScheduleStatusActive {
					stretches = append(stretches, stretch{from: now})
				}
			}
		}
		want := map[time.Time]bool{}
		for _, s := range stretches {
			for tick := spec.Next(s.from); !s.decidedTo.IsZero() && !tick.After(s.decidedTo); tick = spec.Next(tick) {
				want[tick] = true
			}
		}
		decided := map[time.Time]string{}
		decide := func(tick time.Time, how string) {
			if prev, ok := decided[tick]; ok {
				t.Fatalf("tick %s decided twice: %s, then %s", tick, prev, how)
			}
			if !want[tick] {
				t.Fatalf("tick %s decided (%s) outside every active stretch %v", tick, how, stretches)
			}
			decided[tick] = how
		}
		buffered := map[time.Time]bool{}
		jobs := map[eventlog.ID]bool{}
		for _, e := range h.history {
			switch e.Type {
			case engine.EventScheduleFired:
				d := decode[engine.ScheduleFired](t, e)
				if jobs[d.JobID] {
					t.Fatalf("job %s enqueued twice", d.JobID)
				}
				jobs[d.JobID] = true
				if d.Buffered {
					if !buffered[d.Tick] {
						t.Fatalf("tick %s fired from the buffer without being buffered, or twice", d.Tick)
					}
					delete(buffered, d.Tick)
					continue
				}
				decide(d.Tick, "fired")
			case engine.EventScheduleTriggered:
				d := decode[engine.ScheduleTriggered](t, e)
				if jobs[d.JobID] {
					t.Fatalf("job %s enqueued twice", d.JobID)
				}
				jobs[d.JobID] = true
			case engine.EventScheduleUpdated:
				if decode[engine.ScheduleUpdated](t, e).Definition.Overlap != engine.OverlapBufferOne {
					clear(buffered) // a buffer the new policy has not is dropped
				}
			case engine.EventScheduleSkipped:
				decide(decode[engine.ScheduleSkipped](t, e).Tick, "skipped")
			case engine.EventScheduleBuffered:
				tick := decode[engine.ScheduleBuffered](t, e).Tick
				decide(tick, "buffered")
				buffered[tick] = true
			case engine.EventScheduleMissed:
				d := decode[engine.ScheduleMissed](t, e)
				n := 0
				for tick := d.FirstTick; !tick.After(d.LastTick); tick = spec.Next(tick) {
					decide(tick, "missed")
					n++
				}
				if n != d.Count {
					t.Fatalf("ScheduleMissed %+v counts %d ticks, the range holds %d", d, d.Count, n)
				}
			}
		}
		for tick := range want {
			if _, ok := decided[tick]; !ok {
				t.Fatalf("tick %s of an active stretch was never decided; stretches %v", tick, stretches)
			}
		}
		if len(buffered) > 1 {
			t.Fatalf("%d ticks buffered at once", len(buffered))
		}
	})
}
