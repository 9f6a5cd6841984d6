// Package metrics holds Chronicle's Prometheus collectors.
//
// Two kinds of metric live here. Counters and histograms (jobs processed,
// durations, claims, wakeups, batch sizes) count what this process did;
// Prometheus sums them over processes. Gauges of rows (queue depths, dead
// letters, workers) describe the whole database: they come from one cheap
// query refreshed on an interval (Refresh, RunRefresh), never from a query
// per scrape, and every process that refreshes them reports the same
// values, so aggregate them with max, not sum.
package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// Defaults.
const (
	// DefaultStaleAfter is how old a worker's heartbeat may be before the
	// worker counts as stale: the runbook's 2 minutes.
	DefaultStaleAfter = 2 * time.Minute
	// DefaultRefreshInterval is how often RunRefresh reads the row gauges.
	DefaultRefreshInterval = 10 * time.Second
)

// Job statuses of job_processed_total.
const (
	StatusSuccess = "success"
	StatusFailure = "failure"
	StatusTimeout = "timeout"
)

// Names lists every metric Chronicle exports (without the _bucket, _sum and
// _count series of histograms), for checks such as the alert-rules test.
var Names = []string{
	"job_processed_total", "job_duration_seconds", "job_dead_lettered_total",
	"job_wakeups_received_total", "job_claims_total", "job_claim_batch_size", "job_completion_batch_size",
	"workflow_task_latency_seconds", "job_stats_refresh_errors_total",
	"job_queue_pending", "job_queue_scheduled", "job_queue_processing", "job_queue_failed",
	"job_retries_scheduled", "job_dead_letters_pending", "job_dead_letters_newest_timestamp_seconds",
	"job_workers_alive", "job_workers_stale", "job_worker_heartbeat_age_seconds",
	"job_stats_refreshed_timestamp_seconds",
}

// durationBuckets span a quick email (10ms) to a long export (15m).
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900}

// batchBuckets span a lone job to a full completion batch.
var batchBuckets = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}

// Metrics is the set of Chronicle's collectors on one registry. It is the
// engine's Observer. It is safe for concurrent use.
type Metrics struct {
	engine.ObserverBase

	processed       *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	deadLettered    *prometheus.CounterVec
	wakeups         *prometheus.CounterVec
	claims          *prometheus.CounterVec
	claimBatch      *prometheus.HistogramVec
	completionBatch prometheus.Histogram
	workflowTask    *prometheus.HistogramVec
	refreshErrors   prometheus.Counter
	stats           *statsCollector
}

var _ engine.Observer = (*Metrics)(nil)

// New creates the collectors and registers them with reg. staleAfter is
// the heartbeat age past which a worker counts as stale; zero means
// DefaultStaleAfter. It fails when reg already holds metrics of these names.
func New(reg prometheus.Registerer, staleAfter time.Duration) (*Metrics, error) {
	if staleAfter <= 0 {
		staleAfter = DefaultStaleAfter
	}
	m := &Metrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "job_processed_total",
			Help: "Job attempts that ended, by job type and status: success, failure (the handler returned an error or panicked) or timeout (its lease expired)."},
			[]string{"type", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "job_duration_seconds",
			Help: "Run time of job handlers, successful or not, by job type.", Buckets: durationBuckets},
			[]string{"type"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "job_dead_lettered_total",
			Help: "Jobs dead-lettered by this process, by job type."}, []string{"type"}),
		wakeups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "job_wakeups_received_total",
			Help: "NATS wakeups that reached a claim loop, by queue (wakeups that arrive while one is pending coalesce)."},
			[]string{"queue"}),
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "job_claims_total",
			Help: "Claims by queue, by what triggered them (wakeup, poll, backlog) and whether they found work (work, empty)."},
			[]string{"queue", "trigger", "result"}),
		claimBatch: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "job_claim_batch_size",
			Help: "Jobs leased by one claim that found work, by queue.", Buckets: batchBuckets}, []string{"queue"}),
		completionBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "job_completion_batch_size",
			Help: "Attempt outcomes recorded by one transaction.", Buckets: batchBuckets}),
		workflowTask: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "workflow_task_latency_seconds",
			Help: "Time from a workflow task becoming ready to its completion being recorded, by workflow type.", Buckets: durationBuckets},
			[]string{"workflow_type"}),
		refreshErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "job_stats_refresh_errors_total",
			Help: "Failed refreshes of the queue and worker gauges."}),
		stats: newStatsCollector(staleAfter),
	}
	for _, c := range []prometheus.Collector{m.processed, m.duration, m.deadLettered, m.wakeups, m.claims, m.claimBatch,
		m.completionBatch, m.workflowTask, m.refreshErrors, m.stats} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// AttemptFinished counts an attempt and its run time.
