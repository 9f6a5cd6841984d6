// Package bench measures Chronicle on the machine it runs on: throughput of
// a burn-down of many no-op jobs, and enqueue-to-start latency on idle
// workers. `chronicle bench` and the go test benchmarks both use it.
//
// Each run works in a schema of its own, created and dropped by the run, so
// it never touches an application's jobs.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-engine/chronicle/migrations"
	"github.com/chronicle-engine/chronicle/sdk"
)

// Env is where a benchmark runs.
type Env struct {
	DatabaseURL string
	NATSURL     string
	// Progress receives human-readable progress lines; may be io.Discard.
	Progress io.Writer
}

// Workspace is a migrated schema of its own with a client on it.
type Workspace struct {
	Client *sdk.Client
	Pool   *pgxpool.Pool
	Schema string
	admin  *pgxpool.Pool
}

// Open creates a fresh schema, migrates it and connects a client whose
// wakeups are private to it.
func Open(ctx context.Context, env Env, maxConns int) (*Workspace, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	schema := "chronicle_bench_" + hex.EncodeToString(b[:])
	admin, err := pgxpool.New(ctx, env.DatabaseURL)
	if err != nil {
		return nil, err
	}
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		return nil, fmt.Errorf("create schema %s (set DATABASE_URL to a database you may write): %w", schema, err)
	}
	ws := &Workspace{Schema: schema, admin: admin}
	cfg, err := pgxpool.ParseConfig(env.DatabaseURL)
	if err != nil {
		ws.Close()
		return nil, err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	if ws.Pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		ws.Close()
		return nil, err
	}
	if _, err := migrations.Up(ctx, ws.Pool); err != nil {
		ws.Close()
		return nil, err
	}
	ws.Client, err = sdk.NewClient(ctx, sdk.Config{Pool: ws.Pool, NATSURL: env.NATSURL, WakeSubjectPrefix: "bench." + schema,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		ws.Close()
		return nil, err
	}
	return ws, nil
}

// Close drops the schema and closes connections.
func (ws *Workspace) Close() {
	if ws.Client != nil {
		ws.Client.Close()
	}
	if ws.Pool != nil {
		ws.Pool.Close()
	}
	_, _ = ws.admin.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+ws.Schema+" CASCADE")
	ws.admin.Close()
}

func (ws *Workspace) walLSN(ctx context.Context) (int64, error) {
	var lsn int64
	err := ws.Pool.QueryRow(ctx, `SELECT pg_current_wal_lsn() - '0/0'::pg_lsn`).Scan(&lsn)
	return lsn, err
}

func (ws *Workspace) count(ctx context.Context, sql string) (int64, error) {
	var n int64
	err := ws.Pool.QueryRow(ctx, sql).Scan(&n)
	return n, err
}

// BurndownConfig sets up a burn-down.
type BurndownConfig struct {
	Jobs        int
	Concurrency int
	// ClaimBatch is the worker's claim batch size (0: the default).
	ClaimBatch int
}

// BurndownResult reports a burn-down. It is printed as one JSON line.
type BurndownResult struct {
	Scenario     string  `json:"scenario"`
	Jobs         int     `json:"jobs"`
	Concurrency  int     `json:"concurrency"`
	ClaimBatch   int     `json:"claim_batch"`
	EnqueueSecs  float64 `json:"enqueue_seconds"`
	EnqueuePerS  float64 `json:"enqueue_jobs_per_second"`
	WorkSecs     float64 `json:"work_seconds"`
	JobsPerS     float64 `json:"jobs_per_second"`
	EventsPerJob float64 `json:"events_per_job"`
	WALPerJob    float64 `json:"wal_bytes_per_job"`
}

