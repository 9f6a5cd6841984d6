package sdk

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/internal/metrics"
)

// Observability defaults.
const (
	// DefaultWorkerStaleAfter is how old a worker's heartbeat may be before
	// the worker counts as stale: the runbook's 2 minutes.
	DefaultWorkerStaleAfter = metrics.DefaultStaleAfter
	// DefaultMetricsRefreshInterval is how often the queue and worker
	// gauges are read from the database.
	DefaultMetricsRefreshInterval = metrics.DefaultRefreshInterval
)

// ObservabilityConfig configures a client's metrics, tracing and worker
// staleness. Every field is optional.
type ObservabilityConfig struct {
	// MetricsRegistry receives Chronicle's Prometheus collectors (the
	// metrics are listed in docs/observability.md). Defaults to a registry
	// of the client's own, which also holds the Go runtime and process
	// collectors. A registry can hold the collectors of one client only.
	MetricsRegistry *prometheus.Registry
	// TracerProvider makes the spans of enqueues and attempts. Defaults to
	// otel's global provider, which does nothing until one is installed
	// (the chronicle command installs one from the OTEL_* variables).
	TracerProvider trace.TracerProvider
	// WorkerStaleAfter is how old a worker's heartbeat may be before the
	// worker counts as stale in metrics, health checks and Workers.
	// Defaults to DefaultWorkerStaleAfter (2m).
	WorkerStaleAfter time.Duration
}

// observability is a client's resolved ObservabilityConfig.
type observability struct {
	registry   *prometheus.Registry
	metrics    *metrics.Metrics
	staleAfter time.Duration
}

// instrument creates the client's collectors and hands them and the
// tracer provider to its engine.
func (c *Client) instrument() error {
	cfg := c.cfg.Observability
	reg := cfg.MetricsRegistry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	staleAfter := cfg.WorkerStaleAfter
	if staleAfter <= 0 {
		staleAfter = DefaultWorkerStaleAfter
	}
	m, err := metrics.New(reg, staleAfter)
	if err != nil {
		return fmt.Errorf("register Chronicle's metrics (Config.Observability.MetricsRegistry may hold another client's): %w", err)
	}
	c.obs = observability{registry: reg, metrics: m, staleAfter: staleAfter}
	c.eng.Instrument(engine.Instrumentation{Observer: m, TracerProvider: cfg.TracerProvider})
	return nil
}

// MetricsRegistry returns the registry that holds the client's Prometheus
// collectors, to serve at /metrics (server.New does).
func (c *Client) MetricsRegistry() *prometheus.Registry { return c.obs.registry }

// RefreshMetrics reads the queue and worker gauges from the database once:
// one grouped count over the ready queue and the retrying and
// dead-lettered jobs, and one read of the worker heartbeats.
func (c *Client) RefreshMetrics(ctx context.Context) error {
	return c.obs.metrics.Refresh(ctx, c.eng.Store())
}

// RunMetricsRefresh refreshes the queue and worker gauges at once and then
// every interval (zero means DefaultMetricsRefreshInterval) until ctx
// ends. A process that serves /metrics runs it; scrapes never query.
func (c *Client) RunMetricsRefresh(ctx context.Context, interval time.Duration) {
	c.obs.metrics.RunRefresh(ctx, c.eng.Store(), interval, c.log)
}

// QueueDepth counts one queue's work; see eventlog.QueueDepth.
type QueueDepth = eventlog.QueueDepth

// QueueDepths counts the work of every queue that has any: pending,
// scheduled, processing, retrying and dead-lettered jobs.
func (c *Client) QueueDepths(ctx context.Context) ([]QueueDepth, error) {
	stats, _, err := c.eng.Store().QueueDepths(ctx)
	return stats, err
}

// WorkerHeartbeat is a worker's row in worker_heartbeats.
type WorkerHeartbeat = eventlog.WorkerHeartbeat

// WorkerStatus is a worker's heartbeat and how old it is.
type WorkerStatus struct {
	WorkerHeartbeat
	// Age is how long ago its last heartbeat was, in database time.
	Age time.Duration
	// Stale is true when Age exceeds the client's WorkerStaleAfter: the
	// worker died, hangs, or cannot reach the database.
	Stale bool
}

// Workers returns every worker's heartbeat, oldest first. A worker that
// stopped cleanly has removed its row; one that died stays, and is stale
// once its heartbeat is older than WorkerStaleAfter.
func (c *Client) Workers(ctx context.Context) ([]WorkerStatus, error) {
	rows, now, err := c.eng.Store().ListWorkers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]WorkerStatus, len(rows))
	for i, hb := range rows {
		age := now.Sub(hb.LastSeenAt)
		out[i] = WorkerStatus{WorkerHeartbeat: hb, Age: age, Stale: age > c.obs.staleAfter}
	}
	return out, nil
}

// WorkerStaleAfter returns the heartbeat age past which a worker is stale.
func (c *Client) WorkerStaleAfter() time.Duration { return c.obs.staleAfter }

// Ping checks that PostgreSQL answers, within ctx's deadline.
func (c *Client) Ping(ctx context.Context) error { return c.pool.Ping(ctx) }

// NATS connection states reported by NATSState, besides the client
// library's own (such as "reconnecting" or "closed").
const (
	NATSConnected = "connected"
	NATSDisabled  = "disabled"
)

// NATSState says how the client's NATS connection stands: "connected",
// "disabled" (Config.DisableNATS), or another state of the NATS client
// such as "reconnecting", while workers fall back to polling.
func (c *Client) NATSState() string {
	if c.nc == nil {
		return NATSDisabled
	}
	return strings.ToLower(c.nc.Status().String())
}

// WithCorrelationID records id as the job's correlation ID: every log
// line about the job carries it, and jobs its handler enqueues inherit it.
// Without it the job takes the correlation ID of the enqueue's context
// (ContextWithCorrelationID, or the handler's when a handler enqueues);
// a job with none uses its own ID.
func WithCorrelationID(id string) EnqueueOption {
	return func(j *engine.NewJob) error {
		if len(id) > 200 {
			return &engine.InputError{Field: "correlation ID", Reason: fmt.Sprintf("is %d characters; at most 200", len(id))}
		}
		j.CorrelationID = id
		return nil
	}
}

// ContextWithCorrelationID returns ctx carrying a correlation ID, such as
// a request ID, for every job enqueued with it.
func ContextWithCorrelationID(ctx context.Context, id string) context.Context {
	return engine.WithCorrelationID(ctx, id)
}

// CorrelationIDFromContext returns the correlation ID ctx carries: inside a
// handler, the job's.
func CorrelationIDFromContext(ctx context.Context) string { return engine.CorrelationID(ctx) }

// Logger returns the logger for a handler's log lines: inside a handler it
// carries job_id, type, queue, attempt, worker_id, correlation_id and, when
// traced, trace_id. Outside one it is slog.Default().
func Logger(ctx context.Context) *slog.Logger {
	if l := engine.Logger(ctx); l != nil {
		return l
	}
	return slog.Default()
}
