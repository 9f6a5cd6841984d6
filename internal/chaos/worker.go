package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/chronicle-engine/chronicle/examples/approval/approvalflow"
	"github.com/chronicle-engine/chronicle/sdk"
)

// effectJob is the job type of every scenario: it notes its run, performs
// one side effect (a ledger row) inside sdk.WithIdempotency, and works a
// little before and after, so that kills land at every point.
const effectJob = "chaos.effect"

// effectPayload is a chaos.effect job's payload.
type effectPayload struct {
	// Key is the idempotency key of the job's side effect.
	Key string `json:"key"`
	// WorkMS is how long the handler works around the effect, at most.
	WorkMS int `json:"work_ms,omitempty"`
	// HoldWorker names a worker on which the handler, instead of working,
	// waits for its context to be canceled (fencing scenario).
	HoldWorker string `json:"hold_worker,omitempty"`
	// SleepMS, when set, is exactly how long the handler works before its
	// effect (clock scenario).
	SleepMS int `json:"sleep_ms,omitempty"`
}

// effectPolicy retries quickly and for long: kills and outages cost
// attempts, and a scenario must not dead-letter a job because of them.
var effectPolicy = sdk.RetryPolicy{MaximumAttempts: 1000, Schedule: []time.Duration{50 * time.Millisecond}}

func registerTypes(c *sdk.Client) error {
	if err := c.RegisterJobType(effectJob, sdk.JobType{RetryPolicy: effectPolicy}); err != nil {
		return err
	}
	if err := c.RegisterJobType(tickJob, sdk.JobType{RetryPolicy: effectPolicy}); err != nil {
		return err
	}
	return c.RegisterWorkflow(approvalflow.Approval)
}

// IsWorker reports whether this process was started as a chaos worker
// (RunWorkerFromEnv should run instead of anything else).
func IsWorker() bool { return os.Getenv(envWorker) == "1" }

// RunWorkerFromEnv runs a worker process of the chaos harness until
// SIGTERM or SIGINT; SIGKILL and SIGSTOP are what scenarios use on it. The
// harness sets its environment: DATABASE_URL, NATS_URL and the
// CHRONICLE_CHAOS_* variables (worker ID, wake prefix, lease, whether it
// joins maintenance, concurrency).
func RunWorkerFromEnv() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lease, err := time.ParseDuration(firstNonEmpty(os.Getenv(envLease), "2s"))
	if err != nil {
		return fmt.Errorf("%s: %w", envLease, err)
	}
	conc, err := strconv.Atoi(firstNonEmpty(os.Getenv(envConcurrency), "8"))
	if err != nil {
		return fmt.Errorf("%s: %w", envConcurrency, err)
	}
	heartbeat, err := time.ParseDuration(firstNonEmpty(os.Getenv(envHeartbeat), "0s"))
	if err != nil {
		return fmt.Errorf("%s: %w", envHeartbeat, err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	client, err := sdk.NewClient(ctx, sdk.Config{WakeSubjectPrefix: os.Getenv(envWakePrefix), Logger: log})
	if err != nil {
		return err
	}
	defer client.Close()
	if err := registerTypes(client); err != nil {
		return err
	}
	w, err := client.NewWorker(sdk.WorkerConfig{ID: os.Getenv(envWorkerID), Queues: map[string]int{sdk.DefaultQueue: conc},
		LeaseDuration: lease, HeartbeatInterval: heartbeat, PollInterval: 100 * time.Millisecond, DisableMaintenance: os.Getenv(envMaintenance) != "true",
		MaintenanceInterval: 100 * time.Millisecond, LeaderTTL: lease, ShutdownTimeout: time.Second})
	if err != nil {
		return err
	}
	if err := sdk.RegisterJobHandler(w, effectJob, effectHandler(client)); err != nil {
		return err
	}
	if err := sdk.RegisterJobHandler(w, tickJob, tickHandler); err != nil {
		return err
	}
	if err := w.RegisterWorkflow(approvalflow.Approval); err != nil {
		return err
	}
	for _, a := range []any{approvalflow.Pay, approvalflow.Notify} {
		if err := w.RegisterActivity(a); err != nil {
			return err
		}
	}
	return w.Run(ctx)
}

func effectHandler(c *sdk.Client) func(ctx context.Context, p effectPayload) error {
	return func(ctx context.Context, p effectPayload) error {
		info, _ := sdk.JobFromContext(ctx)
		job := info.ID.String()
		if _, err := c.Pool().Exec(ctx, `INSERT INTO chaos_runs (job_id, attempt, worker_id) VALUES ($1, $2, $3)`, job, info.Attempt, info.WorkerID); err != nil {
			return err
		}
		if p.HoldWorker != "" && p.HoldWorker == info.WorkerID {
			return hold(ctx, c, p, info)
		}
		effect := func(ctx context.Context) error {
			_, err := c.Pool().Exec(ctx, `INSERT INTO chaos_ledger (key, job_id, attempt, worker_id) VALUES ($1, $2, $3, $4)`, p.Key, job, info.Attempt, info.WorkerID)
			return err
		}
		work := func() error {
			if p.WorkMS <= 0 {
				return nil
			}
			return sleep(ctx, time.Duration(mrand.Int64N(int64(p.WorkMS)*int64(time.Millisecond)/2+1)))
		}
		if err := work(); err != nil {
			return err
		}
		if err := sleep(ctx, time.Duration(p.SleepMS)*time.Millisecond); err != nil {
			return err
		}
		if err := sdk.WithIdempotency(ctx, p.Key, time.Hour, effect); err != nil {
			return err
		}
		return work()
	}
}

// hold waits until the attempt's context is canceled (its lease lost),
// notes the cause, and then tries the side effect anyway, as a handler
// that ignores cancellation would: fencing must keep that from counting.
func hold(ctx context.Context, c *sdk.Client, p effectPayload, info *sdk.JobInfo) error {
	mark := func(mark, detail string) {
		_, _ = c.Pool().Exec(context.Background(), `INSERT INTO chaos_marks (job_id, attempt, worker_id, mark, detail) VALUES ($1, $2, $3, $4, $5)`,
			info.ID.String(), info.Attempt, info.WorkerID, mark, detail)
	}
	mark("holding", "")
	select {
	case <-ctx.Done():
		mark("canceled", fmt.Sprint(context.Cause(ctx)))
	case <-time.After(2 * time.Minute):
		mark("not canceled", "")
	}
	stale := context.WithoutCancel(ctx)
	err := sdk.WithIdempotency(stale, p.Key, time.Hour, func(ctx context.Context) error {
		_, err := c.Pool().Exec(ctx, `INSERT INTO chaos_ledger (key, job_id, attempt, worker_id) VALUES ($1, $2, $3, $4)`, p.Key, info.ID.String(), info.Attempt, info.WorkerID)
		return err
	})
	mark("stale effect", fmt.Sprint(err))
	return errors.Join(errors.New("held attempt"), err)
}
