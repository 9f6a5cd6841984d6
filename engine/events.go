package engine

import (
	"encoding/json"
	"time"
	"unicode/utf8"
)

// Job event types. docs/events.md describes each with its fields.
const (
	EventJobEnqueued      = "JobEnqueued"
	EventAttemptStarted   = "AttemptStarted"
	EventAttemptSucceeded = "AttemptSucceeded"
	EventAttemptFailed    = "AttemptFailed"
	EventAttemptTimedOut  = "AttemptTimedOut"
	EventJobDeadLettered  = "JobDeadLettered"
	EventJobRetried       = "JobRetried"
	EventJobResolved      = "JobResolved"
	EventJobCanceled      = "JobCanceled"
	// EventStepCompleted: an idempotent step finished inside an attempt
	// (StepCompleted; see steps.go).
	EventStepCompleted = "StepCompleted"
)

// JobEnqueued starts a job's history.
type JobEnqueued struct {
	Type     string          `json:"type"`
	Queue    string          `json:"queue"`
	Priority Priority        `json:"priority"`
	Payload  json.RawMessage `json:"payload"`
	// RunAt is when the first attempt becomes due.
	RunAt time.Time `json:"run_at"`
	// RetryPolicy is the policy in force for this job, resolved at enqueue
	// time so that every later decision can be derived from the history.
	RetryPolicy    RetryPolicy `json:"retry_policy"`
	IdempotencyKey string      `json:"idempotency_key,omitempty"`
	// TraceContext is the enqueuer's trace context as W3C propagation
	// fields (traceparent, tracestate, baggage), so that every attempt,
	// however much later, joins the enqueuer's trace. Empty when the
	// enqueue was not traced.
	TraceContext map[string]string `json:"trace_context,omitempty"`
	// CorrelationID ties the job's log lines to the request or job that
	// caused it; child jobs inherit it. Empty when none was set.
	CorrelationID string `json:"correlation_id,omitempty"`
}

// AttemptStarted records a claim: a worker leased the job.
type AttemptStarted struct {
	// Attempt numbers attempts over the job's whole life, from 1. It is the
	// lease's fencing token.
	Attempt        int       `json:"attempt"`
	LeaseExpiresAt time.Time `json:"lease_expires_at"`
	WorkerID       string    `json:"worker_id"`
}

// AttemptSucceeded records that the handler returned nil.
type AttemptSucceeded struct {
	Attempt    int     `json:"attempt"`
	DurationMS float64 `json:"duration_ms"`
}

// AttemptFailed records a handler error and what the retry policy decided.
type AttemptFailed struct {
	Attempt    int     `json:"attempt"`
	DurationMS float64 `json:"duration_ms"`
	Error      string  `json:"error"`
	ErrorType  string  `json:"error_type,omitempty"`
	Permanent  bool    `json:"permanent,omitempty"`
	// RetryAt is when the next attempt is due; nil when the job is dead-lettered.
	RetryAt *time.Time `json:"retry_at"`
}

// AttemptTimedOut records that an attempt's lease expired without a result
// (its worker died or lost contact), and what the retry policy decided.
type AttemptTimedOut struct {
	Attempt        int        `json:"attempt"`
	LeaseExpiredAt time.Time  `json:"lease_expired_at"`
	RetryAt        *time.Time `json:"retry_at"`
	WorkerID       string     `json:"worker_id"`
}

// JobDeadLettered records that the job will not be tried again on its own.
type JobDeadLettered struct {
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error"`
	Reason    string `json:"reason"`
}

// JobRetried records an operator re-queueing a dead letter with a fresh
// attempt budget.
type JobRetried struct {
	Actor string `json:"actor"`
	Note  string `json:"note,omitempty"`
}

// JobResolved records an operator closing a dead letter without retrying it.
type JobResolved struct {
	Actor string `json:"actor"`
	Notes string `json:"notes"`
}

// JobCanceled records that a job was stopped before it finished.
type JobCanceled struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
}

// canonicalEvent is implemented by the event types of the claim and
// completion hot path. Their fields are declared in key order and hold no
// numbers that JSON would spell with an exponent, so encoding/json already
// writes them in canonical form and Record skips re-canonicalizing them —
// unless a string is not valid UTF-8, which encoding/json escapes
// differently than the canonical form. TestHotEventsEncodeCanonically
// keeps the claim honest.
type canonicalEvent interface {
	encodesCanonically() bool
}

func (e AttemptStarted) encodesCanonically() bool   { return utf8.ValidString(e.WorkerID) }
func (e AttemptSucceeded) encodesCanonically() bool { return true }
func (e AttemptFailed) encodesCanonically() bool {
	return utf8.ValidString(e.Error) && utf8.ValidString(e.ErrorType)
}
func (e AttemptTimedOut) encodesCanonically() bool { return utf8.ValidString(e.WorkerID) }
func (e JobDeadLettered) encodesCanonically() bool {
	return utf8.ValidString(e.LastError) && utf8.ValidString(e.Reason)
}
