package workflow

import (
	"log/slog"
	"time"

	"github.com/chronicle-engine/chronicle/sdk/internal/wfrt"
)

// Context is the context of workflow code. Its Done channel is closed when
// the workflow is canceled.
type Context = wfrt.Context

// CancelFunc cancels a context made by WithCancel.
type CancelFunc = wfrt.CancelFunc

// Future is the result of an asynchronous operation: an activity, a timer,
// or one made with NewFuture.
type Future = wfrt.Future

// Settable makes a future from NewFuture ready.
type Settable = wfrt.Settable

// Channel passes values between coroutines deterministically.
type Channel = wfrt.Channel

// ReceiveChannel is the receiving side of a Channel, or a signal channel.
type ReceiveChannel = wfrt.ReceiveChannel

// SendChannel is the sending side of a Channel.
type SendChannel = wfrt.SendChannel

// Selector waits on several futures and channels, running the callback of
// the first ready one in the order they were added.
type Selector = wfrt.Selector

// EncodedValue is a value recorded in the history, such as a side
// effect's result or a query's answer.
type EncodedValue = wfrt.EncodedValue

// ActivityOptions configure the activities started with a context.
type ActivityOptions = wfrt.ActivityOptions

// RetryPolicy says how activities are retried: InitialInterval,
// BackoffCoefficient, MaximumInterval, MaximumAttempts (0: unlimited) and
// NonRetryableErrorTypes.
type RetryPolicy = wfrt.RetryPolicy

// Info describes the running workflow.
type Info = wfrt.Info

// WorkflowExecution names a workflow run by workflow ID and run ID.
type WorkflowExecution = wfrt.WorkflowExecution

// WorkflowType names a registered workflow type.
type WorkflowType = wfrt.WorkflowType

// Errors of workflow code, matched with errors.As or errors.Is.
type (
	// CanceledError is the error of canceled work; see ErrCanceled.
	CanceledError = wfrt.CanceledError
	// ApplicationError is an error returned by activity or workflow code,
	// with its type name.
	ApplicationError = wfrt.ApplicationError
	// ActivityError wraps the cause of a failed activity.
	ActivityError = wfrt.ActivityError
	// TimeoutError reports an activity or run out of time.
	TimeoutError = wfrt.TimeoutError
	// PanicError is a panic in workflow or activity code.
	PanicError = wfrt.PanicError
	// TerminatedError is the result of a terminated run.
	TerminatedError = wfrt.TerminatedError
)

// ErrCanceled is Context.Err of a canceled context; every *CanceledError
// matches it with errors.Is.
var ErrCanceled = wfrt.ErrCanceled

// IsCanceledError reports whether err is or wraps a *CanceledError.
func IsCanceledError(err error) bool { return wfrt.IsCanceledError(err) }

// NewApplicationError returns an error whose type name retry policies
// match (RetryPolicy.NonRetryableErrorTypes).
func NewApplicationError(message, errType string, cause error) error {
	return wfrt.NewApplicationError(message, errType, false, cause)
}

// NewNonRetryableApplicationError returns an error that fails an activity
// at once, without retries.
func NewNonRetryableApplicationError(message, errType string, cause error) error {
	return wfrt.NewApplicationError(message, errType, true, cause)
}

// ExecuteActivity schedules an activity, given as its function or its
// registered name, with args encoded as JSON, under the context's
// ActivityOptions (a StartToCloseTimeout or ScheduleToCloseTimeout is
// required). Get stores its result or returns an *ActivityError. A
// completed activity never runs again: replays read its result from the
// history. Canceling ctx cancels the activity.
func ExecuteActivity(ctx Context, activity any, args ...any) Future {
	return wfrt.ExecuteActivity(ctx, activity, args...)
}

// WithActivityOptions returns a context whose activities use o.
func WithActivityOptions(ctx Context, o ActivityOptions) Context {
	return wfrt.WithActivityOptions(ctx, o)
}

