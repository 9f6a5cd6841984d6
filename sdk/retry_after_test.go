package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/sdk"
)

type rateLimitError struct{}

func (rateLimitError) Error() string     { return "429 Too Many Requests" }
func (rateLimitError) ErrorType() string { return "RateLimited" }

// A handler error that asks for a later retry (sdk.RetryAfter, as
// webhook.deliver returns for a Retry-After) postpones the retry the policy
// chose; the time is recorded in AttemptFailed.retry_at and the job waits
// for it. A shorter request leaves the policy's delay; the wrapped error's
// type still reaches NonRetryableErrorTypes.
func TestRetryAfterPostponesRetry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	policy := sdk.RetryPolicy{MaximumAttempts: 3, Schedule: []time.Duration{time.Minute}}
	if err := b.client.RegisterJobType("partner.sync", sdk.JobType{RetryPolicy: policy}); err != nil {
		t.Fatal(err)
	}
	w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = w.Handle("partner.sync", func(ctx context.Context, raw json.RawMessage) error {
		var p struct {
			After string `json:"after"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return err
		}
		d, err := time.ParseDuration(p.After)
		if err != nil {
			return sdk.Permanent(err)
		}
		return sdk.RetryAfter(rateLimitError{}, d)
	})
	if err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)

	for _, tt := range []struct {
		after string
		want  time.Duration
	}{{"2h", 2 * time.Hour}, {"10s", time.Minute}} {
		res, err := b.client.Enqueue(ctx, "partner.sync", map[string]string{"after": tt.after})
		if err != nil {
			t.Fatal(err)
		}
		var failed []engine.AttemptFailed
		var recorded time.Time
		waitFor(t, "the first failure", 10*time.Second, func() bool {
			failed = failed[:0]
			for _, e := range historyOf(t, b, res.ID) {
				if e.Type == engine.EventAttemptFailed {
					failed = append(failed, decodeEvent[engine.AttemptFailed](t, e, engine.EventAttemptFailed))
					recorded = e.RecordedAt
				}
			}
			return len(failed) == 1
		})
		f := failed[0]
		if f.RetryAt == nil || !f.RetryAt.Equal(recorded.Add(tt.want)) || f.ErrorType != "RateLimited" || f.Permanent {
			t.Fatalf("RetryAfter %s: AttemptFailed %+v recorded at %s; want retry_at %s later, error type RateLimited", tt.after, f, recorded, tt.want)
		}
		if j := jobOf(t, b, res.ID); j.Status != sdk.StatusRetrying || !j.RunAt.Equal(*f.RetryAt) {
			t.Fatalf("RetryAfter %s: job %s due %s, want retrying due %s", tt.after, j.Status, j.RunAt, f.RetryAt)
		}
	}
}

func TestRetryAfterWraps(t *testing.T) {
	t.Parallel()
	if sdk.RetryAfter(nil, time.Minute) != nil {
		t.Fatal("RetryAfter(nil) is not nil")
	}
	base := errors.New("busy")
	err := sdk.RetryAfter(base, time.Minute)
	var d sdk.RetryDelayer
	if !errors.Is(err, base) || err.Error() != "busy" || !errors.As(err, &d) || d.RetryDelay() != time.Minute {
		t.Fatalf("RetryAfter = %v; want it to wrap busy with a 1m delay", err)
	}
	if got := sdk.ErrorType(sdk.RetryAfter(rateLimitError{}, time.Second)); got != "RateLimited" {
		t.Fatalf("ErrorType through RetryAfter = %q, want RateLimited", got)
	}
}
