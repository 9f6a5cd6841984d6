package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// Idempotent steps: see WithIdempotency.

// Errors of idempotent steps, for errors.Is.
var (
	// ErrStepInProgress: another job is running the step with the same key.
	// The error is an *InProgressError.
	ErrStepInProgress = errors.New("idempotent step in progress")
	// ErrNotInJob: WithIdempotency was called with a context that is not a
	// job handler's.
	ErrNotInJob = errors.New("not inside a job handler")
)

// InProgressError is returned by WithIdempotency when another job holds the
// step's key and the caller chose not to wait (FailIfInProgress), or waited
// as long as WaitAtMost allows. A handler that returns it is retried like
// any failure, and the retry finds the step's result once the holder has
// finished.
type InProgressError struct {
	Key string
	// OwnerID and OwnerAttempt name the attempt running the step.
	OwnerID      eventlog.ID
	OwnerAttempt int
	// Since is when the holder claimed the key (database time).
	Since time.Time
}

func (e *InProgressError) Error() string {
	return fmt.Sprintf("idempotent step %q is being run by attempt %d of job %s since %s; retry later, or let WithIdempotency wait for its result",
		e.Key, e.OwnerAttempt, e.OwnerID, e.Since.UTC().Format(time.RFC3339Nano))
}

// Is makes errors.Is(err, ErrStepInProgress) true.
func (e *InProgressError) Is(target error) bool { return target == ErrStepInProgress }

// ErrorType names the error for RetryPolicy.NonRetryableErrorTypes.
func (e *InProgressError) ErrorType() string { return "IdempotencyInProgress" }

// IdempotencyOption adjusts one WithIdempotency call.
type IdempotencyOption func(*idempotencyOptions)

type idempotencyOptions struct {
	failFast bool
	maxWait  time.Duration // 0: until the handler's context ends
}

// FailIfInProgress makes WithIdempotency return an *InProgressError at
// once when another job is running the step, instead of waiting for it.
func FailIfInProgress() IdempotencyOption {
	return func(o *idempotencyOptions) { o.failFast = true }
}

// WaitAtMost bounds how long WithIdempotency waits for another job's run of
// the step; after d it returns an *InProgressError. By default it waits
// until the holder finishes or the handler's context ends.
func WaitAtMost(d time.Duration) IdempotencyOption {
	return func(o *idempotencyOptions) { o.maxWait = d }
}

// Polling of a key held by another job: from stepPollMin, doubling up to
// stepPollMax.
const (
	stepPollMin = 10 * time.Millisecond
	stepPollMax = 250 * time.Millisecond
	// stepRecordTimeout bounds the writes after fn returned, which run on a
	// context the handler's cancellation does not cut.
	stepRecordTimeout = 10 * time.Second
)

// WithIdempotency runs fn at most once per key within ttl, however often
// the job is retried and whichever jobs call it with the same key — the
// runbook's withIdempotency. Call it from a job handler with the handler's
// context:
//
//	err := sdk.WithIdempotency(ctx, "email:welcome:"+userID+":signup", 24*time.Hour, func(ctx context.Context) error {
//		return sendWelcomeEmail(ctx, userID)
//	})
//
// Within one job the answer comes from its history: when fn succeeds, a
// StepCompleted event is appended (fenced by the attempt's lease), and a
// later attempt finds it and returns at once. Across jobs a keys table
// holds the key with the job that owns it and when it expires: a caller
// that finds the key completed returns at once (and records StepCompleted
// naming the owner in its own history); a caller that finds it running
// waits for the result (or returns an *InProgressError with
// FailIfInProgress). A claim dies with its owner's attempt, so a crashed
// worker never blocks a key. When fn returns an error the key is released
// so that a retry runs fn again, and the error is returned.
//
// ttl counts from fn's success: after it, a new call runs fn again. Key
// patterns: email:{type}:{recipientId}:{uniqueId},
// webhook:{webhookId}:{deliveryId}, payment:{orderId}:{action}.
//
// One window remains, as in any system whose side effect is outside its
// database: if the process dies after fn's effect and before the step is
// recorded (one short transaction), a retry runs fn again. Once WithIdempotency
// has returned, the step never runs again within ttl.
func WithIdempotency(ctx context.Context, key string, ttl time.Duration, fn func(ctx context.Context) error, opts ...IdempotencyOption) error {
	if fn == nil {
		return &engine.InputError{Field: "step function", Reason: "is nil"}
	}
	_, err := runStep(ctx, key, ttl, func(ctx context.Context) (json.RawMessage, error) {
		return nil, fn(ctx)
	}, opts)
	return err
}

