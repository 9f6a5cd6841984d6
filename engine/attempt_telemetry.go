package engine

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// AttemptTelemetry is the span and logger of one running attempt. Every
// log line about the attempt carries job_id, type, queue, attempt,
// worker_id, correlation_id and, when traced, trace_id.
type AttemptTelemetry struct {
	Span trace.Span
	Log  *slog.Logger
	// workflowTask attempts are not jobs: workflow_task_latency_seconds
	// measures them instead, from readyAt (database time) to the end of the
	// task: the wait until the claim at claimedAt, plus the run.
	workflowTask       bool
	workflowType       string
	readyAt, claimedAt time.Time
}

type loggerKey struct{}

// Logger returns the logger of the attempt that ctx belongs to, with the
// job's attributes, or nil outside an attempt.
func Logger(ctx context.Context) *slog.Logger {
	l, _ := ctx.Value(loggerKey{}).(*slog.Logger)
	return l
}

// BeginAttempt starts the consumer span of an attempt of job, as a child of
// the enqueuer's span stored in origin, so that every attempt of a job,
// however much later, joins the enqueuer's trace. The returned context
// carries the span, the correlation ID (origin's, else the job's ID) and
// the logger that Logger returns. workerID names the worker running it;
// log is the logger to extend.
func (e *Engine) BeginAttempt(ctx context.Context, job *Job, origin Origin, workerID string, log *slog.Logger) (context.Context, *AttemptTelemetry) {
	return e.begin(ctx, "process "+job.Type, job, origin, workerID, log, nil)
}

// beginClaimed starts the telemetry of a claimed task: a job's attempt, a
// workflow task (span "workflow task <type>") or an activity's attempt
// (span "activity <type>"), each a child of the span that started its
// job or workflow.
func (e *Engine) beginClaimed(ctx context.Context, c *Claimed, workerID string, log *slog.Logger) (context.Context, *AttemptTelemetry) {
	wf := c.Workflow
	if wf == nil {
		return e.BeginAttempt(ctx, &c.Job, c.Origin, workerID, log)
	}
	extra := []attribute.KeyValue{attribute.String("chronicle.workflow.id", wf.WorkflowID), attribute.String("chronicle.workflow.type", wf.WorkflowType)}
	if wf.Activity != nil {
		extra = append(extra, attribute.String("chronicle.activity.type", c.Job.Type))
		return e.begin(ctx, "activity "+c.Job.Type, &c.Job, c.Origin, workerID, log, extra)
	}
	ctx, a := e.begin(ctx, "workflow task "+wf.WorkflowType, &c.Job, c.Origin, workerID, log, extra)
	a.workflowTask, a.workflowType, a.readyAt, a.claimedAt = true, wf.WorkflowType, c.Job.RunAt, c.ClaimedAt
	return ctx, a
}

func (e *Engine) begin(ctx context.Context, name string, job *Job, origin Origin, workerID string, log *slog.Logger, extra []attribute.KeyValue) (context.Context, *AttemptTelemetry) {
	ctx, span := e.Tracer().Start(origin.Context(ctx), name, trace.WithSpanKind(trace.SpanKindConsumer))
	if span.IsRecording() { // spare untraced attempts the attributes
		span.SetAttributes(
			attribute.String("messaging.system", "chronicle"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", job.Queue),
			attribute.String("messaging.message.id", job.ID.String()),
			attribute.String("chronicle.job.type", job.Type),
			attribute.Int("chronicle.job.attempt", job.Attempt),
			attribute.String("chronicle.worker.id", workerID),
		)
		span.SetAttributes(extra...)
	}
	corr := origin.CorrelationID
	if corr == "" {
		corr = job.ID.String()
	}
	ctx = WithCorrelationID(ctx, corr)
	logAttrs := []slog.Attr{slog.String("job_id", job.ID.String()), slog.String("type", job.Type), slog.String("queue", job.Queue),
		slog.Int("attempt", job.Attempt), slog.String("correlation_id", corr)}
	if sc := span.SpanContext(); sc.HasTraceID() {
		logAttrs = append(logAttrs, slog.String("trace_id", sc.TraceID().String()))
	}
	l := slog.New(&lazyHandler{base: log.Handler(), attrs: logAttrs})
	ctx = context.WithValue(ctx, loggerKey{}, l)
	return ctx, &AttemptTelemetry{Span: span, Log: l}
}

// EndAttempt ends the attempt's span with its result, reports it to the
// observer and logs it: a failure at warning level, a success at debug.
func (e *Engine) EndAttempt(a *AttemptTelemetry, job *Job, res Result, d time.Duration) {
	switch {
	case !a.workflowTask:
		e.observer().AttemptFinished(job, res, d)
	case !a.readyAt.IsZero() && !a.claimedAt.Before(a.readyAt):
		e.observer().WorkflowTaskFinished(a.workflowType, a.claimedAt.Sub(a.readyAt)+d)
	}
	ms := float64(d.Microseconds()) / 1000
	if res.Err != nil {
		a.Span.RecordError(res.Err)
		a.Span.SetStatus(codes.Error, res.Err.Error())
		a.Span.SetAttributes(attribute.String("error.type", res.ErrorType))
		a.Log.Warn("job attempt failed", "err", res.Err, "error_type", res.ErrorType, "permanent", res.Permanent, "duration_ms", ms)
	} else {
		a.Log.Debug("job attempt succeeded", "duration_ms", ms)
	}
	a.Span.End()
}

// lazyHandler adds the attempt's attributes to its base handler only when
// a line is first written: most attempts log nothing, and a handler's
// WithAttrs (which pre-formats them) is the dearest part of an attempt's
// telemetry.
type lazyHandler struct {
	base  slog.Handler
	attrs []slog.Attr
	once  sync.Once
	h     slog.Handler
}

func (l *lazyHandler) handler() slog.Handler {
	l.once.Do(func() { l.h = l.base.WithAttrs(l.attrs) })
	return l.h
}

// Enabled asks the base handler, without building anything.
func (l *lazyHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.base.Enabled(ctx, level)
}

// Handle writes r with the attempt's attributes.
func (l *lazyHandler) Handle(ctx context.Context, r slog.Record) error {
	return l.handler().Handle(ctx, r)
}

// WithAttrs adds attributes after the attempt's.
func (l *lazyHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return l.handler().WithAttrs(attrs)
}

// WithGroup opens a group after the attempt's attributes.
func (l *lazyHandler) WithGroup(name string) slog.Handler { return l.handler().WithGroup(name) }
