package sdk

import (
	"fmt"
	"strings"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
)

// RetryPolicy says how often and when failed jobs are retried. See
// engine.RetryPolicy for every field and its default.
type RetryPolicy = engine.RetryPolicy

// Priority orders ready jobs: high before normal before low.
type Priority = engine.Priority

// Priorities.
const (
	PriorityHigh   = engine.PriorityHigh
	PriorityNormal = engine.PriorityNormal
	PriorityLow    = engine.PriorityLow
)

// Job is a job's current state, derived from its history.
type Job = engine.Job

// Status is where a job stands.
type Status = engine.Status

// Job statuses.
const (
	StatusPending      = engine.StatusPending
	StatusRunning      = engine.StatusRunning
	StatusRetrying     = engine.StatusRetrying
	StatusSucceeded    = engine.StatusSucceeded
	StatusDeadLettered = engine.StatusDeadLettered
	StatusResolved     = engine.StatusResolved
	StatusCanceled     = engine.StatusCanceled
)

// The runbook's job types.
const (
	JobTypeEmailSend      = "email.send"
	JobTypeWebhookDeliver = "webhook.deliver"
	JobTypeDataExport     = "data.export"
	// JobTypeCleanup is the pattern of the scheduled cleanup jobs, such as
	// "cleanup.dead_letters".
	JobTypeCleanup = "cleanup.*"
)

// DefaultQueue is the queue of jobs that name none.
const DefaultQueue = "default"

// JobType configures one job type for a Client: the defaults every job of
// the type gets unless its enqueue options say otherwise.
type JobType struct {
	// RetryPolicy of the type's jobs. Zero fields take engine's defaults.
	RetryPolicy RetryPolicy
	// Queue defaults to DefaultQueue.
	Queue string
	// Priority defaults to PriorityNormal.
	Priority Priority
}

// RunbookJobTypes are the job types of the background-jobs runbook with
// their retry policies, registered on every Client:
//
//	email.send       3 retries, 1m/5m/15m backoff
//	webhook.deliver  3 retries, exponential backoff (30s, 1m, 2m ± 20%)
//	data.export      2 retries (1m, 2m)
//	cleanup.*        1 retry (5m)
var RunbookJobTypes = map[string]JobType{
	JobTypeEmailSend: {RetryPolicy: RetryPolicy{MaximumAttempts: 4, Schedule: []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute}}},
	JobTypeWebhookDeliver: {RetryPolicy: RetryPolicy{MaximumAttempts: 4, InitialInterval: 30 * time.Second,
		BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute, Jitter: 0.2}},
	JobTypeDataExport: {RetryPolicy: RetryPolicy{MaximumAttempts: 3, InitialInterval: time.Minute, BackoffCoefficient: 2}},
	JobTypeCleanup:    {RetryPolicy: RetryPolicy{MaximumAttempts: 2, InitialInterval: 5 * time.Minute}},
}

// ValidateJobType checks a job type's name: dot-separated parts of lower-case
// letters, digits, '_' and '-', at most 200 characters; a registration may
// end in ".*" to cover every type under a prefix.
func ValidateJobType(name string, pattern bool) error {
	if name == "" || len(name) > 200 {
		return &engine.InputError{Field: "job type", Reason: fmt.Sprintf("%q must be 1 to 200 characters", name)}
	}
	parts := strings.Split(name, ".")
	for i, part := range parts {
		if pattern && part == "*" && i == len(parts)-1 && i > 0 {
			continue
		}
		if part == "" {
			return &engine.InputError{Field: "job type", Reason: fmt.Sprintf("%q has an empty part between dots", name)}
		}
		for _, r := range part {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				return &engine.InputError{Field: "job type", Reason: fmt.Sprintf("%q contains %q; use lower-case letters, digits, '_', '-' and '.', like email.send", name, r)}
			}
		}
	}
	return nil
}
