package workflow_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/internal/testdb"
	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/activity"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

// Environment of the crash worker subprocess.
const (
	crashWorkerEnv = "CHRONICLE_WF_TEST_WORKER"
	crashPrefixEnv = "CHRONICLE_WF_TEST_WAKE_PREFIX"
)

// TestMain runs the crash worker instead of the tests when the test binary
// is re-executed by TestWorkerKilledMidWorkflow.
func TestMain(m *testing.M) {
	if os.Getenv(crashWorkerEnv) == "1" {
		if err := runCrashWorker(); err != nil {
			fmt.Fprintln(os.Stderr, "crash worker:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// stepMarks records each run of Step: which step, in which process.
var stepClient *sdk.Client

// hangAt makes Step n hang (in the victim process only).
var hangAt = -1

// Step is the activity of the crash test: it records that it ran, and
// hangs, heartbeating, at step hangAt.
func Step(ctx context.Context, n int) (int, error) {
	if _, err := stepClient.Pool().Exec(ctx, `INSERT INTO step_runs (step, pid, attempt) VALUES ($1, $2, $3)`, n, os.Getpid(), activity.GetInfo(ctx).Attempt); err != nil {
		return 0, err
	}
	if n == hangAt {
		for {
			activity.RecordHeartbeat(ctx, n)
			time.Sleep(50 * time.Millisecond) // until SIGKILL
		}
	}
	return n * 10, nil
}

// Steps runs five steps one after the other and sums their results.
func Steps(ctx workflow.Context, steps int) (int, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, HeartbeatTimeout: time.Second,
		RetryPolicy: &workflow.RetryPolicy{InitialInterval: 100 * time.Millisecond}})
	sum := 0
	for i := 1; i <= steps; i++ {
		var v int
		if err := workflow.ExecuteActivity(ctx, Step, i).Get(ctx, &v); err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

func registerSteps(w *sdk.Worker) error {
	if err := w.RegisterWorkflow(Steps); err != nil {
		return err
	}
	return w.RegisterActivity(Step)
}

func runCrashWorker() error {
	if os.Getenv(sagaScenarioEnv) == "1" {
		return runSagaCrashWorker()
	}
	return runVictim(registerSteps, func(c *sdk.Client) { stepClient, hangAt = c, 3 })
}

// runVictim runs the worker that a crash test SIGKILLs: short leases and
// fast maintenance, so that the survivor takes over quickly. prepare
// hands the client to the scenario's activities before work starts.
func runVictim(register func(*sdk.Worker) error, prepare func(*sdk.Client)) error {
	ctx := context.Background()
	c, err := sdk.NewClient(ctx, sdk.Config{WakeSubjectPrefix: os.Getenv(crashPrefixEnv), Logger: quietLogger()})
	if err != nil {
		return err
	}
	prepare(c)
	w, err := c.NewWorker(sdk.WorkerConfig{ID: "victim", LeaseDuration: 2 * time.Second, PollInterval: 50 * time.Millisecond,
		MaintenanceInterval: 100 * time.Millisecond, LeaderTTL: 2 * time.Second})
	if err != nil {
		return err
	}
	if err := register(w); err != nil {
		return err
	}
	return w.Run(ctx)
}

// TestWorkerKilledMidWorkflow: a worker process is SIGKILLed while the
// third of five activities runs. Another worker resumes the workflow from
// its history: steps 1 and 2 are not run again, step 3 is timed out by
// its heartbeat timeout and retried, and the result is correct.
func TestWorkerKilledMidWorkflow(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a worker subprocess")
	}
	h := newHarness(t)
	h.exec(`CREATE TABLE step_runs (step int, pid int, attempt int)`)
	ctx := context.Background()
	if err := h.client.RegisterWorkflow(Steps); err != nil {
		t.Fatal(err)
	}
	run, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "crash-1"}, Steps, 5)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashWorkerEnv+"=1", "DATABASE_URL="+testdb.SchemaURL(h.schema), crashPrefixEnv+"=test."+h.schema)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	var once sync.Once
	kill := func() { once.Do(func() { _ = cmd.Process.Kill() }) }
	t.Cleanup(func() {
		kill()
		<-exited
		if t.Failed() {
			t.Logf("crash worker output:\n%s", out.String())
		}
	})
	waitFor(t, "the victim to start step 3", 20*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("crash worker exited early:\n%s", out.String())
		default:
		}
		return h.count(`SELECT count(*) FROM step_runs WHERE step = 3`) == 1
	})
	kill() // SIGKILL: no deferred code, no released lease
	<-exited
	victim := cmd.Process.Pid

	stepClient = h.client
	h.worker("survivor", registerSteps)
	gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var sum int
	if err := run.Get(gctx, &sum); err != nil {
		t.Fatal(err)
	}
	if sum != 150 {
		t.Fatalf("sum = %d, want 150", sum)
	}
	for step, want := range map[int]int{1: 1, 2: 1, 3: 2, 4: 1, 5: 1} {
		if n := h.count(`SELECT count(*) FROM step_runs WHERE step = $1`, step); n != want {
			t.Errorf("step %d ran %d times, want %d", step, n, want)
		}
	}
	if n := h.count(`SELECT count(*) FROM step_runs WHERE step IN (1, 2) AND pid = $1`, victim); n != 2 {
		t.Errorf("the victim ran %d of steps 1 and 2, want both", n)
	}
	if n := h.count(`SELECT count(*) FROM step_runs WHERE step = 3 AND pid <> $1 AND attempt = 2`, victim); n != 1 {
		t.Errorf("step 3 was not retried as attempt 2 by the survivor")
	}
	events := h.history(run.GetRunID())
	if n := count(events, "ActivityTimedOut"); n != 1 {
		t.Errorf("%d ActivityTimedOut events, want 1: %v", n, eventTypes(events))
	}
	if n := count(events, "ActivityCompleted"); n != 5 {
		t.Errorf("%d ActivityCompleted events, want 5", n)
	}
	h.verifyOK()
}