func (m *Metrics) AttemptFinished(job *engine.Job, res engine.Result, d time.Duration) {
	status := StatusSuccess
	if res.Err != nil {
		status = StatusFailure
	}
	m.processed.WithLabelValues(job.Type, status).Inc()
	m.duration.WithLabelValues(job.Type).Observe(d.Seconds())
}

// AttemptTimedOut counts an attempt whose lease expired.
func (m *Metrics) AttemptTimedOut(job *engine.Job) {
	m.processed.WithLabelValues(job.Type, StatusTimeout).Inc()
}

// DeadLettered counts a dead letter.
func (m *Metrics) DeadLettered(job *engine.Job) { m.deadLettered.WithLabelValues(job.Type).Inc() }

// WakeupReceived counts a wakeup.
func (m *Metrics) WakeupReceived(queue string) { m.wakeups.WithLabelValues(queue).Inc() }

// Claimed counts a claim and the size of its batch.
func (m *Metrics) Claimed(queue string, trigger engine.ClaimTrigger, _, got int) {
	result := "empty"
	if got > 0 {
		result = "work"
		m.claimBatch.WithLabelValues(queue).Observe(float64(got))
	}
	m.claims.WithLabelValues(queue, string(trigger), result).Inc()
}

// OutcomesRecorded observes the size of a completion batch.
func (m *Metrics) OutcomesRecorded(n int) { m.completionBatch.Observe(float64(n)) }

// WorkflowTaskFinished observes a workflow task's latency.
func (m *Metrics) WorkflowTaskFinished(workflowType string, latency time.Duration) {
	m.workflowTask.WithLabelValues(workflowType).Observe(latency.Seconds())
}

// InitJobType creates the job_processed_total and job_dead_lettered_total
// series of a job type at zero, so that increase() sees its first event.
func (m *Metrics) InitJobType(jobType string) {
	for _, s := range []string{StatusSuccess, StatusFailure, StatusTimeout} {
		m.processed.WithLabelValues(jobType, s)
	}
	m.deadLettered.WithLabelValues(jobType)
}

// Refresh reads the queue and worker gauges from the database once.
func (m *Metrics) Refresh(ctx context.Context, store eventlog.Observability) error {
	queues, now, err := store.QueueDepths(ctx)
	if err != nil {
		m.refreshErrors.Inc()
		return err
	}
	workers, _, err := store.ListWorkers(ctx)
	if err != nil {
		m.refreshErrors.Inc()
		return err
	}
	m.stats.set(snapshot{queues: queues, workers: workers, dbNow: now, at: time.Now()})
	return nil
}

