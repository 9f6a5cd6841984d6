package wfrt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// WorkflowExecution names a workflow run.
type WorkflowExecution struct {
	ID    string
	RunID string
}

// WorkflowType names a workflow's registered type.
type WorkflowType struct{ Name string }

// Info describes the workflow run that code belongs to.
type Info struct {
	WorkflowExecution WorkflowExecution
	WorkflowType      WorkflowType
	TaskQueueName     string
}

// ErrStale means a cached run is behind its history in a way that
// replaying its new events cannot fix (its last workflow task was not
// recorded): it must be discarded and the history replayed from the start.
var ErrStale = errors.New("cached workflow run is stale")

type ack struct {
	attempt  int
	workerID string
	commands int
}

// Run is one workflow run being replayed and driven: its coroutines, and
// where it stands in its history.
type Run struct {
	reg       *Registry
	info      Info
	log       *slog.Logger
	sched     *dispatcher
	root      *wctx
	now       time.Time
	replaying bool
	nextID    int64

	commands []engine.WorkflowCommand
	expected []eventlog.Event
	nextSeq  int64
	nde      error
	finished bool

	activities map[int64]*future
	actTypes   map[int64]string
	timers     map[int64]*future
	unregister map[int64]func()
	signals    map[string]*channel
	queries    map[string]any
	children   map[int64]*childRec
	versions   map[string]Version

	pending []eventlog.Event
	lastSeq int64
	ack     *ack
}

// NewRun returns a run that replays a history with the workflow
// functions of reg. log may be nil.
func NewRun(reg *Registry, log *slog.Logger) *Run {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Run{reg: reg, sched: newDispatcher(), activities: map[int64]*future{}, actTypes: map[int64]string{},
		timers: map[int64]*future{}, unregister: map[int64]func(){}, signals: map[string]*channel{}, queries: map[string]any{},
		children: map[int64]*childRec{}, versions: map[string]Version{}}
	r.log = slog.New(&replayHandler{inner: log.Handler(), run: r})
	r.root = &wctx{run: r, scope: newScope(r, nil)}
	return r
}

// LastSeq is the last event the run has taken in.
func (r *Run) LastSeq() int64 { return r.lastSeq }

// Finished reports whether the workflow function returned.
func (r *Run) Finished() bool { return r.finished }

// AwaitingAck reports whether the run's last task's commands have not yet
// been seen in its history.
func (r *Run) AwaitingAck() bool { return r.ack != nil }

// Close unwinds the run's coroutines.
func (r *Run) Close() { r.sched.kill() }

// Apply takes in the events after LastSeq: it replays the workflow tasks
// they record (checking the code issues the same commands) and keeps their
// inputs for the next task. It returns a *engine.NonDeterminismError when
// the code departs from the history, ErrStale when the run's own last task
// is not the next one recorded, or the workflow code's panic.
func (r *Run) Apply(events []eventlog.Event) error {
	for i := 0; i < len(events); i++ {
		e := events[i]
		if e.Seq != r.lastSeq+1 {
			return fmt.Errorf("replay: event %d follows event %d: the history has a gap", e.Seq, r.lastSeq)
		}
		switch {
		case e.Type == engine.EventWorkflowTaskCompleted:
			b, err := engine.ReadTaskBoundary(events, i)
			if err != nil {
				return err
			}
			if r.ack != nil {
				if b.Task.Attempt != r.ack.attempt || b.Task.WorkerID != r.ack.workerID || b.Task.Commands != r.ack.commands {
					return ErrStale
				}
				r.ack = nil
			} else if err := r.replayTask(b); err != nil {
				return err
			}
			i += len(b.Commands)
			r.lastSeq = events[i].Seq
			continue
		case r.ack != nil && engine.IsCommandEvent(e.Type):
			return ErrStale
		case engine.IsCommandEvent(e.Type):
			return fmt.Errorf("replay: event %d (%s) is a command event outside any workflow task", e.Seq, e.Type)
		case engine.IsWorkflowInput(e):
			r.pending = append(r.pending, e)
		}
		r.lastSeq = e.Seq
	}
	return nil
}

