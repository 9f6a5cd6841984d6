package wfrt

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// CanceledError is the error of work that was canceled: a canceled
// workflow context, timer or activity.
type CanceledError struct{ Reason string }

func (e *CanceledError) Error() string {
	if e.Reason != "" {
		return "canceled: " + e.Reason
	}
	return "canceled"
}

// Is makes every *CanceledError match ErrCanceled.
func (e *CanceledError) Is(target error) bool {
	_, ok := target.(*CanceledError)
	return ok
}

// ErrCanceled is what a canceled workflow context's Err returns; every
// *CanceledError matches it with errors.Is.
var ErrCanceled error = &CanceledError{}

// IsCanceledError reports whether err is or wraps a *CanceledError.
func IsCanceledError(err error) bool { return errors.Is(err, ErrCanceled) }

// ApplicationError is an error returned by workflow or activity code, as
// the history recorded it.
type ApplicationError struct {
	Message string
	// Type is the error's type name (see sdk.ErrorType), matched by
	// RetryPolicy.NonRetryableErrorTypes.
	Type         string
	NonRetryable bool
	cause        error
}

func (e *ApplicationError) Error() string { return e.Message }
func (e *ApplicationError) Unwrap() error { return e.cause }

// ErrorType names the error for retry policies.
func (e *ApplicationError) ErrorType() string { return e.Type }

// NewApplicationError returns an error with a type name that retry
// policies match; nonRetryable errors are never retried.
func NewApplicationError(message, errType string, nonRetryable bool, cause error) error {
	return &ApplicationError{Message: message, Type: errType, NonRetryable: nonRetryable, cause: cause}
}

// TimeoutError reports an activity or workflow that ran out of time.
type TimeoutError struct {
	// TimeoutType is start_to_close, schedule_to_close, heartbeat or
	// execution.
	TimeoutType string
}

func (e *TimeoutError) Error() string { return e.TimeoutType + " timeout" }

// ActivityError is how a failed activity reaches workflow code: its Cause
// is an *ApplicationError, *TimeoutError or *CanceledError.
type ActivityError struct {
	ActivityID   int64
	ActivityType string
	Cause        error
}

func (e *ActivityError) Error() string {
	return fmt.Sprintf("activity %s (id %d): %v", e.ActivityType, e.ActivityID, e.Cause)
}
func (e *ActivityError) Unwrap() error { return e.Cause }

// PanicError is a panic in workflow or activity code.
type PanicError struct {
	Value string
	Stack string
}

func (e *PanicError) Error() string { return "panic: " + e.Value + "\n" + e.Stack }

// ErrorType names the error for retry policies.
func (e *PanicError) ErrorType() string { return "panic" }

// TerminatedError is the result of a workflow run an operator terminated.
type TerminatedError struct{ Reason string }

func (e *TerminatedError) Error() string { return "terminated: " + e.Reason }

// ErrorTypeOf returns the type name retry policies match: the ErrorType()
// of the first error in the chain that has one, else err's Go type without
// its pointer.
func ErrorTypeOf(err error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if t, ok := e.(interface{ ErrorType() string }); ok {
			return t.ErrorType()
		}
	}
	return strings.TrimPrefix(reflect.TypeOf(err).String(), "*")
}
