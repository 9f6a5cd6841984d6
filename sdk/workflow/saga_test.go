package workflow_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/internal/testdb"
	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/activity"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
	"github.com/chronicle-engine/chronicle/sdk/workflowtest"
)

// sagaScenarioEnv makes the crash worker subprocess run the saga scenario.
const sagaScenarioEnv = "CHRONICLE_WF_TEST_SAGA"

var (
	sagaClient *sdk.Client
	// sagaHangUndo makes the compensation of that step hang (victim only).
	sagaHangUndo = -1
)

// SagaStep runs step n of the saga; step 3 fails for good.
func SagaStep(ctx context.Context, n int) error {
	if _, err := sagaClient.Pool().Exec(ctx, `INSERT INTO saga_runs (kind, step, pid, attempt) VALUES ('do', $1, $2, $3)`, n, os.Getpid(), activity.GetInfo(ctx).Attempt); err != nil {
		return err
	}
	if n == 3 {
		return sdk.Permanent(errors.New("step 3 is out of stock"))
	}
	return nil
}

// SagaUndo compensates step n; it hangs, heartbeating, at sagaHangUndo.
func SagaUndo(ctx context.Context, n int) error {
	if _, err := sagaClient.Pool().Exec(ctx, `INSERT INTO saga_runs (kind, step, pid, attempt) VALUES ('undo', $1, $2, $3)`, n, os.Getpid(), activity.GetInfo(ctx).Attempt); err != nil {
		return err
	}
	for n == sagaHangUndo {
		activity.RecordHeartbeat(ctx, n)
		time.Sleep(50 * time.Millisecond) // until SIGKILL
	}
	return nil
}

// SagaFlow runs steps 1 to 3, registering a compensation after each.
func SagaFlow(ctx workflow.Context) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	undoCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, HeartbeatTimeout: time.Second,
		RetryPolicy: &workflow.RetryPolicy{InitialInterval: 100 * time.Millisecond, MaximumAttempts: 5}})
	saga := workflow.NewSaga(workflow.SagaOptions{})
	for n := 1; n <= 3; n++ {
		if err := workflow.ExecuteActivity(ctx, SagaStep, n).Get(ctx, nil); err != nil {
			return errors.Join(err, saga.Compensate(ctx))
		}
		saga.AddCompensation(undoCtx, SagaUndo, n)
	}
	return nil
}

func registerSaga(w *sdk.Worker) error {
	if err := w.RegisterWorkflow(SagaFlow); err != nil {
		return err
	}
	if err := w.RegisterActivity(SagaStep); err != nil {
		return err
	}
	return w.RegisterActivity(SagaUndo)
}

func runSagaCrashWorker() error {
	return runVictim(registerSaga, func(c *sdk.Client) { sagaClient, sagaHangUndo = c, 1 })
}

// TestSagaCompensatesInReverseDespiteKill: step 3 fails; the victim
// worker compensates step 2, then is SIGKILLed while compensating step 1.
// A survivor finishes: step 2 is compensated once, step 1 once (its
// killed attempt retried), in reverse order, and the run fails with step
// 3's error.
func TestSagaCompensatesInReverseDespiteKill(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a worker subprocess")
	}
	h := newHarness(t)
	h.exec(`CREATE TABLE saga_runs (id serial, kind text, step int, pid int, attempt int)`)
	ctx := context.Background()
	if err := h.client.RegisterWorkflow(SagaFlow); err != nil {
		t.Fatal(err)
	}
	run, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "saga-1"}, SagaFlow)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashWorkerEnv+"=1", sagaScenarioEnv+"=1", "DATABASE_URL="+testdb.SchemaURL(h.schema), crashPrefixEnv+"=test."+h.schema)
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
	waitFor(t, "the victim to start compensating step 1", 20*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("crash worker exited early:\n%s", out.String())
		default:
		}
		return h.count(`SELECT count(*) FROM saga_runs WHERE kind = 'undo' AND step = 1`) == 1
	})
	kill()
	<-exited

	sagaClient = h.client
	h.worker("survivor", registerSaga)
	gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = run.Get(gctx, nil)
	if err == nil || !strings.Contains(err.Error(), "step 3 is out of stock") {
		t.Fatalf("run ended with %v, want step 3's error", err)
	}
	var order []string
	rows, qerr := h.client.Pool().Query(ctx, `SELECT kind || step FROM saga_runs ORDER BY id`)
	if qerr != nil {
		t.Fatal(qerr)
	}
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		order = append(order, s)
	}
	// undo1 twice: the killed attempt, then the survivor's.
	if got := strings.Join(order, " "); got != "do1 do2 do3 undo2 undo1 undo1" {
		t.Fatalf("runs in order: %s", got)
	}
	events := h.history(run.GetRunID())
	if n := count(events, "ActivityCompleted"); n != 4 { // do1, do2, undo2, undo1
		t.Errorf("%d ActivityCompleted, want 4: %v", n, eventTypes(events))
	}
	if n := count(events, "ActivityTimedOut"); n != 1 {
		t.Errorf("%d ActivityTimedOut, want 1 (the killed compensation)", n)
	}
	h.verifyOK()
}

