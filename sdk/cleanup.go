package sdk

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// The built-in cleanup job types (the runbook's cleanup.*). Register their
// handlers with RegisterCleanupJobs; the scheduler enqueues them.
const (
	// JobTypeCleanupDeadLetters deletes resolved dead letters older than
	// CleanupConfig.DeadLetterRetention, with their histories.
	JobTypeCleanupDeadLetters = "cleanup.dead_letters"
	// JobTypeCleanupIdempotencyKeys deletes expired idempotency keys (of
	// WithIdempotency steps and of enqueue de-duplication).
	JobTypeCleanupIdempotencyKeys = "cleanup.idempotency_keys"
	// JobTypeCleanupHistories deletes succeeded and canceled jobs that
	// finished more than CleanupConfig.HistoryRetention ago, with their
	// histories.
	JobTypeCleanupHistories = "cleanup.histories"
	// JobTypeCleanupWorkers deletes heartbeat rows of workers not seen for
	// CleanupConfig.WorkerRetention.
	JobTypeCleanupWorkers = "cleanup.workers"
)

// Cleanup defaults.
const (
	// DefaultDeadLetterRetentionDays is how long resolved dead letters are
	// kept: 90 days, as the runbook says.
	DefaultDeadLetterRetentionDays = 90
	// DefaultHistoryRetention is how long succeeded and canceled jobs are
	// kept: 30 days.
	DefaultHistoryRetention = 30 * 24 * time.Hour
	// DefaultWorkerRetention is how long a worker that stopped sending
	// heartbeats keeps its row: a day.
	DefaultWorkerRetention = 24 * time.Hour
	// purgeBatch is how many executions one deletion transaction removes.
	purgeBatch = 1000
)

// CleanupConfig configures the cleanup job handlers. Zero fields take the
// defaults named.
type CleanupConfig struct {
	// DeadLetterRetentionDays: resolved dead letters older than this many
	// days are deleted. Defaults to 90.
	DeadLetterRetentionDays int
	// HistoryRetention: succeeded and canceled jobs that finished longer
	// ago are deleted. Defaults to 30 days. Dead letters, resolved or not,
	// are never deleted by it: they follow DeadLetterRetentionDays.
	HistoryRetention time.Duration
	// WorkerRetention: heartbeat rows of workers not seen for longer are
	// deleted. Defaults to a day.
	WorkerRetention time.Duration
}

func (c CleanupConfig) withDefaults() CleanupConfig {
	if c.DeadLetterRetentionDays <= 0 {
		c.DeadLetterRetentionDays = DefaultDeadLetterRetentionDays
	}
	if c.HistoryRetention <= 0 {
		c.HistoryRetention = DefaultHistoryRetention
	}
	if c.WorkerRetention <= 0 {
		c.WorkerRetention = DefaultWorkerRetention
	}
	return c
}

// CleanupReport counts what a cleanup removed.
type CleanupReport struct {
	// Executions and Events count deleted jobs and the events of their
	// histories.
	Executions int64 `json:"executions"`
	Events     int64 `json:"events"`
	// IdempotencyKeys counts deleted WithIdempotency keys; EnqueueKeys
	// deleted enqueue de-duplication keys.
	IdempotencyKeys int64 `json:"idempotency_keys"`
	EnqueueKeys     int64 `json:"enqueue_keys"`
	// Workers counts deleted worker heartbeat rows.
	Workers int64 `json:"workers"`
}

// String says what was removed, naming only what there was.
func (r CleanupReport) String() string {
	var parts []string
	if r.Executions > 0 || r.Events > 0 {
		parts = append(parts, fmt.Sprintf("%d executions with %d events", r.Executions, r.Events))
	}
	if r.IdempotencyKeys > 0 {
		parts = append(parts, fmt.Sprintf("%d idempotency keys", r.IdempotencyKeys))
	}
	if r.EnqueueKeys > 0 {
		parts = append(parts, fmt.Sprintf("%d enqueue keys", r.EnqueueKeys))
	}
	if r.Workers > 0 {
		parts = append(parts, fmt.Sprintf("%d worker heartbeats", r.Workers))
	}
	if len(parts) == 0 {
		return "removed nothing"
	}
	return "removed " + strings.Join(parts, ", ")
}

// CleanupDeadLetterJobs deletes resolved dead letters that were resolved
// more than days days ago, with their histories — the runbook's
// cleanupDeadLetterJobs(90). Dead letters still waiting for an operator are
// never deleted. days must be 1 or more.
func (c *Client) CleanupDeadLetterJobs(ctx context.Context, days int) (CleanupReport, error) {
	if days < 1 {
		return CleanupReport{}, &engine.InputError{Field: "days", Reason: fmt.Sprintf("%d; want 1 or more (the runbook keeps resolved dead letters 90 days)", days)}
	}
	return c.purge(ctx, []Status{StatusResolved}, time.Duration(days)*24*time.Hour)
}

// CleanupHistories deletes succeeded and canceled jobs that finished more
// than retention ago, with their histories. retention must be at least a
// minute.
func (c *Client) CleanupHistories(ctx context.Context, retention time.Duration) (CleanupReport, error) {
	if retention < time.Minute {
		return CleanupReport{}, &engine.InputError{Field: "history retention", Reason: fmt.Sprintf("%s; want a minute or more, such as 720h (30 days)", retention)}
	}
	return c.purge(ctx, []Status{StatusSucceeded, StatusCanceled}, retention)
}

