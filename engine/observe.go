package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// TracerName is the instrumentation scope of Chronicle's spans.
const TracerName = "github.com/chronicle-engine/chronicle"

// ClaimTrigger says what made a worker's claim loop claim.
type ClaimTrigger string

// Claim triggers.
const (
	// TriggerWakeup: a NATS wakeup for the queue arrived.
	TriggerWakeup ClaimTrigger = "wakeup"
	// TriggerPoll: the poll timer fired without a wakeup.
	TriggerPoll ClaimTrigger = "poll"
	// TriggerBacklog: the worker started, or slots freed up while the queue
	// had more work than the last claim took.
	TriggerBacklog ClaimTrigger = "backlog"
)

// Observer receives what the engine does, for metrics. Its methods are
// called on the hot path: they must be quick, must not block and must be
// safe for concurrent use. Embed ObserverBase so that methods added later
// do not break an implementation.
type Observer interface {
	// WakeupReceived: a wakeup of queue reached a worker's claim loop.
	WakeupReceived(queue string)
	// Claimed: a claim of queue, made because of trigger, asked for up to
	// asked jobs and leased got of them.
	Claimed(queue string, trigger ClaimTrigger, asked, got int)
	// AttemptFinished: the handler of an attempt of job (or of an activity
	// of a workflow) returned res after d. It is called before the outcome
	// is recorded. Workflow tasks are reported by WorkflowTaskFinished.
	AttemptFinished(job *Job, res Result, d time.Duration)
	// OutcomesRecorded: a worker recorded n outcomes in one transaction.
	OutcomesRecorded(n int)
	// AttemptTimedOut: the maintenance leader timed out the running
	// attempt of job because its lease expired.
	AttemptTimedOut(job *Job)
	// DeadLettered: job was dead-lettered (its state is the one after).
	DeadLettered(job *Job)
	// WorkflowTaskFinished: a workflow task of workflowType was completed
	// latency after it became ready to run.
	WorkflowTaskFinished(workflowType string, latency time.Duration)
}

// ObserverBase implements Observer with methods that do nothing. Embed it
// in an Observer to implement only what you need.
type ObserverBase struct{}

var _ Observer = ObserverBase{}

// WakeupReceived does nothing.
func (ObserverBase) WakeupReceived(string) {}

// Claimed does nothing.
func (ObserverBase) Claimed(string, ClaimTrigger, int, int) {}

// AttemptFinished does nothing.
func (ObserverBase) AttemptFinished(*Job, Result, time.Duration) {}

// OutcomesRecorded does nothing.
func (ObserverBase) OutcomesRecorded(int) {}

// AttemptTimedOut does nothing.
func (ObserverBase) AttemptTimedOut(*Job) {}

// DeadLettered does nothing.
func (ObserverBase) DeadLettered(*Job) {}

// WorkflowTaskFinished does nothing.
func (ObserverBase) WorkflowTaskFinished(string, time.Duration) {}

// Instrumentation is how an engine reports what it does.
type Instrumentation struct {
	// Observer receives the engine's events for metrics. Nil means none.
	Observer Observer
	// TracerProvider makes the spans of enqueues and attempts. Nil means
	// the global provider, otel.GetTracerProvider(), which does nothing
	// until one is installed.
	TracerProvider trace.TracerProvider
}

// instruments is an engine's resolved Instrumentation.
type instruments struct {
	obs    Observer
	tracer trace.Tracer
}

// Instrument sets how the engine reports what it does. Call it before
// starting workers.
func (e *Engine) Instrument(i Instrumentation) {
	e.inst.obs = i.Observer
	e.inst.tracer = nil
	if i.TracerProvider != nil {
		e.inst.tracer = i.TracerProvider.Tracer(TracerName)
	}
}

// defaultTracer follows the global provider, even one installed later.
var defaultTracer = otel.Tracer(TracerName)

func (e *Engine) observer() Observer {
	if e.inst.obs == nil {
		return ObserverBase{}
	}
	return e.inst.obs
}

// Observer returns the engine's observer, for machinery beside the job
// worker (workflow tasks) to report to. It is never nil.
func (e *Engine) Observer() Observer { return e.observer() }

// Tracer returns the tracer of the engine's spans, for machinery beside
// the job worker (workflow tasks and activities) to start its spans with.
func (e *Engine) Tracer() trace.Tracer {
	if e.inst.tracer == nil {
		return defaultTracer
	}
	return e.inst.tracer
}

// propagator writes and reads the trace context stored in JobEnqueued:
// W3C traceparent and tracestate, and W3C baggage.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// InjectTraceContext returns the propagation fields of ctx's span and
// baggage, as stored in JobEnqueued.trace_context; nil when ctx carries
// neither.
func InjectTraceContext(ctx context.Context) map[string]string {
	carrier := propagation.MapCarrier{}
	propagator.Inject(ctx, carrier)
	if len(carrier) == 0 {
		return nil
	}
	return carrier
}

