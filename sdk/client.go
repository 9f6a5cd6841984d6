package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/eventlog/postgres"
	"github.com/chronicle-engine/chronicle/migrations"
)

// Connection defaults: the local PostgreSQL and NATS of a development machine.
const (
	DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultNATSURL     = "nats://127.0.0.1:4222"
	// DefaultMaxPayloadBytes caps a job's payload: 1 MiB.
	DefaultMaxPayloadBytes = 1 << 20
)

// Config configures a Client. Every field is optional.
type Config struct {
	// DatabaseURL defaults to $DATABASE_URL, then DefaultDatabaseURL.
	// Ignored when Pool is set.
	DatabaseURL string
	// Pool is an existing connection pool to use instead of DatabaseURL.
	// The client does not close it.
	Pool *pgxpool.Pool
	// NATSURL defaults to $NATS_URL, then DefaultNATSURL.
	NATSURL string
	// DisableNATS turns wakeups off: workers find work by polling only.
	DisableNATS bool
	// WakeSubjectPrefix defaults to "chronicle.wake". Processes that share
	// a database must share it.
	WakeSubjectPrefix string
	// MaxPayloadBytes caps an enqueued payload. Defaults to 1 MiB.
	MaxPayloadBytes int
	// WorkflowHistoryLimits bound workflow histories; zero fields take
	// their defaults (see WorkflowHistoryLimits).
	WorkflowHistoryLimits WorkflowHistoryLimits
	// AllowUnregisteredTypes lets Enqueue accept any well-formed job type
	// that is not registered, with the default retry policy. Tools that
	// enqueue on behalf of other processes (the CLI) set it.
	AllowUnregisteredTypes bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Observability configures metrics, tracing and worker staleness; see
	// ObservabilityConfig. The zero value is ready to use.
	Observability ObservabilityConfig
}

// Client enqueues, inspects and operates jobs. It is safe for concurrent use.
type Client struct {
	cfg     Config
	pool    *pgxpool.Pool
	ownPool bool
	nc      *nats.Conn
	waker   *engine.NATSWaker
	eng     *engine.Engine
	log     *slog.Logger
	obs     observability
	wf      clientWorkflows // registered workflow types; see client_workflow.go

	mu    sync.RWMutex
	types map[string]registeredType
}

type registeredType struct {
	JobType
	// validate checks a payload decodes into the handler's payload type.
	validate func(json.RawMessage) error
}