// WithIdempotencyResult is WithIdempotency for a step with a result: the
// result is recorded (as JSON) with the step, and every later call with the
// key — a retry of the job, or another job — returns the recorded result
// instead of running fn. T must survive a JSON round trip; every call,
// including the one that ran fn, returns the decoded JSON, so that all
// callers see the same value.
func WithIdempotencyResult[T any](ctx context.Context, key string, ttl time.Duration, fn func(ctx context.Context) (T, error), opts ...IdempotencyOption) (T, error) {
	var zero T
	if fn == nil {
		return zero, &engine.InputError{Field: "step function", Reason: "is nil"}
	}
	raw, err := runStep(ctx, key, ttl, func(ctx context.Context) (json.RawMessage, error) {
		v, err := fn(ctx)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, &resultEncodingError{err: err}
		}
		return b, nil
	}, opts)
	if err != nil {
		return zero, err
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return zero, Permanent(fmt.Errorf("decode the recorded result of step %q (%s) into %T: %w", key, raw, v, err))
	}
	return v, nil
}

// resultEncodingError: fn succeeded but its result is not JSON. The step
// ran, so it is recorded with a null result and the error is permanent.
type resultEncodingError struct{ err error }

func (e *resultEncodingError) Error() string { return "encode step result as JSON: " + e.err.Error() }
func (e *resultEncodingError) Unwrap() error { return e.err }

// stepScope is what idempotent steps know of the attempt they run in.
type stepScope struct {
	client *Client
	lease  eventlog.Lease

	mu     sync.Mutex
	loaded bool
	steps  map[string]engine.StepCompleted
}

type stepScopeKey struct{}

// withStepScope gives a handler's context what WithIdempotency needs.
func withStepScope(ctx context.Context, c *Client, claimed *engine.Claimed) context.Context {
	return context.WithValue(ctx, stepScopeKey{}, &stepScope{client: c, lease: claimed.Lease})
}

// recorded returns the step's record in this job's history, reading the
// history once per attempt.
func (s *stepScope) recorded(ctx context.Context, key string) (engine.StepCompleted, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded {
		h, err := s.client.eng.Store().History(ctx, s.lease.ExecutionID)
		if err != nil {
			return engine.StepCompleted{}, false, fmt.Errorf("read history of job %s for step %q: %w", s.lease.ExecutionID, key, err)
		}
		if s.steps, err = engine.CompletedSteps(h); err != nil {
			return engine.StepCompleted{}, false, err
		}
		s.loaded = true
	}
	st, ok := s.steps[key]
	return st, ok, nil
}

