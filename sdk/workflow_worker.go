package sdk

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk/internal/wfrt"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

// DefaultWorkflowCacheSize is how many workflow runs a worker keeps live
// by default.
const DefaultWorkflowCacheSize = 1000

// workflowWorker is a Worker's workflow side: its registry and its cache
// of live runs. The zero value is ready; it is set up on first use.
type workflowWorker struct {
	once  sync.Once
	reg   *wfrt.Registry
	cache *runCache
}

func (w *Worker) workflows() *workflowWorker {
	w.wf.once.Do(func() {
		size := w.cfg.WorkflowCacheSize
		if size <= 0 {
			size = DefaultWorkflowCacheSize
		}
		w.wf.reg = wfrt.NewRegistry()
		w.wf.cache = newRunCache(size)
	})
	return &w.wf
}

// RegisterWorkflow registers a workflow function, func(ctx
// workflow.Context, args...) (R, error), under its function name. Its
// client learns it too, to check inputs and answer queries.
func (w *Worker) RegisterWorkflow(fn any) error {
	return w.RegisterWorkflowWithOptions(fn, workflow.RegisterOptions{})
}

// RegisterWorkflowWithOptions registers a workflow function under o.Name.
func (w *Worker) RegisterWorkflowWithOptions(fn any, o workflow.RegisterOptions) error {
	if err := w.workflows().reg.RegisterWorkflow(fn, o.Name); err != nil {
		return err
	}
	return w.client.workflowRegistry().RegisterWorkflow(fn, o.Name)
}

// RegisterActivity registers an activity function, func(ctx
// context.Context, args...) (R, error), under its function name.
func (w *Worker) RegisterActivity(fn any) error {
	return w.RegisterActivityWithOptions(fn, workflow.RegisterOptions{})
}

// RegisterActivityWithOptions registers an activity function under o.Name.
func (w *Worker) RegisterActivityWithOptions(fn any, o workflow.RegisterOptions) error {
	return w.workflows().reg.RegisterActivity(fn, o.Name)
}

// CachedWorkflows is how many workflow runs the worker holds live.
func (w *Worker) CachedWorkflows() int { return w.workflows().cache.len() }

// runWorkflowTask runs a claimed task of a workflow run.
func (w *Worker) runWorkflowTask(ctx context.Context, c *engine.Claimed) engine.Result {
	switch c.Workflow.Kind {
	case engine.TaskWorkflow:
		return w.runDecision(ctx, c)
	case engine.TaskActivity:
		return w.runActivity(ctx, c)
	}
	return engine.Result{} // a due timer or execution timeout: recording it is all
}

// runDecision runs a workflow task: it brings the run up to date with its
// history (from the cache, or by a full replay) and runs the code on the
// new events.
func (w *Worker) runDecision(ctx context.Context, c *engine.Claimed) engine.Result {
	wf := w.workflows()
	id := c.Lease.ExecutionID
	store := w.client.eng.Store()
	fail := func(err error) engine.Result {
		w.client.log.Warn("workflow task failed; the run is blocked until it succeeds", "run_id", id.String(),
			"workflow_type", c.Workflow.WorkflowType, "worker_id", w.ID(), "err", err)
		return engine.Result{Err: err, ErrorType: ErrorType(err)}
	}
	run := wf.cache.take(id)
	var events []eventlog.Event
	var err error
	if run != nil {
		if events, err = store.HistoryAfter(ctx, id, run.LastSeq()); err == nil {
			err = run.Apply(events)
		}
		if err == nil && run.AwaitingAck() {
			err = wfrt.ErrStale
		}
		if err != nil {
			run.Close()
			run = nil
		}
	}
	if run == nil {
		if events, err = store.History(ctx, id); err != nil {
			return fail(err)
		}
		run = wfrt.NewRun(wf.reg, w.client.log)
		if err := run.Apply(events); err != nil {
			run.Close()
			return fail(err)
		}
	}
	cmds, err := run.Decide(c.ClaimedAt, c.Lease.Attempt, w.ID())
	if err != nil {
		run.Close()
		return fail(err)
	}
	if run.Finished() {
		run.Close()
	} else {
		wf.cache.put(id, run)
	}
	return engine.Result{Workflow: &engine.WorkflowResult{SeenSeq: run.LastSeq(), StartedAt: c.ClaimedAt, Commands: cmds}}
}

