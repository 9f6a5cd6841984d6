package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

func Echo(ctx context.Context, s string) (string, error) { return s, nil }

// Collect receives n "item" signals, running an activity for each, and
// answers the "received" query with what it has so far.
func Collect(ctx workflow.Context, n int) ([]string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var got []string
	if err := workflow.SetQueryHandler(ctx, "received", func() ([]string, error) { return got, nil }); err != nil {
		return nil, err
	}
	ch := workflow.GetSignalChannel(ctx, "item")
	for len(got) < n {
		var s string
		ch.Receive(ctx, &s)
		if err := workflow.ExecuteActivity(ctx, Echo, s).Get(ctx, &s); err != nil {
			return nil, err
		}
		got = append(got, s)
	}
	return got, nil
}

func registerCollect(w *sdk.Worker) error {
	if err := w.RegisterWorkflow(Collect); err != nil {
		return err
	}
	return w.RegisterActivity(Echo)
}

// TestSignalsRecordedOnceUnderConcurrency sends many signals at once while
// the workflow's tasks run: each is recorded exactly once, and the code
// receives each exactly once. A query meanwhile answers from replayed state.
func TestSignalsRecordedOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.worker("w1", registerCollect)
	ctx := context.Background()
	const n = 40
	run, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "collect"}, Collect, n)
	if err != nil {
		t.Fatal(err)
	}
	// The first signal lets the workflow start an activity; the rest race
	// with its workflow tasks.
	if err := h.client.SignalWorkflow(ctx, "collect", "", "item", "s0"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the query to see the first item", 10*time.Second, func() bool {
		v, err := h.client.QueryWorkflow(ctx, "collect", "", "received")
		var got []string
		return err == nil && v.Get(&got) == nil && slices.Equal(got, []string{"s0"})
	})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- h.client.SignalWorkflow(ctx, "collect", run.GetRunID(), "item", fmt.Sprintf("s%d", i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var got []string
	if err := run.Get(gctx, &got); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	var want []string
	for i := 0; i < n; i++ {
		want = append(want, fmt.Sprintf("s%d", i))
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("received %v\nwant %v", got, want)
	}
	events := h.history(run.GetRunID())
	if c := count(events, engine.EventSignalReceived); c != n {
		t.Fatalf("%d SignalReceived events, want %d", c, n)
	}
	v, err := h.client.QueryWorkflow(ctx, "collect", "", "received")
	if err != nil {
		t.Fatal(err)
	}
	var final []string
	if err := v.Get(&final); err != nil || len(final) != n {
		t.Fatalf("query after the end: %v, %v", final, err)
	}
	// Signals to a finished run are refused.
	err = h.client.SignalWorkflow(ctx, "collect", "", "item", "late")
	if !errors.Is(err, sdk.ErrWorkflowNotRunning) {
		t.Fatalf("signal to a finished run: %v", err)
	}
	h.verifyOK()
}

// TestSignalWithStart starts a run with its first signal, then signals the
// running one instead of starting another.
func TestSignalWithStart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.worker("w1", registerCollect)
	ctx := context.Background()
	r1, err := h.client.SignalWithStartWorkflow(ctx, "sws", "item", "a", sdk.StartWorkflowOptions{}, Collect, 2)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := h.client.SignalWithStartWorkflow(ctx, "sws", "item", "b", sdk.StartWorkflowOptions{}, Collect, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r1.GetRunID() != r2.GetRunID() {
		t.Fatalf("signal-with-start started a second run")
	}
	gctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var got []string
	if err := r1.Get(gctx, &got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("got %v", got)
	}
}
