package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/chronicle-engine/chronicle/sdk"
)

// InflightConfig sets up an in-flight run.
type InflightConfig struct {
	// Jobs is how many jobs run at once; the worker's concurrency is the same.
	Jobs int
}

// InflightResult reports what holding many running jobs costs a worker
// process. It is printed as one JSON line.
type InflightResult struct {
	Scenario     string  `json:"scenario"`
	Jobs         int     `json:"jobs"`
	FillSecs     float64 `json:"fill_seconds"`
	RSSBytes     int64   `json:"rss_bytes"`
	RSSBaseBytes int64   `json:"rss_base_bytes"`
	HeapBytes    uint64  `json:"heap_bytes"`
	Goroutines   int     `json:"goroutines"`
	// HeldSecs is how long every job was held running: two lease periods,
	// which only heartbeats (one statement extending every lease) make
	// possible. A run where any attempt timed out fails instead.
	HeldSecs float64 `json:"held_seconds"`
}

// Inflight enqueues cfg.Jobs jobs whose handlers block until released,
// lets one worker claim them all, holds them through several heartbeats,
// and reports the process's resident memory and goroutines meanwhile.
func Inflight(ctx context.Context, env Env, cfg InflightConfig) (*InflightResult, error) {
	if cfg.Jobs <= 0 {
		cfg.Jobs = 10000
	}
	ws, err := Open(ctx, env, 0)
	if err != nil {
		return nil, err
	}
	defer ws.Close()
	if err := ws.Client.RegisterJobType("bench.hold", sdk.JobType{Queue: "hold"}); err != nil {
		return nil, err
	}
	res := &InflightResult{Scenario: "inflight", Jobs: cfg.Jobs, RSSBaseBytes: rss()}
	const lease = 3 * time.Second
	w, err := ws.Client.NewWorker(sdk.WorkerConfig{Queues: map[string]int{"hold": cfg.Jobs}, LeaseDuration: lease, PollInterval: 50 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	release := make(chan struct{})
	var running atomic.Int64
	if err := w.Handle("bench.hold", func(ctx context.Context, _ json.RawMessage) error {
		running.Add(1)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}); err != nil {
		return nil, err
	}
	fmt.Fprintf(env.Progress, "inflight: enqueueing %d jobs\n", cfg.Jobs)
	for done := 0; done < cfg.Jobs; done += 5000 {
		reqs := make([]sdk.JobRequest, min(5000, cfg.Jobs-done))
		for i := range reqs {
			reqs[i] = sdk.JobRequest{Type: "bench.hold"}
		}
		if _, err := ws.Client.EnqueueMany(ctx, reqs); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	if err := w.Start(ctx); err != nil {
		return nil, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = w.Stop(sctx)
	}()
	for running.Load() < int64(cfg.Jobs) {
		if time.Since(start) > 2*time.Minute {
			return nil, fmt.Errorf("inflight: only %d of %d jobs started", running.Load(), cfg.Jobs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	res.FillSecs = time.Since(start).Seconds()
	fmt.Fprintf(env.Progress, "inflight: %d jobs running after %.2fs; holding through heartbeats\n", cfg.Jobs, res.FillSecs)
	// Hold for two lease periods: the leases survive only if heartbeats
	// extend all of them in time.
	time.Sleep(2 * lease)
	res.HeldSecs = (2 * lease).Seconds()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.RSSBytes, res.HeapBytes, res.Goroutines = rss(), ms.HeapAlloc, runtime.NumGoroutine()
	close(release)
	for {
		n, err := ws.count(ctx, `SELECT count(*) FROM executions WHERE status = 'succeeded'`)
		if err != nil {
			return nil, err
		}
		if n == int64(cfg.Jobs) {
			break
		}
		if time.Since(start) > 3*time.Minute {
			return nil, fmt.Errorf("inflight: %d of %d jobs succeeded after release", n, cfg.Jobs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	timedOut, err := ws.count(ctx, `SELECT count(*) FROM events WHERE type = 'AttemptTimedOut'`)
	if err != nil {
		return nil, err
	}
	if timedOut > 0 {
		return nil, fmt.Errorf("inflight: %d attempts timed out while held: heartbeats did not keep up", timedOut)
	}
	return res, nil
}

// rss returns the process's resident set size, or 0 where /proc is absent.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
