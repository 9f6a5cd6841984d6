package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

// raceJob is the job type of the rescue scenario: one attempt only, so an
// attempt timed out by lease expiry ends the job in the dead-letter queue
// and every job ends in one of two states.
const raceJob = "chaos.race"

// raceQueue keeps the rescue scenario's claims to its own jobs.
const raceQueue = "chaos-race"

// raceLease is the lease the rescue scenario claims with; completions and
// lease expiry are aimed at its end.
const raceLease = 200 * time.Millisecond

// runRescue: completion racing lease expiry, driven through the engine API
// in this process. Each round claims a batch with a short lease; for each
// job a completer goroutine calls Complete at a random moment within
// ±25 ms of the lease's end while an expirer goroutine calls ExpireLeases
// in a loop, all released by one barrier. Either side may win a job, never
// both: Complete returning nil means AttemptSucceeded was recorded and the
// job stays succeeded; ErrLeaseLost means AttemptTimedOut was recorded and
// nothing of the completion; no attempt ever has two terminal events.
func runRescue(ctx context.Context, e *env, r *Result) error {
	if err := e.client.RegisterJobType(raceJob, sdk.JobType{Queue: raceQueue, RetryPolicy: sdk.RetryPolicy{MaximumAttempts: 1}}); err != nil {
		return err
	}
	eng := e.client.Engine()
	until := time.Now().Add(e.cfg.Duration)
	completed, rescued := 0, 0
	for round := 0; round < 5 || time.Now().Before(until); round++ {
		c, x, err := rescueRound(ctx, e, eng, r, round)
		if err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		completed, rescued = completed+c, rescued+x
	}
	r.Faults = rescued
	r.note("%d jobs: %d completions won the race, %d lease expiries won it", r.Operations, completed, rescued)
	if completed == 0 || rescued == 0 {
		r.violate("one side never won (%d completions, %d expiries): the race was not exercised", completed, rescued)
	}
	dups, err := e.count(ctx, `SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM events WHERE type = $1 GROUP BY execution_id) s`, engine.EventAttemptSucceeded)
	if err != nil {
		return err
	}
	if r.DuplicateSuccesses = dups; dups > 0 {
		r.violate("%d duplicate AttemptSucceeded events", dups)
	}
	return e.verify(ctx, r)
}

func rescueRound(ctx context.Context, e *env, eng *engine.Engine, r *Result, round int) (completed, rescued int, err error) {
	const batch = 20
	reqs := make([]sdk.JobRequest, batch)
	for i := range reqs {
		reqs[i] = sdk.JobRequest{Type: raceJob, Payload: map[string]int{"round": round, "i": i}}
	}
	if _, err := e.client.EnqueueMany(ctx, reqs); err != nil {
		return 0, 0, err
	}
	r.Operations += batch
	claimed, err := eng.Claim(ctx, engine.ClaimParams{Queues: []string{raceQueue}, Limit: batch, WorkerID: fmt.Sprintf("racer-%d", round), LeaseDuration: raceLease})
	if err != nil {
		return 0, 0, err
	}
	if len(claimed) != batch {
		return 0, 0, fmt.Errorf("claimed %d of %d jobs", len(claimed), batch)
	}
	barrier := make(chan struct{})
	results := make([]error, batch)
	var wg sync.WaitGroup
	expiry := claimed[0].LeaseExpiresAt
	// The claim's time is database time; aim at the lease's end by the
	// local clock, measured from the claim's return (same machine).
	aim := time.Now().Add(expiry.Sub(claimed[0].ClaimedAt))
	for i, c := range claimed {
		offset := time.Duration(e.rng.Int64N(int64(50*time.Millisecond))) - 25*time.Millisecond
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-barrier
			_ = sleep(ctx, time.Until(aim.Add(offset)))
			res, err := eng.Complete(ctx, []engine.Outcome{{Lease: c.Lease, Duration: time.Millisecond}})
			if err == nil {
				err = res[0]
			}
			results[i] = err
		}()
	}
	stopExpirer := make(chan struct{})
	expirerDone := make(chan error, 1)
	go func() {
		<-barrier
		_ = sleep(ctx, time.Until(aim.Add(-30*time.Millisecond)))
		for {
			if _, err := eng.ExpireLeases(ctx, 500); err != nil {
				expirerDone <- err
				return
			}
			select {
			case <-stopExpirer:
				_, err := eng.ExpireLeases(ctx, 500) // the leases of completions that lost
				expirerDone <- err
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	close(barrier)
	wg.Wait()
	close(stopExpirer)
	if err := <-expirerDone; err != nil {
		return 0, 0, fmt.Errorf("expire leases: %w", err)
	}
	for i, c := range claimed {
		won := results[i] == nil
		if !won && !errors.Is(results[i], engine.ErrLeaseLost) {
			return 0, 0, fmt.Errorf("complete job %s: %w", c.Job.ID, results[i])
		}
		if won {
			completed++
		} else {
			rescued++
		}
		if err := e.checkRace(ctx, r, c.Job.ID, won); err != nil {
			return 0, 0, err
		}
	}
	return completed, rescued, nil
}

// checkRace checks one raced job's history and status against who won.
func (e *env) checkRace(ctx context.Context, r *Result, id eventlog.ID, completed bool) error {
	h, err := e.client.History(ctx, id)
	if err != nil {
		return err
	}
	terminal := map[int][]string{}
	succeededAt := 0
	for _, ev := range h {
		switch ev.Type {
		case engine.EventAttemptSucceeded, engine.EventAttemptFailed, engine.EventAttemptTimedOut:
			var a struct {
				Attempt int `json:"attempt"`
			}
			if err := json.Unmarshal(ev.Data, &a); err != nil {
				return err
			}
			terminal[a.Attempt] = append(terminal[a.Attempt], ev.Type)
			if ev.Type == engine.EventAttemptSucceeded {
				succeededAt = int(ev.Seq)
			}
		}
		if succeededAt > 0 && int(ev.Seq) > succeededAt {
			r.violate("job %s: %s recorded after AttemptSucceeded: a completed job reverted", id, ev.Type)
		}
	}
	for a, ts := range terminal {
		if len(ts) > 1 {
			r.violate("job %s: attempt %d has %d terminal events %v", id, a, len(ts), ts)
		}
	}
	j, err := e.client.Job(ctx, id)
	if err != nil {
		return err
	}
	want := sdk.StatusDeadLettered
	if completed {
		want = sdk.StatusSucceeded
	}
	if j.Status != want {
		r.violate("job %s: Complete returned %v but the job is %s; want %s", id, map[bool]string{true: "nil", false: "ErrLeaseLost"}[completed], j.Status, want)
	}
	if completed != (len(terminal[1]) == 1 && terminal[1][0] == engine.EventAttemptSucceeded) {
		r.violate("job %s: Complete returned %v but attempt 1 recorded %v", id, map[bool]string{true: "nil", false: "ErrLeaseLost"}[completed], terminal[1])
	}
	return nil
}

// verify runs chronicle verify over the scenario's schema.
func (e *env) verify(ctx context.Context, r *Result) error {
	rep, err := e.client.Engine().Verify(ctx, nil)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if rep.OK() {
		r.Verify = fmt.Sprintf("OK (%d executions, %d events)", rep.Executions, rep.Events)
		return nil
	}
	r.Verify = fmt.Sprintf("%d problems (%d executions, %d events)", len(rep.Problems), rep.Executions, rep.Events)
	for _, p := range rep.Problems {
		r.violate("verify: %s", p)
	}
	return nil
}
