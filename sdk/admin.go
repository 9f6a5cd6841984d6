package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk/internal/wfrt"
)

// Reads and operator commands for tools that show Chronicle to people: the
// HTTP API and the admin UI of package server. They list jobs and workflow
// runs newest first, measure recent throughput from the events, show what
// each worker holds, and record the operator who acts.

// Limits of SearchQuery.
const (
	// DefaultSearchLimit is how many executions a search returns when
	// SearchQuery.Limit is zero.
	DefaultSearchLimit = 50
	// MaxSearchLimit is the largest SearchQuery.Limit.
	MaxSearchLimit = 1000
)

// ErrNotJob: the ID names a workflow run, not a job.
var ErrNotJob = errors.New("not a job")

// SearchQuery selects jobs (SearchJobs) or workflow runs (SearchWorkflows),
// newest first. Zero fields do not filter.
type SearchQuery struct {
	// Statuses keeps these statuses: a job's (pending, running, retrying,
	// succeeded, dead_lettered, resolved, canceled) or a run's (running,
	// blocked, completed, failed, canceled, terminated, timed_out).
	Statuses []string
	// Types keeps these types; a type ending in ".*" keeps its family.
	Types []string
	// Queues keeps these queues.
	Queues []string
	// Text keeps executions whose last error or idempotency key (a run's
	// workflow ID) contains it, ignoring case, or whose ID it is.
	Text string
	// CreatedFrom and CreatedTo bound when the execution was created:
	// from inclusive, to exclusive.
	CreatedFrom, CreatedTo time.Time
	// Before pages to older executions (IDs below it), After to newer ones
	// (IDs above it); the zero ID does not page.
	Before, After eventlog.ID
	// Limit defaults to DefaultSearchLimit (50); at most MaxSearchLimit.
	Limit int
}

var jobStatuses = []Status{StatusPending, StatusRunning, StatusRetrying, StatusSucceeded, StatusDeadLettered, StatusResolved, StatusCanceled}

var workflowStatuses = []engine.WorkflowStatus{engine.StatusWorkflowRunning, engine.StatusWorkflowBlocked, engine.StatusWorkflowCompleted,
	engine.StatusWorkflowFailed, engine.StatusWorkflowCanceled, engine.StatusWorkflowTerminated, engine.StatusWorkflowTimedOut}

// JobStatuses are the statuses a job can have, in lifecycle order.
func JobStatuses() []Status { return slices.Clone(jobStatuses) }

// WorkflowStatuses are the statuses a workflow run can have.
func WorkflowStatuses() []engine.WorkflowStatus { return slices.Clone(workflowStatuses) }

func (q SearchQuery) params(kind string) (eventlog.SearchParams, error) {
	p := eventlog.SearchParams{Kind: kind, Statuses: q.Statuses, Types: q.Types, Queues: q.Queues, Text: strings.TrimSpace(q.Text),
		CreatedFrom: q.CreatedFrom, CreatedTo: q.CreatedTo, Limit: q.Limit}
	for _, s := range q.Statuses {
		ok := false
		if kind == engine.KindJob {
			ok = slices.Contains(jobStatuses, Status(s))
		} else {
			ok = slices.Contains(workflowStatuses, engine.WorkflowStatus(s))
		}
		if !ok {
			return p, &engine.InputError{Field: "status", Reason: fmt.Sprintf("%q is not a %s status; want one of %s", s, kind, strings.Join(statusNames(kind), ", "))}
		}
	}
	for _, t := range q.Types {
		if kind == engine.KindJob {
			if err := ValidateJobType(t, true); err != nil {
				return p, err
			}
		} else if t == "" || len(t) > 200 {
			return p, &engine.InputError{Field: "workflow type", Reason: fmt.Sprintf("%q must be 1 to 200 characters", t)}
		}
	}
	for _, qu := range q.Queues {
		if err := engine.ValidQueueName(qu); err != nil {
			return p, err
		}
	}
	if len(p.Text) > 500 {
		return p, &engine.InputError{Field: "search text", Reason: fmt.Sprintf("is %d characters; at most 500", len(p.Text))}
	}
	if len(p.Text) == 26 {
		if id, err := eventlog.ParseID(strings.ToUpper(p.Text)); err == nil {
			p.TextID = &id
		}
	}
	if !q.CreatedFrom.IsZero() && !q.CreatedTo.IsZero() && !q.CreatedFrom.Before(q.CreatedTo) {
		return p, &engine.InputError{Field: "time range", Reason: fmt.Sprintf("from %s is not before to %s", q.CreatedFrom.Format(time.RFC3339), q.CreatedTo.Format(time.RFC3339))}
	}
	if q.Limit < 0 || q.Limit > MaxSearchLimit {
		return p, &engine.InputError{Field: "limit", Reason: fmt.Sprintf("%d is not between 1 and %d", q.Limit, MaxSearchLimit)}
	}
	if p.Limit == 0 {
		p.Limit = DefaultSearchLimit
	}
	var zero eventlog.ID
	if q.Before != zero {
		p.Before = &q.Before
	}
	if q.After != zero {
		p.After = &q.After
	}
	return p, nil
}