// RunRefresh refreshes the gauges at once and then every interval (zero
// means DefaultRefreshInterval) until ctx ends. Failures are logged and
// counted in job_stats_refresh_errors_total; the gauges keep their last
// values, and job_stats_refreshed_timestamp_seconds tells how old they are.
func (m *Metrics) RunRefresh(ctx context.Context, store eventlog.Observability, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		interval = DefaultRefreshInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, interval)
		if err := m.Refresh(rctx, store); err != nil && ctx.Err() == nil && log != nil {
			log.Warn("refreshing queue and worker gauges failed; keeping the last values", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// snapshot is one refresh of the row gauges.
type snapshot struct {
	queues  []eventlog.QueueDepth
	workers []eventlog.WorkerHeartbeat
	dbNow   time.Time // database time of the query
	at      time.Time // local time of the query
}

// statsCollector reports the latest snapshot. It builds the series at
// collect time, so that a queue or worker that disappears stops being
// reported, and a heartbeat's age grows between refreshes.
type statsCollector struct {
	staleAfter time.Duration
	mu         sync.Mutex
	snap       *snapshot

	pending, scheduled, processing, failed, retrying, deadLetters, newestDeadLetter *prometheus.Desc
	alive, stale, heartbeatAge, refreshed                                           *prometheus.Desc
}

func newStatsCollector(staleAfter time.Duration) *statsCollector {
	q := []string{"queue"}
	return &statsCollector{
		staleAfter:  staleAfter,
		pending:     prometheus.NewDesc("job_queue_pending", "Jobs waiting for a worker and due now (the queue depth), by queue.", q, nil),
		scheduled:   prometheus.NewDesc("job_queue_scheduled", "Jobs waiting for a worker and due later (delayed jobs and scheduled retries), by queue.", q, nil),
		processing:  prometheus.NewDesc("job_queue_processing", "Jobs leased to a worker, by queue.", q, nil),
		failed:      prometheus.NewDesc("job_queue_failed", "Jobs whose last attempt failed and that have not succeeded since: retries scheduled plus dead letters pending, by queue.", q, nil),
		retrying:    prometheus.NewDesc("job_retries_scheduled", "Jobs whose last attempt failed and whose retry is scheduled, by queue.", q, nil),
		deadLetters: prometheus.NewDesc("job_dead_letters_pending", "Dead-lettered jobs waiting for an operator to retry or resolve them, by queue.", q, nil),
		newestDeadLetter: prometheus.NewDesc("job_dead_letters_newest_timestamp_seconds",
			"Unix time of the most recent pending dead letter, by queue; absent for queues without one.", q, nil),
		alive:        prometheus.NewDesc("job_workers_alive", "Workers whose heartbeat is younger than the stale threshold (2m by default).", nil, nil),
		stale:        prometheus.NewDesc("job_workers_stale", "Workers whose heartbeat row is older than the stale threshold: dead or cut off.", nil, nil),
		heartbeatAge: prometheus.NewDesc("job_worker_heartbeat_age_seconds", "Age of each worker's latest heartbeat, by worker ID.", []string{"worker_id"}, nil),
		refreshed:    prometheus.NewDesc("job_stats_refreshed_timestamp_seconds", "Unix time of the last successful refresh of the queue and worker gauges.", nil, nil),
	}
}

func (c *statsCollector) set(s snapshot) {
	c.mu.Lock()
	c.snap = &s
	c.mu.Unlock()
}

// Describe sends the descriptors of every row gauge.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.pending, c.scheduled, c.processing, c.failed, c.retrying, c.deadLetters,
		c.newestDeadLetter, c.alive, c.stale, c.heartbeatAge, c.refreshed} {
		ch <- d
	}
}

// Collect reports the latest snapshot; nothing before the first refresh.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	s := c.snap
	c.mu.Unlock()
	if s == nil {
		return
	}
	g := prometheus.GaugeValue
	for _, q := range s.queues {
		ch <- prometheus.MustNewConstMetric(c.pending, g, float64(q.Pending), q.Queue)
		ch <- prometheus.MustNewConstMetric(c.scheduled, g, float64(q.Scheduled), q.Queue)
		ch <- prometheus.MustNewConstMetric(c.processing, g, float64(q.Processing), q.Queue)
		ch <- prometheus.MustNewConstMetric(c.failed, g, float64(q.Retrying+q.DeadLettered), q.Queue)
		ch <- prometheus.MustNewConstMetric(c.retrying, g, float64(q.Retrying), q.Queue)
		ch <- prometheus.MustNewConstMetric(c.deadLetters, g, float64(q.DeadLettered), q.Queue)
		if q.NewestDeadLetterAt != nil {
			ch <- prometheus.MustNewConstMetric(c.newestDeadLetter, g, float64(q.NewestDeadLetterAt.UnixMilli())/1000, q.Queue)
		}
	}
	// Ages are measured in database time, carried forward by the local
	// time since the snapshot so that they keep growing between refreshes.
	now := s.dbNow.Add(time.Since(s.at))
	alive, stale := 0, 0
	for _, w := range s.workers {
		age := now.Sub(w.LastSeenAt)
		if age > c.staleAfter {
			stale++
		} else {
			alive++
		}
		ch <- prometheus.MustNewConstMetric(c.heartbeatAge, g, age.Seconds(), w.WorkerID)
	}
	ch <- prometheus.MustNewConstMetric(c.alive, g, float64(alive))
	ch <- prometheus.MustNewConstMetric(c.stale, g, float64(stale))
	ch <- prometheus.MustNewConstMetric(c.refreshed, g, float64(s.at.UnixMilli())/1000)
}
