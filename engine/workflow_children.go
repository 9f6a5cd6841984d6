package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// startDelay reads a WorkflowStarted event's StartDelay.
func startDelay(e eventlog.Event) time.Duration {
	var d struct {
		StartDelay Duration `json:"start_delay"`
	}
	_ = json.Unmarshal(e.Data, &d)
	return time.Duration(d.StartDelay)
}

// evolveWorkflowPart2 applies the events of child workflows,
// continue-as-new and the history limit.
func evolveWorkflowPart2(w Workflow, e eventlog.Event) (Workflow, error) {
	child := func(seq int64) (*ChildState, error) {
		c := w.Children[seq]
		if c == nil {
			return nil, fmt.Errorf("event %d (%s) of %s names the child initiated at %d, which is not pending", e.Seq, e.Type, e.ExecutionID, seq)
		}
		return c, nil
	}
	switch e.Type {
	case EventChildWorkflowInitiated:
		var d ChildWorkflowInitiated
		if err := e.Decode(&d); err != nil {
			return w, err
		}
		w.Children[e.Seq] = &ChildState{ChildWorkflowInitiated: d, InitiatedSeq: e.Seq}
	case EventChildWorkflowStarted:
		var d ChildWorkflowStarted
		if err := e.Decode(&d); err != nil {
			return w, err
		}
		c, err := child(d.InitiatedSeq)
		if err != nil {
			return w, err
		}
		c.RunID = d.RunID
	case EventChildWorkflowStartFailed, EventChildWorkflowCompleted, EventChildWorkflowFailed:
		var d ChildWorkflowCancelRequested // all carry the initiated seq
		if err := e.Decode(&d); err != nil {
			return w, err
		}
		if _, err := child(d.InitiatedSeq); err != nil {
			return w, err
		}
		delete(w.Children, d.InitiatedSeq)
	case EventChildWorkflowCancelRequested:
	case EventWorkflowContinuedAsNew:
		w.Status = StatusWorkflowContinuedAsNew
	case EventWorkflowHistoryLimitExceeded:
		var d WorkflowHistoryLimitExceeded
		if err := e.Decode(&d); err != nil {
			return w, err
		}
		w.Failure = d.Error
		w.Status = StatusWorkflowFailed
	default:
		return w, fmt.Errorf("event %d of %s has unknown type %q", e.Seq, e.ExecutionID, e.Type)
	}
	return w, nil
}

// decidePart2 decides the part-2 commands from outside the workflow code;
// ok is false for commands it does not know.
func decidePart2(w Workflow, cmd any) (out []Decision, ok bool, err error) {
	switch c := cmd.(type) {
	case RecordChildStarted:
		ch := w.Children[c.InitiatedSeq]
		if ch == nil {
			return nil, true, nil
		}
		return []Decision{{EventChildWorkflowStarted, ChildWorkflowStarted{ChildID: ch.ChildID, InitiatedSeq: c.InitiatedSeq, WorkflowID: ch.WorkflowID, RunID: c.RunID}}}, true, nil
	case RecordChildStartFailed:
		ch := w.Children[c.InitiatedSeq]
		if ch == nil {
			return nil, true, nil
		}
		return []Decision{{EventChildWorkflowStartFailed, ChildWorkflowStartFailed{ChildID: ch.ChildID, InitiatedSeq: c.InitiatedSeq, WorkflowID: ch.WorkflowID, Error: c.Error}}}, true, nil
	case RecordChildClosed:
		ch := w.Children[c.InitiatedSeq]
		if ch == nil {
			return nil, true, nil
		}
		if c.Status == StatusWorkflowCompleted {
			return []Decision{{EventChildWorkflowCompleted, ChildWorkflowCompleted{ChildID: ch.ChildID, InitiatedSeq: c.InitiatedSeq, RunID: c.RunID, Result: orNull(c.Result)}}}, true, nil
		}
		return []Decision{{EventChildWorkflowFailed, ChildWorkflowFailed{ChildID: ch.ChildID, InitiatedSeq: c.InitiatedSeq, RunID: c.RunID,
			Status: c.Status, Error: c.Error, ErrorType: c.ErrorType}}}, true, nil
	case ExceedHistoryLimit:
		msg := fmt.Sprintf("the history of workflow %s (run %s) has %d events and %d bytes, over the limit of %d events or %d bytes: "+
			"a workflow that runs for long must continue as new (return workflow.NewContinueAsNewError) before its history grows this large",
			w.WorkflowID, w.ID, w.Seq, w.HistoryBytes, c.Limits.MaxEvents, c.Limits.MaxBytes)
		return []Decision{{EventWorkflowHistoryLimitExceeded, WorkflowHistoryLimitExceeded{Events: w.Seq, Bytes: w.HistoryBytes,
			LimitEvents: c.Limits.MaxEvents, LimitBytes: c.Limits.MaxBytes, Error: msg}}}, true, nil
	}
	return nil, false, nil
}