func statusNames(kind string) []string {
	var out []string
	if kind == engine.KindJob {
		for _, s := range jobStatuses {
			out = append(out, string(s))
		}
	} else {
		for _, s := range workflowStatuses {
			out = append(out, string(s))
		}
	}
	return out
}

// SearchJobs returns the jobs matching q, newest first.
func (c *Client) SearchJobs(ctx context.Context, q SearchQuery) ([]Job, error) {
	p, err := q.params(engine.KindJob)
	if err != nil {
		return nil, err
	}
	rows, err := c.eng.Store().SearchExecutions(ctx, p)
	if err != nil {
		return nil, err
	}
	return jobsOf(rows)
}

// WorkflowRunSummary is a workflow run as its projection row shows it: what
// a list needs, without replaying the history.
type WorkflowRunSummary struct {
	WorkflowID string
	RunID      eventlog.ID
	Type       string
	TaskQueue  string
	Status     engine.WorkflowStatus
	// LastError is why a blocked run's task fails, or a failed run's error.
	LastError  string
	Events     int64
	StartedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt *time.Time
}

// SearchWorkflows returns the workflow runs matching q, newest first; Text
// matches workflow IDs, run IDs and errors.
func (c *Client) SearchWorkflows(ctx context.Context, q SearchQuery) ([]WorkflowRunSummary, error) {
	p, err := q.params(engine.KindWorkflow)
	if err != nil {
		return nil, err
	}
	rows, err := c.eng.Store().SearchExecutions(ctx, p)
	if err != nil {
		return nil, err
	}
	out := make([]WorkflowRunSummary, len(rows))
	for i, r := range rows {
		out[i] = WorkflowRunSummary{WorkflowID: r.IdempotencyKey, RunID: r.ID, Type: r.Type, TaskQueue: r.Queue,
			Status: engine.WorkflowStatus(r.Status), LastError: r.LastError, Events: r.LastSeq, StartedAt: r.CreatedAt,
			UpdatedAt: r.UpdatedAt, FinishedAt: r.FinishedAt}
	}
	return out, nil
}

// ExecutionKind says whether id is a job ("job") or a workflow run
// ("workflow"); an unknown ID is ErrNotFound.
func (c *Client) ExecutionKind(ctx context.Context, id eventlog.ID) (string, error) {
	row, err := c.eng.Store().GetExecution(ctx, id)
	if err != nil {
		return "", err
	}
	return row.Kind, nil
}

// GetJob is Job for callers that must not be handed a workflow run: an ID
// of one fails with ErrNotJob.
func (c *Client) GetJob(ctx context.Context, id eventlog.ID) (Job, error) {
	row, err := c.eng.Store().GetExecution(ctx, id)
	if err != nil {
		return Job{}, err
	}
	if row.Kind != engine.KindJob {
		return Job{}, fmt.Errorf("execution %s is a %s run (see its workflow ID %q): %w", id, row.Kind, row.IdempotencyKey, ErrNotJob)
	}
	return engine.JobFromRow(row, nil)
}

// ThroughputBucket counts the job outcomes recorded in one bucket of time.
type ThroughputBucket struct {
	// Start is the beginning of the bucket.
	Start time.Time
	// Succeeded counts AttemptSucceeded events; Failed counts
	// AttemptFailed and AttemptTimedOut; DeadLettered counts
	// JobDeadLettered.
	Succeeded, Failed, DeadLettered int64
}

// Throughput is the job outcomes of a recent window, from the events.
type Throughput struct {
	// Buckets cover the window oldest first, every bucket present, the
	// last one ending at Now.
	Buckets []ThroughputBucket
	// Bucket is each bucket's width; Window the whole span.
	Bucket, Window time.Duration
	// Now is the database time the window ends at.
	Now time.Time
	// Totals over the window.
	Succeeded, Failed, DeadLettered int64
}

