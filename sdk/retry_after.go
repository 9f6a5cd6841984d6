package sdk

import (
	"errors"
	"time"
)

// RetryDelayer is implemented by handler errors that know the earliest time
// a retry can succeed, such as a webhook receiver's 429 with a Retry-After
// header. When the delay is longer than the retry policy's, the next attempt
// waits for it instead; the time chosen is recorded in the job's
// AttemptFailed event as retry_at. It never adds attempts: a job out of
// attempts is dead-lettered all the same.
type RetryDelayer interface {
	RetryDelay() time.Duration
}

// RetryAfterError is a handler error that asks for the next attempt no
// sooner than After. Return it with RetryAfter.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryDelay implements RetryDelayer.
func (e *RetryAfterError) RetryDelay() time.Duration { return e.After }

// ErrorType names the wrapped error's type, so that
// RetryPolicy.NonRetryableErrorTypes sees through the wrapper.
func (e *RetryAfterError) ErrorType() string { return ErrorType(e.Err) }

// RetryAfter wraps err so that the job's next attempt starts no sooner than
// d from now (database time), or later if its retry policy says so. A nil
// err stays nil.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &RetryAfterError{Err: err, After: d}
}

// retryDelay returns the delay the first RetryDelayer in err's chain asks
// for, or zero.
func retryDelay(err error) time.Duration {
	var d RetryDelayer
	if errors.As(err, &d) {
		return max(d.RetryDelay(), 0)
	}
	return 0
}