// decideTaskPart2 turns a part-2 command of workflow code into its event;
// ok is false for commands it does not know.
func decideTaskPart2(w Workflow, cmd WorkflowCommand, children map[int64]int64) (d Decision, ok bool, err error) {
	switch c := cmd.(type) {
	case StartChildWorkflow:
		if !c.ParentClosePolicy.Valid() {
			return d, true, &InputError{Field: "parent close policy", Reason: fmt.Sprintf("%q is not terminate, request_cancel or abandon", c.ParentClosePolicy)}
		}
		if c.ParentClosePolicy == "" {
			c.ParentClosePolicy = ParentCloseTerminate
		}
		if c.Queue == "" {
			c.Queue = w.Queue
		}
		if err := ValidQueueName(c.Queue); err != nil {
			return d, true, err
		}
		if c.WorkflowID == "" || len(c.WorkflowID) > 500 {
			return d, true, &InputError{Field: "child workflow ID", Reason: fmt.Sprintf("%q must be 1 to 500 characters", c.WorkflowID)}
		}
		return Decision{EventChildWorkflowInitiated, ChildWorkflowInitiated{ChildID: c.ChildID, WorkflowID: c.WorkflowID, Type: c.Type, Queue: c.Queue,
			Input: orNull(c.Input), ExecutionTimeout: Duration(c.ExecutionTimeout), RetryPolicy: c.RetryPolicy, ParentClosePolicy: c.ParentClosePolicy}}, true, nil
	case RequestCancelChildWorkflow:
		return Decision{EventChildWorkflowCancelRequested, ChildWorkflowCancelRequested{ChildID: c.ChildID, InitiatedSeq: children[c.ChildID]}}, true, nil
	case ContinueAsNew:
		if c.Queue == "" {
			c.Queue = w.Queue
		}
		if err := ValidQueueName(c.Queue); err != nil {
			return d, true, err
		}
		return Decision{EventWorkflowContinuedAsNew, WorkflowContinuedAsNew{Type: c.Type, Queue: c.Queue, Input: orNull(c.Input)}}, true, nil
	}
	return d, false, nil
}

// ErrorTypeHistorySizeLimitExceeded is the error type of a run failed by
// the history size limit.
const ErrorTypeHistorySizeLimitExceeded = "HistorySizeLimitExceeded"

// HistoryLimits bound a workflow run's history. A run whose history grows
// past Warn* is logged as a warning once; past Max* it fails with
// WorkflowHistoryLimitExceeded, whose error suggests continue-as-new.
type HistoryLimits struct {
	// WarnEvents defaults to DefaultHistoryWarnEvents.
	WarnEvents int64
	// WarnBytes defaults to DefaultHistoryWarnBytes.
	WarnBytes int64
	// MaxEvents defaults to DefaultHistoryMaxEvents.
	MaxEvents int64
	// MaxBytes defaults to DefaultHistoryMaxBytes.
	MaxBytes int64
}

// Default history limits: Temporal's.
const (
	DefaultHistoryWarnEvents = 10_240
	DefaultHistoryWarnBytes  = 10 << 20
	DefaultHistoryMaxEvents  = 51_200
	DefaultHistoryMaxBytes   = 50 << 20
)

// WithDefaults returns l with zero fields set to their defaults.
func (l HistoryLimits) WithDefaults() HistoryLimits {
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.WarnEvents, DefaultHistoryWarnEvents)
	def(&l.WarnBytes, DefaultHistoryWarnBytes)
	def(&l.MaxEvents, DefaultHistoryMaxEvents)
	def(&l.MaxBytes, DefaultHistoryMaxBytes)
	return l
}

// SetHistoryLimits sets the history size limits of workflow runs. Call it
// before the engine is used.
func (e *Engine) SetHistoryLimits(l HistoryLimits) { e.historyLimits = l.WithDefaults() }

// HistoryLimits returns the engine's history size limits.
func (e *Engine) HistoryLimits() HistoryLimits { return e.historyLimits.WithDefaults() }