// GetActivityOptions returns the activity options of ctx.
func GetActivityOptions(ctx Context) ActivityOptions { return wfrt.GetActivityOptions(ctx) }

// NewTimer returns a future ready d from now on a durable timer: a row in
// the database fired in database time, however long d is and whatever
// crashes meanwhile. Canceling ctx cancels it.
func NewTimer(ctx Context, d time.Duration) Future { return wfrt.NewTimer(ctx, d) }

// Sleep blocks on a durable timer for d; it returns a *CanceledError when
// ctx is canceled first.
func Sleep(ctx Context, d time.Duration) error { return wfrt.Sleep(ctx, d) }

// Now returns the workflow's deterministic time: when its current workflow
// task started, the same in every replay.
func Now(ctx Context) time.Time { return wfrt.Now(ctx) }

// GetSignalChannel returns the channel of the signals named name. Signals
// are buffered until received.
func GetSignalChannel(ctx Context, name string) ReceiveChannel {
	return wfrt.GetSignalChannel(ctx, name)
}

// NewSelector returns an empty Selector.
func NewSelector(ctx Context) Selector { return wfrt.NewSelector(ctx) }

// NewChannel returns an unbuffered Channel.
func NewChannel(ctx Context) Channel { return wfrt.NewChannel(ctx) }

// NewNamedChannel returns an unbuffered Channel with a name.
func NewNamedChannel(ctx Context, name string) Channel { return wfrt.NewNamedChannel(ctx, name) }

// NewBufferedChannel returns a Channel that buffers size values.
func NewBufferedChannel(ctx Context, size int) Channel { return wfrt.NewBufferedChannel(ctx, size) }

// NewFuture returns a future and the Settable that makes it ready.
func NewFuture(ctx Context) (Future, Settable) { return wfrt.NewFuture(ctx) }

// Go runs f as a coroutine: concurrently with the rest of the workflow,
// but deterministically (one coroutine runs at a time, in a fixed order).
func Go(ctx Context, f func(ctx Context)) { wfrt.Go(ctx, f) }

// Await blocks until cond holds; it returns a *CanceledError when ctx is
// canceled first.
func Await(ctx Context, cond func() bool) error { return wfrt.Await(ctx, cond) }

// AwaitWithTimeout is Await giving up after d; ok reports whether cond
// holds.
func AwaitWithTimeout(ctx Context, d time.Duration, cond func() bool) (ok bool, err error) {
	return wfrt.AwaitWithTimeout(ctx, d, cond)
}

// SideEffect runs f once and records its result in the history; replays
// return the recorded result without running f.
func SideEffect(ctx Context, f func(ctx Context) any) EncodedValue { return wfrt.SideEffect(ctx, f) }

// SetQueryHandler registers handler, a func(args...) (R, error), that
// answers queries named queryType from the workflow's replayed state.
func SetQueryHandler(ctx Context, queryType string, handler any) error {
	return wfrt.SetQueryHandler(ctx, queryType, handler)
}

// WithCancel returns a context canceled by cancel or with its parent.
func WithCancel(parent Context) (Context, CancelFunc) { return wfrt.WithCancel(parent) }

// NewDisconnectedContext returns a context with parent's values that is
// not canceled with parent: cleanup after a cancellation runs in one.
func NewDisconnectedContext(parent Context) (Context, CancelFunc) {
	return wfrt.NewDisconnectedContext(parent)
}

// WithValue returns a context carrying key=val.
func WithValue(parent Context, key, val any) Context { return wfrt.WithValue(parent, key, val) }

// GetInfo describes the running workflow.
func GetInfo(ctx Context) *Info { return wfrt.GetInfo(ctx) }

// GetLogger returns a logger that is silent while the code replays, so
// that each line is logged once.
func GetLogger(ctx Context) *slog.Logger { return wfrt.GetLogger(ctx) }

// IsReplaying reports whether the code is re-running recorded history.
func IsReplaying(ctx Context) bool { return wfrt.IsReplaying(ctx) }
