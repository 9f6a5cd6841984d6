package sdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/internal/testdb"
	"github.com/chronicle-engine/chronicle/sdk"
)

// Environment of the crash worker subprocess.
const (
	crashWorkerEnv     = "CHRONICLE_TEST_WORKER"
	crashWakePrefixEnv = "CHRONICLE_TEST_WAKE_PREFIX"
	crashWorkerIDEnv   = "CHRONICLE_TEST_WORKER_ID"
)

// TestMain runs the crash worker instead of the tests when the test binary
// is re-executed as a subprocess by TestWorkerKilledMidJob.
func TestMain(m *testing.M) {
	if os.Getenv(crashWorkerEnv) == idempotencyCrashMode {
		if err := runIdempotencyCrashWorker(); err != nil {
			fmt.Fprintln(os.Stderr, "idempotency crash worker:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	if os.Getenv(crashWorkerEnv) == "1" {
		if err := runCrashWorker(); err != nil {
			fmt.Fprintln(os.Stderr, "crash worker:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runCrashWorker is a worker process whose crash.job handler notes that it
// started and then hangs until the process is killed. It takes part in
// maintenance, so the test also sees a dead leader replaced.
func runCrashWorker() error {
	ctx := context.Background()
	client, err := sdk.NewClient(ctx, sdk.Config{WakeSubjectPrefix: os.Getenv(crashWakePrefixEnv)}) // DATABASE_URL from the environment
	if err != nil {
		return err
	}
	w, err := client.NewWorker(sdk.WorkerConfig{ID: os.Getenv(crashWorkerIDEnv), LeaseDuration: 2 * time.Second,
		PollInterval: 50 * time.Millisecond, MaintenanceInterval: 200 * time.Millisecond, LeaderTTL: 2 * time.Second})
	if err != nil {
		return err
	}
	if err := w.Handle("crash.job", func(ctx context.Context, _ json.RawMessage) error {
		info, _ := sdk.JobFromContext(ctx)
		if _, err := client.Pool().Exec(ctx,
			`INSERT INTO crash_marks (job_id, attempt, worker_id, mark) VALUES ($1, $2, $3, 'started')`,
			info.ID.String(), info.Attempt, info.WorkerID); err != nil {
			return err
		}
		select {} // hang until SIGKILL
	}); err != nil {
		return err
	}
	return w.Run(ctx)
}

// TestWorkerKilledMidJob: a worker process is SIGKILLed while its jobs run.
// Once their leases expire, another worker's maintenance times the attempts
// out and the jobs run again to success: nothing is lost, nothing runs
// twice at once, and every history verifies.
func TestWorkerKilledMidJob(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a worker subprocess")
	}
	b := setup(t)
	ctx := context.Background()
	execSQL(t, b, `CREATE TABLE crash_marks (job_id text, attempt int, worker_id text, mark text)`)
	if err := b.client.RegisterJobType("crash.job", sdk.JobType{RetryPolicy: sdk.RetryPolicy{MaximumAttempts: 3, Schedule: []time.Duration{0}}}); err != nil {
		t.Fatal(err)
	}
	const jobs = 3
	var ids []eventlog.ID
	for i := range jobs {
		res, err := b.client.Enqueue(ctx, "crash.job", map[string]int{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}

	const victimID = "crash-victim"
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), crashWorkerEnv+"=1", "DATABASE_URL="+testdb.SchemaURL(b.schema),
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
	kill := func() { once.Do(func() { _ = cmd.Process.Kill() }) } // SIGKILL
	t.Cleanup(func() {
		kill()
		<-exited
		if t.Failed() {
			t.Logf("crash worker output:\n%s", out.String())
		}
	})

	waitFor(t, "the subprocess to start every job", 15*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("crash worker exited early: %v", waitErr)
		default:
		}
		return countRows(t, b, `SELECT count(*) FROM crash_marks WHERE mark = 'started'`) == jobs
	})
	// The victim also leads maintenance: its death must not stop lease expiry.
	waitFor(t, "the subprocess to lead maintenance", 5*time.Second, func() bool {
		return countRows(t, b, `SELECT count(*) FROM leaders WHERE holder = $1`, victimID) == 1
	})
	// SIGKILL: no deferred code, no graceful shutdown, no released lease.
	kill()
	<-exited

	w, err := b.client.NewWorker(sdk.WorkerConfig{ID: "survivor", LeaseDuration: 2 * time.Second, PollInterval: 100 * time.Millisecond,
		MaintenanceInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var ran atomic.Int32
	if err := w.Handle("crash.job", func(ctx context.Context, _ json.RawMessage) error {
		ran.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	for _, id := range ids {
		waitFor(t, "job "+id.String()+" to succeed", 15*time.Second, func() bool {
			j, err := b.client.Job(ctx, id)
			return err == nil && j.Status == sdk.StatusSucceeded
		})
	}
	if n := countRows(t, b, `SELECT count(*) FROM leaders WHERE holder = 'survivor'`); n != 1 {
		t.Fatalf("the survivor did not take over maintenance")
	}
	if n := ran.Load(); n != jobs {
		t.Fatalf("the surviving worker ran %d jobs, want %d", n, jobs)
	}
	for _, id := range ids {
		h := historyOf(t, b, id)
		wantEventTypes(t, h, "JobEnqueued", "AttemptStarted", "AttemptTimedOut", "AttemptStarted", "AttemptSucceeded")
		checks := []struct {
			seq     int
			attempt int
			worker  string
		}{{1, 1, victimID}, {2, 1, victimID}, {3, 2, "survivor"}, {4, 2, ""}}
		for _, c := range checks {
			var d struct {
				Attempt  int    `json:"attempt"`
				WorkerID string `json:"worker_id"`
			}
			if err := h[c.seq].Decode(&d); err != nil {
				t.Fatal(err)
			}
			if d.Attempt != c.attempt || d.WorkerID != c.worker {
				t.Fatalf("job %s event %d (%s) is attempt %d by %q, want attempt %d by %q", id, c.seq+1, h[c.seq].Type, d.Attempt, d.WorkerID, c.attempt, c.worker)
			}
		}
	}
	if n := countRows(t, b, `SELECT count(*) FROM crash_marks WHERE attempt = 1 AND worker_id = $1`, victimID); n != jobs {
		t.Fatalf("%d marks of first attempts by the victim, want %d", n, jobs)
	}
	verifyOK(t, b)
}
