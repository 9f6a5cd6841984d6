package workflow_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/internal/bench"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
	"github.com/chronicle-engine/chronicle/sdk/workflowtest"
)

// Loop records a side effect, then runs n activities one after the
// other: 4 events each, 4n+4 in all.
func Loop(ctx workflow.Context, n int) (int, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var sum int
	if err := workflow.SideEffect(ctx, func(workflow.Context) any { return 0 }).Get(&sum); err != nil {
		return 0, err
	}
	for i := 0; i < n; i++ {
		var v int
		if err := workflow.ExecuteActivity(ctx, Double, i).Get(ctx, &v); err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

func Double(ctx context.Context, i int) (int, error) { return 2 * i, nil }

// longHistory records a history of about n events with the test
// environment.
func longHistory(tb testing.TB, n int) []eventlog.Event {
	env := workflowtest.NewEnvironment(tb)
	env.RegisterWorkflow(Loop)
	env.RegisterActivity(Double)
	env.ExecuteWorkflow(Loop, (n-4)/4)
	if err := env.WorkflowError(); err != nil {
		tb.Fatal(err)
	}
	return env.History()
}

// BenchmarkReplay10kEvents replays a 10,000-event history (2,499
// activities and a side effect) from scratch, as a cache miss or a query does:
//
//	go test ./sdk/workflow -run '^$' -bench Replay10k -count 3
func BenchmarkReplay10kEvents(b *testing.B) {
	history := longHistory(b, 10000)
	r := workflow.NewReplayer()
	if err := r.RegisterWorkflow(Loop); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := r.ReplayWorkflowHistory(history); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(history)), "events")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/replay")
}

// TestReplayLongHistory keeps the benchmark's machinery from rotting, and
// checks a 10,000-event history replays in well under a second even here.
func TestReplayLongHistory(t *testing.T) {
	t.Parallel()
	history := longHistory(t, 10000)
	if len(history) != 10000 {
		t.Fatalf("history has %d events", len(history))
	}
	r := workflow.NewReplayer()
	if err := r.RegisterWorkflow(Loop); err != nil {
		t.Fatal(err)
	}
	if err := r.ReplayWorkflowHistory(history); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkWorkflows3Activities: end-to-end workflows of three no-op
// activities per second on the local PostgreSQL and NATS:
//
//	go test ./sdk/workflow -run '^$' -bench Workflows3 -benchtime 1x -count 3
func BenchmarkWorkflows3Activities(b *testing.B) {
	for range b.N {
		res, err := bench.Workflows(context.Background(), benchEnv(), bench.WorkflowsConfig{Workflows: 3000})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.WorkflowsPerS, "workflows/s")
		b.ReportMetric(res.EventsPerWorkflow, "events/workflow")
		b.Log(fmt.Sprintf("%+v", *res))
	}
}

func benchEnv() bench.Env {
	return bench.Env{DatabaseURL: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", NATSURL: "nats://127.0.0.1:4222", Progress: discard{}}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
