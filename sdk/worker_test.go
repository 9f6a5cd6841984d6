package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

type greeting struct {
	Name string `json:"name"`
}

func TestWorkerRunsJobToSuccess(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w, err := b.client.NewWorker(sdk.WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	if err := sdk.RegisterJobHandler(w, "greet.send", func(ctx context.Context, p greeting) error {
		info, _ := sdk.JobFromContext(ctx)
		if info.Attempt != 1 {
			t.Errorf("attempt = %d, want 1", info.Attempt)
		}
		got <- p.Name
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	res, err := b.client.Enqueue(ctx, "greet.send", greeting{Name: "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case name := <-got:
		if name != "Ada" {
			t.Fatalf("handler got %q", name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler never ran")
	}
	waitFor(t, "success recorded", 10*time.Second, func() bool {
		j, err := b.client.Job(ctx, res.ID)
		return err == nil && j.Status == sdk.StatusSucceeded
	})
	h, err := b.client.History(ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range h {
		types = append(types, e.Type)
	}
	want := []string{"JobEnqueued", "AttemptStarted", "AttemptSucceeded"}
	if len(types) != len(want) || types[0] != want[0] || types[1] != want[1] || types[2] != want[2] {
		t.Fatalf("history = %v, want %v", types, want)
	}
	if err := eventlog.CheckChain(h); err != nil {
		t.Fatal(err)
	}
}

func TestFailingJobRetriesThenDeadLetters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if err := b.client.RegisterJobType("flaky.thing", sdk.JobType{RetryPolicy: sdk.RetryPolicy{MaximumAttempts: 3, Schedule: []time.Duration{0}}}); err != nil {
		t.Fatal(err)
	}
	w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	if err := w.Handle("flaky.thing", func(ctx context.Context, _ json.RawMessage) error {
		calls.Add(1)
		return errors.New("smtp timeout")
	}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	res, err := b.client.Enqueue(ctx, "flaky.thing", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dead letter", 15*time.Second, func() bool {
		j, err := b.client.Job(ctx, res.ID)
		return err == nil && j.Status == sdk.StatusDeadLettered
	})
	if n := calls.Load(); n != 3 {
		t.Fatalf("handler ran %d times, want 3", n)
	}
	j, _ := b.client.Job(ctx, res.ID)
	if j.LastError != "smtp timeout" || j.Attempt != 3 {
		t.Fatalf("job = %+v", j)
	}
}
