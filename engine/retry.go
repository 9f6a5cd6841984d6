package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Retry policy defaults, used where a policy leaves a field zero.
const (
	// DefaultMaximumAttempts is how many attempts a job gets in total before
	// it is dead-lettered.
	DefaultMaximumAttempts = 10
	// DefaultInitialInterval is the delay before the first retry.
	DefaultInitialInterval = time.Second
	// DefaultBackoffCoefficient multiplies the delay after each retry.
	DefaultBackoffCoefficient = 2.0
	// DefaultMaximumInterval caps the delay between retries.
	DefaultMaximumInterval = time.Hour
)

// RetryPolicy says how often and when a failed job is tried again. The names
// follow Temporal's RetryPolicy.
//
// Delays come from Schedule when it is set (the n-th retry waits
// Schedule[n-1]; the last entry repeats), otherwise they grow exponentially
// from InitialInterval by BackoffCoefficient up to MaximumInterval. Jitter
// spreads each delay by up to ±Jitter of itself so that retries of many jobs
// that failed together do not arrive together.
type RetryPolicy struct {
	// MaximumAttempts is the total number of attempts, the first included:
	// "3 retries" is 4. Zero means DefaultMaximumAttempts; 1 means never retry.
	MaximumAttempts int
	// Schedule is a fixed list of delays, such as 1m, 5m, 15m. When set, the
	// exponential fields are ignored.
	Schedule []time.Duration
	// InitialInterval is the first exponential delay. Defaults to 1 second.
	InitialInterval time.Duration
	// BackoffCoefficient multiplies each delay. Defaults to 2.
	BackoffCoefficient float64
	// MaximumInterval caps a delay. Defaults to 1 hour.
	MaximumInterval time.Duration
	// Jitter is the fraction, from 0 to 1, by which a delay is randomly
	// spread. Defaults to 0 (none).
	Jitter float64
	// NonRetryableErrorTypes lists error types (see ErrorType) that fail a
	// job for good on the first occurrence.
	NonRetryableErrorTypes []string
}

// WithDefaults returns the policy with zero fields set to their defaults.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	if p.MaximumAttempts == 0 {
		p.MaximumAttempts = DefaultMaximumAttempts
	}
	if len(p.Schedule) == 0 {
		if p.InitialInterval == 0 {
			p.InitialInterval = DefaultInitialInterval
		}
		if p.BackoffCoefficient == 0 {
			p.BackoffCoefficient = DefaultBackoffCoefficient
		}
		if p.MaximumInterval == 0 {
			p.MaximumInterval = DefaultMaximumInterval
		}
	}
	return p
}

// Validate reports a policy that cannot be used, naming the field.
func (p RetryPolicy) Validate() error {
	var errs []error
	if p.MaximumAttempts < 0 {
		errs = append(errs, fmt.Errorf("retry policy: MaximumAttempts is %d; want 1 or more (0 for the default %d)", p.MaximumAttempts, DefaultMaximumAttempts))
	}
	for i, d := range p.Schedule {
		if d < 0 {
			errs = append(errs, fmt.Errorf("retry policy: Schedule[%d] is %s; delays cannot be negative", i, d))
		}
	}
	if p.InitialInterval < 0 || p.MaximumInterval < 0 {
		errs = append(errs, errors.New("retry policy: InitialInterval and MaximumInterval cannot be negative"))
	}
	// Written so that NaN (which compares false) and +Inf are refused too:
	// JSON cannot carry them, so the policy could not be recorded in an event.
	if p.BackoffCoefficient != 0 && !(p.BackoffCoefficient >= 1 && p.BackoffCoefficient <= math.MaxFloat64) {
		errs = append(errs, fmt.Errorf("retry policy: BackoffCoefficient is %g; want a finite number, 1 or more", p.BackoffCoefficient))
	}
	if !(p.Jitter >= 0 && p.Jitter <= 1) {
		errs = append(errs, fmt.Errorf("retry policy: Jitter is %g; want a fraction from 0 to 1", p.Jitter))
	}
	return errors.Join(errs...)
}

// Delay returns how long to wait before retry number n (1 for the first
// retry). random is a number in [0, 1) that places the jitter; the decider is
// handed it so that it stays a pure function.
func (p RetryPolicy) Delay(n int, random float64) time.Duration {
	p = p.WithDefaults()
	n = max(n, 1)
	var d time.Duration
	if len(p.Schedule) > 0 {
		d = p.Schedule[min(n, len(p.Schedule))-1]
	} else {
		b := &backoff.ExponentialBackOff{
			InitialInterval:     p.InitialInterval,
			RandomizationFactor: 0, // jitter is applied below from the decider's random number
			Multiplier:          p.BackoffCoefficient,
			MaxInterval:         p.MaximumInterval,
			MaxElapsedTime:      0,
			Stop:                backoff.Stop,
			Clock:               backoff.SystemClock,
		}
		b.Reset()
		for range n {
			d = b.NextBackOff()
		}
	}
	if p.Jitter > 0 {
		d += time.Duration(float64(d) * p.Jitter * (2*random - 1))
	}
	return d
}

// retryable reports whether an error of the given type may be retried.
func (p RetryPolicy) retryable(errorType string) bool {
	for _, t := range p.NonRetryableErrorTypes {
		if t == errorType {
			return false
		}
	}
	return true
}

// retryPolicyJSON is how a policy appears in events: durations as strings
// such as "1m30s" so that an operator can read the audit trail.
type retryPolicyJSON struct {
	MaximumAttempts        int      `json:"maximum_attempts"`
	Schedule               []string `json:"schedule,omitempty"`
	InitialInterval        string   `json:"initial_interval,omitempty"`
	BackoffCoefficient     float64  `json:"backoff_coefficient,omitempty"`
	MaximumInterval        string   `json:"maximum_interval,omitempty"`
	Jitter                 float64  `json:"jitter,omitempty"`
	NonRetryableErrorTypes []string `json:"non_retryable_error_types,omitempty"`
}

func durString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func parseDur(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

// MarshalJSON writes durations as strings.
func (p RetryPolicy) MarshalJSON() ([]byte, error) {
	j := retryPolicyJSON{
		MaximumAttempts:        p.MaximumAttempts,
		InitialInterval:        durString(p.InitialInterval),
		BackoffCoefficient:     p.BackoffCoefficient,
		MaximumInterval:        durString(p.MaximumInterval),
		Jitter:                 p.Jitter,
		NonRetryableErrorTypes: p.NonRetryableErrorTypes,
	}
	for _, d := range p.Schedule {
		j.Schedule = append(j.Schedule, d.String())
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *RetryPolicy) UnmarshalJSON(b []byte) error {
	var j retryPolicyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var err error
	*p = RetryPolicy{MaximumAttempts: j.MaximumAttempts, BackoffCoefficient: j.BackoffCoefficient, Jitter: j.Jitter, NonRetryableErrorTypes: j.NonRetryableErrorTypes}
	if p.InitialInterval, err = parseDur(j.InitialInterval); err != nil {
		return fmt.Errorf("retry policy initial_interval: %w", err)
	}
	if p.MaximumInterval, err = parseDur(j.MaximumInterval); err != nil {
		return fmt.Errorf("retry policy maximum_interval: %w", err)
	}
	for i, s := range j.Schedule {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("retry policy schedule[%d]: %w", i, err)
		}
		p.Schedule = append(p.Schedule, d)
	}
	return nil
}