// needLocksError asks inWorkflowTx to run the transaction again with more
// workflows locked from the start, so that locks are always taken in ID
// order.
type needLocksError struct{ ids []eventlog.ID }

func (e *needLocksError) Error() string {
	return fmt.Sprintf("workflow transaction needs %d more workflows locked", len(e.ids))
}

type wfTxEnvKey struct{}

// wfTxEnv is what a workflow transaction knows of its engine.
type wfTxEnv struct {
	extra  []eventlog.ID
	log    *slog.Logger
	limits HistoryLimits
}

func wfEnvOf(ctx context.Context) wfTxEnv {
	if v, ok := ctx.Value(wfTxEnvKey{}).(wfTxEnv); ok {
		return v
	}
	return wfTxEnv{log: slog.New(slog.DiscardHandler), limits: HistoryLimits{}.WithDefaults()}
}

// inWorkflowTx runs fn in a transaction. When the transaction finds it
// must change workflows it has not locked (a child's parent, a parent's
// children), it is rolled back and run again with them locked in ID order
// from the start. Parent and child links never change, so this settles
// at once.
func (e *Engine) inWorkflowTx(ctx context.Context, fn func(ctx context.Context, tx eventlog.Tx) error) error {
	env := wfTxEnv{log: e.log, limits: e.historyLimits.WithDefaults()}
	for i := 0; ; i++ {
		c := context.WithValue(ctx, wfTxEnvKey{}, env)
		err := e.store.InTx(c, func(tx eventlog.Tx) error { return fn(c, tx) })
		var nl *needLocksError
		if !errors.As(err, &nl) || i >= 10 {
			return err
		}
		env.extra = append(env.extra, nl.ids...)
	}
}

// newRunID returns an ID for a run that follows run prev of the same
// workflow ID: greater than prev, so that the latest run sorts last.
func newRunID(now time.Time, prev eventlog.ID) eventlog.ID {
	for {
		id := eventlog.NewID(now)
		if bytes.Compare(id[:], prev[:]) > 0 {
			return id
		}
		now = now.Add(time.Millisecond)
	}
}

// addRun starts a new run in the batch.
func (b *wfBatch) addRun(id eventlog.ID, started WorkflowStarted) (*wfTx, error) {
	w, events, err := RecordWorkflow(Workflow{ID: id}, []Decision{{EventWorkflowStarted, started}}, b.now)
	if err != nil {
		return nil, err
	}
	s := &wfTx{w: w, events: events, tasks: map[string]eventlog.Task{}, released: map[string]bool{}, isNew: true}
	b.byID[id] = s
	return s, nil
}

// propagate carries the batch's new events across workflows: it starts
// children and continued runs, tells parents how their children ended,
// applies parent-close policies and cancels children, and enforces the
// history size limit. It returns a *needLocksError when a workflow it must
// change is not locked.
func (b *wfBatch) propagate(ctx context.Context, tx eventlog.Tx) error {
	env := wfEnvOf(ctx)
	var need []eventlog.ID
	target := func(id eventlog.ID) *wfTx {
		s := b.byID[id]
		if s == nil && !slices.Contains(need, id) {
			need = append(need, id)
		}
		return s
	}
	apply := func(s *wfTx, cmd any) error {
		err := s.apply(cmd, Env{Now: b.now})
		if errors.Is(err, ErrWorkflowNotRunning) {
			return nil // it ended meanwhile
		}
		return err
	}
	for progress := true; progress; {
		progress = false
		ids := make([]eventlog.ID, 0, len(b.byID))
		for id := range b.byID {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, func(a, b eventlog.ID) int { return bytes.Compare(a[:], b[:]) })
		for _, id := range ids {
			s := b.byID[id]
			for s.handled < len(s.events) {
				ev := s.events[s.handled]
				s.handled++
				progress = true
				if err := b.handle(ctx, tx, s, ev, target, apply); err != nil {
					return err
				}
			}
			if s.w.Status.Final() || s.limitChecked == s.w.Seq {
				continue
			}
			s.limitChecked = s.w.Seq
			lim := env.limits
			before := s.w.Seq - int64(len(s.events))
			if s.w.Seq > lim.MaxEvents || s.w.HistoryBytes > lim.MaxBytes {
				if err := apply(s, ExceedHistoryLimit{Limits: lim}); err != nil {
					return err
				}
				env.log.Error("workflow run failed: its history is over the size limit; continue as new before it grows this large",
					"workflow_id", s.w.WorkflowID, "run_id", s.w.ID.String(), "events", s.w.Seq, "bytes", s.w.HistoryBytes)
				progress = true
			} else if (s.w.Seq >= lim.WarnEvents && before < lim.WarnEvents) || (s.w.HistoryBytes >= lim.WarnBytes && !s.warned) {
				s.warned = true
				if before < lim.WarnEvents || s.w.HistoryBytes-int64(eventsBytes(s.events)) < lim.WarnBytes {
					env.log.Warn("workflow history is growing large: continue as new (workflow.NewContinueAsNewError) before it reaches the limit",
						"workflow_id", s.w.WorkflowID, "run_id", s.w.ID.String(), "events", s.w.Seq, "bytes", s.w.HistoryBytes,
						"limit_events", lim.MaxEvents, "limit_bytes", lim.MaxBytes)
				}
			}
		}
	}
	if len(need) > 0 {
		return &needLocksError{ids: need}
	}
	return nil
}

