package sdk_test

import (
	"context"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/internal/testdb"
	"github.com/chronicle-engine/chronicle/sdk"
)

type bundle struct {
	client *sdk.Client
	schema string
}

// setup returns a client on a fresh schema whose NATS wakeups are private
// to the test.
func setup(t *testing.T, mutate ...func(*sdk.Config)) *bundle {
	t.Helper()
	pool, schema := testdb.Schema(t)
	cfg := sdk.Config{Pool: pool, WakeSubjectPrefix: "test." + schema}
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := sdk.NewClient(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &bundle{client: c, schema: schema}
}

// startWorker starts a worker and stops it when the test ends.
func startWorker(t *testing.T, w *sdk.Worker) {
	t.Helper()
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
