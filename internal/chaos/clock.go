package chaos

import (
	"context"
	"fmt"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/sdk"
)

// Clock scenario settings: a lease of 1.5 s renewed every second (two
// thirds of the lease, well above the default third), and handlers that
// run for three lease periods.
const (
	clockLease     = 1500 * time.Millisecond
	clockHeartbeat = time.Second
	clockJobTime   = 3 * clockLease
)

// runClock: leases are granted, extended and expired by the database's
// clock; a worker's own clock only paces its heartbeats. A worker whose
// heartbeat interval is two thirds of its lease runs jobs for three lease
// periods while another process leads maintenance (and expires leases):
// no attempt may time out, every job succeeds on its first attempt.
func runClock(ctx context.Context, e *env, r *Result) error {
	if _, err := e.startWorker(workerOpts{ID: "clock-leader", Maintenance: true, Concurrency: 1}); err != nil {
		return err
	}
	if _, err := e.startWorker(workerOpts{ID: "clock-worker", Lease: clockLease, Heartbeat: clockHeartbeat, Concurrency: 16}); err != nil {
		return err
	}
	until := time.Now().Add(e.cfg.Duration)
	for round := 0; round == 0 || time.Now().Before(until); round++ {
		reqs := make([]sdk.JobRequest, 8)
		for i := range reqs {
			reqs[i] = sdk.JobRequest{Type: effectJob, Payload: effectPayload{Key: fmt.Sprintf("payment:clock-%d-%d:capture", round, i), SleepMS: int(clockJobTime / time.Millisecond)},
				Options: []sdk.EnqueueOption{sdk.WithQueue(sdk.DefaultQueue)}}
		}
		if _, err := e.client.EnqueueMany(ctx, reqs); err != nil {
			return err
		}
		r.Operations += len(reqs)
		if err := sleep(ctx, clockJobTime); err != nil {
			return err
		}
	}
	if err := e.waitSettled(ctx); err != nil {
		return err
	}
	timedOut, err := e.count(ctx, `SELECT count(*) FROM events WHERE type = $1`, engine.EventAttemptTimedOut)
	if err != nil {
		return err
	}
	retried, err := e.count(ctx, `SELECT count(*) FROM executions WHERE kind = 'job' AND attempt > 1`)
	if err != nil {
		return err
	}
	if timedOut > 0 || retried > 0 {
		r.violate("%d attempts timed out and %d jobs needed more than one attempt although their worker heartbeated every %s on a %s lease", timedOut, retried, clockHeartbeat, clockLease)
	}
	leader, err := e.count(ctx, `SELECT count(*) FROM chaos_runs WHERE worker_id = 'clock-leader'`)
	if err != nil {
		return err
	}
	r.note("%d jobs of %s each on a %s lease renewed every %s: %d attempts timed out (%d ran on the maintenance leader)", r.Operations, clockJobTime, clockLease, clockHeartbeat, timedOut, leader)
	return e.check(ctx, r, r.Operations)
}