// Origin is what an enqueuer passed on to every attempt of a job: its
// trace context and correlation ID, as recorded in JobEnqueued.
type Origin struct {
	TraceContext  map[string]string
	CorrelationID string
}

// Context returns ctx with the origin's span as the remote parent of new
// spans, and its baggage. Without a trace context it returns ctx.
func (o Origin) Context(ctx context.Context) context.Context {
	if len(o.TraceContext) == 0 {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier(o.TraceContext))
}

// originFields are the JobEnqueued fields an Origin is read from.
var originFields = []string{"trace_context", "correlation_id"}

// attachOrigins reads the origin of each claimed job from its JobEnqueued
// event, in the claim's transaction: one indexed read per claim, of two
// small fields, whatever the size of the payloads.
func attachOrigins(ctx context.Context, tx eventlog.Tx, claimed []Claimed) error {
	if len(claimed) == 0 {
		return nil
	}
	ids := make([]eventlog.ID, len(claimed))
	for i := range claimed {
		ids[i] = claimed[i].Job.ID
	}
	fields, err := tx.FirstEventFields(ctx, ids, originFields)
	if err != nil {
		return err
	}
	for i := range claimed {
		f := fields[claimed[i].Job.ID]
		if raw, ok := f["trace_context"]; ok {
			if err := json.Unmarshal(raw, &claimed[i].Origin.TraceContext); err != nil {
				return fmt.Errorf("trace_context of job %s: %w", claimed[i].Job.ID, err)
			}
		}
		if raw, ok := f["correlation_id"]; ok {
			if err := json.Unmarshal(raw, &claimed[i].Origin.CorrelationID); err != nil {
				return fmt.Errorf("correlation_id of job %s: %w", claimed[i].Job.ID, err)
			}
		}
	}
	return nil
}

type correlationKey struct{}

// WithCorrelationID returns ctx carrying a correlation ID: jobs enqueued
// with ctx record it, and their log lines carry it. Inside a handler the
// context already carries the job's, so child jobs inherit it.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey{}, id)
}

// CorrelationID returns the correlation ID ctx carries, or "".
func CorrelationID(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}

// enqueueSpanKey marks a context inside an enqueue's span, so that the
// nested call of Enqueue does not start a second one.
type enqueueSpanKey struct{}

// traceEnqueue starts the producer span of an enqueue and gives every job
// that has none the span's trace context and ctx's correlation ID. It
// returns a copy of jobs when it changes them, and the function that ends
// the span.
func (e *Engine) traceEnqueue(ctx context.Context, jobs []NewJob) (context.Context, []NewJob, func([]Enqueued, error)) {
	if ctx.Value(enqueueSpanKey{}) != nil || len(jobs) == 0 {
		return ctx, jobs, func([]Enqueued, error) {}
	}
	ctx = context.WithValue(ctx, enqueueSpanKey{}, true)
	name, jobType, queue := "enqueue", jobs[0].Type, jobs[0].Queue
	for _, j := range jobs[1:] {
		if j.Type != jobType {
			jobType = ""
		}
		if j.Queue != queue {
			queue = ""
		}
	}
	attrs := []attribute.KeyValue{attribute.String("messaging.system", "chronicle"), attribute.String("messaging.operation.type", "send")}
	if jobType != "" {
		name += " " + jobType
		attrs = append(attrs, attribute.String("chronicle.job.type", jobType))
	}
	if queue != "" {
		attrs = append(attrs, attribute.String("messaging.destination.name", queue))
	}
	if len(jobs) > 1 {
		attrs = append(attrs, attribute.Int("messaging.batch.message_count", len(jobs)))
	}
	ctx, span := e.Tracer().Start(ctx, name, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	tc, corr := InjectTraceContext(ctx), CorrelationID(ctx)
	if tc != nil || corr != "" {
		jobs = append([]NewJob(nil), jobs...)
		for i := range jobs {
			if jobs[i].TraceContext == nil {
				jobs[i].TraceContext = tc
			}
			if jobs[i].CorrelationID == "" {
				jobs[i].CorrelationID = corr
			}
		}
	}
	return ctx, jobs, func(out []Enqueued, err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		} else if len(out) == 1 {
			span.SetAttributes(attribute.String("messaging.message.id", out[0].ID.String()))
		}
		span.End()
	}
}

// recorded collects what a transaction decided, to report to the observer
// once it commits.
type recorded struct {
	timedOut, deadLettered []Job
}

// note records j's new state; timedOut says the decision was a time-out.
func (r *recorded) note(j Job, timedOut bool) {
	if timedOut {
		r.timedOut = append(r.timedOut, j)
	}
	if j.Status == StatusDeadLettered {
		r.deadLettered = append(r.deadLettered, j)
	}
}

func (e *Engine) report(r recorded) {
	obs := e.observer()
	for i := range r.timedOut {
		obs.AttemptTimedOut(&r.timedOut[i])
	}
	for i := range r.deadLettered {
		obs.DeadLettered(&r.deadLettered[i])
	}
}
