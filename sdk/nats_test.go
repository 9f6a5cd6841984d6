package sdk_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/sdk"
)

// TestNATSUnreachable: with nothing listening at the NATS address, the
// client still starts and workers find every job by polling.
func TestNATSUnreachable(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *sdk.Config) { c.NATSURL = "nats://127.0.0.1:1" })
	ctx := context.Background()
	w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var ran atomic.Int32
	if err := w.Handle("poll.only", func(context.Context, json.RawMessage) error {
		ran.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	const n = 20
	for i := range n {
		if _, err := b.client.Enqueue(ctx, "poll.only", map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "20 jobs to succeed by polling", 10*time.Second, func() bool {
		return countRows(t, b, `SELECT count(*) FROM executions WHERE status = 'succeeded'`) == n
	})
	if got := ran.Load(); got != n {
		t.Fatalf("handlers ran %d times, want %d", got, n)
	}
	verifyOK(t, b)
}

// TestWakeupStartsIdleWorker: an idle worker that polls only once a minute
// starts a new job within moments, because the enqueue wakes it over NATS.
func TestWakeupStartsIdleWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: time.Minute, DisableMaintenance: true})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan time.Time, 2)
	if err := w.Handle("wake.me", func(context.Context, json.RawMessage) error {
		started <- time.Now()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)

	// The first job may be found by the worker's initial claim; once it is
	// done the worker is idle and its next poll is a minute away.
	first, err := b.client.Enqueue(ctx, "wake.me", nil)
	if err != nil {
		t.Fatal(err)
	}
	recv(t, "the first job", started, 5*time.Second)
	waitFor(t, "the first job to succeed", 5*time.Second, func() bool {
		j, err := b.client.Job(ctx, first.ID)
		return err == nil && j.Status == sdk.StatusSucceeded
	})

	enqueued := time.Now()
	if _, err := b.client.Enqueue(ctx, "wake.me", nil); err != nil {
		t.Fatal(err)
	}
	at := recv(t, "the second job to start (a poll would take a minute)", started, 5*time.Second)
	t.Logf("the woken worker started the job %s after enqueue", at.Sub(enqueued))
}