// Burndown enqueues cfg.Jobs no-op jobs in bulk, then works them off with
// one worker and reports the rate.
func Burndown(ctx context.Context, env Env, cfg BurndownConfig) (*BurndownResult, error) {
	if cfg.Jobs <= 0 {
		cfg.Jobs = 20000
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 100
	}
	if cfg.ClaimBatch <= 0 {
		cfg.ClaimBatch = 100
	}
	ws, err := Open(ctx, env, 0)
	if err != nil {
		return nil, err
	}
	defer ws.Close()
	if err := ws.Client.RegisterJobType("bench.noop", sdk.JobType{Queue: "bench"}); err != nil {
		return nil, err
	}
	res := &BurndownResult{Scenario: "burndown", Jobs: cfg.Jobs, Concurrency: cfg.Concurrency, ClaimBatch: cfg.ClaimBatch}

	fmt.Fprintf(env.Progress, "burndown: enqueueing %d jobs in bulk\n", cfg.Jobs)
	wal0, err := ws.walLSN(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	const chunk = 5000
	payload := json.RawMessage(`{}`)
	for done := 0; done < cfg.Jobs; done += chunk {
		n := min(chunk, cfg.Jobs-done)
		reqs := make([]sdk.JobRequest, n)
		for i := range reqs {
			reqs[i] = sdk.JobRequest{Type: "bench.noop", Payload: payload}
		}
		if _, err := ws.Client.EnqueueMany(ctx, reqs); err != nil {
			return nil, err
		}
	}
	res.EnqueueSecs = time.Since(start).Seconds()
	res.EnqueuePerS = float64(cfg.Jobs) / res.EnqueueSecs
	fmt.Fprintf(env.Progress, "burndown: enqueued in %.2fs (%.0f jobs/s); working\n", res.EnqueueSecs, res.EnqueuePerS)

	w, err := ws.Client.NewWorker(sdk.WorkerConfig{Queues: map[string]int{"bench": cfg.Concurrency}, ClaimBatch: cfg.ClaimBatch, PollInterval: 50 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	var ran atomic.Int64
	if err := w.Handle("bench.noop", func(context.Context, json.RawMessage) error { ran.Add(1); return nil }); err != nil {
		return nil, err
	}
	start = time.Now()
	if err := w.Start(ctx); err != nil {
		return nil, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(sctx)
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		left, err := ws.count(ctx, `SELECT count(*) FROM tasks`)
		if err != nil {
			return nil, err
		}
		if left == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
			fmt.Fprintf(env.Progress, "burndown: %d of %d done, %.0f jobs/s so far\n", int64(cfg.Jobs)-left, cfg.Jobs, float64(int64(cfg.Jobs)-left)/time.Since(start).Seconds())
		case <-time.After(5 * time.Millisecond):
		}
	}
	res.WorkSecs = time.Since(start).Seconds()
	res.JobsPerS = float64(cfg.Jobs) / res.WorkSecs
	succeeded, err := ws.count(ctx, `SELECT count(*) FROM executions WHERE status = 'succeeded'`)
	if err != nil {
		return nil, err
	}
	if succeeded != int64(cfg.Jobs) {
		return nil, fmt.Errorf("burndown: %d of %d jobs succeeded", succeeded, cfg.Jobs)
	}
	events, err := ws.count(ctx, `SELECT count(*) FROM events`)
	if err != nil {
		return nil, err
	}
	wal1, err := ws.walLSN(ctx)
	if err != nil {
		return nil, err
	}
	res.EventsPerJob = float64(events) / float64(cfg.Jobs)
	res.WALPerJob = float64(wal1-wal0) / float64(cfg.Jobs)
	return res, nil
}

// LatencyConfig sets up a latency run.
type LatencyConfig struct {
	Jobs int
	// Rate is jobs enqueued per second, one at a time.
	Rate float64
	// PollInterval of the worker; long by default so that what is measured
	// is the wakeup path.
	PollInterval time.Duration
}

// LatencyResult reports enqueue-to-start latency in milliseconds.
type LatencyResult struct {
	Scenario string  `json:"scenario"`
	Jobs     int     `json:"jobs"`
	Rate     float64 `json:"rate_per_second"`
	P50      float64 `json:"p50_ms"`
	P95      float64 `json:"p95_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
}

// Latency enqueues jobs one at a time at a steady rate to an idle worker
// and measures from the start of each Enqueue call to the start of its
// handler.
func Latency(ctx context.Context, env Env, cfg LatencyConfig) (*LatencyResult, error) {
	if cfg.Jobs <= 0 {
		cfg.Jobs = 500
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 100
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = sdk.DefaultShutdownTimeout // effectively: wakeups only
	}
	ws, err := Open(ctx, env, 0)
	if err != nil {
		return nil, err
	}
	defer ws.Close()
	if err := ws.Client.RegisterJobType("bench.ping", sdk.JobType{Queue: "latency"}); err != nil {
		return nil, err
	}
	w, err := ws.Client.NewWorker(sdk.WorkerConfig{Queues: map[string]int{"latency": 10}, PollInterval: cfg.PollInterval})
	if err != nil {
		return nil, err
	}
	type ping struct {
		N int `json:"n"`
	}
	sent := make([]time.Time, cfg.Jobs)
	lat := make([]time.Duration, cfg.Jobs)
	var started atomic.Int64
	if err := sdk.RegisterJobHandler(w, "bench.ping", func(_ context.Context, p ping) error {
		lat[p.N] = time.Since(sent[p.N])
		started.Add(1)
		return nil
	}); err != nil {
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
	time.Sleep(200 * time.Millisecond) // let the worker subscribe and go idle
	fmt.Fprintf(env.Progress, "latency: enqueueing %d jobs at %.0f/s\n", cfg.Jobs, cfg.Rate)
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	next := time.Now()
	for i := range cfg.Jobs {
		time.Sleep(time.Until(next))
		next = next.Add(interval)
		sent[i] = time.Now()
		if _, err := ws.Client.Enqueue(ctx, "bench.ping", ping{N: i}); err != nil {
			return nil, err
		}
		if (i+1)%max(1, int(cfg.Rate)*5) == 0 {
			fmt.Fprintf(env.Progress, "latency: %d of %d sent\n", i+1, cfg.Jobs)
		}
	}
	deadline := time.Now().Add(cfg.PollInterval + 30*time.Second)
	for started.Load() < int64(cfg.Jobs) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("latency: only %d of %d jobs started", started.Load(), cfg.Jobs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	return &LatencyResult{Scenario: "latency", Jobs: cfg.Jobs, Rate: cfg.Rate, P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: q(1)}, nil
}
