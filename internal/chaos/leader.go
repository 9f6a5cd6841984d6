package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/sdk"
)

// tickJob is the job type a scenario's schedule enqueues at each tick; its
// handler does nothing.
const tickJob = "chaos.tick"

func tickHandler(context.Context, struct{}) error { return nil }

// leaderTTL is the maintenance leadership TTL of the leader scenario's
// workers (a worker's LeaderTTL is its lease duration).
const leaderTTL = time.Second

// runLeader: three worker processes take part in maintenance while a
// schedule fires every second and a steady load keeps leases to expire;
// the process holding the maintenance leadership is SIGKILLed again and
// again. Every tick of the window must fire exactly once (one
// ScheduleFired, one job with key schedule:<id>:<tick>), none may be
// missed (an outage shorter than the catch-up window runs its ticks late,
// not never), and another process must take over within the leader TTL
// plus one maintenance interval.
func runLeader(ctx context.Context, e *env, r *Result) error {
	sched, err := e.client.CreateSchedule(ctx, sdk.ScheduleOptions{Name: "chaos-every-second", Cron: "@every 1s", JobType: tickJob, Overlap: sdk.OverlapAllowAll})
	if err != nil {
		return err
	}
	began := time.Now()
	procs := map[string]*proc{}
	gen := 0
	start := func() error {
		gen++
		id := fmt.Sprintf("leader-%d", gen)
		p, err := e.startWorker(workerOpts{ID: id, Lease: leaderTTL, Maintenance: true, Concurrency: 4})
		if err == nil {
			procs[id] = p
		}
		return err
	}
	for range 3 {
		if err := start(); err != nil {
			return err
		}
	}
	until := time.Now().Add(e.cfg.Duration)
	fed := make(chan error, 1)
	go func() {
		n, err := e.feed(ctx, until, 3, 300, 200*time.Millisecond, "leader")
		r.Operations = n
		fed <- err
	}()
	const interval = 100 * time.Millisecond // MaintenanceInterval of chaos workers
	bound := leaderTTL + interval + 400*time.Millisecond
	var worst time.Duration
	for kills := 0; kills < 3 || time.Now().Before(until); kills++ {
		holder, err := e.waitLeader(ctx, "", 20*time.Second)
		if err != nil {
			return err
		}
		p, ok := procs[holder]
		if !ok {
			return fmt.Errorf("the maintenance leader %q is not one of the scenario's workers", holder)
		}
		if err := sleep(ctx, e.between(200*time.Millisecond, 600*time.Millisecond)); err != nil {
			return err
		}
		p.kill()
		killed := time.Now()
		delete(procs, holder)
		r.Faults++
		if err := start(); err != nil {
			return err
		}
		if _, err := e.waitLeader(ctx, holder, 20*time.Second); err != nil {
			return err
		}
		took := time.Since(killed)
		worst = max(worst, took)
		if took > bound {
			r.violate("kill %d: leadership taken over %s after the leader %s died; want within the TTL %s plus one maintenance interval (%s)", kills+1, took.Round(time.Millisecond), holder, leaderTTL, bound)
		}
	}
	windowEnd := time.Now()
	if err := <-fed; err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	// Let the leader fire the last ticks of the window, then stop the schedule.
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := e.client.GetSchedule(ctx, sched.Name)
		if err != nil {
			return err
		}
		if s.LastFiredTick != nil && !s.LastFiredTick.Before(windowEnd.Truncate(time.Second)) {
			break
		}
		if time.Now().After(deadline) {
			r.violate("the schedule fired no tick at or after the end of the window %s within 20s", windowEnd.Format(time.TimeOnly))
			break
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	if _, err := e.client.PauseSchedule(ctx, sched.Name, "chaos", "end of the leader scenario"); err != nil {
		return err
	}
	ticks, err := e.checkTicks(ctx, r, sched, began, windowEnd)
	if err != nil {
		return err
	}
	r.Operations += ticks
	if err := e.waitSettled(ctx); err != nil {
		return err
	}
	r.note("%d leader kills across %d worker processes; %d ticks fired; slowest takeover %s (bound %s)", r.Faults, gen, ticks, worst.Round(time.Millisecond), bound)
	jobs, err := e.count(ctx, `SELECT count(*) FROM executions WHERE kind = 'job'`)
	if err != nil {
		return err
	}
	return e.check(ctx, r, jobs)
}

// waitLeader waits until a live maintenance leader other than not holds
// the lease, and returns it.
func (e *env) waitLeader(ctx context.Context, not string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		var holder string
		err := e.pool.QueryRow(ctx, `SELECT holder FROM leaders WHERE name = 'maintenance' AND expires_at > now()`).Scan(&holder)
		if err == nil && holder != not {
			return holder, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no maintenance leader other than %q after %s (last error: %v)", not, timeout, err)
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// checkTicks reads the schedule's history: between its first tick and the
// end of the window, every second must have fired exactly once and have
// exactly one job. It returns the number of ticks fired.
func (e *env) checkTicks(ctx context.Context, r *Result, sched sdk.Schedule, began, windowEnd time.Time) (int, error) {
	h, err := e.client.ScheduleHistory(ctx, sched.Name)
	if err != nil {
		return 0, err
	}
	var fired []time.Time
	for _, ev := range h {
		switch ev.Type {
		case engine.EventScheduleFired:
			var f engine.ScheduleFired
			if err := json.Unmarshal(ev.Data, &f); err != nil {
				return 0, err
			}
			fired = append(fired, f.Tick)
		case engine.EventScheduleMissed, engine.EventScheduleSkipped:
			r.violate("the schedule recorded %s (%s): an outage shorter than the catch-up window must not lose a tick", ev.Type, ev.Data)
		}
	}
	if len(fired) == 0 {
		r.violate("the schedule never fired")
		return 0, nil
	}
	slices.SortFunc(fired, func(a, b time.Time) int { return a.Compare(b) })
	if first := fired[0]; first.Sub(began) > 2*time.Second+leaderTTL {
		r.violate("the first tick %s came %s after the schedule was created", first.Format(time.TimeOnly), first.Sub(began).Round(time.Millisecond))
	}
	for i := 1; i < len(fired); i++ {
		switch d := fired[i].Sub(fired[i-1]); {
		case d == 0:
			r.violate("tick %s fired twice", fired[i].Format(time.RFC3339))
		case d != time.Second:
			r.violate("ticks %s and %s are %s apart: the ticks between them were lost", fired[i-1].Format(time.TimeOnly), fired[i].Format(time.TimeOnly), d)
		}
	}
	if last := fired[len(fired)-1]; last.Before(windowEnd.Truncate(time.Second)) {
		r.violate("the last fired tick %s is before the end of the window %s", last.Format(time.TimeOnly), windowEnd.Format(time.TimeOnly))
	}
	// One job per tick, under the tick's key.
	for _, t := range fired {
		n, err := e.count(ctx, `SELECT count(*) FROM executions WHERE kind = 'job' AND idempotency_key = $1`, engine.ScheduleTickKey(sched.ID, t))
		if err != nil {
			return 0, err
		}
		if n != 1 {
			r.violate("tick %s has %d jobs with key %s; want 1", t.Format(time.RFC3339), n, engine.ScheduleTickKey(sched.ID, t))
		}
	}
	all, err := e.count(ctx, `SELECT count(*) FROM executions WHERE kind = 'job' AND idempotency_key LIKE $1`, fmt.Sprintf("schedule:%s:%%", sched.ID))
	if err != nil {
		return 0, err
	}
	if all != len(fired) {
		r.violate("%d jobs carry the schedule's tick keys; %d ticks fired", all, len(fired))
	}
	return len(fired), nil
}