func (r *Run) replayTask(b engine.TaskBoundary) error {
	r.now, r.replaying = b.Task.StartedAt, true
	r.expected, r.nextSeq = b.Commands, b.Completed.Seq+int64(len(b.Commands))+1
	defer func() { r.replaying, r.expected = false, nil }()
	// Inputs can issue commands (a cancellation cancels activities), so
	// they are delivered in the task's mode.
	if err := r.deliverUpTo(b.Task.SeenSeq); err != nil {
		return err
	}
	if err := r.runCode(); err != nil {
		return err
	}
	if len(r.expected) > 0 {
		return &engine.NonDeterminismError{Seq: r.expected[0].Seq, Expected: engine.DescribeEvent(r.expected[0]), Got: engine.Nothing}
	}
	r.commands = nil
	return nil
}

// Decide runs a new workflow task: it delivers the inputs not yet seen,
// runs the code until it blocks, and returns the commands it issued.
// attempt and workerID name the task; the next Apply expects to find its
// WorkflowTaskCompleted.
func (r *Run) Decide(now time.Time, attempt int, workerID string) ([]engine.WorkflowCommand, error) {
	if r.ack != nil {
		return nil, ErrStale
	}
	r.now, r.replaying, r.commands = now, false, nil
	if err := r.deliverUpTo(r.lastSeq); err != nil {
		return nil, err
	}
	if err := r.runCode(); err != nil {
		return nil, err
	}
	cmds := r.commands
	r.commands = nil
	r.ack = &ack{attempt: attempt, workerID: workerID, commands: len(cmds)}
	return cmds, nil
}

func (r *Run) runCode() error {
	err := r.sched.run()
	if r.nde != nil {
		return r.nde
	}
	return err
}

func (r *Run) deliverUpTo(seq int64) error {
	n := 0
	for _, e := range r.pending {
		if e.Seq > seq {
			break
		}
		n++
		if err := r.deliver(e); err != nil {
			return err
		}
		if r.nde != nil {
			return r.nde
		}
	}
	r.pending = r.pending[n:]
	return nil
}

// deliver hands one input event to the code.
func (r *Run) deliver(e eventlog.Event) error {
	var d struct {
		engine.WorkflowStarted
		ActivityID   int64           `json:"activity_id"`
		TimerID      int64           `json:"timer_id"`
		Result       json.RawMessage `json:"result"`
		Error        string          `json:"error"`
		ErrorType    string          `json:"error_type"`
		NonRetryable bool            `json:"non_retryable"`
		TimeoutType  string          `json:"timeout_type"`
		Name         string          `json:"name"`
	}
	if err := e.Decode(&d); err != nil {
		return err
	}
	resolveActivity := func(v any, err error) {
		if f := r.activities[d.ActivityID]; f != nil {
			if err != nil {
				err = &ActivityError{ActivityID: d.ActivityID, ActivityType: r.actTypes[d.ActivityID], Cause: err}
			}
			f.Set(v, err)
			r.forget(d.ActivityID)
		}
	}
	switch e.Type {
	case engine.EventWorkflowStarted:
		return r.start(e.ExecutionID, d.WorkflowStarted)
	case engine.EventActivityCompleted:
		resolveActivity(d.Result, nil)
	case engine.EventActivityFailed:
		resolveActivity(nil, &ApplicationError{Message: d.Error, Type: d.ErrorType, NonRetryable: d.NonRetryable})
	case engine.EventActivityTimedOut:
		resolveActivity(nil, &TimeoutError{TimeoutType: d.TimeoutType})
	case engine.EventTimerFired:
		if f := r.timers[d.TimerID]; f != nil {
			f.Set(nil, nil)
			delete(r.timers, d.TimerID)
			r.forget(d.TimerID)
		}
	case engine.EventSignalReceived:
		var s engine.SignalReceived
		if err := e.Decode(&s); err != nil {
			return err
		}
		r.signal(s.Name).buf = append(r.signal(s.Name).buf, s.Input)
	case engine.EventWorkflowCancelRequested:
		r.root.scope.cancel()
	default:
		return r.deliverPart2(e)
	}
	return nil
}

func (r *Run) forget(id int64) {
	delete(r.activities, id)
	if u := r.unregister[id]; u != nil {
		u()
		delete(r.unregister, id)
	}
}

func (r *Run) signal(name string) *channel {
	c := r.signals[name]
	if c == nil {
		c = newChannel(r, name, -1)
		r.signals[name] = c
	}
	return c
}