// runActivity runs one attempt of an activity.
func (w *Worker) runActivity(ctx context.Context, c *engine.Claimed) engine.Result {
	a := c.Workflow.Activity
	hb := time.Duration(a.HeartbeatTimeout)
	throttle := time.Second
	if hb > 0 {
		throttle = hb * 4 / 5
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ctx, stop := context.WithTimeout(ctx, a.Deadline.Sub(a.StartedAt))
	defer stop()
	env := &wfrt.ActivityEnv{Info: wfrt.ActivityInfo{ActivityID: a.ActivityID, ActivityType: a.ActivityType, Attempt: a.Attempt,
		WorkflowID: c.Workflow.WorkflowID, RunID: c.Lease.ExecutionID.String(), WorkflowType: c.Workflow.WorkflowType, TaskQueue: a.Queue,
		ScheduledTime: a.ScheduledAt, StartedTime: a.StartedAt, Deadline: a.Deadline, HeartbeatTimeout: hb},
		PreviousDetails: a.HeartbeatDetails, Throttle: throttle, Cancel: cancel,
		Send: func(details json.RawMessage) (bool, error) {
			hctx, done := context.WithTimeout(context.Background(), 5*time.Second)
			defer done()
			return w.client.eng.HeartbeatActivity(hctx, c.Lease, details, hb, a.Deadline)
		}}
	out, err := w.workflows().reg.ExecuteActivity(wfrt.WithActivityEnv(ctx, env), a.ActivityType, a.Input)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && errors.Is(err, context.Canceled) {
			err = fmt.Errorf("%w (canceled: %v)", err, cause)
		}
		var perm *PermanentError
		var app *wfrt.ApplicationError
		return engine.Result{Err: err, ErrorType: ErrorType(err), Permanent: errors.As(err, &perm) || (errors.As(err, &app) && app.NonRetryable),
			Workflow: &engine.WorkflowResult{Details: env.LastDetails()}}
	}
	// A result the event log cannot store (a NUL character in a string) is
	// the activity's own failure, not the recording transaction's.
	if _, err := eventlog.Canonicalize(out); err != nil {
		err = fmt.Errorf("result of activity %s cannot be recorded: %w", a.ActivityType, err)
		return engine.Result{Err: err, ErrorType: "UnstorableResult", Permanent: true, Workflow: &engine.WorkflowResult{Details: env.LastDetails()}}
	}
	return engine.Result{Workflow: &engine.WorkflowResult{Output: out}}
}

// runCache is a bounded LRU of live workflow runs. A run in use is taken
// out, so that eviction never closes it under a task.
type runCache struct {
	mu    sync.Mutex
	size  int
	order *list.List // of eventlog.ID, most recent first
	runs  map[eventlog.ID]*list.Element
	vals  map[eventlog.ID]*wfrt.Run
}

func newRunCache(size int) *runCache {
	return &runCache{size: size, order: list.New(), runs: map[eventlog.ID]*list.Element{}, vals: map[eventlog.ID]*wfrt.Run{}}
}

func (c *runCache) take(id eventlog.ID) *wfrt.Run {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.runs[id]
	if !ok {
		return nil
	}
	c.order.Remove(el)
	delete(c.runs, id)
	r := c.vals[id]
	delete(c.vals, id)
	return r
}

func (c *runCache) put(id eventlog.ID, r *wfrt.Run) {
	c.mu.Lock()
	var evicted []*wfrt.Run
	if el, ok := c.runs[id]; ok { // cannot happen: a run is taken while in use
		c.order.Remove(el)
		evicted = append(evicted, c.vals[id])
	}
	c.runs[id] = c.order.PushFront(id)
	c.vals[id] = r
	for c.order.Len() > c.size {
		last := c.order.Back()
		old := last.Value.(eventlog.ID)
		c.order.Remove(last)
		delete(c.runs, old)
		evicted = append(evicted, c.vals[old])
		delete(c.vals, old)
	}
	c.mu.Unlock()
	for _, r := range evicted {
		r.Close()
	}
}

func (c *runCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// close discards the cached runs, unwinding their goroutines.
func (wf *workflowWorker) close() {
	if wf.cache == nil {
		return
	}
	wf.cache.mu.Lock()
	runs := wf.cache.vals
	wf.cache.vals, wf.cache.runs = map[eventlog.ID]*wfrt.Run{}, map[eventlog.ID]*list.Element{}
	wf.cache.order.Init()
	wf.cache.mu.Unlock()
	for _, r := range runs {
		r.Close()
	}
}
