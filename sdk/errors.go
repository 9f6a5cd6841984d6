package sdk

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// Errors callers branch on with errors.Is.
var (
	// ErrNotFound: no job has that ID.
	ErrNotFound = eventlog.ErrNotFound
	// ErrInvalidState: the operation does not apply to the job's status
	// (retrying a job that is not dead-lettered, canceling a finished one).
	ErrInvalidState = engine.ErrInvalidState
	// ErrInvalidInput: an argument was refused; the message says which and why.
	ErrInvalidInput = engine.ErrInvalidInput
	// ErrLeaseLost: the attempt lost its lease; its result was not recorded.
	ErrLeaseLost = engine.ErrLeaseLost
	// ErrUnknownJobType: the job type is not registered with the client.
	ErrUnknownJobType = errors.New("unknown job type")
)

// PermanentError marks a handler error that must not be retried: the job
// is dead-lettered at once.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that the job fails for good instead of retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// ErrorTyper is implemented by errors that name their own type for
// RetryPolicy.NonRetryableErrorTypes.
type ErrorTyper interface{ ErrorType() string }

// ErrorType returns the type name that RetryPolicy.NonRetryableErrorTypes
// matches: the ErrorType() of the first error in the chain that has one,
// else the Go type of err without its pointer, such as "url.Error".
func ErrorType(err error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if t, ok := e.(ErrorTyper); ok {
			return t.ErrorType()
		}
	}
	if p, ok := err.(*PermanentError); ok {
		err = p.Err
	}
	return strings.TrimPrefix(reflect.TypeOf(err).String(), "*")
}

func unknownType(name string) error {
	return fmt.Errorf("%w %q: register it with Client.RegisterJobType or RegisterJobHandler on a worker of this client", ErrUnknownJobType, name)
}