// start begins the workflow function with its input.
func (r *Run) start(runID eventlog.ID, d engine.WorkflowStarted) error {
	r.info = Info{WorkflowExecution: WorkflowExecution{ID: d.WorkflowID, RunID: runID.String()}, WorkflowType: WorkflowType{Name: d.Type}, TaskQueueName: d.Queue}
	w, err := r.reg.workflow(d.Type)
	if err != nil {
		return err
	}
	args, err := w.decodeArgs(d.Input)
	if err != nil {
		return err
	}
	r.sched.spawn("root", func() {
		v, err := w.call(reflect.ValueOf(Context(r.root)), args)
		r.finish(v, err)
	})
	return nil
}

func (r *Run) finish(v any, err error) {
	var cmd engine.WorkflowCommand
	var can *ContinueAsNewError
	switch {
	case errors.As(err, &can):
		cmd = engine.ContinueAsNew{Type: can.WorkflowType, Queue: can.TaskQueue, Input: can.Input}
	case err != nil && IsCanceledError(err):
		cmd = engine.CancelWorkflow{}
	case err != nil:
		cmd = engine.FailWorkflow{Error: err.Error(), ErrorType: ErrorTypeOf(err)}
	default:
		raw, jerr := json.Marshal(v)
		if jerr != nil {
			cmd = engine.FailWorkflow{Error: "encode the workflow's result: " + jerr.Error(), ErrorType: "EncodeError"}
		} else {
			cmd = engine.CompleteWorkflow{Result: raw}
		}
	}
	r.finished = true
	r.issue(cmd)
}

// issue records a command. While replaying, it must match the next command
// event of the task; the matched event is returned.
func (r *Run) issue(cmd engine.WorkflowCommand) *eventlog.Event {
	if r.nde != nil {
		r.sched.stop()
		return nil
	}
	if !r.replaying {
		r.commands = append(r.commands, cmd)
		return nil
	}
	if len(r.expected) == 0 {
		r.nde = &engine.NonDeterminismError{Seq: r.nextSeq, Expected: engine.Nothing, Got: cmd.Describe()}
		r.sched.stop()
		return nil
	}
	e := r.expected[0]
	r.expected = r.expected[1:]
	if err := engine.MatchCommand(e, cmd); err != nil {
		r.nde = err
		r.sched.stop()
		return nil
	}
	return &e
}

func (r *Run) newID() int64 { r.nextID++; return r.nextID }

// Query runs a query handler on the run's current state. args is the JSON
// array of the handler's arguments.
func (r *Run) Query(name string, args json.RawMessage) (json.RawMessage, error) {
	h, ok := r.queries[name]
	if !ok {
		known := make([]string, 0, len(r.queries))
		for k := range r.queries {
			known = append(known, k)
		}
		return nil, fmt.Errorf("workflow %s has no query handler %q (it has %v); register one with workflow.SetQueryHandler", r.info.WorkflowType.Name, name, known)
	}
	hv := reflect.ValueOf(h)
	t := hv.Type()
	var items []json.RawMessage
	if len(args) > 0 && string(args) != "null" {
		if err := json.Unmarshal(args, &items); err != nil {
			return nil, fmt.Errorf("query %s: arguments are not a JSON array: %w", name, err)
		}
	}
	if len(items) != t.NumIn() {
		return nil, fmt.Errorf("query %s takes %d arguments, got %d", name, t.NumIn(), len(items))
	}
	in := make([]reflect.Value, len(items))
	for i, item := range items {
		p := reflect.New(t.In(i))
		if err := json.Unmarshal(item, p.Interface()); err != nil {
			return nil, fmt.Errorf("query %s: argument %d does not decode as %s: %w", name, i+1, t.In(i), err)
		}
		in[i] = p.Elem()
	}
	out := hv.Call(in)
	if e := out[len(out)-1]; !e.IsNil() {
		return nil, e.Interface().(error)
	}
	var v any
	if len(out) == 2 {
		v = out[0].Interface()
	}
	return json.Marshal(v)
}

// replayHandler drops log records while the run replays, so that workflow
// code logs each line once.
type replayHandler struct {
	inner slog.Handler
	run   *Run
}

func (h *replayHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return !h.run.replaying && h.inner.Enabled(ctx, l)
}
func (h *replayHandler) Handle(ctx context.Context, rec slog.Record) error {
	return h.inner.Handle(ctx, rec)
}
func (h *replayHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return &replayHandler{inner: h.inner.WithAttrs(a), run: h.run}
}
func (h *replayHandler) WithGroup(n string) slog.Handler {
	return &replayHandler{inner: h.inner.WithGroup(n), run: h.run}
}
