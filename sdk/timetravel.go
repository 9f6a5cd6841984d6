package sdk

import (
	"context"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// ErrNotYet: the job asked about did not exist yet at the moment asked
// about.
var ErrNotYet = engine.ErrNotYet

// QueueStats counts the unfinished jobs of one queue and type: pending,
// running, retrying and dead-lettered.
type QueueStats = engine.QueueStats

// JobAt returns a job as it was at the moment at: the fold of the events
// recorded at or before it. Before the job was enqueued it fails with
// ErrNotYet.
func (c *Client) JobAt(ctx context.Context, id eventlog.ID, at time.Time) (Job, error) {
	return c.eng.JobAt(ctx, id, at)
}

// QueueStats counts the jobs that are pending, running, retrying and
// dead-lettered now, by queue and type.
func (c *Client) QueueStats(ctx context.Context) ([]QueueStats, error) {
	return c.eng.QueueStatsNow(ctx)
}

// QueueStatsAt counts the jobs that were pending, running, retrying and
// dead-lettered at the moment at, by queue and type, from the events.
func (c *Client) QueueStatsAt(ctx context.Context, at time.Time) ([]QueueStats, error) {
	return c.eng.QueueStatsAt(ctx, at)
}

// SimulationReport is the outcome of SimulateRetryPolicy; see
// engine.SimulationReport for each field.
type SimulationReport = engine.SimulationReport

// SimulateRetryPolicy replays the histories of the jobs of jobType created
// within the last `within` (zero: all) under a proposed retry policy and
// reports how many would have succeeded and been dead-lettered, and how
// their completion delay would change. Each attempt keeps its recorded
// outcome; attempts beyond the policy's MaximumAttempts do not happen,
// and the delays between attempts follow the policy. It writes nothing.
func (c *Client) SimulateRetryPolicy(ctx context.Context, jobType string, within time.Duration, p RetryPolicy) (SimulationReport, error) {
	if err := ValidateJobType(jobType, false); err != nil {
		return SimulationReport{}, err
	}
	return c.eng.SimulateRetryPolicy(ctx, jobType, within, p)
}
