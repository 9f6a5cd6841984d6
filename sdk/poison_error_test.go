package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/sdk"
)

// A handler's error text is recorded whatever bytes it holds: a NUL byte,
// which jsonb cannot store, or invalid UTF-8 must not fail the transaction
// that records the outcomes of the other jobs in the same batch.
func TestHandlerErrorWithUnstorableBytes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if err := b.client.RegisterJobType("poison.error", sdk.JobType{RetryPolicy: sdk.RetryPolicy{MaximumAttempts: 1}}); err != nil {
		t.Fatal(err)
	}
	w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Handle("poison.error", func(ctx context.Context, p json.RawMessage) error {
		var in struct{ Bad bool }
		if err := json.Unmarshal(p, &in); err != nil {
			return err
		}
		if in.Bad {
			return errors.New("driver said \x00 and \xff")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	bad, err := b.client.Enqueue(ctx, "poison.error", map[string]bool{"bad": true})
	if err != nil {
		t.Fatal(err)
	}
	good, err := b.client.Enqueue(ctx, "poison.error", map[string]bool{"bad": false})
	if err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	waitFor(t, "both outcomes recorded", 15*time.Second, func() bool {
		g, err1 := b.client.Job(ctx, good.ID)
		d, err2 := b.client.Job(ctx, bad.ID)
		return err1 == nil && err2 == nil && g.Status == sdk.StatusSucceeded && d.Status == sdk.StatusDeadLettered
	})
	h, err := b.client.History(ctx, bad.ID)
	if err != nil {
		t.Fatal(err)
	}
	var failed engine.AttemptFailed
	for _, e := range h {
		if e.Type == engine.EventAttemptFailed {
			if err := e.Decode(&failed); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !strings.HasPrefix(failed.Error, "driver said ") || strings.ContainsRune(failed.Error, 0) || !strings.Contains(failed.Error, "\uFFFD") {
		t.Fatalf("recorded error %q", failed.Error)
	}
}