// NewClient connects to PostgreSQL and NATS. NATS being unreachable is not
// an error: the connection keeps retrying and workers poll meanwhile.
func NewClient(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxPayloadBytes <= 0 {
		cfg.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	c := &Client{cfg: cfg, log: cfg.Logger, types: map[string]registeredType{}}
	for name, jt := range RunbookJobTypes {
		c.types[name] = registeredType{JobType: jt}
	}
	c.pool = cfg.Pool
	if c.pool == nil {
		url := firstOf(cfg.DatabaseURL, os.Getenv("DATABASE_URL"), DefaultDatabaseURL)
		pool, err := postgres.Connect(ctx, url)
		if err != nil {
			return nil, err
		}
		c.pool, c.ownPool = pool, true
	}
	var waker engine.Waker
	if !cfg.DisableNATS {
		nc, err := engine.ConnectNATS(firstOf(cfg.NATSURL, os.Getenv("NATS_URL"), DefaultNATSURL), "chronicle", c.log)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.nc = nc
		c.waker = engine.NewNATSWaker(nc, cfg.WakeSubjectPrefix)
		waker = c.waker
	}
	c.eng = engine.New(postgres.New(c.pool), waker, c.log)
	c.eng.SetHistoryLimits(cfg.WorkflowHistoryLimits)
	if err := c.instrument(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// Close releases the client's connections.
func (c *Client) Close() {
	if c.nc != nil {
		// Drain is asynchronous: flush first so that a short-lived process
		// (the CLI) does not exit with its wakeups still buffered.
		if c.nc.IsConnected() {
			_ = c.nc.FlushTimeout(time.Second)
		}
		_ = c.nc.Drain()
	}
	if c.ownPool {
		c.pool.Close()
	}
}

// Migrate applies Chronicle's schema migrations and creates the built-in
// cleanup schedules (DefaultSchedules) that never existed; it is safe to
// call on every start.
func (c *Client) Migrate(ctx context.Context) error {
	if _, err := migrations.Up(ctx, c.pool); err != nil {
		return err
	}
	_, err := c.CreateDefaultSchedules(ctx)
	return err
}

// Pool returns the client's PostgreSQL connection pool, for tools and for
// transactions that enqueue with EnqueueTx.
func (c *Client) Pool() *pgxpool.Pool { return c.pool }

// Engine exposes the machinery for tools built on the SDK (the CLI).
func (c *Client) Engine() *engine.Engine { return c.eng }

// RegisterJobType registers a job type, or a pattern ending in ".*" that
// covers a family of types, with its defaults. Registering again replaces.
func (c *Client) RegisterJobType(name string, jt JobType) error {
	return c.register(name, jt, nil)
}

func (c *Client) register(name string, jt JobType, validate func(json.RawMessage) error) error {
	if err := ValidateJobType(name, true); err != nil {
		return err
	}
	if err := jt.RetryPolicy.Validate(); err != nil {
		return fmt.Errorf("job type %s: %w", name, err)
	}
	if jt.Queue != "" {
		if err := engine.ValidQueueName(jt.Queue); err != nil {
			return fmt.Errorf("job type %s: %w", name, err)
		}
	}
	if jt.Priority != "" && !jt.Priority.Valid() {
		return fmt.Errorf("job type %s: priority %q is not high, normal or low", name, jt.Priority)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.types[name]; ok && validate == nil {
		validate = old.validate
	}
	if old, ok := c.types[name]; ok && isZeroJobType(jt) {
		jt = old.JobType
	}
	c.types[name] = registeredType{JobType: jt, validate: validate}
	return nil
}

func isZeroJobType(jt JobType) bool {
	return jt.Queue == "" && jt.Priority == "" && jt.RetryPolicy.MaximumAttempts == 0 && len(jt.RetryPolicy.Schedule) == 0 &&
		jt.RetryPolicy.InitialInterval == 0 && jt.RetryPolicy.MaximumInterval == 0 && jt.RetryPolicy.BackoffCoefficient == 0
}

// lookup finds a type's registration: the exact name, else the longest
// registered pattern that covers it.
func (c *Client) lookup(name string) (registeredType, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if rt, ok := c.types[name]; ok {
		return rt, true
	}
	best, found := "", false
	for pattern := range c.types {
		if prefix, ok := strings.CutSuffix(pattern, "*"); ok && strings.HasPrefix(name, prefix) && len(pattern) > len(best) {
			best, found = pattern, true
		}
	}
	return c.types[best], found
}

// EnqueueOption adjusts one enqueue.
type EnqueueOption func(*engine.NewJob) error

// WithQueue puts the job on a queue other than its type's default.
func WithQueue(queue string) EnqueueOption {
	return func(j *engine.NewJob) error {
		if err := engine.ValidQueueName(queue); err != nil {
			return err
		}
		j.Queue = queue
		return nil
	}
}

// WithPriority sets the job's priority: high, normal or low.
func WithPriority(p Priority) EnqueueOption {
	return func(j *engine.NewJob) error {
		if !p.Valid() {
			return &engine.InputError{Field: "priority", Reason: fmt.Sprintf("%q is not one of high, normal, low", p)}
		}
		j.Priority = p
		return nil
	}
}

// WithRunAt schedules the first attempt for t.
func WithRunAt(t time.Time) EnqueueOption {
	return func(j *engine.NewJob) error {
		if t.IsZero() {
			return &engine.InputError{Field: "run at", Reason: "the time is zero"}
		}
		j.RunAt = t
		return nil
	}
}

// WithDelay schedules the first attempt d after now (database time).
func WithDelay(d time.Duration) EnqueueOption {
	return func(j *engine.NewJob) error {
		if d < 0 {
			return &engine.InputError{Field: "delay", Reason: fmt.Sprintf("%s is negative", d)}
		}
		j.Delay = d
		return nil
	}
}

// WithRetryPolicy overrides the type's retry policy for this job.
func WithRetryPolicy(p RetryPolicy) EnqueueOption {
	return func(j *engine.NewJob) error {
		if err := p.Validate(); err != nil {
			return &engine.InputError{Field: "retry policy", Reason: err.Error()}
		}
		j.RetryPolicy = p
		return nil
	}
}

// WithIdempotencyKey de-duplicates enqueues: while ttl has not passed since
// the first enqueue with key, later ones return that job instead of creating
// another.
func WithIdempotencyKey(key string, ttl time.Duration) EnqueueOption {
	return func(j *engine.NewJob) error {
		if key == "" || len(key) > 500 {
			return &engine.InputError{Field: "idempotency key", Reason: "must be 1 to 500 characters"}
		}
		if !utf8.ValidString(key) || strings.ContainsRune(key, 0) {
			return &engine.InputError{Field: "idempotency key", Reason: fmt.Sprintf("%q is not valid UTF-8 text without NUL bytes, which PostgreSQL cannot store", key)}
		}
		if ttl <= 0 {
			return &engine.InputError{Field: "idempotency TTL", Reason: fmt.Sprintf("%s; want a positive duration such as 24h", ttl)}
		}
		j.IdempotencyKey, j.IdempotencyTTL = key, ttl
		return nil
	}
}

// EnqueueResult reports one enqueued job.
type EnqueueResult struct {
	ID eventlog.ID
	// Existing is true when an idempotency key returned a job enqueued earlier.
	Existing bool
}

// JobRequest is one job for EnqueueMany.
type JobRequest struct {
	Type    string
	Payload any
	Options []EnqueueOption
}

// Enqueue adds a job. payload is encoded as JSON (a json.RawMessage or
// []byte is taken as JSON text). The job is due at once unless WithRunAt or
// WithDelay says otherwise, and idle workers are woken.
func (c *Client) Enqueue(ctx context.Context, jobType string, payload any, opts ...EnqueueOption) (EnqueueResult, error) {
	res, err := c.EnqueueMany(ctx, []JobRequest{{Type: jobType, Payload: payload, Options: opts}})
	if err != nil {
		return EnqueueResult{}, err
	}
	return res[0], nil
}

// EnqueueMany adds many jobs in one transaction and one multi-row insert:
// all of them or, on error, none.
func (c *Client) EnqueueMany(ctx context.Context, reqs []JobRequest) ([]EnqueueResult, error) {
	jobs, err := c.prepare(reqs)
	if err != nil {
		return nil, err
	}
	out, err := c.eng.Enqueue(ctx, nil, jobs)
	if err != nil {
		return nil, err
	}
	return results(out), nil
}

// EnqueueTx adds a job inside the caller's transaction: the job exists if
// and only if tx commits, and no worker sees it before. Workers pick it up
// at their next poll; call Wake with its queue after committing to start it
// at once.
func (c *Client) EnqueueTx(ctx context.Context, tx pgx.Tx, jobType string, payload any, opts ...EnqueueOption) (EnqueueResult, error) {
	jobs, err := c.prepare([]JobRequest{{Type: jobType, Payload: payload, Options: opts}})
	if err != nil {
		return EnqueueResult{}, err
	}
	out, err := c.eng.Enqueue(ctx, postgres.WrapTx(tx), jobs)
	if err != nil {
		return EnqueueResult{}, err
	}
	return results(out)[0], nil
}

// Wake tells idle workers of queues to claim now.
func (c *Client) Wake(queues ...string) { c.eng.Wake(queues...) }

func results(out []engine.Enqueued) []EnqueueResult {
	res := make([]EnqueueResult, len(out))
	for i, e := range out {
		res[i] = EnqueueResult{ID: e.ID, Existing: e.Existing}
	}
	return res
}

// prepare validates requests and resolves each job's defaults.
func (c *Client) prepare(reqs []JobRequest) ([]engine.NewJob, error) {
	jobs := make([]engine.NewJob, len(reqs))
	for i, r := range reqs {
		j, err := c.prepareOne(r)
		if err != nil {
			if len(reqs) > 1 {
				return nil, fmt.Errorf("job %d of %d: %w", i+1, len(reqs), err)
			}
			return nil, err
		}
		jobs[i] = j
	}
	return jobs, nil
}

func (c *Client) prepareOne(r JobRequest) (engine.NewJob, error) {
	if err := ValidateJobType(r.Type, false); err != nil {
		return engine.NewJob{}, err
	}
	rt, ok := c.lookup(r.Type)
	if !ok && !c.cfg.AllowUnregisteredTypes {
		return engine.NewJob{}, unknownType(r.Type)
	}
	payload, err := encodePayload(r.Payload, c.cfg.MaxPayloadBytes)
	if err != nil {
		return engine.NewJob{}, err
	}
	if rt.validate != nil {
		if err := rt.validate(payload); err != nil {
			return engine.NewJob{}, &engine.InputError{Field: "payload", Reason: fmt.Sprintf("does not decode as the payload of %s: %v", r.Type, err)}
		}
	}
	j := engine.NewJob{Type: r.Type, Queue: firstOf(rt.Queue, DefaultQueue), Priority: rt.Priority, Payload: payload, RetryPolicy: rt.RetryPolicy}
	if j.Priority == "" {
		j.Priority = PriorityNormal
	}
	for _, opt := range r.Options {
		if err := opt(&j); err != nil {
			return engine.NewJob{}, err
		}
	}
	return j, nil
}

func encodePayload(p any, limit int) (json.RawMessage, error) {
	var raw []byte
	switch v := p.(type) {
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	case nil:
		raw = []byte("{}")
	default:
		var err error
		if raw, err = json.Marshal(p); err != nil {
			return nil, &engine.InputError{Field: "payload", Reason: "cannot be encoded as JSON: " + err.Error()}
		}
	}
	if len(raw) > limit {
		return nil, &engine.InputError{Field: "payload", Reason: fmt.Sprintf("is %d bytes, over the %d-byte limit (Config.MaxPayloadBytes); store large data elsewhere and pass a reference", len(raw), limit)}
	}
	canon, err := eventlog.Canonicalize(raw)
	if err != nil {
		return nil, &engine.InputError{Field: "payload", Reason: err.Error()}
	}
	return canon, nil
}

// Job returns a job's current state.
func (c *Client) Job(ctx context.Context, id eventlog.ID) (Job, error) {
	return c.eng.Get(ctx, id)
}

// History returns every event of a job, oldest first.
func (c *Client) History(ctx context.Context, id eventlog.ID) ([]eventlog.Event, error) {
	return c.eng.Store().History(ctx, id)
}

// JobFilter selects jobs for ListJobs. Zero fields do not filter.
type JobFilter struct {
	Statuses []Status
	Types    []string
	Queue    string
	// After pages: jobs with a larger ID.
	After eventlog.ID
	// Limit defaults to 100.
	Limit int
}

// ListJobs returns jobs matching f, oldest first.
func (c *Client) ListJobs(ctx context.Context, f JobFilter) ([]Job, error) {
	statuses := make([]string, len(f.Statuses))
	for i, s := range f.Statuses {
		statuses[i] = string(s)
	}
	rows, err := c.eng.Store().ListExecutions(ctx, eventlog.ListParams{Kind: engine.KindJob, Statuses: statuses, Types: f.Types, Queue: f.Queue, After: f.After, Limit: f.Limit})
	if err != nil {
		return nil, err
	}
	jobs := make([]Job, 0, len(rows))
	for _, r := range rows {
		j, err := engine.JobFromRow(r, nil)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// Cancel stops a job that has not finished. A running attempt loses its
// lease: its handler's context is canceled at the worker's next heartbeat
// and its result is not recorded.
func (c *Client) Cancel(ctx context.Context, id eventlog.ID, actor, reason string) (Job, error) {
	return c.eng.Execute(ctx, id, engine.Cancel{Actor: actor, Reason: reason})
}

// RetryDeadLetter re-queues a dead-lettered job with a fresh attempt budget.
func (c *Client) RetryDeadLetter(ctx context.Context, id eventlog.ID, actor, note string) (Job, error) {
	return c.eng.Execute(ctx, id, engine.RetryDeadLetter{Actor: actor, Note: note})
}

// ResolveDeadLetter closes a dead-lettered job without retrying it. Notes
// saying why are required.
func (c *Client) ResolveDeadLetter(ctx context.Context, id eventlog.ID, actor, notes string) (Job, error) {
	return c.eng.Execute(ctx, id, engine.Resolve{Actor: actor, Notes: notes})
}
