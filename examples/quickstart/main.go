// Quickstart enqueues a few jobs, runs a worker on them and prints what
// happened to each, read back from its event history: one succeeds at once,
// one succeeds after two retries, and one runs out of attempts and lands in
// the dead-letter queue, where an operator resolves it.
//
//	go run ./examples/quickstart
//
// It uses the local PostgreSQL and NATS, or DATABASE_URL and NATS_URL.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, sdk.Config{}, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// Welcome is the payload of email.send in this example.
type Welcome struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
}

// Report is the payload of report.generate.
type Report struct {
	Month string `json:"month"`
}

func run(ctx context.Context, cfg sdk.Config, out io.Writer) error {
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	client, err := sdk.NewClient(ctx, cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	if err := client.Migrate(ctx); err != nil {
		return err
	}

	// report.generate fails twice before it succeeds; its retries come
	// quickly so that the example finishes in a second.
	if err := client.RegisterJobType("report.generate", sdk.JobType{RetryPolicy: sdk.RetryPolicy{
		MaximumAttempts: 3, Schedule: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}}}); err != nil {
		return err
	}
	// payment.capture always fails: after 2 attempts it is dead-lettered.
	if err := client.RegisterJobType("payment.capture", sdk.JobType{RetryPolicy: sdk.RetryPolicy{
		MaximumAttempts: 2, Schedule: []time.Duration{100 * time.Millisecond}}}); err != nil {
		return err
	}

	worker, err := client.NewWorker(sdk.WorkerConfig{Queues: map[string]int{sdk.DefaultQueue: 5}})
	if err != nil {
		return err
	}
	err = sdk.RegisterJobHandler(worker, sdk.JobTypeEmailSend, func(ctx context.Context, w Welcome) error {
		fmt.Fprintf(out, "  sending welcome email to %s\n", w.Email)
		return nil
	})
	if err != nil {
		return err
	}
	var reportRuns atomic.Int32
	err = sdk.RegisterJobHandler(worker, "report.generate", func(ctx context.Context, r Report) error {
		if n := reportRuns.Add(1); n < 3 {
			return fmt.Errorf("warehouse busy (run %d)", n)
		}
		fmt.Fprintf(out, "  report for %s generated\n", r.Month)
		return nil
	})
	if err != nil {
		return err
	}
	err = worker.Handle("payment.capture", func(ctx context.Context, _ json.RawMessage) error {
		return errors.New("card declined")
	})
	if err != nil {
		return err
	}
	if err := worker.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = worker.Stop(sctx)
	}()

	fmt.Fprintln(out, "enqueueing 3 jobs; a worker runs them:")
	ids := map[string]eventlog.ID{}
	for _, j := range []struct {
		typ     string
		payload any
	}{
		{sdk.JobTypeEmailSend, Welcome{UserID: "42", Email: "ada@example.com"}},
		{"report.generate", Report{Month: "2026-11"}},
		{"payment.capture", map[string]any{"order_id": "A-1001", "amount_cents": 4200}},
	} {
		res, err := client.Enqueue(ctx, j.typ, j.payload)
		if err != nil {
			return err
		}
		ids[j.typ] = res.ID
	}

	// Wait until every job has settled.
	deadline := time.Now().Add(30 * time.Second)
	for _, typ := range []string{sdk.JobTypeEmailSend, "report.generate", "payment.capture"} {
		for {
			j, err := client.Job(ctx, ids[typ])
			if err != nil {
				return err
			}
			if j.Status == sdk.StatusSucceeded || j.Status == sdk.StatusDeadLettered {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("job %s (%s) still %s after 30s", ids[typ], typ, j.Status)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}

	// The dead letter waits for an operator, who resolves it with notes.
	if _, err := client.ResolveDeadLetter(ctx, ids["payment.capture"], "ops@example.com", "customer paid by bank transfer"); err != nil {
		return err
	}

	for _, typ := range []string{sdk.JobTypeEmailSend, "report.generate", "payment.capture"} {
		j, err := client.Job(ctx, ids[typ])
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\n%s %s: %s after %d attempt(s)\n", typ, j.ID, j.Status, j.Attempt)
		history, err := client.History(ctx, j.ID)
		if err != nil {
			return err
		}
		for _, e := range history {
			fmt.Fprintf(out, "  %2d  %-16s %s\n", e.Seq, e.Type, e.Data)
		}
		if err := eventlog.CheckChain(history); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "\nevery history above is hash-chained and verified.")
	return nil
}
