package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

// TestSearchJobs: filters by status, type family, queue, text in the error
// or the ID, and creation time; pages newest first in both directions; and
// refuses bad filters with ErrInvalidInput.
func TestSearchJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *sdk.Config) { c.AllowUnregisteredTypes = true })
	c := b.client
	ctx := context.Background()
	var ids []eventlog.ID
	for i, typ := range []string{"search.a", "search.b", "search.a", "other.c", "search.a"} {
		queue := "q1"
		if i%2 == 1 {
			queue = "q2"
		}
		res, err := c.Enqueue(ctx, typ, nil, sdk.WithQueue(queue), sdk.WithDelay(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	if _, err := c.Cancel(ctx, ids[1], "tester", "flaky upstream timeout"); err != nil {
		t.Fatal(err)
	}
	count := func(q sdk.SearchQuery) int {
		t.Helper()
		jobs, err := c.SearchJobs(ctx, q)
		if err != nil {
			t.Fatalf("SearchJobs(%+v): %v", q, err)
		}
		for i := 1; i < len(jobs); i++ {
			if jobs[i-1].ID.Compare(jobs[i].ID) <= 0 {
				t.Fatalf("SearchJobs(%+v) is not newest first", q)
			}
		}
		return len(jobs)
	}
	for _, tc := range []struct {
		q    sdk.SearchQuery
		want int
	}{
		{sdk.SearchQuery{}, 5},
		{sdk.SearchQuery{Types: []string{"search.*"}}, 4},
		{sdk.SearchQuery{Types: []string{"search.a"}, Queues: []string{"q1"}}, 3},
		{sdk.SearchQuery{Statuses: []string{"canceled"}}, 1},
		{sdk.SearchQuery{Statuses: []string{"pending", "canceled"}}, 5},
		{sdk.SearchQuery{Text: "UPSTREAM"}, 0}, // a cancel's reason is not an error
		{sdk.SearchQuery{Text: ids[3].String()}, 1},
		{sdk.SearchQuery{CreatedFrom: time.Now().Add(-time.Hour)}, 5},
		{sdk.SearchQuery{CreatedTo: time.Now().Add(-time.Hour)}, 0},
		{sdk.SearchQuery{Before: ids[2]}, 2},
		{sdk.SearchQuery{After: ids[2], Limit: 1}, 1},
	} {
		if got := count(tc.q); got != tc.want {
			t.Errorf("SearchJobs(%+v): %d jobs, want %d", tc.q, got, tc.want)
		}
	}
	// After a cursor, the nearest newer jobs come, newest first.
	jobs, err := c.SearchJobs(ctx, sdk.SearchQuery{After: ids[1], Limit: 2})
	if err != nil || len(jobs) != 2 || jobs[0].ID != ids[3] || jobs[1].ID != ids[2] {
		t.Fatalf("after %s: %v (%v), want %s, %s", ids[1], jobs, err, ids[3], ids[2])
	}
	for _, bad := range []sdk.SearchQuery{
		{Statuses: []string{"done"}}, {Types: []string{"Bad Type"}}, {Queues: []string{""}}, {Limit: -1}, {Limit: sdk.MaxSearchLimit + 1},
		{CreatedFrom: time.Now(), CreatedTo: time.Now().Add(-time.Minute)},
	} {
		if _, err := c.SearchJobs(ctx, bad); !errors.Is(err, sdk.ErrInvalidInput) {
			t.Errorf("SearchJobs(%+v): %v, want ErrInvalidInput", bad, err)
		}
	}
	if _, err := c.SearchWorkflows(ctx, sdk.SearchQuery{Statuses: []string{"canceled"}}); err != nil {
		t.Errorf("SearchWorkflows with a workflow status: %v", err)
	}
}

// TestThroughputAndRunningTasks: outcomes are counted from the events into
// minute buckets covering the window; a running attempt is a leased task
// of its worker.
func TestThroughputAndRunningTasks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.client
	ctx := context.Background()
	if err := c.RegisterJobType("tp.fail", sdk.JobType{RetryPolicy: sdk.RetryPolicy{MaximumAttempts: 2, Schedule: []time.Duration{0}}}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	w, err := c.NewWorker(sdk.WorkerConfig{ID: "tp-worker", PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]sdk.HandlerFunc{
		"tp.ok":   func(context.Context, json.RawMessage) error { return nil },
		"tp.fail": func(context.Context, json.RawMessage) error { return errors.New("boom") },
		"tp.hold": func(ctx context.Context, _ json.RawMessage) error { <-release; return nil },
	} {
		if err := w.Handle(name, h); err != nil {
			t.Fatal(err)
		}
	}
	startWorker(t, w)
	defer close(release)
	var ids []eventlog.ID
	for _, typ := range []string{"tp.ok", "tp.ok", "tp.ok", "tp.fail"} {
		res, err := c.Enqueue(ctx, typ, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	hold, err := c.Enqueue(ctx, "tp.hold", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the jobs to finish", 10*time.Second, func() bool {
		for _, id := range ids {
			j, err := c.Job(ctx, id)
			if err != nil || !j.Status.Final() && j.Status != sdk.StatusDeadLettered {
				return false
			}
		}
		return true
	})
	tp, err := c.Throughput(ctx, time.Hour, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if tp.Succeeded != 3 || tp.Failed != 2 || tp.DeadLettered != 1 || tp.FailureRate() != 0.4 {
		t.Errorf("throughput %d succeeded, %d failed, %d dead-lettered, rate %v; want 3, 2, 1, 0.4", tp.Succeeded, tp.Failed, tp.DeadLettered, tp.FailureRate())
	}
	var sum int64
	for i, bk := range tp.Buckets {
		sum += bk.Succeeded
		if i > 0 && bk.Start.Sub(tp.Buckets[i-1].Start) != time.Minute {
			t.Fatalf("bucket %d starts at %s, not a minute after the last", i, bk.Start)
		}
	}
	if n := len(tp.Buckets); n < 60 || n > 61 || sum != 3 || tp.Buckets[n-1].Start.After(tp.Now) {
		t.Errorf("%d buckets holding %d successes, last at %s (now %s)", n, sum, tp.Buckets[n-1].Start, tp.Now)
	}
	if _, err := c.Throughput(ctx, time.Minute, time.Hour); !errors.Is(err, sdk.ErrInvalidInput) {
		t.Errorf("a bucket wider than the window: %v, want ErrInvalidInput", err)
	}
	waitFor(t, "the held job to run", 10*time.Second, func() bool {
		tasks, err := c.RunningTasksOf(ctx, hold.ID)
		return err == nil && len(tasks) == 1 && tasks[0].WorkerID == "tp-worker" && tasks[0].Type == "tp.hold" && tasks[0].Kind == "job" && !tasks[0].Expired
	})
	all, err := c.RunningTasks(ctx)
	if err != nil || len(all) != 1 {
		t.Errorf("RunningTasks: %v (%v), want the held job only", all, err)
	}
	if _, err := c.GetJob(ctx, eventlog.NewID(time.Now())); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("GetJob of an unknown ID: %v, want ErrNotFound", err)
	}
}