// FailureRate is the share of attempts in the window that failed or
// timed out, from 0 to 1; 0 when none ended.
func (t Throughput) FailureRate() float64 {
	if t.Succeeded+t.Failed == 0 {
		return 0
	}
	return float64(t.Failed) / float64(t.Succeeded+t.Failed)
}

// Throughput counts the jobs' attempt outcomes and dead letters recorded
// within the window before now (database time), by bucket: the events are
// the source, so the figures hold whichever process ran the jobs.
func (c *Client) Throughput(ctx context.Context, window, bucket time.Duration) (Throughput, error) {
	if window <= 0 || bucket <= 0 || bucket > window {
		return Throughput{}, &engine.InputError{Field: "throughput window", Reason: fmt.Sprintf("window %s and bucket %s: both must be positive and the bucket no wider than the window", window, bucket)}
	}
	if window/bucket > 10000 {
		return Throughput{}, &engine.InputError{Field: "throughput window", Reason: fmt.Sprintf("window %s in buckets of %s is over 10000 buckets", window, bucket)}
	}
	counts, now, err := c.eng.Store().CountEventsByTime(ctx, eventlog.EventCountParams{
		Types:  []string{engine.EventAttemptSucceeded, engine.EventAttemptFailed, engine.EventAttemptTimedOut, engine.EventJobDeadLettered},
		Window: window, Bucket: bucket})
	if err != nil {
		return Throughput{}, err
	}
	t := Throughput{Bucket: bucket, Window: window, Now: now}
	last := now.Truncate(bucket)
	n := int(window / bucket)
	if last.Add(-time.Duration(n-1) * bucket).After(now.Add(-window)) {
		n++ // the window starts inside a bucket
	}
	first := last.Add(-time.Duration(n-1) * bucket)
	t.Buckets = make([]ThroughputBucket, n)
	for i := range t.Buckets {
		t.Buckets[i].Start = first.Add(time.Duration(i) * bucket)
	}
	for _, ec := range counts {
		i := int(ec.Start.Sub(first) / bucket)
		if i < 0 || i >= n {
			continue
		}
		b := &t.Buckets[i]
		switch ec.Type {
		case engine.EventAttemptSucceeded:
			b.Succeeded += ec.Count
			t.Succeeded += ec.Count
		case engine.EventAttemptFailed, engine.EventAttemptTimedOut:
			b.Failed += ec.Count
			t.Failed += ec.Count
		case engine.EventJobDeadLettered:
			b.DeadLettered += ec.Count
			t.DeadLettered += ec.Count
		}
	}
	return t, nil
}

// RunningTask is a task a worker holds a lease on: a job's attempt, or a
// workflow run's workflow task, activity or timer.
type RunningTask struct {
	WorkerID    string
	ExecutionID eventlog.ID
	// Kind is "job" or "workflow"; Type the job or workflow type;
	// WorkflowID the run's workflow ID.
	Kind, Type, WorkflowID string
	// Key tells a workflow's tasks apart: "workflow", "activity:SEQ",
	// "timer:SEQ", "timeout"; empty for a job.
	Key            string
	Queue          string
	Attempt        int
	LeaseExpiresAt time.Time
	// Expired is true when the lease ran out and the maintenance leader
	// has yet to time the attempt out.
	Expired bool
}

// RunningTasks returns every task whose lease is held, soonest expiry
// first: what each worker is running.
func (c *Client) RunningTasks(ctx context.Context) ([]RunningTask, error) {
	return c.runningTasks(ctx, nil)
}

// RunningTasksOf returns the leased tasks of one execution: a running
// job's attempt and worker, or what a workflow run's workers hold.
func (c *Client) RunningTasksOf(ctx context.Context, id eventlog.ID) ([]RunningTask, error) {
	return c.runningTasks(ctx, &id)
}

func (c *Client) runningTasks(ctx context.Context, id *eventlog.ID) ([]RunningTask, error) {
	rows, now, err := c.eng.Store().LeasedTasks(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]RunningTask, 0, len(rows))
	for _, r := range rows {
		rt := RunningTask{WorkerID: r.Task.LeasedBy, ExecutionID: r.Task.ExecutionID, Kind: r.Kind, Type: r.Type, WorkflowID: r.WorkflowID,
			Key: r.Task.Key, Queue: r.Task.Queue, Attempt: r.Task.Attempt}
		if r.Task.LeaseExpiresAt != nil {
			rt.LeaseExpiresAt = *r.Task.LeaseExpiresAt
			rt.Expired = !now.Before(rt.LeaseExpiresAt)
		}
		out = append(out, rt)
	}
	return out, nil
}