func eventsBytes(events []eventlog.Event) int {
	n := 0
	for _, e := range events {
		n += len(e.Data)
	}
	return n
}

// handle carries one new event of s across workflows.
func (b *wfBatch) handle(ctx context.Context, tx eventlog.Tx, s *wfTx, ev eventlog.Event, target func(eventlog.ID) *wfTx, apply func(*wfTx, any) error) error {
	switch ev.Type {
	case EventChildWorkflowInitiated:
		var d ChildWorkflowInitiated
		if err := ev.Decode(&d); err != nil {
			return err
		}
		existing, err := tx.LockWorkflowID(ctx, d.WorkflowID)
		if err != nil {
			return err
		}
		if existing != nil && existing.FinishedAt == nil {
			if x := b.byID[existing.ID]; x == nil || !x.w.Status.Final() {
				return apply(s, RecordChildStartFailed{InitiatedSeq: ev.Seq,
					Error: (&WorkflowExistsError{WorkflowID: d.WorkflowID, RunID: existing.ID}).Error()})
			}
		}
		prev := s.w.ID
		if existing != nil && bytes.Compare(existing.ID[:], prev[:]) > 0 {
			prev = existing.ID
		}
		id := newRunID(b.now, prev)
		child, err := b.addRun(id, WorkflowStarted{WorkflowID: d.WorkflowID, Type: d.Type, Queue: d.Queue, Priority: s.w.Priority, Input: d.Input,
			ExecutionTimeout: d.ExecutionTimeout, RetryPolicy: d.RetryPolicy, Attempt: 1,
			Parent: &ParentRef{WorkflowID: s.w.WorkflowID, RunID: s.w.ID, ChildID: d.ChildID, InitiatedSeq: ev.Seq, ClosePolicy: d.ParentClosePolicy}})
		if err != nil {
			return err
		}
		if s.w.Status.Final() {
			// The parent ended in the task that started the child.
			return closeChild(child, d.ParentClosePolicy, s.w, apply)
		}
		return apply(s, RecordChildStarted{InitiatedSeq: ev.Seq, RunID: id})
	case EventChildWorkflowCancelRequested:
		var d ChildWorkflowCancelRequested
		if err := ev.Decode(&d); err != nil {
			return err
		}
		c := s.w.Children[d.InitiatedSeq]
		if c == nil || c.RunID == (eventlog.ID{}) {
			return nil
		}
		x, err := b.childRun(ctx, tx, s.w.ID, c, target)
		if x == nil || err != nil {
			return err
		}
		return apply(x, RequestCancelWorkflow{Actor: "parent workflow " + s.w.WorkflowID, Reason: "the parent canceled the child"})
	}
	if !isFinalEvent(ev.Type) {
		return nil
	}
	w := s.w
	// Children by the parent-close policy.
	for _, seq := range sortedKeys(w.Children) {
		c := w.Children[seq]
		if c.RunID == (eventlog.ID{}) || c.ParentClosePolicy == ParentCloseAbandon {
			continue
		}
		x, err := b.childRun(ctx, tx, w.ID, c, target)
		if err != nil {
			return err
		}
		if x != nil {
			if err := closeChild(x, c.ParentClosePolicy, w, apply); err != nil {
				return err
			}
		}
	}
	var next *WorkflowStarted
	switch ev.Type {
	case EventWorkflowContinuedAsNew:
		var d WorkflowContinuedAsNew
		if err := ev.Decode(&d); err != nil {
			return err
		}
		next = &WorkflowStarted{WorkflowID: w.WorkflowID, Type: d.Type, Queue: d.Queue, Priority: w.Priority, Input: d.Input,
			ExecutionTimeout: Duration(w.ExecutionTimeout), Parent: w.Parent, RetryPolicy: w.RetryPolicy, Attempt: 1}
	case EventWorkflowFailed, EventWorkflowTimedOut:
		if w.RetryPolicy == nil {
			break
		}
		var f WorkflowFailed
		_ = ev.Decode(&f)
		p := w.RetryPolicy.WithDefaults()
		if w.RetryPolicy.MaximumAttempts == 0 {
			p.MaximumAttempts = 1 << 30 // unlimited, as for activities
		}
		if w.Attempt >= p.MaximumAttempts || !p.retryable(f.ErrorType) {
			break
		}
		next = &WorkflowStarted{WorkflowID: w.WorkflowID, Type: w.Type, Queue: w.Queue, Priority: w.Priority, Input: w.Input,
			ExecutionTimeout: Duration(w.ExecutionTimeout), Parent: w.Parent, RetryPolicy: w.RetryPolicy, Attempt: w.Attempt + 1,
			StartDelay: Duration(p.Delay(w.Attempt, 0.5))}
	}
	if next != nil {
		from := w.ID
		next.ContinuedFrom = &from
		_, err := b.addRun(newRunID(b.now, w.ID), *next)
		return err
	}
	if w.Parent == nil {
		return nil
	}
	p := target(w.Parent.RunID)
	if p == nil {
		return nil
	}
	cmd := RecordChildClosed{InitiatedSeq: w.Parent.InitiatedSeq, RunID: w.ID, Status: w.Status, Result: w.Result, Error: w.Failure}
	if ev.Type == EventWorkflowFailed {
		var f WorkflowFailed
		_ = ev.Decode(&f)
		cmd.ErrorType = f.ErrorType
	}
	if ev.Type == EventWorkflowHistoryLimitExceeded {
		cmd.ErrorType = ErrorTypeHistorySizeLimitExceeded
	}
	return apply(p, cmd)
}

