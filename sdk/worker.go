package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// Worker defaults.
const (
	// DefaultConcurrency is how many jobs of the default queue run at once
	// when WorkerConfig.Queues is empty.
	DefaultConcurrency = 10
	// DefaultShutdownTimeout is how long Run lets running jobs finish.
	DefaultShutdownTimeout = 30 * time.Second
)

// WorkerConfig configures a Worker. Every field is optional.
type WorkerConfig struct {
	// ID names the worker in leases and events. Defaults to host-pid-random.
	ID string
	// Queues maps each queue to its concurrency. Defaults to
	// {"default": DefaultConcurrency}.
	Queues map[string]int
	// LeaseDuration is how long a claim lasts without a heartbeat; a dead
	// worker's jobs are retried after it. Defaults to 30s.
	LeaseDuration time.Duration
	// HeartbeatInterval is how often leases are extended and the worker's
	// row in worker_heartbeats (and HeartbeatFile) is refreshed. Defaults
	// to a third of LeaseDuration.
	HeartbeatInterval time.Duration
	// HeartbeatFile, when set, is rewritten at every heartbeat that reached
	// the database, for a container health check (chronicle worker
	// healthcheck). Empty means no file.
	HeartbeatFile string
	// PollInterval is how often idle queues are checked when no wakeup
	// arrives. Defaults to 1s.
	PollInterval time.Duration
	// ClaimBatch caps the jobs leased per claim. Defaults to 100.
	ClaimBatch int
	// WorkflowCacheSize caps how many workflow runs the worker keeps live
	// between their workflow tasks. A run not in the cache costs nothing
	// but a full replay of its history at its next task. Defaults to
	// DefaultWorkflowCacheSize (1000).
	WorkflowCacheSize int
	// ShutdownTimeout is how long Run waits for running jobs after its
	// context ends. Defaults to 30s.
	ShutdownTimeout time.Duration
	// DisableMaintenance keeps this worker out of leader election. Some
	// process must run maintenance, or dead workers' jobs are never retried.
	DisableMaintenance bool
	// MaintenanceInterval defaults to 1s; LeaderTTL to 10s.
	MaintenanceInterval time.Duration
	LeaderTTL           time.Duration
}

// HandlerFunc handles a job given its raw JSON payload.
type HandlerFunc func(ctx context.Context, payload json.RawMessage) error

// Worker runs jobs of the types registered on it.
type Worker struct {
	client   *Client
	cfg      WorkerConfig
	mu       sync.RWMutex
	handlers map[string]HandlerFunc
	ew       *engine.Worker
	stopMnt  context.CancelFunc
	mntDone  chan struct{}
	wf       workflowWorker // workflows and activities; see workflow_worker.go
}

// NewWorker returns a worker for this client's database. Register handlers,
// then Start or Run it.
func (c *Client) NewWorker(cfg WorkerConfig) (*Worker, error) {
	if len(cfg.Queues) == 0 {
		cfg.Queues = map[string]int{DefaultQueue: DefaultConcurrency}
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	w := &Worker{client: c, cfg: cfg, handlers: map[string]HandlerFunc{}}
	ecfg := engine.WorkerConfig{ID: cfg.ID, Queues: cfg.Queues, LeaseDuration: cfg.LeaseDuration, HeartbeatInterval: cfg.HeartbeatInterval,
		PollInterval: cfg.PollInterval, ClaimBatch: cfg.ClaimBatch, Run: w.run, Log: c.log, HeartbeatFile: cfg.HeartbeatFile}
	if c.waker != nil {
		ecfg.Subscribe = c.waker.Subscribe
	}
	ew, err := c.eng.NewWorker(ecfg)
	if err != nil {
		return nil, err
	}
	w.ew = ew
	return w, nil
}

// ID returns the worker's ID.
func (w *Worker) ID() string { return w.ew.ID() }

// Handle registers the handler of a job type with its raw payload. The
// type is registered with the client too, keeping any retry policy it has.
func (w *Worker) Handle(jobType string, fn HandlerFunc) error {
	return w.handle(jobType, fn, nil)
}

func (w *Worker) handle(jobType string, fn HandlerFunc, validate func(json.RawMessage) error) error {
	if err := ValidateJobType(jobType, false); err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("handler of %s is nil", jobType)
	}
	rt, _ := w.client.lookup(jobType)
	if err := w.client.register(jobType, rt.JobType, validate); err != nil {
		return err
	}
	w.mu.Lock()
	w.handlers[jobType] = fn
	w.mu.Unlock()
	w.client.obs.metrics.InitJobType(jobType)
	return nil
}

