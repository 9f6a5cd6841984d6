package workflow

import (
	"errors"
	"fmt"
)

// SagaOptions configure a Saga.
type SagaOptions struct {
	// ParallelCompensation runs the compensations at once instead of one
	// after the other in reverse order. Defaults to false.
	ParallelCompensation bool
	// StopOnError stops at the first compensation that fails for good,
	// leaving the older ones not run. Defaults to false: every
	// compensation is attempted and every failure is reported.
	StopOnError bool
}

// Saga collects compensations: after each step that succeeded, register
// the activity that undoes it; when a later step fails for good,
// Compensate runs them in reverse order. Each compensation is an
// activity, with the activity options (timeouts, retry policy) of the
// context it was added with.
//
//	saga := workflow.NewSaga(workflow.SagaOptions{})
//	if err := workflow.ExecuteActivity(ctx, Reserve, order).Get(ctx, nil); err != nil {
//		return err
//	}
//	saga.AddCompensation(ctx, Release, order)
//	if err := workflow.ExecuteActivity(ctx, Charge, order).Get(ctx, nil); err != nil {
//		return errors.Join(err, saga.Compensate(ctx))
//	}
type Saga struct {
	opts  SagaOptions
	steps []compensation
}

type compensation struct {
	ctx      Context
	activity any
	args     []any
}

// NewSaga returns a saga with no compensations.
func NewSaga(o SagaOptions) *Saga { return &Saga{opts: o} }

// AddCompensation registers activity(args...) to undo the step that just
// succeeded, run with ctx's activity options.
func (s *Saga) AddCompensation(ctx Context, activity any, args ...any) {
	s.steps = append(s.steps, compensation{ctx: ctx, activity: activity, args: args})
}

// Len is how many compensations are registered.
func (s *Saga) Len() int { return len(s.steps) }

// CompensationError reports the compensations that failed for good,
// newest step first. It unwraps to each failure.
type CompensationError struct {
	// Failed are the activity errors, in the order the compensations ran.
	Failed []error
	// NotRun counts compensations skipped after a failure (StopOnError).
	NotRun int
}

func (e *CompensationError) Error() string {
	msg := fmt.Sprintf("%d compensation(s) failed: %v", len(e.Failed), errors.Join(e.Failed...))
	if e.NotRun > 0 {
		msg += fmt.Sprintf("; %d not run", e.NotRun)
	}
	return msg
}

// Unwrap returns the failures.
func (e *CompensationError) Unwrap() []error { return e.Failed }

// Compensate runs the registered compensations, newest first (or all at
// once with ParallelCompensation), each as an activity in a context that
// the workflow's cancellation does not cut, so that a canceled workflow
// still cleans up. It returns nil when all succeeded, else a
// *CompensationError; failures are never swallowed. The compensations are
// cleared: a second call runs nothing.
func (s *Saga) Compensate(ctx Context) error {
	steps := s.steps
	s.steps = nil
	futures := make([]Future, 0, len(steps))
	run := func(c compensation) Future {
		dctx, _ := NewDisconnectedContext(c.ctx)
		return ExecuteActivity(dctx, c.activity, c.args...)
	}
	var failed []error
	if s.opts.ParallelCompensation {
		for i := len(steps) - 1; i >= 0; i-- {
			futures = append(futures, run(steps[i]))
		}
		for _, f := range futures {
			if err := f.Get(ctx, nil); err != nil {
				failed = append(failed, err)
			}
		}
	} else {
		for i := len(steps) - 1; i >= 0; i-- {
			if err := run(steps[i]).Get(ctx, nil); err != nil {
				failed = append(failed, err)
				if s.opts.StopOnError {
					return &CompensationError{Failed: failed, NotRun: i}
				}
			}
		}
	}
	if len(failed) > 0 {
		return &CompensationError{Failed: failed}
	}
	return nil
}
