package wfrt

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
)

// RetryPolicy says how an activity is retried; see engine.RetryPolicy.
// MaximumAttempts 0 means unlimited for activities, as in Temporal.
type RetryPolicy = engine.RetryPolicy

// ActivityOptions configure the activities a context starts.
type ActivityOptions struct {
	// TaskQueue is the queue the activity runs from. Defaults to the
	// workflow's queue.
	TaskQueue string
	// ScheduleToCloseTimeout bounds the activity with all its retries.
	ScheduleToCloseTimeout time.Duration
	// StartToCloseTimeout bounds one attempt. One of the two timeouts is
	// required.
	StartToCloseTimeout time.Duration
	// HeartbeatTimeout, when set, times out an attempt that has not called
	// activity.RecordHeartbeat for that long; the next attempt can read its
	// last details with activity.GetHeartbeatDetails.
	HeartbeatTimeout time.Duration
	// RetryPolicy defaults to engine.DefaultActivityRetryPolicy: unlimited
	// attempts from 1s, doubling, up to 100s.
	RetryPolicy *RetryPolicy
}

type activityOptionsKey struct{}

// WithActivityOptions returns a context whose activities use o.
func WithActivityOptions(ctx Context, o ActivityOptions) Context {
	return WithValue(ctx, activityOptionsKey{}, o)
}

// GetActivityOptions returns the activity options of ctx.
func GetActivityOptions(ctx Context) ActivityOptions {
	o, _ := ctx.Value(activityOptionsKey{}).(ActivityOptions)
	return o
}

func readyError(r *Run, err error) Future {
	f := newFuture(r)
	f.SetError(err)
	return f
}

// ExecuteActivity schedules an activity, given as its function or its
// registered name, with args encoded as JSON. The future is ready with the
// activity's result, or an *ActivityError.
func ExecuteActivity(ctx Context, activity any, args ...any) Future {
	r := runOf(ctx)
	name := FunctionName(activity)
	if name == "" {
		return readyError(r, NewApplicationError(fmt.Sprintf("ExecuteActivity: activity must be a function or a registered name, got %T", activity), "InvalidArgument", true, nil))
	}
	o := GetActivityOptions(ctx)
	if o.StartToCloseTimeout <= 0 && o.ScheduleToCloseTimeout <= 0 {
		return readyError(r, NewApplicationError(fmt.Sprintf("ExecuteActivity %s: set StartToCloseTimeout or ScheduleToCloseTimeout with workflow.WithActivityOptions", name), "InvalidArgument", true, nil))
	}
	input, err := EncodeArgs(args)
	if err != nil {
		return readyError(r, NewApplicationError(fmt.Sprintf("ExecuteActivity %s: %v", name, err), "InvalidArgument", true, err))
	}
	if ctx.Err() != nil {
		return readyError(r, &ActivityError{ActivityType: name, Cause: &CanceledError{}})
	}
	f := newFuture(r)
	id := r.newID()
	r.activities[id], r.actTypes[id] = f, name
	r.issue(engine.ScheduleActivity{ActivityID: id, ActivityType: name, Queue: o.TaskQueue, Input: input, Options: engine.ActivityOptions{
		StartToCloseTimeout: o.StartToCloseTimeout, ScheduleToCloseTimeout: o.ScheduleToCloseTimeout, HeartbeatTimeout: o.HeartbeatTimeout, RetryPolicy: o.RetryPolicy}})
	r.unregister[id] = scopeOf(ctx).onCancel(func() {
		if f.ready {
			return
		}
		delete(r.unregister, id)
		r.forget(id)
		r.issue(engine.RequestCancelActivity{ActivityID: id})
		f.SetError(&ActivityError{ActivityID: id, ActivityType: name, Cause: &CanceledError{}})
	})
	return f
}

// NewTimer returns a future that is ready d after now, on a durable timer.
// Canceling ctx cancels the timer: the future fails with *CanceledError.
func NewTimer(ctx Context, d time.Duration) Future {
	r := runOf(ctx)
	f := newFuture(r)
	if ctx.Err() != nil {
		f.SetError(&CanceledError{})
		return f
	}
	if d <= 0 {
		f.SetValue(nil)
		return f
	}
	id := r.newID()
	r.timers[id] = f
	r.issue(engine.StartTimer{TimerID: id, Duration: d})
	r.unregister[id] = scopeOf(ctx).onCancel(func() {
		if f.ready {
			return
		}
		delete(r.timers, id)
		delete(r.unregister, id)
		r.issue(engine.CancelTimer{TimerID: id})
		f.SetError(&CanceledError{})
	})
	return f
}

