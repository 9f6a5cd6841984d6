package engine

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// SafeRunOutcome is what RunSafely did.
type SafeRunOutcome struct {
	// Job is the job's state after the run: its attempts, its status, and
	// its ID in the event log when it was recorded.
	Job Job
	// Err is the last attempt's error; nil when an attempt succeeded.
	Err error
	// Recorded is true when the failed run was written to the event log:
	// dead-lettered, or retrying when ctx ended before the policy gave up.
	Recorded bool
}

// safeStep is one command of a safe run, with the environment it was
// decided in, so that recording replays the very same decisions.
type safeStep struct {
	cmd Command
	env Env
}

// DefaultSafeRunWorkerID names the runner of RunSafely attempts in their
// AttemptStarted events.
func DefaultSafeRunWorkerID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("run-safely:%s-%d", host, os.Getpid())
}

// RunSafely runs fn as the attempts of job outside any worker (the
// runbook's runJobSafely): each attempt gets a consumer span (a child of
// ctx's span), the job's logger and metrics, as a worker's would. A failed
// attempt is retried after the delay job.RetryPolicy gives, in process.
// When the policy gives up (a permanent error, a non-retryable error type,
// or the attempts ran out), the job is recorded dead-lettered with every
// attempt in its history, so that an operator can retry it (a worker with
// a handler for its type then runs it) or resolve it. When ctx ends during
// a wait, the job is recorded as retrying, so that workers finish it.
// A run whose attempt succeeds writes nothing.
func (e *Engine) RunSafely(ctx context.Context, job NewJob, workerID string, fn func(ctx context.Context) Result) (SafeRunOutcome, error) {
	if workerID == "" {
		workerID = DefaultSafeRunWorkerID()
	}
	if job.ID == (eventlog.ID{}) {
		job.ID = eventlog.NewID(time.Now())
	}
	if job.Priority == "" {
		job.Priority = PriorityNormal
	}
	if job.CorrelationID == "" {
		job.CorrelationID = CorrelationID(ctx)
	}
	if job.TraceContext == nil {
		job.TraceContext = InjectTraceContext(ctx)
	}
	start := time.Now().Truncate(time.Microsecond)
	enq := JobEnqueued{Type: job.Type, Queue: job.Queue, Priority: job.Priority, Payload: job.Payload, RunAt: start,
		RetryPolicy: job.RetryPolicy, TraceContext: job.TraceContext, CorrelationID: job.CorrelationID}
	// The run decides with the pure decider on an in-memory history, in
	// local time; recording replays the same commands in one transaction.
	j, _, err := Record(Job{ID: job.ID}, []Decision{{EventJobEnqueued, enq}}, start)
	if err != nil {
		return SafeRunOutcome{}, err
	}
	var steps []safeStep
	apply := func(cmd Command, env Env) error {
		decisions, err := Decide(j, cmd, env)
		if err != nil {
			return err
		}
		j, _, err = Record(j, decisions, env.Now)
		steps = append(steps, safeStep{cmd, env})
		return err
	}
	log := e.log.With("worker_id", workerID)
	origin := Origin{CorrelationID: job.CorrelationID} // ctx's span is the parent
	var lastErr error
	for {
		began := time.Now()
		if err := apply(Claim{WorkerID: workerID, Attempt: j.Attempt + 1, LeaseExpiresAt: began.Truncate(time.Microsecond)}, Env{Now: began}); err != nil {
			return SafeRunOutcome{Job: j}, err
		}
		actx, tel := e.BeginAttempt(ctx, &j, origin, workerID, log)
		res := callSafely(actx, fn)
		d := time.Since(began)
		e.EndAttempt(tel, &j, res, d)
		if res.Err == nil {
			return SafeRunOutcome{Job: j}, nil
		}
		lastErr = res.Err
		r := e.random()
		failed := time.Now()
		if err := apply(Fail{Attempt: j.Attempt, Error: errorText(res.Err), ErrorType: storableText(res.ErrorType), Permanent: res.Permanent,
			Duration: d, RetryAfter: res.RetryAfter}, Env{Now: failed, Random: func() float64 { return r }}); err != nil {
			return SafeRunOutcome{Job: j, Err: lastErr}, err
		}
		if j.Status == StatusDeadLettered {
			break
		}
		wait := time.NewTimer(time.Until(j.RunAt))
		select {
		case <-ctx.Done():
			wait.Stop()
			log.Warn("run stopped before its retries ran out; recording it for workers to finish", "job_id", j.ID.String(), "type", j.Type, "err", context.Cause(ctx))
		case <-wait.C:
			continue
		}
		break
	}
	// Record even when ctx has ended: the failure must not be lost.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	final, err := e.recordSafeRun(rctx, job.ID, enq, steps)
	if err != nil {
		return SafeRunOutcome{Job: j, Err: lastErr}, fmt.Errorf("record failed run of %s as job %s: %w", job.Type, job.ID, err)
	}
	var rec recorded
	rec.note(final, false)
	e.report(rec)
	if final.Status == StatusRetrying {
		e.wakeLater(final.Queue, time.Until(final.RunAt))
	}
	return SafeRunOutcome{Job: final, Err: lastErr, Recorded: true}, nil
}

// recordSafeRun writes a safe run's history in one transaction, in
// database time, replaying the decisions the run made.
func (e *Engine) recordSafeRun(ctx context.Context, id eventlog.ID, enq JobEnqueued, steps []safeStep) (Job, error) {
	var j Job
	err := e.store.InTx(ctx, func(tx eventlog.Tx) error {
		now, err := tx.Now(ctx)
		if err != nil {
			return err
		}
		var events []eventlog.Event
		j, events, err = Record(Job{ID: id}, []Decision{{EventJobEnqueued, enq}}, now)
		if err != nil {
			return err
		}
		for _, s := range steps {
			decisions, err := Decide(j, s.cmd, s.env)
			if err != nil {
				return err
			}
			var more []eventlog.Event
			if j, more, err = Record(j, decisions, now); err != nil {
				return err
			}
			events = append(events, more...)
		}
		var c eventlog.Changes
		addJob(&c, &j, events, true)
		return tx.Apply(ctx, c)
	})
	return j, err
}

// callSafely runs fn, turning a panic into a failure.
func callSafely(ctx context.Context, fn func(context.Context) Result) (res Result) {
	defer func() {
		if p := recover(); p != nil {
			res = Result{Err: fmt.Errorf("panic: %v", p), ErrorType: "panic"}
		}
	}()
	return fn(ctx)
}