// PendingActivity is an activity a workflow run waits on.
type PendingActivity struct {
	ActivityID   int64  `json:"activity_id"`
	ActivityType string `json:"activity_type"`
	Queue        string `json:"queue"`
	// ScheduledSeq is its ActivityScheduled event.
	ScheduledSeq int64     `json:"scheduled_seq"`
	ScheduledAt  time.Time `json:"scheduled_at"`
	// Attempts counts the attempts that ended; NextAttemptAt is when the
	// next is due; LastFailure is the last attempt's error.
	Attempts      int       `json:"attempts"`
	NextAttemptAt time.Time `json:"next_attempt_at"`
	LastFailure   string    `json:"last_failure,omitempty"`
}

// PendingTimer is a durable timer a workflow run waits on.
type PendingTimer struct {
	TimerID    int64     `json:"timer_id"`
	StartedSeq int64     `json:"started_seq"`
	FireAt     time.Time `json:"fire_at"`
}

// ReceivedSignal is a signal in a run's history.
type ReceivedSignal struct {
	Seq   int64           `json:"seq"`
	At    time.Time       `json:"at"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
	// Actor is the operator who sent it through the HTTP API; empty for
	// signals sent in code.
	Actor string `json:"actor,omitempty"`
}

// WorkflowInspection is everything about a run an operator looks at.
type WorkflowInspection struct {
	WorkflowDescription
	// Input is the workflow function's arguments; Result its result once
	// completed; Failure its error once failed.
	Input   json.RawMessage
	Result  json.RawMessage
	Failure string
	// Activities and Timers are pending, in the order they were issued.
	Activities []PendingActivity
	Timers     []PendingTimer
	Signals    []ReceivedSignal
	// History is every event, oldest first.
	History []eventlog.Event
}

// InspectWorkflow returns a run's state, what it waits on, the signals it
// received and its full history: runID, or the latest run of workflowID
// when runID is empty.
func (c *Client) InspectWorkflow(ctx context.Context, workflowID, runID string) (WorkflowInspection, error) {
	row, err := c.resolveRun(ctx, workflowID, runID)
	if err != nil {
		return WorkflowInspection{}, err
	}
	history, err := c.eng.Store().History(ctx, row.ID)
	if err != nil {
		return WorkflowInspection{}, err
	}
	w, err := engine.FoldWorkflow(history)
	if err != nil {
		return WorkflowInspection{}, fmt.Errorf("workflow run %s: %w", row.ID, err)
	}
	in := WorkflowInspection{
		WorkflowDescription: WorkflowDescription{WorkflowID: w.WorkflowID, RunID: w.ID.String(), Type: w.Type, TaskQueue: w.Queue,
			Status: engine.WorkflowStatus(row.Status), LastError: row.LastError, CancelRequested: w.CancelRequested,
			PendingActivities: len(w.Activities), PendingTimers: len(w.Timers), Events: w.Seq, StartedAt: w.CreatedAt, FinishedAt: w.FinishedAt},
		Input: w.Input, Result: w.Result, Failure: w.Failure, History: history,
	}
	for _, a := range w.Activities {
		in.Activities = append(in.Activities, PendingActivity{ActivityID: a.ActivityID, ActivityType: a.ActivityType, Queue: a.Queue,
			ScheduledSeq: a.ScheduledSeq, ScheduledAt: a.ScheduledAt, Attempts: a.Attempt, NextAttemptAt: a.RunAt, LastFailure: a.LastFailure})
	}
	sort.Slice(in.Activities, func(i, j int) bool { return in.Activities[i].ScheduledSeq < in.Activities[j].ScheduledSeq })
	for _, t := range w.Timers {
		in.Timers = append(in.Timers, PendingTimer{TimerID: t.TimerID, StartedSeq: t.StartedSeq, FireAt: t.FireAt})
	}
	sort.Slice(in.Timers, func(i, j int) bool { return in.Timers[i].StartedSeq < in.Timers[j].StartedSeq })
	for _, e := range history {
		if e.Type != engine.EventSignalReceived {
			continue
		}
		var d engine.SignalReceived
		if err := e.Decode(&d); err != nil {
			return in, err
		}
		in.Signals = append(in.Signals, ReceivedSignal{Seq: e.Seq, At: e.RecordedAt, Name: d.Name, Input: d.Input, Actor: d.Actor})
	}
	return in, nil
}

// SignalWorkflowBy is SignalWorkflow for an operator: the signal's input
// is JSON text as given, and actor is recorded in its SignalReceived event.
func (c *Client) SignalWorkflowBy(ctx context.Context, workflowID, runID, signalName string, input json.RawMessage, actor string) error {
	if strings.TrimSpace(actor) == "" {
		return &engine.InputError{Field: "actor", Reason: "say who is signaling the workflow"}
	}
	if len(input) > c.cfg.MaxPayloadBytes {
		return &engine.InputError{Field: "signal input", Reason: fmt.Sprintf("is %d bytes, over the %d-byte limit (Config.MaxPayloadBytes)", len(input), c.cfg.MaxPayloadBytes)}
	}
	if len(input) > 0 {
		canon, err := eventlog.Canonicalize(input)
		if err != nil {
			return &engine.InputError{Field: "signal input", Reason: err.Error()}
		}
		input = canon
	}
	row, err := c.resolveRun(ctx, workflowID, runID)
	if err != nil {
		return err
	}
	_, err = c.eng.UpdateWorkflow(ctx, row.ID, engine.SignalWorkflow{Name: signalName, Input: input, Actor: actor})
	return err
}

// CancelWorkflowBy is CancelWorkflow for an operator: actor and reason are
// recorded in the WorkflowCancelRequested event.
func (c *Client) CancelWorkflowBy(ctx context.Context, workflowID, runID, actor, reason string) error {
	if strings.TrimSpace(actor) == "" {
		return &engine.InputError{Field: "actor", Reason: "say who is canceling the workflow"}
	}
	row, err := c.resolveRun(ctx, workflowID, runID)
	if err != nil {
		return err
	}
	_, err = c.eng.UpdateWorkflow(ctx, row.ID, engine.RequestCancelWorkflow{Actor: actor, Reason: reason})
	return err
}

// TerminateWorkflowBy is TerminateWorkflow for an operator: actor and
// reason are recorded in the WorkflowTerminated event.
func (c *Client) TerminateWorkflowBy(ctx context.Context, workflowID, runID, actor, reason string) error {
	if strings.TrimSpace(actor) == "" {
		return &engine.InputError{Field: "actor", Reason: "say who is terminating the workflow"}
	}
	row, err := c.resolveRun(ctx, workflowID, runID)
	if err != nil {
		return err
	}
	_, err = c.eng.UpdateWorkflow(ctx, row.ID, engine.TerminateWorkflow{Actor: actor, Reason: reason})
	return err
}

// ErrQueryFailed: a workflow query reached the run's code, which refused
// it: no handler of that name, arguments that do not decode, or the
// handler's own error.
var ErrQueryFailed = errors.New("query failed")

// QueryWorkflowJSON is QueryWorkflow for callers that hold JSON: args is
// a JSON array of the handler's arguments (empty for none), and the result
// is the handler's value as JSON. An error of the query itself, rather
// than of reaching the run, matches ErrQueryFailed.
func (c *Client) QueryWorkflowJSON(ctx context.Context, workflowID, runID, queryType string, args json.RawMessage) (json.RawMessage, error) {
	if strings.TrimSpace(queryType) == "" {
		return nil, &engine.InputError{Field: "query name", Reason: "is empty"}
	}
	row, err := c.resolveRun(ctx, workflowID, runID)
	if err != nil {
		return nil, err
	}
	if !c.workflowRegistry().HasWorkflow(row.Type) {
		return nil, fmt.Errorf("query %s of workflow %s: %w %q: queries replay the history with the workflow code, so register it with this client", queryType, row.IdempotencyKey, ErrUnknownWorkflowType, row.Type)
	}
	history, err := c.eng.Store().History(ctx, row.ID)
	if err != nil {
		return nil, err
	}
	run := wfrt.NewRun(c.workflowRegistry(), nil)
	defer run.Close()
	if err := run.Apply(history); err != nil {
		return nil, fmt.Errorf("query %s of workflow %s: replay: %w", queryType, row.IdempotencyKey, err)
	}
	out, err := run.Query(queryType, args)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQueryFailed, err)
	}
	if len(out) == 0 {
		out = json.RawMessage("null")
	}
	return out, nil
}
