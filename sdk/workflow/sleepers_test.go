package workflow_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

// Sleeper sleeps on a durable timer until the given time.
func Sleeper(ctx workflow.Context, until time.Time) (time.Time, error) {
	if err := workflow.Sleep(ctx, until.Sub(workflow.Now(ctx))); err != nil {
		return time.Time{}, err
	}
	return workflow.Now(ctx), nil
}

// TestManySleepingWorkflows starts 10,000 workflows that sleep on durable
// timers. While they sleep, the worker holds at most its cache's worth of
// live runs, so its goroutines and heap stay bounded; then every timer
// fires, none before it was due. CHRONICLE_SLEEPERS sets the count (500
// with -short, 2,000 under the race detector).
func TestManySleepingWorkflows(t *testing.T) {
	t.Parallel()
	n := 10000
	if s := os.Getenv("CHRONICLE_SLEEPERS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	switch {
	case testing.Short():
		n = 500
	case raceEnabled && os.Getenv("CHRONICLE_SLEEPERS") == "":
		n = 2000 // the race detector makes 10,000 take minutes
	}
	const cacheSize = 100
	h := newHarness(t, 24)
	ctx := context.Background()
	w := h.worker("sleepers", func(w *sdk.Worker) error { return w.RegisterWorkflow(Sleeper) }, func(c *sdk.WorkerConfig) {
		c.WorkflowCacheSize, c.Queues, c.ClaimBatch = cacheSize, map[string]int{sdk.DefaultQueue: 100}, 100
	})
	runtime.GC()
	goroutines0 := runtime.NumGoroutine()

	began := time.Now()
	perStart := time.Millisecond
	if raceEnabled {
		perStart = 5 * time.Millisecond
	}
	until := began.Add(4*time.Second + time.Duration(n)*perStart)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if _, err := h.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: fmt.Sprintf("sleeper-%d", i)}, Sleeper, until); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	started := time.Since(began)
	waitFor(t, "every workflow to sleep on its timer", time.Until(until), func() bool {
		return h.count(`SELECT count(*) FROM tasks WHERE key LIKE 'timer:%' AND lease_expires_at IS NULL`) == n
	})
	asleep := time.Since(began)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	goroutines := runtime.NumGoroutine()
	cached := w.CachedWorkflows()
	t.Logf("%d workflows started in %s, all asleep after %s; worker holds %d live runs (cache %d); goroutines %d (before: %d); heap in use %.1f MiB",
		n, started.Round(time.Millisecond), asleep.Round(time.Millisecond), cached, cacheSize, goroutines, goroutines0, float64(ms.HeapInuse)/(1<<20))
	if cached > cacheSize {
		t.Errorf("cache holds %d runs, over its size %d", cached, cacheSize)
	}
	// A sleeping run in the cache parks one goroutine; evicted ones none.
	if goroutines > goroutines0+cacheSize+50 {
		t.Errorf("%d goroutines while %d workflows sleep; want at most %d", goroutines, n, goroutines0+cacheSize+50)
	}
	if ms.HeapInuse > 256<<20 {
		t.Errorf("heap in use %d MiB", ms.HeapInuse>>20)
	}
	if time.Now().After(until) {
		t.Fatalf("the timers came due before every workflow was asleep; the machine is too slow for this count")
	}
	waitFor(t, "every workflow to wake and complete", time.Until(until)+60*time.Second, func() bool {
		return h.count(`SELECT count(*) FROM executions WHERE status = 'completed'`) == n
	})
	t.Logf("all %d completed %s after the timers came due", n, time.Since(until).Round(time.Millisecond))
	early := h.count(`SELECT count(*) FROM events s JOIN events f ON f.execution_id = s.execution_id AND f.type = 'TimerFired'
		WHERE s.type = 'TimerStarted' AND f.recorded_at < (s.data->>'fire_at')::timestamptz`)
	if early != 0 {
		t.Errorf("%d timers fired before they were due", early)
	}
}
