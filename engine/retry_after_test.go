package engine_test

import (
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
)

// A failure that asks for a later retry (an HTTP Retry-After) moves the
// retry time the policy chose, and only ever later; the choice is recorded
// in AttemptFailed.retry_at and in the job's run time.
func TestDecideFailRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		retryAfter time.Duration
		want       time.Duration // delay from the failure to retry_at
	}{
		{"none: the policy's 1m", 0, time.Minute},
		{"shorter than the policy: the policy's 1m", 10 * time.Second, time.Minute},
		{"longer than the policy: the asked 2h", 2 * time.Hour, 2 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newJob(t, emailSendPolicy)
			h.claim()
			events := h.do(engine.Fail{Attempt: 1, Error: "429 Too Many Requests", RetryAfter: tt.retryAfter})
			failed := decode[engine.AttemptFailed](t, events[0])
			want := h.now.Add(tt.want)
			if failed.RetryAt == nil || !failed.RetryAt.Equal(want) {
				t.Fatalf("retry_at = %v, want %s (now + %s)", failed.RetryAt, want, tt.want)
			}
			if h.job.Status != engine.StatusRetrying || !h.job.RunAt.Equal(want) {
				t.Fatalf("after failure: status %s, run at %s; want retrying at %s", h.job.Status, h.job.RunAt, want)
			}
		})
	}
}

// Retry-After never rescues a job from the dead-letter queue: a permanent
// failure or the last attempt dead-letters it all the same.
func TestDecideFailRetryAfterDoesNotExtendBudget(t *testing.T) {
	t.Parallel()
	h := newJob(t, engine.RetryPolicy{MaximumAttempts: 1})
	h.claim()
	events := h.do(engine.Fail{Attempt: 1, Error: "503", RetryAfter: time.Minute})
	if got := types(events); len(got) != 2 || got[1] != engine.EventJobDeadLettered {
		t.Fatalf("events = %v, want AttemptFailed then JobDeadLettered", got)
	}
	if failed := decode[engine.AttemptFailed](t, events[0]); failed.RetryAt != nil {
		t.Fatalf("retry_at = %v, want null", failed.RetryAt)
	}
}
