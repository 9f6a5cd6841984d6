package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

// NoopActivity is the activity of the workflows scenario: it does nothing.
func NoopActivity(ctx context.Context, i int) (int, error) { return i, nil }

// ThreeActivities is the workflow of the workflows scenario: three no-op
// activities, one after the other.
func ThreeActivities(ctx workflow.Context) (int, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	sum := 0
	for i := 1; i <= 3; i++ {
		var v int
		if err := workflow.ExecuteActivity(ctx, NoopActivity, i).Get(ctx, &v); err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// WorkflowsConfig sets up a workflows run.
type WorkflowsConfig struct {
	Workflows int
	// Concurrency is how many tasks the worker runs at once.
	Concurrency int
	// Starters is how many goroutines start workflows.
	Starters int
}

// WorkflowsResult reports a workflows run. It is printed as one JSON line.
type WorkflowsResult struct {
	Scenario          string  `json:"scenario"`
	Workflows         int     `json:"workflows"`
	Concurrency       int     `json:"concurrency"`
	StartSecs         float64 `json:"start_seconds"`
	Secs              float64 `json:"seconds"`
	WorkflowsPerS     float64 `json:"workflows_per_second"`
	EventsPerWorkflow float64 `json:"events_per_workflow"`
	WALPerWorkflow    float64 `json:"wal_bytes_per_workflow"`
}

// Workflows starts cfg.Workflows workflows of three sequential no-op
// activities while one worker runs them, and reports the end-to-end rate:
// from the first start to the last completion.
func Workflows(ctx context.Context, env Env, cfg WorkflowsConfig) (*WorkflowsResult, error) {
	if cfg.Workflows <= 0 {
		cfg.Workflows = 3000
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 100
	}
	if cfg.Starters <= 0 {
		cfg.Starters = 16
	}
	ws, err := Open(ctx, env, 40)
	if err != nil {
		return nil, err
	}
	defer ws.Close()
	w, err := ws.Client.NewWorker(sdk.WorkerConfig{Queues: map[string]int{"bench": cfg.Concurrency}, PollInterval: 50 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	if err := w.RegisterWorkflow(ThreeActivities); err != nil {
		return nil, err
	}
	if err := w.RegisterActivity(NoopActivity); err != nil {
		return nil, err
	}
	if err := w.Start(ctx); err != nil {
		return nil, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(sctx)
	}()
	res := &WorkflowsResult{Scenario: "workflows", Workflows: cfg.Workflows, Concurrency: cfg.Concurrency}
	wal0, err := ws.walLSN(ctx)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(env.Progress, "workflows: starting %d workflows of 3 activities\n", cfg.Workflows)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var startErr error
	var once sync.Once
	for range cfg.Starters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(cfg.Workflows); i = next.Add(1) {
				if _, err := ws.Client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: fmt.Sprintf("bench-%d", i), TaskQueue: "bench"}, ThreeActivities); err != nil {
					once.Do(func() { startErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if startErr != nil {
		return nil, startErr
	}
	res.StartSecs = time.Since(start).Seconds()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		done, err := ws.count(ctx, `SELECT count(*) FROM executions WHERE status = 'completed'`)
		if err != nil {
			return nil, err
		}
		if done == int64(cfg.Workflows) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
			fmt.Fprintf(env.Progress, "workflows: %d of %d completed, %.0f/s so far\n", done, cfg.Workflows, float64(done)/time.Since(start).Seconds())
		case <-time.After(5 * time.Millisecond):
		}
	}
	res.Secs = time.Since(start).Seconds()
	res.WorkflowsPerS = float64(cfg.Workflows) / res.Secs
	events, err := ws.count(ctx, `SELECT count(*) FROM events`)
	if err != nil {
		return nil, err
	}
	wal1, err := ws.walLSN(ctx)
	if err != nil {
		return nil, err
	}
	res.EventsPerWorkflow = float64(events) / float64(cfg.Workflows)
	res.WALPerWorkflow = float64(wal1-wal0) / float64(cfg.Workflows)
	return res, nil
}

// LoopActivities is the workflow of the replay scenario: a side effect,
// then n activities one after the other (4n+4 events).
func LoopActivities(ctx workflow.Context, n int) (int, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var sum int
	if err := workflow.SideEffect(ctx, func(workflow.Context) any { return 0 }).Get(&sum); err != nil {
		return 0, err
	}
	for i := 0; i < n; i++ {
		var v int
		if err := workflow.ExecuteActivity(ctx, NoopActivity, i).Get(ctx, &v); err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// ReplayConfig sets up a replay run.
type ReplayConfig struct {
	// Events is the history's length, rounded down to 4n+4. Defaults to
	// 10,000.
	Events int
	// Runs is how many replays are timed. Defaults to 20.
	Runs int
}

// ReplayResult reports replays of one long history.
type ReplayResult struct {
	Scenario string  `json:"scenario"`
	Events   int     `json:"events"`
	Runs     int     `json:"runs"`
	MedianMS float64 `json:"median_ms"`
	MinMS    float64 `json:"min_ms"`
	MaxMS    float64 `json:"max_ms"`
}

// Replay records a long history with the test environment (no database)
// and times full replays of it, as a cache miss or a query does them.
func Replay(ctx context.Context, env Env, cfg ReplayConfig) (*ReplayResult, error) {
	if cfg.Events <= 0 {
		cfg.Events = 10000
	}
	if cfg.Runs <= 0 {
		cfg.Runs = 20
	}
	fmt.Fprintf(env.Progress, "replay: recording a history of %d events\n", cfg.Events)
	history, err := recordLoop((cfg.Events - 4) / 4)
	if err != nil {
		return nil, err
	}
	r := workflow.NewReplayer()
	if err := r.RegisterWorkflow(LoopActivities); err != nil {
		return nil, err
	}
	times := make([]float64, cfg.Runs)
	for i := range times {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		began := time.Now()
		if err := r.ReplayWorkflowHistory(history); err != nil {
			return nil, err
		}
		times[i] = float64(time.Since(began).Microseconds()) / 1000
	}
	slices.Sort(times)
	return &ReplayResult{Scenario: "replay", Events: len(history), Runs: cfg.Runs, MedianMS: times[len(times)/2], MinMS: times[0], MaxMS: times[len(times)-1]}, nil
}
