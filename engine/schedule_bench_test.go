package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog/postgres"
	"github.com/chronicle-engine/chronicle/internal/testdb"
)

// BenchmarkFireSchedules measures one leader round that fires 1,000
// schedules due in the same second: each op is the round (lock, decide,
// append ScheduleFired, enqueue the job, write the row), in batches of 100
// schedules per transaction.
//
//	go test ./engine -run '^$' -bench FireSchedules -benchtime 5x
func BenchmarkFireSchedules(b *testing.B) {
	const schedules = 1000
	pool, _ := testdb.Schema(b)
	eng := engine.New(postgres.New(pool), nil, nil)
	ctx := context.Background()
	for i := range schedules {
		def := engine.ScheduleDefinition{Cron: "* * * * * *", Overlap: engine.OverlapAllowAll,
			Job: engine.ScheduledJob{Type: "bench.tick", Queue: "bench", Payload: json.RawMessage(`{}`)}}
		if _, err := eng.CreateSchedule(ctx, fmt.Sprintf("s-%04d", i), def, "bench", ""); err != nil {
			b.Fatal(err)
		}
	}
	fired := 0
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond))) // the next tick is due
		b.StartTimer()
		for {
			n, err := eng.FireSchedules(ctx, 100)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				break
			}
			fired += n
		}
	}
	b.ReportMetric(float64(fired)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkQueueStatsAt measures the time-travel count over 10,000 jobs,
// half of them still unfinished, from the events.
//
//	go test ./engine -run '^$' -bench QueueStatsAt
func BenchmarkQueueStatsAt(b *testing.B) {
	eng := benchHistories(b)
	ctx := context.Background()
	at := time.Now().Add(time.Minute)
	b.ResetTimer()
	for range b.N {
		if _, err := eng.QueueStatsAt(ctx, at); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSimulateRetryPolicy measures policy simulate over the histories
// of 2,000 jobs of one type (of 10,000), read from the database.
//
//	go test ./engine -run '^$' -bench SimulateRetryPolicy
func BenchmarkSimulateRetryPolicy(b *testing.B) {
	eng := benchHistories(b)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if _, err := eng.SimulateRetryPolicy(ctx, "bench.type0", 0, engine.RetryPolicy{MaximumAttempts: 2}); err != nil {
			b.Fatal(err)
		}
	}
}

// benchHistories enqueues 10,000 jobs of five types; half of them run,
// and half of those fail and wait an hour for their retry.
func benchHistories(b *testing.B) *engine.Engine {
	const jobs = 10000
	pool, _ := testdb.Schema(b)
	eng := engine.New(postgres.New(pool), nil, nil)
	ctx := context.Background()
	batch := make([]engine.NewJob, jobs)
	for i := range batch {
		batch[i] = engine.NewJob{Type: fmt.Sprintf("bench.type%d", i%5), Queue: "bench", Payload: json.RawMessage(`{}`),
			RetryPolicy: engine.RetryPolicy{MaximumAttempts: 3, Schedule: []time.Duration{time.Hour}}}
	}
	if _, err := eng.Enqueue(ctx, nil, batch); err != nil {
		b.Fatal(err)
	}
	for done := 0; done < jobs/2; done += 500 {
		got, err := eng.Claim(ctx, engine.ClaimParams{Queues: []string{"bench"}, Limit: 500, WorkerID: "w", LeaseDuration: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		outcomes := make([]engine.Outcome, len(got))
		for i, c := range got {
			outcomes[i] = engine.Outcome{Lease: c.Lease}
			if i%2 == 0 {
				outcomes[i].Err = errors.New("boom")
			}
		}
		if _, err := eng.Complete(ctx, outcomes); err != nil {
			b.Fatal(err)
		}
	}
	return eng
}
