package engine

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// Env is what a decision may depend on besides state and command: the
// database time and a source of randomness for retry jitter. Tests pass
// fixed values.
type Env struct {
	Now    time.Time
	Random func() float64
}

func (env Env) random() float64 {
	if env.Random == nil {
		return 0.5
	}
	return env.Random()
}

// Command is a request to change a job.
type Command interface{ commandName() string }

// Claim leases the job to a worker for an attempt.
type Claim struct {
	WorkerID       string
	Attempt        int
	LeaseExpiresAt time.Time
}

// Complete reports an attempt's success.
type Complete struct {
	Attempt  int
	Duration time.Duration
}

// Fail reports an attempt's error.
type Fail struct {
	Attempt   int
	Error     string
	ErrorType string
	// Permanent errors are never retried.
	Permanent bool
	Duration  time.Duration
	// RetryAfter is the earliest the next attempt may start, as the failed
	// side asked (an HTTP Retry-After): when it is longer than the retry
	// policy's delay it replaces it. Zero leaves the policy's delay alone.
	RetryAfter time.Duration
}

// TimeOut reports that an attempt's lease expired.
type TimeOut struct {
	Attempt int
}

// RetryDeadLetter re-queues a dead letter with a fresh attempt budget.
type RetryDeadLetter struct {
	Actor string
	Note  string
}

// Resolve closes a dead letter without retrying it.
type Resolve struct {
	Actor string
	Notes string
}

// Cancel stops a job that has not finished.
type Cancel struct {
	Actor  string
	Reason string
}

func (Claim) commandName() string           { return "claim" }
func (Complete) commandName() string        { return "complete" }
func (Fail) commandName() string            { return "fail" }
func (TimeOut) commandName() string         { return "time out" }
func (RetryDeadLetter) commandName() string { return "retry" }
func (Resolve) commandName() string         { return "resolve" }
func (Cancel) commandName() string          { return "cancel" }

// Decision is one event a command produces, before it is numbered and sealed.
type Decision struct {
	Type string
	Data any
}

// Decide returns the events a command produces for a job in state j, or a
// typed error saying why it is refused. It is a pure function.
func Decide(j Job, cmd Command, env Env) ([]Decision, error) {
	refuse := func(want string) error {
		return &StateError{ID: j.ID, Command: cmd.commandName(), Status: j.Status, Want: want}
	}
	switch c := cmd.(type) {
	case Claim:
		if j.Status != StatusPending && j.Status != StatusRetrying {
			return nil, refuse("only pending or retrying jobs can be claimed")
		}
		if c.Attempt != j.Attempt+1 {
			return nil, fmt.Errorf("claim of job %s as attempt %d, but its history has %d attempts: the ready queue disagrees with the history (run chronicle verify)", j.ID, c.Attempt, j.Attempt)
		}
		return []Decision{{EventAttemptStarted, AttemptStarted{Attempt: c.Attempt, WorkerID: c.WorkerID, LeaseExpiresAt: c.LeaseExpiresAt}}}, nil

	case Complete:
		if err := checkAttempt(j, c.Attempt); err != nil {
			return nil, err
		}
		return []Decision{{EventAttemptSucceeded, AttemptSucceeded{Attempt: c.Attempt, DurationMS: ms(c.Duration)}}}, nil

	case Fail:
		if err := checkAttempt(j, c.Attempt); err != nil {
			return nil, err
		}
		permanent := c.Permanent || !j.RetryPolicy.retryable(c.ErrorType)
		retryAt := nextRetry(j, permanent, c.RetryAfter, env)
		out := []Decision{{EventAttemptFailed, AttemptFailed{Attempt: c.Attempt, Error: c.Error, ErrorType: c.ErrorType,
			Permanent: permanent, DurationMS: ms(c.Duration), RetryAt: retryAt}}}
		if retryAt == nil {
			reason := fmt.Sprintf("all %d attempts failed", j.RetryPolicy.WithDefaults().MaximumAttempts)
			if permanent {
				reason = "permanent error"
				if c.ErrorType != "" && !c.Permanent {
					reason = fmt.Sprintf("error type %s is not retryable", c.ErrorType)
				}
			}
			out = append(out, Decision{EventJobDeadLettered, JobDeadLettered{Attempts: j.AttemptsInBudget(), LastError: c.Error, Reason: reason}})
		}
		return out, nil

	case TimeOut:
		if j.Status != StatusRunning || j.Attempt != c.Attempt {
			return nil, ErrLeaseLost
		}
		var expired time.Time
		if j.LeaseExpiresAt != nil {
			expired = *j.LeaseExpiresAt
		}
		retryAt := nextRetry(j, false, 0, env)
		out := []Decision{{EventAttemptTimedOut, AttemptTimedOut{Attempt: c.Attempt, WorkerID: j.WorkerID, LeaseExpiredAt: expired, RetryAt: retryAt}}}
		if retryAt == nil {
			out = append(out, Decision{EventJobDeadLettered, JobDeadLettered{Attempts: j.AttemptsInBudget(),
				LastError: fmt.Sprintf("attempt %d timed out", c.Attempt), Reason: fmt.Sprintf("all %d attempts failed", j.RetryPolicy.WithDefaults().MaximumAttempts)}})
		}
		return out, nil

	case RetryDeadLetter:
		if j.Status != StatusDeadLettered {
			return nil, refuse("only dead-lettered jobs can be retried")
		}
		if strings.TrimSpace(c.Actor) == "" {
			return nil, &InputError{Field: "actor", Reason: "say who is retrying the job"}
		}
		return []Decision{{EventJobRetried, JobRetried{Actor: c.Actor, Note: c.Note}}}, nil

	case Resolve:
		if j.Status != StatusDeadLettered {
			return nil, refuse("only dead-lettered jobs can be resolved")
		}
		if strings.TrimSpace(c.Notes) == "" {
			return nil, &InputError{Field: "notes", Reason: "resolving a dead letter needs notes explaining why it is not retried"}
		}
		if strings.TrimSpace(c.Actor) == "" {
			return nil, &InputError{Field: "actor", Reason: "say who is resolving the job"}
		}
		return []Decision{{EventJobResolved, JobResolved{Actor: c.Actor, Notes: c.Notes}}}, nil

	case CompleteStep:
		return decideStep(j, c)

	case Cancel:
		if j.Status.Final() {
			return nil, refuse("it has already finished")
		}
		if strings.TrimSpace(c.Actor) == "" {
			return nil, &InputError{Field: "actor", Reason: "say who is canceling the job"}
		}
		return []Decision{{EventJobCanceled, JobCanceled{Actor: c.Actor, Reason: c.Reason}}}, nil
	}
	return nil, fmt.Errorf("unknown command %T", cmd)
}