// UndoFails is a compensation that fails for good.
func UndoFails(ctx context.Context, n int) error {
	return workflow.NewNonRetryableApplicationError("refund service rejected the refund", "RefundRejected", nil)
}

func sagaWith(o workflow.SagaOptions, undo any) func(ctx workflow.Context) error {
	return func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
		saga := workflow.NewSaga(o)
		for n := 1; n <= 3; n++ {
			if err := workflow.ExecuteActivity(ctx, "Do", n).Get(ctx, nil); err != nil {
				return errors.Join(err, saga.Compensate(ctx))
			}
			saga.AddCompensation(ctx, undo, n)
		}
		return nil
	}
}

func TestSagaOptions(t *testing.T) {
	t.Parallel()
	do := func(ctx context.Context, n int) error {
		if n == 3 {
			return workflow.NewNonRetryableApplicationError("step 3 failed", "OutOfStock", nil)
		}
		return nil
	}
	t.Run("failures are reported", func(t *testing.T) {
		env := workflowtest.NewEnvironment(t)
		env.RegisterWorkflowWithOptions(sagaWith(workflow.SagaOptions{}, UndoFails), workflow.RegisterOptions{Name: "Saga"})
		env.OnActivity("Do", do)
		env.RegisterActivity(UndoFails)
		env.ExecuteWorkflow("Saga")
		err := env.WorkflowError()
		if err == nil || !strings.Contains(err.Error(), "2 compensation(s) failed") || !strings.Contains(err.Error(), "refund service rejected") {
			t.Fatalf("error %v, want both compensation failures reported", err)
		}
		if n := env.ActivityCalls(UndoFails); n != 2 {
			t.Errorf("%d compensations ran, want 2 (each attempted)", n)
		}
	})
	t.Run("parallel", func(t *testing.T) {
		var mu sync.Mutex
		var ran []int
		env := workflowtest.NewEnvironment(t)
		env.RegisterWorkflowWithOptions(sagaWith(workflow.SagaOptions{ParallelCompensation: true}, "Undo"), workflow.RegisterOptions{Name: "Saga"})
		env.OnActivity("Do", do)
		env.OnActivity("Undo", func(ctx context.Context, n int) error { mu.Lock(); ran = append(ran, n); mu.Unlock(); return nil })
		env.ExecuteWorkflow("Saga")
		if err := env.WorkflowError(); err == nil || !strings.Contains(err.Error(), "step 3 failed") {
			t.Fatalf("error %v", err)
		}
		// Both compensations are scheduled in one workflow task.
		types := strings.Join(env.EventTypes(), " ")
		if !strings.Contains(types, "WorkflowTaskCompleted ActivityScheduled ActivityScheduled") || len(ran) != 2 {
			t.Errorf("compensations not scheduled together: %s (ran %v)", types, ran)
		}
	})
}
