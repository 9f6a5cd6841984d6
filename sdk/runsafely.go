package sdk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// RunJobSafely defaults.
const (
	// DefaultSafeRunRetries is how many times RunJobSafely retries by default.
	DefaultSafeRunRetries = 3
)

// DefaultSafeRunBackoff is RunJobSafely's retry delays unless
// SafeRunOptions.Backoff says otherwise: short, because the caller waits.
var DefaultSafeRunBackoff = RetryPolicy{InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 5 * time.Second, Jitter: 0.2}

// ErrDeadLettered is matched (errors.Is) by the error of a RunJobSafely
// whose job was moved to the dead-letter queue.
var ErrDeadLettered = errors.New("dead-lettered")

// SafeRunOptions configures RunJobSafely. Every field is optional.
type SafeRunOptions struct {
	// MaxRetries is how many times a failed fn is retried. Zero means
	// DefaultSafeRunRetries (3); a negative value means never retry.
	MaxRetries int
	// Backoff gives the delays between retries and the error types not to
	// retry; its MaximumAttempts is replaced by MaxRetries+1. Defaults to
	// DefaultSafeRunBackoff (100ms doubling to at most 5s, ±20%).
	Backoff *RetryPolicy
	// Queue files the dead letter under a queue other than the job type's;
	// a retry by an operator runs there.
	Queue string
}

// RunError is the error of a RunJobSafely whose attempts all failed.
type RunError struct {
	// ID is the job's ID in Chronicle when the failure was recorded.
	ID eventlog.ID
	// Attempts is how many attempts ran.
	Attempts int
	// DeadLettered is true when the job was moved to the dead-letter queue;
	// false when ctx ended first and it was left retrying for workers.
	DeadLettered bool
	// Err is the last attempt's error.
	Err error
}

func (e *RunError) Error() string {
	where := "left for workers to retry"
	if e.DeadLettered {
		where = "dead-lettered"
	}
	return fmt.Sprintf("%d attempts failed; %s as job %s: %v", e.Attempts, where, e.ID, e.Err)
}

// Unwrap returns the last attempt's error.
func (e *RunError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrDeadLettered) true for a dead-lettered run.
func (e *RunError) Is(target error) bool { return target == ErrDeadLettered && e.DeadLettered }

// RunJobSafely runs fn, the body of a job of jobType, outside the worker
// loop, as the runbook's runJobSafely does, with what every handler in a
// worker gets without asking:
//
//   - a span per attempt, a child of ctx's span;
//   - a logger with the job's attributes and correlation ID (Logger(ctx)
//     inside fn); the correlation ID is ctx's, else jobID;
//   - retries with backoff (opts.MaxRetries, opts.Backoff), stopping at
//     once on a Permanent error;
//   - job_processed_total and job_duration_seconds for every attempt.
//
// When every attempt fails, the job is recorded in Chronicle as a dead
// letter whose history holds each attempt and its error, and the returned
// *RunError says which (errors.Is(err, ErrDeadLettered)). An operator can
// then retry it, and a worker with a handler for jobType runs it with
// payload, or resolve it. jobID, when it is a ULID, becomes the job's ID.
// If ctx ends while waiting to retry, the job is recorded as retrying, for
// workers to finish. A run that succeeds writes nothing to the database.
func (c *Client) RunJobSafely(ctx context.Context, jobType, jobID string, payload any, fn func(ctx context.Context) error, opts SafeRunOptions) error {
	if fn == nil {
		return &engine.InputError{Field: "fn", Reason: "is nil"}
	}
	if err := ValidateJobType(jobType, false); err != nil {
		return err
	}
	raw, err := encodePayload(payload, c.cfg.MaxPayloadBytes)
	if err != nil {
		return err
	}
	retries := opts.MaxRetries
	switch {
	case retries == 0:
		retries = DefaultSafeRunRetries
	case retries < 0:
		retries = 0
	}
	policy := DefaultSafeRunBackoff
	if opts.Backoff != nil {
		policy = *opts.Backoff
	}
	policy.MaximumAttempts = retries + 1
	if err := policy.Validate(); err != nil {
		return &engine.InputError{Field: "backoff", Reason: err.Error()}
	}
	rt, _ := c.lookup(jobType)
	job := engine.NewJob{Type: jobType, Queue: firstOf(opts.Queue, rt.Queue, DefaultQueue), Priority: rt.Priority, Payload: raw, RetryPolicy: policy}
	if err := engine.ValidQueueName(job.Queue); err != nil {
		return err
	}
	if id, err := eventlog.ParseID(jobID); err == nil {
		job.ID = id
	}
	job.CorrelationID = firstOf(engine.CorrelationID(ctx), jobID)
	out, err := c.eng.RunSafely(ctx, job, "", func(ctx context.Context) engine.Result {
		err := fn(ctx)
		if err == nil {
			return engine.Result{}
		}
		var perm *PermanentError
		return engine.Result{Err: err, ErrorType: ErrorType(err), Permanent: errors.As(err, &perm)}
	})
	switch {
	case err != nil && out.Err != nil:
		return errors.Join(out.Err, err)
	case err != nil:
		return err
	case out.Err == nil:
		return nil
	}
	return &RunError{ID: out.Job.ID, Attempts: out.Job.AttemptsInBudget(), DeadLettered: out.Job.Status == StatusDeadLettered, Err: out.Err}
}
