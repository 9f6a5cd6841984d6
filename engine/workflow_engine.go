package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// Workflow task retry backoff while a workflow is blocked.
const (
	// WorkflowTaskRetryInitial is the delay after the first failed workflow
	// task; it doubles with each further failure.
	WorkflowTaskRetryInitial = 100 * time.Millisecond
	// WorkflowTaskRetryMaximum caps that delay.
	WorkflowTaskRetryMaximum = time.Minute
)

// Sentinel errors of workflow operations.
var (
	// ErrWorkflowExists: a run of the workflow ID is already running.
	ErrWorkflowExists = errors.New("workflow already started")
	// ErrNotWorkflow: the execution is a job, not a workflow run.
	ErrNotWorkflow = errors.New("not a workflow")
	// ErrWorkflowRun: a job command was given a workflow run.
	ErrWorkflowRun = fmt.Errorf("a workflow run takes no job commands: %w", ErrInvalidState)
)

// WorkflowExistsError names the running run that holds a workflow ID.
type WorkflowExistsError struct {
	WorkflowID string
	RunID      eventlog.ID
}

func (e *WorkflowExistsError) Error() string {
	return fmt.Sprintf("workflow %q is already running as run %s; wait for it to finish, or start with the use-existing conflict policy", e.WorkflowID, e.RunID)
}

// Is makes errors.Is(err, ErrWorkflowExists) true.
func (e *WorkflowExistsError) Is(target error) bool { return target == ErrWorkflowExists }

// WorkflowClaim tells a worker what a claimed workflow task is.
type WorkflowClaim struct {
	Kind         TaskKind
	WorkflowID   string
	WorkflowType string
	// Activity is set for activity tasks.
	Activity *ActivityClaim
}

// ActivityClaim describes one attempt of an activity.
type ActivityClaim struct {
	ActivityScheduled
	ScheduledSeq int64
	ScheduledAt  time.Time
	Attempt      int
	// StartedAt is the database time of the claim.
	StartedAt time.Time
	// Deadline is when the attempt times out whatever its heartbeats:
	// StartToCloseTimeout after the claim, or the ScheduleToCloseTimeout,
	// whichever is first.
	Deadline time.Time
	// HeartbeatDetails are the last details an earlier attempt recorded.
	HeartbeatDetails json.RawMessage
}

// WorkflowResult is what running a workflow's task produced, beyond
// Result's error: a workflow task's commands, or an activity's output.
type WorkflowResult struct {
	// SeenSeq, StartedAt and Commands report a workflow task.
	SeenSeq   int64
	StartedAt time.Time
	Commands  []WorkflowCommand
	// Output is an activity's JSON result.
	Output json.RawMessage
	// Details are an activity's last heartbeat details, kept with a failure.
	Details json.RawMessage
}

