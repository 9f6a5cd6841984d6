package sdk_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/internal/testdb"
	"github.com/chronicle-engine/chronicle/sdk"
)

// idempotencyCrashMode is the value of crashWorkerEnv that makes the test
// binary run runIdempotencyCrashWorker (see TestMain).
const idempotencyCrashMode = "idempotency"

// idempotencyCrashKey is the step key of the crash test's jobs.
const idempotencyCrashKey = "payment:order-99:capture"

// runIdempotencyCrashWorker is a worker process whose handler runs the
// idempotent step (one ledger row), notes that the step returned, and
// hangs until it is killed — before its job can complete.
func runIdempotencyCrashWorker() error {
	ctx := context.Background()
	client, err := sdk.NewClient(ctx, sdk.Config{WakeSubjectPrefix: os.Getenv(crashWakePrefixEnv)})
	if err != nil {
		return err
	}
	w, err := client.NewWorker(sdk.WorkerConfig{ID: os.Getenv(crashWorkerIDEnv), LeaseDuration: time.Second,
		PollInterval: 20 * time.Millisecond, DisableMaintenance: true})
	if err != nil {
		return err
	}
	if err := sdk.RegisterJobHandler(w, "payment.capture", func(ctx context.Context, _ struct{}) error {
		info, _ := sdk.JobFromContext(ctx)
		if err := sdk.WithIdempotency(ctx, idempotencyCrashKey, time.Hour, func(ctx context.Context) error {
			_, err := client.Pool().Exec(ctx, `INSERT INTO ledger (key, job_id, attempt) VALUES ($1, $2, $3)`, idempotencyCrashKey, info.ID.String(), info.Attempt)
			return err
		}); err != nil {
			return err
		}
		if _, err := client.Pool().Exec(ctx, `INSERT INTO crash_marks (job_id, attempt, worker_id, mark) VALUES ($1, $2, $3, 'step returned')`,
			info.ID.String(), info.Attempt, info.WorkerID); err != nil {
			return err
		}
		select {} // hang until SIGKILL
	}); err != nil {
		return err
	}
	return w.Run(ctx)
}

// TestIdempotencyWorkerKilledAfterStep: a worker process is SIGKILLed
// after the step's fn returned but before its job completed. The job is
// timed out and retried on another worker, whose run of the handler finds
// the step in the job's history and skips it: the effect happened once.
func TestIdempotencyWorkerKilledAfterStep(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a worker subprocess")
	}
	b := setup(t)
	ctx := context.Background()
	execSQL(t, b, ledgerSQL)
	execSQL(t, b, `CREATE TABLE crash_marks (job_id text, attempt int, worker_id text, mark text)`)
	if err := b.client.RegisterJobType("payment.capture", sdk.JobType{RetryPolicy: sdk.RetryPolicy{MaximumAttempts: 3, Schedule: []time.Duration{0}}}); err != nil {
		t.Fatal(err)
	}
	res, err := b.client.Enqueue(ctx, "payment.capture", struct{}{})
	if err != nil {
		t.Fatal(err)
	}

	const victimID = "idempotency-victim"
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), crashWorkerEnv+"="+idempotencyCrashMode, "DATABASE_URL="+testdb.SchemaURL(b.schema),
		crashWakePrefixEnv+"=test."+b.schema, crashWorkerIDEnv+"="+victimID)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	var once sync.Once
	kill := func() { once.Do(func() { _ = cmd.Process.Kill() }) }
	t.Cleanup(func() {
		kill()
		<-exited
		if t.Failed() {
			t.Logf("crash worker output:\n%s", out.String())
		}
	})
	waitFor(t, "the subprocess's step to return", 15*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("crash worker exited early: %v", waitErr)
		default:
		}
		return countRows(t, b, `SELECT count(*) FROM crash_marks WHERE mark = 'step returned'`) == 1
	})
	kill()
	<-exited
	wantEventTypes(t, historyOf(t, b, res.ID), "JobEnqueued", "AttemptStarted", "StepCompleted")

	w, err := b.client.NewWorker(sdk.WorkerConfig{ID: "survivor", LeaseDuration: 2 * time.Second, PollInterval: 20 * time.Millisecond,
		MaintenanceInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var ran, handled atomic.Int32
	if err := sdk.RegisterJobHandler(w, "payment.capture", func(ctx context.Context, _ struct{}) error {
		handled.Add(1)
		return sdk.WithIdempotency(ctx, idempotencyCrashKey, time.Hour, func(ctx context.Context) error {
			ran.Add(1)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	waitFor(t, "the retry to succeed", 15*time.Second, func() bool { return jobOf(t, b, res.ID).Status == sdk.StatusSucceeded })
	if n := countRows(t, b, `SELECT count(*) FROM ledger`); n != 1 {
		t.Fatalf("the side effect happened %d times, want 1", n)
	}
	if handled.Load() != 1 || ran.Load() != 0 {
		t.Fatalf("the survivor handled %d attempts and ran fn %d times, want 1 and 0", handled.Load(), ran.Load())
	}
	h := historyOf(t, b, res.ID)
	wantEventTypes(t, h, "JobEnqueued", "AttemptStarted", "StepCompleted", "AttemptTimedOut", "AttemptStarted", "AttemptSucceeded")
	if s := decodeEvent[engine.StepCompleted](t, h[2], engine.EventStepCompleted); s.Attempt != 1 || s.Key != idempotencyCrashKey {
		t.Fatalf("StepCompleted = %+v", s)
	}
	if to := decodeEvent[engine.AttemptTimedOut](t, h[3], engine.EventAttemptTimedOut); to.WorkerID != victimID {
		t.Fatalf("AttemptTimedOut = %+v", to)
	}
	verifyOK(t, b)
}
