// New-job-type adds a job type to an application exactly as the runbook's
// "Creating New Job Types" section says, in its four steps: define the
// type's constant, register its handler, make its side effect idempotent,
// and enqueue jobs. A second job for the same record shows the idempotent
// work running once.
//
//	go run ./examples/new-job-type
//
// It uses the local PostgreSQL and NATS, or DATABASE_URL and NATS_URL.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

// 1. Define the job type constant, next to the existing ones.
const (
	JobTypeEmailSend = sdk.JobTypeEmailSend // …existing
	JobTypeMyNewJob  = "my.new_job"
)

// MyNewJob is the payload of my.new_job.
type MyNewJob struct {
	ID string `json:"id"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, sdk.Config{}, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "new-job-type:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg sdk.Config, out io.Writer) error {
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	out = &lockedWriter{w: out} // handlers print from their own goroutines
	client, err := sdk.NewClient(ctx, cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	if err := client.Migrate(ctx); err != nil {
		return err
	}
	// Optional: the type's retry policy. Without it a new type gets the
	// default (10 attempts, exponential from 1s, capped at 1h).
	if err := client.RegisterJobType(JobTypeMyNewJob, sdk.JobType{RetryPolicy: sdk.RetryPolicy{
		MaximumAttempts: 3, InitialInterval: time.Second, BackoffCoefficient: 2}}); err != nil {
		return err
	}
	worker, err := client.NewWorker(sdk.WorkerConfig{})
	if err != nil {
		return err
	}

	// 2. Register the handler, and 3. use idempotency where it has a side
	// effect: the work inside runs once per key within the TTL (3600s), however
	// often the job is retried or enqueued again.
	var sideEffects atomic.Int32
	err = sdk.RegisterJobHandler(worker, JobTypeMyNewJob, func(ctx context.Context, p MyNewJob) error {
		info, _ := sdk.JobFromContext(ctx)
		fmt.Fprintf(out, "  handling %s %s (id %s)\n", info.Type, info.ID, p.ID)
		return sdk.WithIdempotency(ctx, "my-job:"+p.ID, 3600*time.Second, func(ctx context.Context) error {
			sideEffects.Add(1)
			fmt.Fprintf(out, "    idempotent work for %s done\n", p.ID)
			return nil
		})
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

	// 4. Enqueue jobs. The key outlives a run, so each run of the example
	// uses a new record ID.
	id := "123-" + strconv.FormatInt(time.Now().UnixMilli(), 36)
	fmt.Fprintf(out, "enqueueing two %s jobs for record %s:\n", JobTypeMyNewJob, id)
	var jobs []eventlog.ID
	for range 2 {
		res, err := client.Enqueue(ctx, JobTypeMyNewJob, MyNewJob{ID: id}, sdk.WithPriority(sdk.PriorityNormal))
		if err != nil {
			return err
		}
		if err := wait(ctx, client, res.ID); err != nil {
			return err
		}
		jobs = append(jobs, res.ID)
	}
	for _, jid := range jobs {
		j, err := client.Job(ctx, jid)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\n%s %s: %s after %d attempt(s)\n", j.Type, j.ID, j.Status, j.Attempt)
		history, err := client.History(ctx, jid)
		if err != nil {
			return err
		}
		for _, e := range history {
			fmt.Fprintf(out, "  %2d  %-16s %s\n", e.Seq, e.Type, e.Data)
		}
	}
	fmt.Fprintf(out, "\n2 jobs ran; the idempotent work ran %d time(s).\n", sideEffects.Load())
	return nil
}

// wait polls until the job succeeded, or fails when it was dead-lettered.
func wait(ctx context.Context, client *sdk.Client, id eventlog.ID) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := client.Job(ctx, id)
		if err != nil {
			return err
		}
		switch j.Status {
		case sdk.StatusSucceeded:
			return nil
		case sdk.StatusDeadLettered:
			return fmt.Errorf("job %s (%s) was dead-lettered: %s", id, j.Type, j.LastError)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("job %s (%s) still %s after 30s", id, j.Type, j.Status)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// lockedWriter serializes writes from many goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