// checkAttempt is the fencing check: only the attempt holding the lease may
// report a result.
func checkAttempt(j Job, attempt int) error {
	if j.Status != StatusRunning || j.Attempt != attempt {
		return fmt.Errorf("attempt %d of job %s: %w", attempt, j.ID, ErrLeaseLost)
	}
	return nil
}

// nextRetry is the retry policy's decision after an attempt ended without
// success: when to try again, or nil to dead-letter. minDelay, when longer
// than the policy's delay, replaces it (Fail.RetryAfter).
func nextRetry(j Job, permanent bool, minDelay time.Duration, env Env) *time.Time {
	p := j.RetryPolicy.WithDefaults()
	used := j.AttemptsInBudget()
	if permanent || used >= p.MaximumAttempts {
		return nil
	}
	delay := max(p.Delay(used, env.random()), minDelay)
	at := env.Now.Add(delay).Truncate(time.Microsecond)
	return &at
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Record numbers, timestamps, canonicalizes and seals decisions as events
// appended to j's history, and returns the state after them.
func Record(j Job, decisions []Decision, now time.Time) (Job, []eventlog.Event, error) {
	// Stored timestamps have microseconds; the hash must cover what is stored.
	now = now.Truncate(time.Microsecond)
	events := make([]eventlog.Event, 0, len(decisions))
	for _, d := range decisions {
		raw, err := json.Marshal(d.Data)
		if err != nil {
			return j, nil, fmt.Errorf("encode %s: %w", d.Type, err)
		}
		data := json.RawMessage(raw)
		if ce, ok := d.Data.(canonicalEvent); !ok || !ce.encodesCanonically() {
			if data, err = eventlog.Canonicalize(raw); err != nil {
				return j, nil, fmt.Errorf("encode %s: %w", d.Type, err)
			}
		}
		prev := j.LastHash
		if j.Seq == 0 {
			prev = eventlog.GenesisHash
		}
		e := eventlog.Event{ExecutionID: j.ID, Seq: j.Seq + 1, Type: d.Type, Data: data, RecordedAt: now}
		e.PrevHash = prev
		e.Hash = eventlog.HashEvent(prev, e)
		if j, err = Evolve(j, e); err != nil {
			return j, nil, err
		}
		events = append(events, e)
	}
	return j, events, nil
}