func (c *Client) purge(ctx context.Context, statuses []Status, olderThan time.Duration) (CleanupReport, error) {
	p := eventlog.PurgeParams{Kinds: []string{"job"}, OlderThan: olderThan, Limit: purgeBatch}
	for _, s := range statuses {
		if !s.Final() {
			return CleanupReport{}, fmt.Errorf("purge: status %s is not final", s)
		}
		p.Statuses = append(p.Statuses, string(s))
	}
	var r CleanupReport
	for {
		got, err := c.eng.Store().PurgeExecutions(ctx, p)
		if err != nil {
			return r, err
		}
		r.Executions += got.Executions
		r.Events += got.Events
		if got.Executions < int64(p.Limit) {
			return r, nil
		}
	}
}

// CleanupIdempotencyKeys deletes expired keys: WithIdempotency keys whose
// TTL passed (and running claims past it whose attempt has ended), and
// enqueue de-duplication keys whose TTL passed.
func (c *Client) CleanupIdempotencyKeys(ctx context.Context) (CleanupReport, error) {
	var r CleanupReport
	for {
		n, err := c.eng.Store().DeleteExpiredIdempotencyKeys(ctx, purgeBatch)
		if err != nil {
			return r, err
		}
		if r.IdempotencyKeys += n; n < purgeBatch {
			break
		}
	}
	for {
		n, err := c.eng.Store().DeleteExpiredEnqueueKeys(ctx, purgeBatch)
		if err != nil {
			return r, err
		}
		if r.EnqueueKeys += n; n < purgeBatch {
			return r, nil
		}
	}
}

// CleanupWorkers deletes the heartbeat rows of workers not seen for
// olderThan (at least a minute).
func (c *Client) CleanupWorkers(ctx context.Context, olderThan time.Duration) (CleanupReport, error) {
	if olderThan < time.Minute {
		return CleanupReport{}, &engine.InputError{Field: "worker retention", Reason: fmt.Sprintf("%s; want a minute or more, such as 24h", olderThan)}
	}
	n, err := c.eng.Store().DeleteStaleWorkers(ctx, olderThan)
	return CleanupReport{Workers: n}, err
}

// CleanupPayload is the optional payload of a cleanup job: {} uses the
// worker's CleanupConfig.
type CleanupPayload struct {
	// OlderThan overrides the retention of this run, as a duration such as
	// "720h". It does not apply to cleanup.idempotency_keys, whose keys
	// carry their own expiry.
	OlderThan string `json:"older_than,omitempty"`
}

// RegisterCleanupJobs registers the handlers of the four cleanup job
// types on w. Each run logs what it removed and records it in the job's
// history (a StepCompleted event whose result is the CleanupReport), so
// `chronicle jobs history ID` shows the counts.
func RegisterCleanupJobs(w *Worker, cfg CleanupConfig) error {
	cfg = cfg.withDefaults()
	c := w.client
	handlers := map[string]func(ctx context.Context, olderThan time.Duration) (CleanupReport, error){
		JobTypeCleanupDeadLetters: func(ctx context.Context, d time.Duration) (CleanupReport, error) {
			days := cfg.DeadLetterRetentionDays
			if d > 0 {
				days = max(1, int(d/(24*time.Hour)))
			}
			return c.CleanupDeadLetterJobs(ctx, days)
		},
		JobTypeCleanupIdempotencyKeys: func(ctx context.Context, _ time.Duration) (CleanupReport, error) {
			return c.CleanupIdempotencyKeys(ctx)
		},
		JobTypeCleanupHistories: func(ctx context.Context, d time.Duration) (CleanupReport, error) {
			return c.CleanupHistories(ctx, orDefault(d, cfg.HistoryRetention))
		},
		JobTypeCleanupWorkers: func(ctx context.Context, d time.Duration) (CleanupReport, error) {
			return c.CleanupWorkers(ctx, orDefault(d, cfg.WorkerRetention))
		},
	}
	for jobType, run := range handlers {
		err := RegisterJobHandler(w, jobType, func(ctx context.Context, p CleanupPayload) error {
			var olderThan time.Duration
			if p.OlderThan != "" {
				d, err := time.ParseDuration(p.OlderThan)
				if err != nil || d <= 0 {
					return Permanent(fmt.Errorf("%s payload: older_than %q is not a positive duration such as 720h", jobType, p.OlderThan))
				}
				olderThan = d
			}
			info, _ := JobFromContext(ctx)
			report, err := WithIdempotencyResult(ctx, "cleanup:"+jobType+":"+info.ID.String(), 24*time.Hour, func(ctx context.Context) (CleanupReport, error) {
				return run(ctx, olderThan)
			})
			if err != nil {
				return err
			}
			c.log.Info(jobType+" "+report.String(), "job_id", info.ID.String(), "job_type", jobType,
				"executions", report.Executions, "events", report.Events, "idempotency_keys", report.IdempotencyKeys,
				"enqueue_keys", report.EnqueueKeys, "workers", report.Workers)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// orDefault returns override when it is set, else def.
func orDefault(override, def time.Duration) time.Duration {
	if override > 0 {
		return override
	}
	return def
}
