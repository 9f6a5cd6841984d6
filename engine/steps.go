package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// MaxStepKeyLength caps an idempotent step's key.
const MaxStepKeyLength = 500

// StepCompleted records that an idempotent step (sdk.WithIdempotency)
// finished inside an attempt. A later attempt of the same job finds it in
// the history and returns Result instead of running the step again. It
// changes no status.
type StepCompleted struct {
	// Attempt is the attempt that recorded the step.
	Attempt int    `json:"attempt"`
	Key     string `json:"key"`
	// Result is the step's result as JSON (null for a step without one).
	Result json.RawMessage `json:"result"`
	// OwnerID is set when the step was not run by this job but found
	// completed by another job that held the same key: the ID of that job.
	OwnerID string `json:"owner_id,omitempty"`
}

// CompleteStep records an idempotent step's completion in the attempt that
// holds the lease.
type CompleteStep struct {
	Attempt int
	Key     string
	Result  json.RawMessage
	// OwnerID names the job that ran the step when it is another job.
	OwnerID string
}

func (CompleteStep) commandName() string { return "record step of" }

// ValidStepKey checks an idempotent step's key.
func ValidStepKey(key string) error {
	if strings.TrimSpace(key) == "" || len(key) > MaxStepKeyLength {
		return &InputError{Field: "idempotency key", Reason: fmt.Sprintf("%q must be 1 to %d characters, such as email:welcome:42:signup", key, MaxStepKeyLength)}
	}
	return nil
}

func decideStep(j Job, c CompleteStep) ([]Decision, error) {
	if err := checkAttempt(j, c.Attempt); err != nil {
		return nil, err
	}
	if err := ValidStepKey(c.Key); err != nil {
		return nil, err
	}
	result := c.Result
	if len(result) == 0 {
		result = json.RawMessage("null")
	}
	return []Decision{{EventStepCompleted, StepCompleted{Attempt: c.Attempt, Key: c.Key, Result: result, OwnerID: c.OwnerID}}}, nil
}

// CompletedSteps returns the steps a history records as completed, by key.
// When a key was recorded twice (it cannot be, but a history is read as it
// is) the first record wins, as the first result is the one acted on.
func CompletedSteps(history []eventlog.Event) (map[string]StepCompleted, error) {
	out := map[string]StepCompleted{}
	for _, e := range history {
		if e.Type != EventStepCompleted {
			continue
		}
		var s StepCompleted
		if err := e.Decode(&s); err != nil {
			return nil, err
		}
		if _, seen := out[s.Key]; !seen {
			out[s.Key] = s
		}
	}
	return out, nil
}

// StepRecord asks RecordStep to record a step.
type StepRecord struct {
	// Lease is the attempt the step ran in; the record is fenced by it.
	Lease  eventlog.Lease
	Key    string
	Result json.RawMessage
	// OwnerID names another job whose completed step this attempt reused;
	// zero when this attempt ran the step.
	OwnerID eventlog.ID
	// KeyTTL, when positive, also completes this attempt's claim of Key in
	// the keys table, remembering Result for KeyTTL.
	KeyTTL time.Duration
}

// RecordStep appends StepCompleted to the history of the lease's job and,
// with KeyTTL, completes the attempt's claim of the key in the keys table,
// in one transaction. The task row is locked first (the lease check), then
// the key, then the execution row is written.
//
// When the attempt no longer holds its lease, the history is left alone
// and the error wraps ErrLeaseLost; the key is still completed when the
// claim is the attempt's, because the step did run and no other caller may
// run it again.
func (e *Engine) RecordStep(ctx context.Context, r StepRecord) error {
	if err := ValidStepKey(r.Key); err != nil {
		return err
	}
	var owner string
	if r.OwnerID != (eventlog.ID{}) {
		owner = r.OwnerID.String()
	}
	var lost error
	err := e.store.InTx(ctx, func(tx eventlog.Tx) error {
		lost = nil
		locked, now, err := tx.LockLeases(ctx, []eventlog.Lease{r.Lease})
		if err != nil {
			return err
		}
		if r.KeyTTL > 0 {
			ok, err := tx.CompleteIdempotencyKey(ctx, r.Key, r.Lease.ExecutionID, r.Lease.Attempt, r.Result, r.KeyTTL)
			if err != nil {
				return err
			}
			if !ok {
				e.log.Warn("idempotency key was no longer claimed by the attempt that ran its step", "key", r.Key,
					"job_id", r.Lease.ExecutionID.String(), "attempt", r.Lease.Attempt)
			}
		}
		if len(locked) == 0 {
			lost = fmt.Errorf("record step %q of attempt %d of job %s: %w", r.Key, r.Lease.Attempt, r.Lease.ExecutionID, ErrLeaseLost)
			return nil
		}
		l := locked[0]
		j, err := JobFromRow(l.Execution, &l.Task)
		if err != nil {
			return err
		}
		decisions, err := Decide(j, CompleteStep{Attempt: r.Lease.Attempt, Key: r.Key, Result: r.Result, OwnerID: owner}, e.env(now))
		if err != nil {
			return err
		}
		j, events, err := Record(j, decisions, now)
		if err != nil {
			return err
		}
		var c eventlog.Changes
		addJob(&c, &j, events, false)
		return tx.Apply(ctx, c)
	})
	if err != nil {
		if errors.Is(err, ErrLeaseLost) {
			return err
		}
		return fmt.Errorf("record step %q of job %s: %w", r.Key, r.Lease.ExecutionID, err)
	}
	return lost
}