// Sleep blocks for d on a durable timer; it returns *CanceledError when
// ctx is canceled first.
func Sleep(ctx Context, d time.Duration) error { return NewTimer(ctx, d).Get(ctx, nil) }

// Now returns the workflow's time: the time its current workflow task
// started, the same in every replay.
func Now(ctx Context) time.Time { return runOf(ctx).now }

// IsReplaying reports whether the code is replaying history (its commands
// are already recorded).
func IsReplaying(ctx Context) bool { return runOf(ctx).replaying }

// GetInfo describes the run.
func GetInfo(ctx Context) *Info { i := runOf(ctx).info; return &i }

// GetLogger returns a logger that is silent while the code replays.
func GetLogger(ctx Context) *slog.Logger {
	r := runOf(ctx)
	return r.log.With("workflow_id", r.info.WorkflowExecution.ID, "run_id", r.info.WorkflowExecution.RunID)
}

// GetSignalChannel returns the channel of the signals named name.
func GetSignalChannel(ctx Context, name string) ReceiveChannel { return runOf(ctx).signal(name) }

// Go starts a coroutine: workflow code that runs concurrently with the
// rest, deterministically.
func Go(ctx Context, f func(ctx Context)) {
	runOf(ctx).sched.spawn("go", func() { f(ctx) })
}

// Await blocks until cond holds, or ctx is canceled (*CanceledError).
func Await(ctx Context, cond func() bool) error {
	runOf(ctx).sched.block(func() bool { return cond() || ctx.Err() != nil })
	if !cond() {
		return ctx.Err()
	}
	return nil
}

// AwaitWithTimeout is Await that gives up after d on a durable timer; ok
// reports whether cond holds.
func AwaitWithTimeout(ctx Context, d time.Duration, cond func() bool) (ok bool, err error) {
	tctx, cancel := WithCancel(ctx)
	defer cancel()
	t := NewTimer(tctx, d)
	runOf(ctx).sched.block(func() bool { return cond() || t.IsReady() || ctx.Err() != nil })
	if cond() {
		return true, nil
	}
	return false, ctx.Err()
}

// EncodedValue is a value recorded in the history, decoded on demand.
type EncodedValue interface {
	Get(valuePtr any) error
	HasValue() bool
}

type encodedValue struct{ raw json.RawMessage }

func (v encodedValue) Get(valuePtr any) error {
	if len(v.raw) == 0 {
		return fmt.Errorf("no value")
	}
	return json.Unmarshal(v.raw, valuePtr)
}
func (v encodedValue) HasValue() bool { return len(v.raw) > 0 && string(v.raw) != "null" }

// NewEncodedValue wraps JSON as an EncodedValue.
func NewEncodedValue(raw json.RawMessage) EncodedValue { return encodedValue{raw} }

// SideEffect runs f once and records its result; replays return the
// recorded result without running f. Use it for values that must not
// change between replays, such as a random ID.
func SideEffect(ctx Context, f func(ctx Context) any) EncodedValue {
	r := runOf(ctx)
	id := r.newID()
	if r.replaying {
		e := r.issue(engine.RecordMarker{MarkerID: id, Name: "SideEffect"})
		if e == nil {
			return encodedValue{}
		}
		var m engine.MarkerRecorded
		_ = e.Decode(&m)
		return encodedValue{m.Data}
	}
	raw, err := json.Marshal(f(ctx))
	if err != nil {
		panic(fmt.Sprintf("workflow.SideEffect: encode the result as JSON: %v", err))
	}
	r.issue(engine.RecordMarker{MarkerID: id, Name: "SideEffect", Data: raw})
	return encodedValue{raw}
}

// SetQueryHandler registers handler, a func(args...) (R, error), to answer
// queries named queryType from the run's replayed state.
func SetQueryHandler(ctx Context, queryType string, handler any) error {
	t := reflect.TypeOf(handler)
	if t == nil || t.Kind() != reflect.Func || t.NumOut() < 1 || t.NumOut() > 2 || t.Out(t.NumOut()-1) != errorType {
		return fmt.Errorf("query handler %q: want func(args...) (R, error), got %T", queryType, handler)
	}
	runOf(ctx).queries[queryType] = handler
	return nil
}