// RegisterJobHandler registers a handler of a job type whose payload
// decodes into T. Enqueues through the same client check that the payload
// decodes, and a job whose payload does not is dead-lettered at once.
func RegisterJobHandler[T any](w *Worker, jobType string, fn func(ctx context.Context, payload T) error) error {
	decode := func(raw json.RawMessage) (T, error) {
		var p T
		err := json.Unmarshal(raw, &p)
		return p, err
	}
	return w.handle(jobType, func(ctx context.Context, raw json.RawMessage) error {
		p, err := decode(raw)
		if err != nil {
			return Permanent(fmt.Errorf("decode payload of %s: %w", jobType, err))
		}
		return fn(ctx, p)
	}, func(raw json.RawMessage) error {
		_, err := decode(raw)
		return err
	})
}

// JobInfo describes the job a handler is running.
type JobInfo struct {
	ID       eventlog.ID
	Type     string
	Queue    string
	Attempt  int
	WorkerID string
	// Job is the state as of the claim.
	Job Job
}

type jobInfoKey struct{}

// JobFromContext returns the job a handler's context belongs to.
func JobFromContext(ctx context.Context) (*JobInfo, bool) {
	j, ok := ctx.Value(jobInfoKey{}).(*JobInfo)
	return j, ok
}

// run is the engine's RunFunc: it finds the handler, runs it, and turns
// its error or panic into a Result.
func (w *Worker) run(ctx context.Context, c *engine.Claimed) (res engine.Result) {
	if c.Workflow != nil {
		return w.runWorkflowTask(ctx, c)
	}
	w.mu.RLock()
	fn, ok := w.handlers[c.Job.Type]
	w.mu.RUnlock()
	if !ok {
		return engine.Result{Err: fmt.Errorf("no handler for job type %s on worker %s (its queues: %v); register one with RegisterJobHandler", c.Job.Type, w.ID(), keys(w.cfg.Queues)), ErrorType: "UnknownJobType"}
	}
	info := &JobInfo{ID: c.Job.ID, Type: c.Job.Type, Queue: c.Job.Queue, Attempt: c.Job.Attempt, WorkerID: w.ID(), Job: c.Job}
	ctx = context.WithValue(ctx, jobInfoKey{}, info)
	ctx = withStepScope(ctx, w.client, c)
	defer func() {
		if p := recover(); p != nil {
			res = engine.Result{Err: fmt.Errorf("panic: %v\n%s", p, debug.Stack()), ErrorType: "panic"}
		}
	}()
	err := fn(ctx, c.Job.Payload)
	if err == nil {
		return engine.Result{}
	}
	if cause := context.Cause(ctx); cause != nil && errors.Is(err, context.Canceled) {
		err = fmt.Errorf("%w (canceled: %v)", err, cause)
	}
	var perm *PermanentError
	return engine.Result{Err: err, ErrorType: ErrorType(err), Permanent: errors.As(err, &perm), RetryAfter: retryDelay(err)}
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Start begins claiming and, unless disabled, takes part in maintenance.
func (w *Worker) Start(ctx context.Context) error {
	if err := w.ew.Start(); err != nil {
		return err
	}
	if !w.cfg.DisableMaintenance {
		mctx, cancel := context.WithCancel(context.Background())
		w.stopMnt, w.mntDone = cancel, make(chan struct{})
		m := w.client.eng.NewMaintenance(w.ID(), w.cfg.MaintenanceInterval, w.cfg.LeaderTTL)
		go func() { defer close(w.mntDone); m.Run(mctx) }()
	}
	return nil
}

// Stop stops claiming and waits for running jobs until ctx ends; then it
// cancels them and records what they return.
func (w *Worker) Stop(ctx context.Context) error {
	err := w.ew.Stop(ctx)
	w.wf.close()
	if w.stopMnt != nil {
		w.stopMnt()
		<-w.mntDone
	}
	return err
}

// Run starts the worker, blocks until ctx ends, then stops it, giving
// running jobs ShutdownTimeout to finish.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), w.cfg.ShutdownTimeout)
	defer cancel()
	if err := w.Stop(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