// childRun returns the running run of child c of parent: the child's
// newest run (it may have continued as new or retried), when that is
// still the parent's child. It calls target, which asks for the lock,
// when the run is not locked yet.
func (b *wfBatch) childRun(ctx context.Context, tx eventlog.Tx, parent eventlog.ID, c *ChildState, target func(eventlog.ID) *wfTx) (*wfTx, error) {
	mine := func(s *wfTx) bool {
		return s.w.WorkflowID == c.WorkflowID && s.w.Parent != nil && s.w.Parent.RunID == parent && s.w.Parent.InitiatedSeq == c.InitiatedSeq
	}
	var best *wfTx
	for _, s := range b.byID {
		if mine(s) && (best == nil || bytes.Compare(s.w.ID[:], best.w.ID[:]) > 0) {
			best = s
		}
	}
	latest, err := tx.LatestRunOf(ctx, c.WorkflowID)
	if err != nil {
		return nil, err
	}
	if latest != nil && (best == nil || bytes.Compare(latest.ID[:], best.w.ID[:]) > 0) {
		best = target(latest.ID)
		if best == nil {
			return nil, nil
		}
	}
	if best == nil || !mine(best) || best.w.Status.Final() {
		return nil, nil
	}
	return best, nil
}

func closeChild(child *wfTx, policy ParentClosePolicy, parent Workflow, apply func(*wfTx, any) error) error {
	actor := "parent workflow " + parent.WorkflowID
	reason := fmt.Sprintf("parent-close policy %s: the parent run %s is %s", policy, parent.ID, parent.Status)
	switch policy {
	case ParentCloseRequestCancel:
		return apply(child, RequestCancelWorkflow{Actor: actor, Reason: reason})
	case ParentCloseAbandon:
		return nil
	}
	return apply(child, TerminateWorkflow{Actor: actor, Reason: reason})
}

func isFinalEvent(t string) bool {
	switch t {
	case EventWorkflowCompleted, EventWorkflowFailed, EventWorkflowCanceled, EventWorkflowTerminated, EventWorkflowTimedOut,
		EventWorkflowContinuedAsNew, EventWorkflowHistoryLimitExceeded:
		return true
	}
	return false
}

func sortedKeys[V any](m map[int64]V) []int64 {
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
