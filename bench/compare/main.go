// Compare runs the same burn-down against Chronicle and River on one
// PostgreSQL, in one run, so that the two figures share the machine's
// conditions:
//
//	cd bench && go run ./compare -jobs 20000 -runs 3
//
// River is configured with its fast fetch settings (fetch cooldown 2 ms,
// poll 20 ms, 100 workers); Chronicle with its defaults and 100 workers.
// Each run uses fresh schemas that are dropped afterwards.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/chronicle-engine/chronicle/internal/bench"
)

func main() {
	jobs := flag.Int("jobs", 20000, "jobs per burn-down")
	runs := flag.Int("runs", 3, "alternating runs of each engine; the median is reported")
	dbURL := flag.String("database-url", envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL URL")
	natsURL := flag.String("nats-url", envOr("NATS_URL", "nats://127.0.0.1:4222"), "NATS URL")
	flag.Parse()
	ctx := context.Background()

	var chron, riv []float64
	for i := range *runs {
		res, err := bench.Burndown(ctx, bench.Env{DatabaseURL: *dbURL, NATSURL: *natsURL, Progress: io.Discard}, bench.BurndownConfig{Jobs: *jobs, Concurrency: 100})
		if err != nil {
			fail(err)
		}
		chron = append(chron, res.JobsPerS)
		fmt.Fprintf(os.Stderr, "run %d: chronicle %.0f jobs/s (%.1f events/job)\n", i+1, res.JobsPerS, res.EventsPerJob)
		r, err := riverBurndown(ctx, *dbURL, *jobs)
		if err != nil {
			fail(err)
		}
		riv = append(riv, r)
		fmt.Fprintf(os.Stderr, "run %d: river     %.0f jobs/s\n", i+1, r)
	}
	out, _ := json.Marshal(map[string]any{
		"scenario": "burndown-compare", "jobs": *jobs, "runs": *runs,
		"chronicle_jobs_per_second": median(chron), "river_jobs_per_second": median(riv),
		"chronicle_runs": chron, "river_runs": riv, "ratio": median(chron) / median(riv),
	})
	fmt.Println(string(out))
}

type noopArgs struct{}

func (noopArgs) Kind() string { return "noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
	done *atomic.Int64
}

func (w *noopWorker) Work(context.Context, *river.Job[noopArgs]) error {
	w.done.Add(1)
	return nil
}

// riverBurndown inserts n jobs with InsertMany, then works them with River's
// fast fetch settings and returns jobs per second from start to the last
// completion.
func riverBurndown(ctx context.Context, url string, n int) (float64, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	schema := "river_bench_" + hex.EncodeToString(b[:])
	admin, err := pgxpool.New(ctx, url)
	if err != nil {
		return 0, err
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return 0, err
	}
	defer admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return 0, err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	driver := riverpgxv5.New(pool)
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Schema: schema, Logger: quiet()})
	if err != nil {
		return 0, err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return 0, err
	}
	var done atomic.Int64
	workers := river.NewWorkers()
	river.AddWorker(workers, &noopWorker{done: &done})
	client, err := river.NewClient(driver, &river.Config{
		Schema: schema, Logger: quiet(), Workers: workers,
		Queues:        map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 100}},
		FetchCooldown: 2 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond,
	})
	if err != nil {
		return 0, err
	}
	for inserted := 0; inserted < n; inserted += 5000 {
		params := make([]river.InsertManyParams, min(5000, n-inserted))
		for i := range params {
			params[i] = river.InsertManyParams{Args: noopArgs{}}
		}
		if _, err := client.InsertMany(ctx, params); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	if err := client.Start(ctx); err != nil {
		return 0, err
	}
	defer client.Stop(context.Background())
	for {
		var left int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state <> 'completed'`).Scan(&left); err != nil {
			return 0, err
		}
		if left == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compare:", err)
	os.Exit(1)
}