// claimWorkflowTasks turns leased workflow tasks into claims. It writes no
// event: a workflow task's claim is its lease, and an activity attempt is
// recorded when it ends. Activity leases are reset to the activity's own
// timeouts.
func (e *Engine) claimWorkflowTasks(ctx context.Context, tx eventlog.Tx, leased []eventlog.Leased, now time.Time, workerID string, c *eventlog.Changes) ([]Claimed, error) {
	var refs []eventlog.EventRef
	for _, l := range leased {
		if kind, seq, err := ParseTaskKey(l.Task.Key); err == nil && kind == TaskActivity {
			refs = append(refs, eventlog.EventRef{ExecutionID: l.Task.ExecutionID, Seq: seq})
		}
	}
	activities, err := tx.ScheduledActivities(ctx, refs)
	if err != nil {
		return nil, err
	}
	scheduled := make(map[eventlog.EventRef]eventlog.ScheduledActivity, len(activities))
	for _, a := range activities {
		scheduled[eventlog.EventRef{ExecutionID: a.Event.ExecutionID, Seq: a.Event.Seq}] = a
	}
	out := make([]Claimed, 0, len(leased))
	for _, l := range leased {
		t, x := l.Task, l.Execution
		kind, seq, err := ParseTaskKey(t.Key)
		if err == nil && WorkflowStatus(x.Status).Final() {
			err = fmt.Errorf("the workflow is %s", x.Status)
		}
		cl := Claimed{
			Job:   Job{ID: x.ID, Type: x.Type, Queue: t.Queue, Attempt: t.Attempt, Status: StatusRunning, Payload: x.Payload, CreatedAt: x.CreatedAt, RunAt: t.RunAt},
			Lease: eventlog.Lease{ExecutionID: t.ExecutionID, Key: t.Key, Attempt: t.Attempt, WorkerID: workerID}, LeaseExpiresAt: *t.LeaseExpiresAt,
			ClaimedAt: now, Workflow: &WorkflowClaim{Kind: kind, WorkflowID: x.IdempotencyKey, WorkflowType: x.Type},
		}
		if err == nil && kind == TaskActivity {
			sa, ok := scheduled[eventlog.EventRef{ExecutionID: t.ExecutionID, Seq: seq}]
			ev := sa.Event
			a := &ActivityClaim{ScheduledSeq: seq, ScheduledAt: ev.RecordedAt, Attempt: t.Attempt, StartedAt: now, HeartbeatDetails: sa.HeartbeatDetails}
			if !ok || ev.Type != EventActivityScheduled {
				err = fmt.Errorf("event %d is not an %s", seq, EventActivityScheduled)
			} else if err = ev.Decode(&a.ActivityScheduled); err == nil {
				a.Deadline = now.Add(startToClose(a.ActivityScheduled))
				if s2c := time.Duration(a.ScheduleToCloseTimeout); s2c > 0 && a.ScheduledAt.Add(s2c).Before(a.Deadline) {
					a.Deadline = a.ScheduledAt.Add(s2c)
				}
				lease := a.Deadline
				if hbt := time.Duration(a.HeartbeatTimeout); hbt > 0 && now.Add(hbt).Before(lease) {
					lease = now.Add(hbt)
				}
				lease = lease.Truncate(time.Microsecond)
				t.RunAt, t.LeaseExpiresAt = now.Truncate(time.Microsecond), &lease
				c.Tasks = append(c.Tasks, t)
				cl.Job.Type, cl.LeaseExpiresAt, cl.FixedLease = a.ActivityType, lease, true
				cl.Workflow.Activity = a
			}
		}
		if err != nil {
			e.log.Error("dropping unclaimable workflow task from the ready queue", "run_id", t.ExecutionID.String(), "key", t.Key, "err", err)
			c.DeleteTasks = append(c.DeleteTasks, eventlog.TaskRef{ExecutionID: t.ExecutionID, Key: t.Key})
			continue
		}
		out = append(out, cl)
	}
	return out, nil
}

// wfTx is one workflow inside a transaction that changes it.
type wfTx struct {
	row    *eventlog.Execution // nil for a new run
	w      Workflow
	tasks  map[string]eventlog.Task
	events []eventlog.Event
	// released are the task keys whose lease this transaction ended.
	released map[string]bool
	// taskFailure, when set, is why the workflow task failed: the run is
	// shown blocked.
	taskFailure string
	// retryTask re-queues the leased workflow task at this time.
	retryTask *time.Time
	// forgetAll is set when the run ended: its heartbeat details go.
	forgetAll bool
	// isNew marks a run started in this transaction (a child, a
	// continuation); handled counts the events propagate has seen;
	// limitChecked and warned track the history size check.
	isNew        bool
	handled      int
	limitChecked int64
	warned       bool
}

func (s *wfTx) apply(cmd any, env Env) error {
	decisions, err := DecideWorkflow(s.w, cmd, env)
	if err != nil || len(decisions) == 0 {
		return err
	}
	w, events, err := RecordWorkflow(s.w, decisions, env.Now)
	if err != nil {
		return err
	}
	s.w, s.events = w, append(s.events, events...)
	return nil
}