// record appends StepCompleted (and with ttl completes the key), retrying
// while the database is unreachable: the step ran, and losing its record
// would let it run again.
func (s *stepScope) record(ctx context.Context, key string, result json.RawMessage, owner eventlog.ID, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stepRecordTimeout)
	defer cancel()
	r := engine.StepRecord{Lease: s.lease, Key: key, Result: result, OwnerID: owner, KeyTTL: ttl}
	delay := 20 * time.Millisecond
	for {
		err := s.client.eng.RecordStep(ctx, r)
		if err == nil {
			s.mu.Lock()
			if s.steps == nil {
				s.steps = map[string]engine.StepCompleted{}
			}
			s.steps[key] = engine.StepCompleted{Attempt: s.lease.Attempt, Key: key, Result: result}
			s.mu.Unlock()
			return nil
		}
		if errors.Is(err, engine.ErrLeaseLost) || errors.Is(err, engine.ErrInvalidInput) {
			return err
		}
		s.client.log.Warn("recording an idempotent step failed; retrying", "key", key, "job_id", s.lease.ExecutionID.String(), "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("step %q ran, but recording it failed: %w", key, err)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// runStep is WithIdempotency with a JSON result.
func runStep(ctx context.Context, key string, ttl time.Duration, fn func(context.Context) (json.RawMessage, error), opts []IdempotencyOption) (json.RawMessage, error) {
	if err := engine.ValidStepKey(key); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		return nil, &engine.InputError{Field: "idempotency TTL", Reason: fmt.Sprintf("%s; want a positive duration such as 24*time.Hour", ttl)}
	}
	var o idempotencyOptions
	for _, opt := range opts {
		opt(&o)
	}
	sc, ok := ctx.Value(stepScopeKey{}).(*stepScope)
	if !ok {
		return nil, fmt.Errorf("WithIdempotency(%q): %w; pass the context a job handler receives", key, ErrNotInJob)
	}
	// 1. This job's history: a step recorded by an earlier attempt.
	if st, ok, err := sc.recorded(ctx, key); err != nil {
		return nil, err
	} else if ok {
		return st.Result, nil
	}
	// 2. The keys table: claim the key, or find who has it.
	store := sc.client.eng.Store()
	began := time.Now()
	poll := stepPollMin
	for {
		claim, err := store.ClaimIdempotencyKey(ctx, eventlog.ClaimKeyParams{Key: key, OwnerID: sc.lease.ExecutionID, OwnerAttempt: sc.lease.Attempt, TTL: ttl})
		if err != nil {
			return nil, err
		}
		if claim.Claimed {
			break
		}
		k := claim.Key
		if k.State == eventlog.KeyCompleted {
			// Run by another job, or by an earlier attempt of this one
			// whose record in the history was lost with its lease.
			var owner eventlog.ID
			if k.OwnerID != sc.lease.ExecutionID {
				owner = k.OwnerID
			}
			if err := sc.record(ctx, key, k.Result, owner, 0); err != nil {
				return nil, err
			}
			return k.Result, nil
		}
		inProgress := &InProgressError{Key: key, OwnerID: k.OwnerID, OwnerAttempt: k.OwnerAttempt, Since: k.CreatedAt}
		if o.failFast || (o.maxWait > 0 && time.Since(began) >= o.maxWait) {
			return nil, inProgress
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for %w: %w", inProgress, context.Cause(ctx))
		case <-t.C:
		}
		poll = min(2*poll, stepPollMax)
	}
	// 3. Run the step; on failure give the key back.
	done := false
	defer func() {
		if done {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stepRecordTimeout)
		defer cancel()
		if _, err := store.ReleaseIdempotencyKey(rctx, key, sc.lease.ExecutionID, sc.lease.Attempt); err != nil {
			// The claim dies with this attempt anyway; the key is only
			// held until the attempt is recorded.
			sc.client.log.Warn("releasing an idempotency key failed", "key", key, "job_id", sc.lease.ExecutionID.String(), "err", err)
		}
	}()
	result, err := fn(ctx)
	var encErr *resultEncodingError
	if errors.As(err, &encErr) {
		result, err = nil, Permanent(fmt.Errorf("step %q ran, but its result cannot be recorded: %w", key, encErr))
		done = true
		if rerr := sc.record(ctx, key, nil, eventlog.ID{}, ttl); rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if result == nil {
		result = json.RawMessage("null")
	}
	if canon, err := eventlog.Canonicalize(result); err == nil {
		result = canon
	}
	done = true
	if err := sc.record(ctx, key, result, eventlog.ID{}, ttl); err != nil {
		return result, err
	}
	return result, nil
}
