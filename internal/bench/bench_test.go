package bench

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/chronicle-engine/chronicle/internal/testdb"
)

func env() Env {
	nats := os.Getenv("NATS_URL")
	if nats == "" {
		nats = "nats://127.0.0.1:4222"
	}
	return Env{DatabaseURL: testdb.URL(), NATSURL: nats, Progress: testWriter{}}
}

type testWriter struct{}

func (testWriter) Write(p []byte) (int, error) { return len(p), nil }

// TestBurndownSmall runs the burn-down machinery on a few jobs so that the
// benchmark code cannot rot; it asserts that every job ran and every
// history was written, not how fast.
func TestBurndownSmall(t *testing.T) {
	t.Parallel()
	res, err := Burndown(context.Background(), env(), BurndownConfig{Jobs: 300, Concurrency: 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.EventsPerJob != 3 {
		t.Fatalf("events per job = %v, want 3 (enqueued, started, succeeded)", res.EventsPerJob)
	}
}

func TestLatencySmall(t *testing.T) {
	t.Parallel()
	res, err := Latency(context.Background(), env(), LatencyConfig{Jobs: 20, Rate: 200})
	if err != nil {
		t.Fatal(err)
	}
	if res.Jobs != 20 || res.Max <= 0 || res.P50 > res.Max {
		t.Fatalf("result = %+v", res)
	}
}

func report(b *testing.B, v any) {
	out, _ := json.Marshal(v)
	b.Log(string(out))
}

// BenchmarkBurndown20k: go test ./internal/bench -run '^$' -bench Burndown -benchtime 1x
func BenchmarkBurndown20k(b *testing.B) {
	for range b.N {
		res, err := Burndown(context.Background(), env(), BurndownConfig{Jobs: 20000})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.JobsPerS, "jobs/s")
		b.ReportMetric(res.EventsPerJob, "events/job")
		b.ReportMetric(res.WALPerJob, "WAL-bytes/job")
		report(b, res)
	}
}

// BenchmarkLatency: go test ./internal/bench -run '^$' -bench Latency -benchtime 1x
func BenchmarkLatency(b *testing.B) {
	for range b.N {
		res, err := Latency(context.Background(), env(), LatencyConfig{Jobs: 1000, Rate: 100})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.P50, "p50-ms")
		b.ReportMetric(res.P99, "p99-ms")
		report(b, res)
	}
}

// TestWorkflowsSmall runs the workflows scenario on a few workflows so
// that it cannot rot.
func TestWorkflowsSmall(t *testing.T) {
	t.Parallel()
	res, err := Workflows(context.Background(), env(), WorkflowsConfig{Workflows: 50})
	if err != nil {
		t.Fatal(err)
	}
	if res.EventsPerWorkflow != 15 {
		t.Fatalf("events per workflow = %v, want 15", res.EventsPerWorkflow)
	}
}

func TestReplaySmall(t *testing.T) {
	t.Parallel()
	res, err := Replay(context.Background(), env(), ReplayConfig{Events: 1000, Runs: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 1000 || res.MedianMS <= 0 {
		t.Fatalf("result = %+v", res)
	}
}

// BenchmarkWorkflows: go test ./internal/bench -run '^$' -bench Workflows -benchtime 1x
func BenchmarkWorkflows(b *testing.B) {
	for range b.N {
		res, err := Workflows(context.Background(), env(), WorkflowsConfig{Workflows: 3000})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.WorkflowsPerS, "workflows/s")
		b.ReportMetric(res.EventsPerWorkflow, "events/workflow")
		report(b, res)
	}
}

// BenchmarkReplay: go test ./internal/bench -run '^$' -bench Replay -benchtime 1x
func BenchmarkReplay(b *testing.B) {
	for range b.N {
		res, err := Replay(context.Background(), env(), ReplayConfig{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.MedianMS, "median-ms")
		report(b, res)
	}
}

// TestInflightSmall holds a few hundred jobs through lease heartbeats: none
// may time out, and the figures must be filled in.
func TestInflightSmall(t *testing.T) {
	t.Parallel()
	res, err := Inflight(context.Background(), env(), InflightConfig{Jobs: 300})
	if err != nil {
		t.Fatal(err)
	}
	if res.RSSBytes <= 0 || res.Goroutines < 300 || res.HeapBytes == 0 {
		t.Fatalf("result = %+v", res)
	}
}