// heldLease returns the task a lease names if the lease still holds it.
func (s *wfTx) heldLease(l eventlog.Lease, now time.Time) (eventlog.Task, bool) {
	t, ok := s.tasks[l.Key]
	return t, ok && !s.released[l.Key] && t.Attempt == l.Attempt && t.LeasedBy == l.WorkerID && t.LeaseExpiresAt != nil && t.LeaseExpiresAt.After(now)
}

// changes is what the transaction writes for this workflow, and the
// queues that got ready work.
func (s *wfTx) changes(c *eventlog.Changes, now time.Time) (wake []string, later map[string]time.Duration) {
	c.Events = append(c.Events, s.events...)
	row := s.w.Row()
	switch {
	case s.row == nil || s.isNew:
		c.NewExecutions = append(c.NewExecutions, row)
	case len(s.events) > 0 || s.taskFailure != "":
		blocked := s.row.Status == string(StatusWorkflowBlocked)
		completed := slices.ContainsFunc(s.events, func(e eventlog.Event) bool { return e.Type == EventWorkflowTaskCompleted })
		switch {
		case s.taskFailure != "" && !s.w.Status.Final():
			row.Status, row.LastError, row.Attempt = string(StatusWorkflowBlocked), s.taskFailure, s.row.Attempt+1
		case blocked && !completed && !s.w.Status.Final():
			row.Status, row.LastError, row.Attempt = s.row.Status, s.row.LastError, s.row.Attempt
		}
		c.Executions = append(c.Executions, row)
	}
	desired := map[string]eventlog.Task{}
	for _, t := range s.w.Tasks() {
		desired[t.Key] = t
	}
	later = map[string]time.Duration{}
	ready := func(t eventlog.Task) {
		c.Tasks = append(c.Tasks, t)
		if d := t.RunAt.Sub(now); d <= 0 {
			if !slices.Contains(wake, t.Queue) {
				wake = append(wake, t.Queue)
			}
		} else if old, ok := later[t.Queue]; !ok || d < old {
			later[t.Queue] = d
		}
	}
	for key, cur := range s.tasks {
		want, ok := desired[key]
		leased := cur.LeaseExpiresAt != nil && !s.released[key]
		switch {
		case !ok:
			c.DeleteTasks = append(c.DeleteTasks, eventlog.TaskRef{ExecutionID: cur.ExecutionID, Key: key})
		case key == TaskKeyWorkflow && s.retryTask != nil:
			want.RunAt, want.Attempt = *s.retryTask, cur.Attempt
			ready(want)
		case leased:
			// A running attempt keeps its lease.
		case key == TaskKeyWorkflow && !s.released[key]:
			// A waiting workflow task keeps its place (and any backoff).
		default:
			want.Attempt = max(want.Attempt, cur.Attempt)
			if s.released[key] || !want.RunAt.Equal(cur.RunAt) || want.Attempt != cur.Attempt || cur.LeaseExpiresAt != nil {
				ready(want)
			}
		}
		delete(desired, key)
	}
	for _, t := range desired {
		ready(t)
	}
	// Heartbeat details of finished activities are kept until the run
	// ends, so that finishing an activity costs no extra statement.
	s.forgetAll = s.w.Status.Final()
	return wake, later
}

// wfBatch is the workflows one transaction changes.
type wfBatch struct {
	byID map[eventlog.ID]*wfTx
	now  time.Time
}

// lockWorkflows locks and loads workflows for a transaction.
func lockWorkflows(ctx context.Context, tx eventlog.Tx, ids []eventlog.ID) (*wfBatch, error) {
	ids = append(slices.Clone(ids), wfEnvOf(ctx).extra...)
	slices.SortFunc(ids, func(a, b eventlog.ID) int { return bytes.Compare(a[:], b[:]) })
	ids = slices.Compact(ids)
	locked, err := tx.LockWorkflows(ctx, ids)
	if err != nil {
		return nil, err
	}
	b := &wfBatch{byID: make(map[eventlog.ID]*wfTx, len(locked.Executions)), now: locked.Now}
	for i := range locked.Executions {
		row := &locked.Executions[i]
		if row.Kind != KindWorkflow {
			continue
		}
		s := &wfTx{row: row, tasks: map[string]eventlog.Task{}, released: map[string]bool{}}
		if s.w, err = FoldWorkflow(locked.Histories[row.ID]); err != nil {
			return nil, fmt.Errorf("fold workflow %s: %w", row.ID, err)
		}
		if s.w.Seq != row.LastSeq || !bytes.Equal(s.w.LastHash, row.LastHash) {
			return nil, fmt.Errorf("workflow %s: projection ends at event %d but the history at %d (run chronicle verify)", row.ID, row.LastSeq, s.w.Seq)
		}
		b.byID[row.ID] = s
	}
	for _, t := range locked.Tasks {
		if s := b.byID[t.ExecutionID]; s != nil {
			s.tasks[t.Key] = t
		}
	}
	return b, nil
}

