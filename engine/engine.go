package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// Waker tells idle workers that a queue has work. It is only a hint:
// workers also poll, so a lost wakeup delays work but never loses it.
type Waker interface {
	Wake(queues ...string)
}

type noWaker struct{}

func (noWaker) Wake(...string) {}

// Engine runs job commands against the event log: each operation reads the
// state it needs, decides with the pure functions, and writes the events and
// projection rows in one transaction.
type Engine struct {
	store  eventlog.Store
	waker  Waker
	log    *slog.Logger
	random func() float64
	inst   instruments // see Instrument
	// historyLimits bound workflow histories; see SetHistoryLimits.
	historyLimits HistoryLimits
}

// New returns an engine over store. waker may be nil.
func New(store eventlog.Store, waker Waker, log *slog.Logger) *Engine {
	if waker == nil {
		waker = noWaker{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{store: store, waker: waker, log: log, random: rand.Float64}
}

// Store returns the engine's store.
func (e *Engine) Store() eventlog.Store { return e.store }

// Wake publishes a wakeup for queues.
func (e *Engine) Wake(queues ...string) { e.waker.Wake(queues...) }

func (e *Engine) env(now time.Time) Env { return Env{Now: now, Random: e.random} }

// changes adds a job's new events and projection rows to c. withTask is
// false when the task row is already what the state implies (a claim leases
// it in SQL).
func addJob(c *eventlog.Changes, j *Job, events []eventlog.Event, withTask bool) {
	c.Events = append(c.Events, events...)
	if len(events) > 0 && events[0].Seq == 1 {
		c.NewExecutions = append(c.NewExecutions, j.Row())
	} else {
		c.Executions = append(c.Executions, j.Row())
	}
	if !withTask {
		return
	}
	if t := j.Task(); t != nil {
		c.Tasks = append(c.Tasks, *t)
	} else {
		c.DeleteTasks = append(c.DeleteTasks, eventlog.TaskRef{ExecutionID: j.ID})
	}
}

// NewJob describes a job to enqueue.
type NewJob struct {
	// ID is optional; a fresh ULID is used when zero.
	ID       eventlog.ID
	Type     string
	Queue    string
	Priority Priority
	// Payload is canonical JSON.
	Payload json.RawMessage
	// RunAt, when set, is when the job becomes due; otherwise it is due
	// Delay after the database's now().
	RunAt       time.Time
	Delay       time.Duration
	RetryPolicy RetryPolicy
	// IdempotencyKey, when set, makes the enqueue return the existing job
	// that holds the same key, for IdempotencyTTL.
	IdempotencyKey string
	IdempotencyTTL time.Duration
	// TraceContext and CorrelationID are recorded in JobEnqueued; see there.
	TraceContext  map[string]string
	CorrelationID string
}

// Enqueued is the outcome of one enqueue.
type Enqueued struct {
	ID eventlog.ID
	// Existing is true when an idempotency key matched a job enqueued earlier.
	Existing bool
	Job      Job
}

// Enqueue appends JobEnqueued for each job in tx, or in a transaction of its
// own when tx is nil, in which case the queues are woken after commit. A
// caller that passes its own tx wakes them with Wake after committing.
func (e *Engine) Enqueue(ctx context.Context, tx eventlog.Tx, jobs []NewJob) (res []Enqueued, err error) {
	ctx, jobs, end := e.traceEnqueue(ctx, jobs)
	defer func() { end(res, err) }()
	if tx == nil {
		var out []Enqueued
		err := e.store.InTx(ctx, func(tx eventlog.Tx) error {
			var err error
			out, err = e.Enqueue(ctx, tx, jobs)
			return err
		})
		if err != nil {
			return nil, err
		}
		e.wakeDue(out)
		return out, nil
	}
	now, err := tx.Now(ctx)
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	out := make([]Enqueued, len(jobs))
	var c eventlog.Changes
	for i, nj := range jobs {
		if nj.ID == (eventlog.ID{}) {
			nj.ID = eventlog.NewID(now)
		}
		if nj.IdempotencyKey != "" {
			existing, claimed, err := tx.ClaimEnqueueKey(ctx, nj.IdempotencyKey, nj.ID, now.Add(nj.IdempotencyTTL))
			if err != nil {
				return nil, err
			}
			if !claimed {
				out[i] = Enqueued{ID: existing, Existing: true}
				continue
			}
		}
		if nj.Priority == "" {
			nj.Priority = PriorityNormal
		}
		runAt := nj.RunAt
		if runAt.IsZero() {
			runAt = now.Add(nj.Delay)
		}
		d := JobEnqueued{Type: nj.Type, Queue: nj.Queue, Priority: nj.Priority, Payload: nj.Payload,
			RunAt: runAt.Truncate(time.Microsecond), RetryPolicy: nj.RetryPolicy, IdempotencyKey: nj.IdempotencyKey,
			TraceContext: nj.TraceContext, CorrelationID: nj.CorrelationID}
		j, events, err := Record(Job{ID: nj.ID}, []Decision{{EventJobEnqueued, d}}, now)
		if err != nil {
			return nil, err
		}
		addJob(&c, &j, events, true)
		out[i] = Enqueued{ID: j.ID, Job: j}
	}
	if err := tx.Apply(ctx, c); err != nil {
		return nil, fmt.Errorf("enqueue %d jobs: %w", len(jobs), err)
	}
	return out, nil
}

// wakeDue wakes the queues of jobs that are due now, and arranges a wakeup
// for those due soon.
func (e *Engine) wakeDue(jobs []Enqueued) {
	seen := map[string]bool{}
	var queues []string
	for _, j := range jobs {
		if j.Existing {
			continue
		}
		if wait := j.Job.RunAt.Sub(j.Job.CreatedAt); wait > 0 {
			e.wakeLater(j.Job.Queue, wait)
		} else if !seen[j.Job.Queue] {
			seen[j.Job.Queue] = true
			queues = append(queues, j.Job.Queue)
		}
	}
	if len(queues) > 0 {
		e.waker.Wake(queues...)
	}
}

// soonHorizon bounds the delays that get an in-process wakeup timer.
// Later work is woken by the maintenance leader, at most one maintenance
// interval late, or found by polling.
const soonHorizon = time.Minute

// wakeLater wakes queue after wait, when wait is within soonHorizon, so that
// a retry due in 100ms starts in about 100ms rather than at the next poll.
// The timer is only a hint: if this process dies, polling and the leader
// still find the work.
func (e *Engine) wakeLater(queue string, wait time.Duration) {
	if wait > soonHorizon {
		return
	}
	time.AfterFunc(wait, func() { e.waker.Wake(queue) })
}

// Claimed is a job leased to a worker.
type Claimed struct {
	Job   Job
	Lease eventlog.Lease
	// LeaseExpiresAt is in database time.
	LeaseExpiresAt time.Time
	// ClaimedAt is the database time of the claim.
	ClaimedAt time.Time
	// Origin is the trace context and correlation ID the job was enqueued with.
	Origin Origin
	// Workflow is set when the task belongs to a workflow run (see
	// workflow_engine.go); Job then carries only its ID, type and queue.
	Workflow *WorkflowClaim
	// FixedLease leases are not extended by the worker's heartbeats: an
	// activity extends its own with HeartbeatActivity.
	FixedLease bool
}

// ClaimParams selects what a worker claims.
type ClaimParams struct {
	Queues        []string
	Limit         int
	WorkerID      string
	LeaseDuration time.Duration
}

// Claim leases up to p.Limit ready jobs and records AttemptStarted for each,
// in one transaction.
func (e *Engine) Claim(ctx context.Context, p ClaimParams) ([]Claimed, error) {
	var out []Claimed
	err := e.store.InTx(ctx, func(tx eventlog.Tx) error {
		out = out[:0]
		leased, now, err := tx.LeaseTasks(ctx, eventlog.LeaseParams{Queues: p.Queues, Limit: p.Limit, WorkerID: p.WorkerID, Duration: p.LeaseDuration})
		if err != nil || len(leased) == 0 {
			return err
		}
		var c eventlog.Changes
		var workflowTasks []eventlog.Leased
		for _, l := range leased {
			if l.Execution.Kind == KindWorkflow {
				workflowTasks = append(workflowTasks, l)
				continue
			}
			j, err := JobFromRow(l.Execution, nil)
			if err == nil {
				var decisions []Decision
				decisions, err = Decide(j, Claim{WorkerID: p.WorkerID, Attempt: l.Task.Attempt, LeaseExpiresAt: *l.Task.LeaseExpiresAt}, e.env(now))
				if err == nil {
					var events []eventlog.Event
					if j, events, err = Record(j, decisions, now); err == nil {
						addJob(&c, &j, events, false)
						out = append(out, Claimed{Job: j, Lease: eventlog.Lease{ExecutionID: j.ID, Attempt: j.Attempt, WorkerID: p.WorkerID},
							LeaseExpiresAt: *l.Task.LeaseExpiresAt, ClaimedAt: now})
						continue
					}
				}
			}
			// A task whose execution cannot be claimed is a projection fault:
			// take it out of the ready queue so it cannot block the queue,
			// and leave the history for chronicle verify to report.
			e.log.Error("dropping unclaimable task from the ready queue", "job_id", l.Execution.ID.String(), "err", err)
			c.DeleteTasks = append(c.DeleteTasks, eventlog.TaskRef{ExecutionID: l.Task.ExecutionID, Key: l.Task.Key})
		}
		if len(workflowTasks) > 0 {
			claimed, err := e.claimWorkflowTasks(ctx, tx, workflowTasks, now, p.WorkerID, &c)
			if err != nil {
				return err
			}
			out = append(out, claimed...)
		}
		if err := attachOrigins(ctx, tx, out); err != nil {
			return err
		}
		return tx.Apply(ctx, c)
	})
	if err != nil {
		return nil, fmt.Errorf("claim from %v: %w", p.Queues, err)
	}
	return out, nil
}

// Outcome is the result of one attempt, as its worker reports it.
type Outcome struct {
	Lease eventlog.Lease
	// Err is nil on success.
	Err       error
	ErrorType string
	Permanent bool
	Duration  time.Duration
	// RetryAfter is the earliest next attempt the failure asked for; see
	// Fail.RetryAfter.
	RetryAfter time.Duration
	// Workflow is what a workflow task or activity produced.
	Workflow *WorkflowResult
}

// Complete records the outcomes of many attempts in one transaction. The
// returned slice holds, per outcome, nil or an error wrapping ErrLeaseLost
// when that attempt no longer held its lease and nothing was recorded.
func (e *Engine) Complete(ctx context.Context, outcomes []Outcome) ([]error, error) {
	if hasWorkflowOutcomes(outcomes) {
		return e.completeMixed(ctx, outcomes)
	}
	results := make([]error, len(outcomes))
	var wake []string
	var waits []time.Duration
	var rec recorded
	err := e.store.InTx(ctx, func(tx eventlog.Tx) error {
		wake, waits, rec = wake[:0], waits[:0], recorded{}
		leases := make([]eventlog.Lease, len(outcomes))
		for i, o := range outcomes {
			leases[i] = o.Lease
		}
		locked, now, err := tx.LockLeases(ctx, leases)
		if err != nil {
			return err
		}
		held := make(map[eventlog.TaskRef]eventlog.Leased, len(locked))
		for _, l := range locked {
			held[eventlog.TaskRef{ExecutionID: l.Task.ExecutionID, Key: l.Task.Key}] = l
		}
		var c eventlog.Changes
		for i, o := range outcomes {
			results[i] = nil
			l, ok := held[eventlog.TaskRef{ExecutionID: o.Lease.ExecutionID, Key: o.Lease.Key}]
			if !ok {
				results[i] = fmt.Errorf("attempt %d of job %s: %w", o.Lease.Attempt, o.Lease.ExecutionID, ErrLeaseLost)
				continue
			}
			j, err := JobFromRow(l.Execution, &l.Task)
			if err != nil {
				return err
			}
			var cmd Command = Complete{Attempt: o.Lease.Attempt, Duration: o.Duration}
			if o.Err != nil {
				cmd = Fail{Attempt: o.Lease.Attempt, Error: errorText(o.Err), ErrorType: storableText(o.ErrorType), Permanent: o.Permanent, Duration: o.Duration, RetryAfter: o.RetryAfter}
			}
			decisions, err := Decide(j, cmd, e.env(now))
			if err != nil {
				results[i] = err
				continue
			}
			j, events, err := Record(j, decisions, now)
			if err != nil {
				return err
			}
			addJob(&c, &j, events, true)
			rec.note(j, false)
			if j.Status == StatusRetrying {
				wake = append(wake, j.Queue)
				waits = append(waits, j.RunAt.Sub(now))
			}
		}
		return tx.Apply(ctx, c)
	})
	if err != nil {
		return nil, fmt.Errorf("record %d attempt outcomes: %w", len(outcomes), err)
	}
	e.report(rec)
	var dueNow []string
	for i, q := range wake {
		if waits[i] > 0 {
			e.wakeLater(q, waits[i])
		} else if !slices.Contains(dueNow, q) {
			dueNow = append(dueNow, q)
		}
	}
	if len(dueNow) > 0 {
		e.waker.Wake(dueNow...)
	}
	return results, nil
}

// ExpireLeases records AttemptTimedOut for up to limit attempts whose lease
// expired, letting each job's retry policy decide what follows. It returns
// how many it expired.
func (e *Engine) ExpireLeases(ctx context.Context, limit int) (int, error) {
	n := 0
	var rec recorded
	var workflowTasks []eventlog.TaskRef // expired after this transaction; see expireWorkflowTasks
	err := e.store.InTx(ctx, func(tx eventlog.Tx) error {
		n, rec = 0, recorded{}
		workflowTasks = workflowTasks[:0]
		expired, now, err := tx.LockExpiredLeases(ctx, limit)
		if err != nil || len(expired) == 0 {
			return err
		}
		var c eventlog.Changes
		for _, l := range expired {
			if l.Execution.Kind == KindWorkflow {
				workflowTasks = append(workflowTasks, eventlog.TaskRef{ExecutionID: l.Task.ExecutionID, Key: l.Task.Key})
				continue
			}
			j, err := JobFromRow(l.Execution, &l.Task)
			if err == nil {
				var decisions []Decision
				if decisions, err = Decide(j, TimeOut{Attempt: l.Task.Attempt}, e.env(now)); err == nil {
					var events []eventlog.Event
					if j, events, err = Record(j, decisions, now); err == nil {
						addJob(&c, &j, events, true)
						rec.note(j, true)
						n++
						continue
					}
				}
			}
			e.log.Error("dropping expired task that disagrees with its history", "job_id", l.Execution.ID.String(), "err", err)
			c.DeleteTasks = append(c.DeleteTasks, eventlog.TaskRef{ExecutionID: l.Task.ExecutionID, Key: l.Task.Key})
		}
		return tx.Apply(ctx, c)
	})
	if err != nil {
		return 0, fmt.Errorf("expire leases: %w", err)
	}
	e.report(rec)
	if len(workflowTasks) > 0 {
		m, err := e.expireWorkflowTasks(ctx, workflowTasks)
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

// Execute applies an operator command (retry, resolve, cancel) to one job
// and returns its new state.
func (e *Engine) Execute(ctx context.Context, id eventlog.ID, cmd Command) (Job, error) {
	var j Job
	if x, err := e.store.GetExecution(ctx, id); err == nil && x.Kind == KindWorkflow {
		return j, fmt.Errorf("execution %s is a workflow run, not a job; cancel or terminate it with the workflow operations (Client.CancelWorkflow, Client.TerminateWorkflow): %w", id, ErrWorkflowRun)
	}
	err := e.store.InTx(ctx, func(tx eventlog.Tx) error {
		if err := tx.LockTasks(ctx, []eventlog.ID{id}); err != nil {
			return err
		}
		rows, err := tx.LockExecutions(ctx, []eventlog.ID{id})
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return fmt.Errorf("job %s: %w", id, eventlog.ErrNotFound)
		}
		now, err := tx.Now(ctx)
		if err != nil {
			return err
		}
		if j, err = JobFromRow(rows[0], nil); err != nil {
			return err
		}
		decisions, err := Decide(j, cmd, e.env(now))
		if err != nil {
			return err
		}
		var events []eventlog.Event
		if j, events, err = Record(j, decisions, now); err != nil {
			return err
		}
		var c eventlog.Changes
		addJob(&c, &j, events, true)
		return tx.Apply(ctx, c)
	})
	if err != nil {
		return j, err
	}
	if j.Status == StatusPending {
		e.waker.Wake(j.Queue)
	}
	return j, nil
}

// Get returns a job's current state from its projection row.
func (e *Engine) Get(ctx context.Context, id eventlog.ID) (Job, error) {
	x, err := e.store.GetExecution(ctx, id)
	if err != nil {
		return Job{}, err
	}
	return JobFromRow(x, nil)
}