// write applies the batch's changes and returns the queues to wake.
func (b *wfBatch) write(ctx context.Context, tx eventlog.Tx) (wake []string, later map[string]time.Duration, err error) {
	if err := b.propagate(ctx, tx); err != nil {
		return nil, nil, err
	}
	var c, cNew eventlog.Changes
	var forgetAll []eventlog.ID
	later = map[string]time.Duration{}
	ids := make([]eventlog.ID, 0, len(b.byID))
	for id := range b.byID {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b eventlog.ID) int { return bytes.Compare(a[:], b[:]) })
	for _, id := range ids {
		s := b.byID[id]
		target := &c
		if s.isNew {
			// Runs started by this transaction (a continuation, a retry)
			// are inserted after the rows of the runs they replace end,
			// for the one-running-run-per-workflow-ID index.
			target = &cNew
		}
		w, l := s.changes(target, b.now)
		for _, q := range w {
			if !slices.Contains(wake, q) {
				wake = append(wake, q)
			}
		}
		for q, d := range l {
			if old, ok := later[q]; !ok || d < old {
				later[q] = d
			}
		}
		if s.forgetAll {
			forgetAll = append(forgetAll, id)
		}
	}
	if err := tx.Apply(ctx, c); err != nil {
		return nil, nil, err
	}
	if len(cNew.NewExecutions) > 0 {
		if err := tx.Apply(ctx, cNew); err != nil {
			return nil, nil, err
		}
	}
	return wake, later, tx.DeleteActivityHeartbeats(ctx, nil, forgetAll)
}

func (e *Engine) wakeAfter(wake []string, later map[string]time.Duration) {
	if len(wake) > 0 {
		e.waker.Wake(wake...)
	}
	for q, d := range later {
		e.wakeLater(q, d)
	}
}

// taskBackoff is the delay before retrying a workflow task that failed n
// times in a row.
func taskBackoff(n int) time.Duration {
	d := WorkflowTaskRetryInitial
	for i := 1; i < n && d < WorkflowTaskRetryMaximum; i++ {
		d *= 2
	}
	return min(d, WorkflowTaskRetryMaximum)
}

// completeWorkflowTasks records outcomes of workflow tasks, activities,
// timers and execution timeouts in one transaction.
func (e *Engine) completeWorkflowTasks(ctx context.Context, outcomes []Outcome) ([]error, error) {
	results := make([]error, len(outcomes))
	var wake []string
	var later map[string]time.Duration
	err := e.inWorkflowTx(ctx, func(ctx context.Context, tx eventlog.Tx) error {
		ids := make([]eventlog.ID, len(outcomes))
		for i, o := range outcomes {
			ids[i] = o.Lease.ExecutionID
		}
		b, err := lockWorkflows(ctx, tx, ids)
		if err != nil {
			return err
		}
		env := e.env(b.now)
		for i, o := range outcomes {
			results[i] = nil
			s := b.byID[o.Lease.ExecutionID]
			var t eventlog.Task
			held := false
			if s != nil {
				t, held = s.heldLease(o.Lease, b.now)
			}
			if !held {
				results[i] = fmt.Errorf("attempt %d of task %s of workflow run %s: %w", o.Lease.Attempt, o.Lease.Key, o.Lease.ExecutionID, ErrLeaseLost)
				continue
			}
			res := o.Workflow
			if res == nil {
				res = &WorkflowResult{}
			}
			kind, seq, _ := ParseTaskKey(o.Lease.Key)
			var cmd any
			switch kind {
			case TaskWorkflow:
				if o.Err != nil {
					s.failTask(errorText(o.Err), b.now)
					continue
				}
				cmd = CompleteWorkflowTask{Attempt: o.Lease.Attempt, WorkerID: o.Lease.WorkerID, SeenSeq: res.SeenSeq, StartedAt: res.StartedAt, Commands: res.Commands}
			case TaskActivity:
				if o.Err != nil {
					cmd = FailActivity{ScheduledSeq: seq, Attempt: o.Lease.Attempt, WorkerID: o.Lease.WorkerID, StartedAt: t.RunAt, Error: errorText(o.Err),
						ErrorType: o.ErrorType, NonRetryable: o.Permanent, Details: res.Details, Duration: o.Duration}
				} else {
					cmd = CompleteActivity{ScheduledSeq: seq, Attempt: o.Lease.Attempt, WorkerID: o.Lease.WorkerID, StartedAt: t.RunAt, Result: res.Output, Duration: o.Duration}
				}
			case TaskTimer:
				cmd = FireTimer{StartedSeq: seq}
			default:
				cmd = TimeOutWorkflow{}
			}
			s.released[o.Lease.Key] = true
			if err := s.apply(cmd, env); err != nil {
				switch {
				case errors.Is(err, ErrUnhandledEvents):
					now := b.now
					s.retryTask = &now
				case kind == TaskWorkflow && errors.Is(err, ErrInvalidCommand):
					s.failTask(errorText(err), b.now)
				}
				results[i] = err
			}
		}
		wake, later, err = b.write(ctx, tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("record %d workflow task outcomes: %w", len(outcomes), err)
	}
	e.wakeAfter(wake, later)
	return results, nil
}

// failTask records a failed workflow task on the projection only: the run
// is shown blocked and the task is retried with backoff.
func (s *wfTx) failTask(msg string, now time.Time) {
	s.released[TaskKeyWorkflow] = true
	s.taskFailure = msg
	at := now.Add(taskBackoff(s.row.Attempt + 1)).Truncate(time.Microsecond)
	s.retryTask = &at
}

// expireWorkflowTasks handles workflow tasks whose lease expired: an
// activity attempt times out (and its retry policy decides), any other
// task is released for another worker to claim.
func (e *Engine) expireWorkflowTasks(ctx context.Context, refs []eventlog.TaskRef) (int, error) {
	n := 0
	var wake []string
	var later map[string]time.Duration
	err := e.inWorkflowTx(ctx, func(ctx context.Context, tx eventlog.Tx) error {
		n = 0
		ids := make([]eventlog.ID, len(refs))
		for i, r := range refs {
			ids[i] = r.ExecutionID
		}
		b, err := lockWorkflows(ctx, tx, ids)
		if err != nil {
			return err
		}
		var hb []eventlog.TaskRef
		for _, r := range refs {
			if kind, _, _ := ParseTaskKey(r.Key); kind == TaskActivity {
				hb = append(hb, r)
			}
		}
		details, err := tx.ActivityHeartbeats(ctx, hb)
		if err != nil {
			return err
		}
		env := e.env(b.now)
		for _, r := range refs {
			s := b.byID[r.ExecutionID]
			if s == nil {
				continue
			}
			t, ok := s.tasks[r.Key]
			if !ok || t.LeaseExpiresAt == nil || t.LeaseExpiresAt.After(b.now) || s.released[r.Key] {
				continue // completed or renewed meanwhile
			}
			n++
			s.released[r.Key] = true
			kind, seq, _ := ParseTaskKey(r.Key)
			if kind != TaskActivity {
				// Nothing happened to the workflow: the task is claimed again.
				t.LeasedBy, t.LeaseExpiresAt = "", nil
				s.tasks[r.Key] = t
				continue
			}
			err := s.apply(TimeOutActivity{ScheduledSeq: seq, Attempt: t.Attempt, WorkerID: t.LeasedBy, StartedAt: t.RunAt,
				LeaseExpiredAt: *t.LeaseExpiresAt, Details: details[r]}, env)
			if err != nil {
				e.log.Error("timing out an activity failed", "run_id", r.ExecutionID.String(), "key", r.Key, "err", err)
			}
		}
		// Released tasks that are still wanted are rewritten unleased by changes.
		wake, later, err = b.write(ctx, tx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("expire workflow task leases: %w", err)
	}
	e.wakeAfter(wake, later)
	return n, nil
}

// StartWorkflowParams describes a workflow run to start.
type StartWorkflowParams struct {
	// WorkflowID is required; one run of it may be running at a time.
	WorkflowID string
	Type       string
	Queue      string
	Priority   Priority
	// Input is the JSON array of the workflow function's arguments.
	Input            json.RawMessage
	ExecutionTimeout time.Duration
	// UseExisting returns the running run of WorkflowID instead of failing
	// with *WorkflowExistsError.
	UseExisting bool
	// Signal, when set, is sent to the running run of WorkflowID, or
	// recorded right after WorkflowStarted of a new one (signal-with-start).
	Signal *SignalWorkflow
}

// StartedWorkflow is the outcome of a start.
type StartedWorkflow struct {
	RunID eventlog.ID
	// Existing is true when the run was already running.
	Existing bool
}

// StartWorkflow starts a workflow run, or returns or signals the running
// one, per p.
func (e *Engine) StartWorkflow(ctx context.Context, p StartWorkflowParams) (StartedWorkflow, error) {
	if p.WorkflowID == "" || len(p.WorkflowID) > 500 {
		return StartedWorkflow{}, &InputError{Field: "workflow ID", Reason: fmt.Sprintf("%q must be 1 to 500 characters", p.WorkflowID)}
	}
	if err := ValidQueueName(p.Queue); err != nil {
		return StartedWorkflow{}, err
	}
	if p.ExecutionTimeout < 0 {
		return StartedWorkflow{}, &InputError{Field: "execution timeout", Reason: fmt.Sprintf("%s is negative", p.ExecutionTimeout)}
	}
	if p.Priority == "" {
		p.Priority = PriorityNormal
	}
	var out StartedWorkflow
	var wake []string
	var later map[string]time.Duration
	err := e.inWorkflowTx(ctx, func(ctx context.Context, tx eventlog.Tx) error {
		out = StartedWorkflow{}
		existing, err := tx.LockWorkflowID(ctx, p.WorkflowID)
		if err != nil {
			return err
		}
		if existing != nil && existing.FinishedAt == nil {
			out = StartedWorkflow{RunID: existing.ID, Existing: true}
			if p.Signal == nil {
				if p.UseExisting {
					return nil
				}
				return &WorkflowExistsError{WorkflowID: p.WorkflowID, RunID: existing.ID}
			}
			b, err := lockWorkflows(ctx, tx, []eventlog.ID{existing.ID})
			if err != nil {
				return err
			}
			if err := b.byID[existing.ID].apply(*p.Signal, e.env(b.now)); err != nil {
				return err
			}
			wake, later, err = b.write(ctx, tx)
			return err
		}
		now, err := tx.Now(ctx)
		if err != nil {
			return err
		}
		id := eventlog.NewID(now)
		decisions := []Decision{{EventWorkflowStarted, WorkflowStarted{WorkflowID: p.WorkflowID, Type: p.Type, Queue: p.Queue,
			Priority: p.Priority, Input: orNull(p.Input), ExecutionTimeout: Duration(p.ExecutionTimeout),
			TraceContext: InjectTraceContext(ctx), CorrelationID: CorrelationID(ctx)}}}
		if p.Signal != nil {
			decisions = append(decisions, Decision{EventSignalReceived, SignalReceived{Name: p.Signal.Name, Input: orNull(p.Signal.Input)}})
		}
		w, events, err := RecordWorkflow(Workflow{ID: id}, decisions, now)
		if err != nil {
			return err
		}
		b := &wfBatch{now: now, byID: map[eventlog.ID]*wfTx{id: {w: w, events: events, tasks: map[string]eventlog.Task{}, released: map[string]bool{}}}}
		out = StartedWorkflow{RunID: id}
		wake, later, err = b.write(ctx, tx)
		return err
	})
	if err != nil {
		return StartedWorkflow{}, err
	}
	e.wakeAfter(wake, later)
	return out, nil
}

// UpdateWorkflow applies a command from outside the workflow (a
// SignalWorkflow, RequestCancelWorkflow or TerminateWorkflow) to run id and
// returns the state after it.
func (e *Engine) UpdateWorkflow(ctx context.Context, id eventlog.ID, cmd any) (Workflow, error) {
	var w Workflow
	var wake []string
	var later map[string]time.Duration
	err := e.inWorkflowTx(ctx, func(ctx context.Context, tx eventlog.Tx) error {
		b, err := lockWorkflows(ctx, tx, []eventlog.ID{id})
		if err != nil {
			return err
		}
		s := b.byID[id]
		if s == nil {
			if _, err := e.store.GetExecution(ctx, id); err == nil {
				return fmt.Errorf("execution %s is a job: %w", id, ErrNotWorkflow)
			}
			return fmt.Errorf("workflow run %s: %w", id, eventlog.ErrNotFound)
		}
		if err := s.apply(cmd, e.env(b.now)); err != nil {
			return err
		}
		w = s.w
		wake, later, err = b.write(ctx, tx)
		return err
	})
	if err != nil {
		return w, err
	}
	e.wakeAfter(wake, later)
	return w, nil
}

// GetWorkflow folds a workflow run's history and returns its state with
// its projection row (whose status may be blocked).
func (e *Engine) GetWorkflow(ctx context.Context, id eventlog.ID) (Workflow, eventlog.Execution, error) {
	row, err := e.store.GetExecution(ctx, id)
	if err != nil {
		return Workflow{}, row, err
	}
	if row.Kind != KindWorkflow {
		return Workflow{}, row, fmt.Errorf("execution %s is a job: %w", id, ErrNotWorkflow)
	}
	history, err := e.store.History(ctx, id)
	if err != nil {
		return Workflow{}, row, err
	}
	w, err := FoldWorkflow(history)
	return w, row, err
}

// HeartbeatActivity records an activity attempt's heartbeat details and,
// when the activity has a heartbeat timeout, pushes its lease to
// now()+timeout (never past deadline). It reports whether the attempt
// still holds its lease; false means it timed out or was canceled.
func (e *Engine) HeartbeatActivity(ctx context.Context, l eventlog.Lease, details json.RawMessage, timeout time.Duration, deadline time.Time) (bool, error) {
	return e.store.HeartbeatActivity(ctx, l, details, timeout, deadline)
}

// hasWorkflowOutcomes reports whether any outcome is of a workflow's task:
// jobs have the empty task key, workflow tasks never do.
func hasWorkflowOutcomes(outcomes []Outcome) bool {
	return slices.ContainsFunc(outcomes, func(o Outcome) bool { return o.Lease.Key != "" })
}

// completeMixed records job outcomes as Complete does and workflow
// outcomes with completeWorkflowTasks, each in its own transaction.
func (e *Engine) completeMixed(ctx context.Context, outcomes []Outcome) ([]error, error) {
	var jobs, workflows []Outcome
	var jobIdx, wfIdx []int
	for i, o := range outcomes {
		if o.Lease.Key == "" {
			jobs, jobIdx = append(jobs, o), append(jobIdx, i)
		} else {
			workflows, wfIdx = append(workflows, o), append(wfIdx, i)
		}
	}
	results := make([]error, len(outcomes))
	if len(jobs) > 0 {
		res, err := e.Complete(ctx, jobs)
		if err != nil {
			return nil, err
		}
		for i, r := range res {
			results[jobIdx[i]] = r
		}
	}
	res, err := e.completeWorkflowTasks(ctx, workflows)
	if err != nil {
		return nil, err
	}
	for i, r := range res {
		results[wfIdx[i]] = r
	}
	return results, nil
}
