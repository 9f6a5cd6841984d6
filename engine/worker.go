package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// Worker defaults.
const (
	DefaultLeaseDuration = 30 * time.Second
	DefaultPollInterval  = time.Second
	DefaultClaimBatch    = 100
	// DefaultCompletionBatch caps how many outcomes one transaction records.
	DefaultCompletionBatch = 1000
)

// ErrShutdown is the cause of a handler context canceled because its worker
// is stopping and the shutdown deadline passed.
var ErrShutdown = errors.New("worker shutting down")

// Result is what running one claimed job produced.
type Result struct {
	// Err is nil on success.
	Err error
	// ErrorType classifies Err for NonRetryableErrorTypes.
	ErrorType string
	// Permanent errors are not retried.
	Permanent bool
	// RetryAfter is the earliest next attempt the failure asked for; see
	// Fail.RetryAfter.
	RetryAfter time.Duration
	// Workflow is what a workflow task or activity produced.
	Workflow *WorkflowResult
}

// RunFunc runs one claimed job. Its context is canceled, with cause
// ErrLeaseLost, when the lease is lost, or with ErrShutdown when the worker
// stops and the shutdown deadline passes.
type RunFunc func(ctx context.Context, c *Claimed) Result

// SubscribeFunc delivers wakeups of queue on ch; see NATSWaker.Subscribe.
type SubscribeFunc func(queue string, ch chan struct{}) (unsubscribe func(), err error)

// WorkerConfig configures a Worker. Zero fields take the defaults named.
type WorkerConfig struct {
	// ID names the worker in leases and events. Defaults to host-pid-random.
	ID string
	// Queues maps each queue to work to how many of its jobs may run at once.
	Queues map[string]int
	// LeaseDuration is how long a claim lasts without a heartbeat. Defaults
	// to DefaultLeaseDuration (30s). A worker that dies is noticed after it.
	LeaseDuration time.Duration
	// HeartbeatInterval is how often leases are extended. Defaults to a
	// third of LeaseDuration.
	HeartbeatInterval time.Duration
	// PollInterval is how often an idle queue is checked when no wakeup
	// arrives. Each wait is jittered by ±10%. Defaults to 1s.
	PollInterval time.Duration
	// ClaimBatch caps how many jobs one claim leases. Defaults to 100.
	ClaimBatch int
	// Run runs a job. Required.
	Run RunFunc
	// Subscribe receives wakeups; nil means polling only.
	Subscribe SubscribeFunc
	Log       *slog.Logger
	// HeartbeatFile, when set, is rewritten at every heartbeat of the
	// worker's row in worker_heartbeats, for container health checks.
	HeartbeatFile string
}

// DefaultWorkerID returns an ID naming the host and process.
func DefaultWorkerID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%04x", host, os.Getpid(), rand.IntN(1<<16))
}

type running struct {
	lease eventlog.Lease
	// confirmed is the local time up to which the lease is known to be held.
	confirmed time.Time
	cancel    context.CancelCauseFunc
	lost      bool
	log       *slog.Logger // carries the job's attributes
	fixed     bool         // Claimed.FixedLease: heartbeats leave it alone
}

type completion struct {
	run     *running
	outcome Outcome
}

// Worker claims jobs from its queues, runs them, extends their leases while
// they run and records their outcomes in batches.
type Worker struct {
	cfg WorkerConfig
	eng *Engine
	log *slog.Logger

	baseCtx     context.Context // parent of handler contexts; outlives Stop's grace
	cancelBase  context.CancelCauseFunc
	stopClaims  chan struct{}
	completions chan completion
	dead        chan struct{} // closed once recording stopped for good

	mu      sync.Mutex
	running map[eventlog.TaskRef]*running

	loops    sync.WaitGroup
	handlers sync.WaitGroup
	bgDone   chan struct{}
	stopOnce sync.Once
	presence *presence
}

// NewWorker validates cfg and returns a worker that is not yet started.
func (e *Engine) NewWorker(cfg WorkerConfig) (*Worker, error) {
	if cfg.Run == nil {
		return nil, errors.New("worker: Run is required")
	}
	if len(cfg.Queues) == 0 {
		return nil, errors.New("worker: no queues to work; set Queues, e.g. {\"default\": 10}")
	}
	for q, n := range cfg.Queues {
		if err := ValidQueueName(q); err != nil {
			return nil, fmt.Errorf("worker: %w", err)
		}
		if n < 1 {
			return nil, fmt.Errorf("worker: queue %s has concurrency %d; want 1 or more", q, n)
		}
	}
	if cfg.ID == "" {
		cfg.ID = DefaultWorkerID()
	}
	if cfg.LeaseDuration <= 0 {
		cfg.LeaseDuration = DefaultLeaseDuration
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = cfg.LeaseDuration / 3
	}
	if cfg.HeartbeatInterval >= cfg.LeaseDuration {
		return nil, fmt.Errorf("worker: HeartbeatInterval %s must be shorter than LeaseDuration %s", cfg.HeartbeatInterval, cfg.LeaseDuration)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.ClaimBatch <= 0 {
		cfg.ClaimBatch = DefaultClaimBatch
	}
	if cfg.Log == nil {
		cfg.Log = e.log
	}
	return &Worker{cfg: cfg, eng: e, log: cfg.Log.With("worker_id", cfg.ID), running: map[eventlog.TaskRef]*running{}}, nil
}

// ID returns the worker's ID.
func (w *Worker) ID() string { return w.cfg.ID }

// Start begins claiming. Stop ends it.
func (w *Worker) Start() error {
	w.baseCtx, w.cancelBase = context.WithCancelCause(context.Background())
	w.stopClaims = make(chan struct{})
	w.completions = make(chan completion, 4096)
	w.dead = make(chan struct{})
	w.bgDone = make(chan struct{})
	var unsubs []func()
	for q, n := range w.cfg.Queues {
		wake := make(chan struct{}, 1)
		if w.cfg.Subscribe != nil {
			unsub, err := w.cfg.Subscribe(q, wake)
			if err != nil {
				for _, u := range unsubs {
					u()
				}
				return err
			}
			unsubs = append(unsubs, unsub)
		}
		w.loops.Add(1)
		go func() {
			defer w.loops.Done()
			w.claimLoop(q, n, wake)
		}()
	}
	go func() {
		<-w.stopClaims
		for _, u := range unsubs {
			u()
		}
	}()
	w.startPresence()
	hbStop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); w.heartbeatLoop(hbStop) }()
	go func() { defer bg.Done(); w.completeLoop(); close(hbStop) }()
	go func() { bg.Wait(); close(w.bgDone) }()
	return nil
}

// Stop stops claiming, waits for running jobs to finish until ctx is done,
// then cancels the rest (their handlers see ErrShutdown; what they return is
// recorded like any failure) and records every outcome. Jobs whose handlers
// ignore cancellation are left to lease expiry.
func (w *Worker) Stop(ctx context.Context) error {
	w.stopOnce.Do(func() {
		close(w.stopClaims)
		w.loops.Wait()
		done := make(chan struct{})
		go func() { w.handlers.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			w.log.Warn("shutdown deadline passed; canceling running jobs", "running", w.runningCount())
			w.cancelBase(ErrShutdown)
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				w.log.Error("handlers ignored cancellation; their leases will expire and the jobs will be retried", "running", w.runningCount())
			}
		}
		close(w.dead)
		<-w.bgDone
		w.stopPresence()
		w.cancelBase(ErrShutdown)
	})
	return ctx.Err()
}

func (w *Worker) runningCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.running)
}

func (w *Worker) jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}

// claimLoop keeps queue q busy: it claims when woken, when the poll timer
// fires, and when slots free up while the queue may hold more work. Freed
// slots are claimed in batches: a claim waits until half a batch is free or
// claimCooldown has passed, so that a busy queue is not drained one job per
// transaction.
func (w *Worker) claimLoop(q string, concurrency int, wake chan struct{}) {
	slots := make(chan struct{}, concurrency)
	freed := make(chan struct{}, 1)
	poll := time.NewTimer(w.jitter(w.cfg.PollInterval))
	defer poll.Stop()
	cooldown := time.NewTimer(time.Hour)
	cooldown.Stop()
	cooling := false
	threshold := max(1, min(w.cfg.ClaimBatch, concurrency)/2)
	backlog, urgent := true, true
	trigger := TriggerBacklog
	for {
		if free := concurrency - len(slots); backlog && free > 0 && (urgent || free >= threshold) {
			n := min(free, w.cfg.ClaimBatch)
			claimed, err := w.eng.Claim(w.baseCtx, ClaimParams{Queues: []string{q}, Limit: n, WorkerID: w.cfg.ID, LeaseDuration: w.cfg.LeaseDuration})
			if err == nil {
				w.eng.observer().Claimed(q, trigger, n, len(claimed))
			}
			trigger = TriggerBacklog
			if err != nil {
				w.log.Error("claim failed; retrying at the next poll", "queue", q, "err", err)
				backlog = false
			} else {
				for i := range claimed {
					slots <- struct{}{}
					w.start(&claimed[i], func() {
						<-slots
						select {
						case freed <- struct{}{}:
						default:
						}
					})
				}
				backlog = len(claimed) == n
				if backlog && concurrency-len(slots) >= threshold {
					continue
				}
			}
			urgent = false
		}
		if backlog && !cooling && concurrency-len(slots) > 0 {
			cooldown.Reset(claimCooldown)
			cooling = true
		}
		select {
		case <-w.stopClaims:
			return
		case <-wake:
			backlog, urgent, trigger = true, true, TriggerWakeup
			w.eng.observer().WakeupReceived(q)
		case <-poll.C:
			backlog, urgent, trigger = true, true, TriggerPoll
			poll.Reset(w.jitter(w.cfg.PollInterval))
		case <-cooldown.C:
			cooling, urgent = false, true
		case <-freed:
		}
	}
}

// claimCooldown is the longest a freed slot waits for others to free up
// before it is claimed on its own.
const claimCooldown = 2 * time.Millisecond

func (w *Worker) start(c *Claimed, release func()) {
	ctx, cancel := context.WithCancelCause(w.baseCtx)
	ctx, tel := w.eng.beginClaimed(ctx, c, w.cfg.ID, w.log)
	r := &running{lease: c.Lease, confirmed: time.Now().Add(w.cfg.LeaseDuration), cancel: cancel, log: tel.Log, fixed: c.FixedLease}
	key := eventlog.TaskRef{ExecutionID: c.Lease.ExecutionID, Key: c.Lease.Key}
	w.mu.Lock()
	w.running[key] = r
	w.mu.Unlock()
	w.handlers.Add(1)
	go func() {
		defer w.handlers.Done()
		began := time.Now()
		res := w.safeRun(ctx, c)
		w.eng.EndAttempt(tel, &c.Job, res, time.Since(began))
		cancel(nil)
		release()
		select {
		case w.completions <- completion{run: r, outcome: Outcome{Lease: c.Lease, Err: res.Err, ErrorType: res.ErrorType, Permanent: res.Permanent, RetryAfter: res.RetryAfter, Workflow: res.Workflow, Duration: time.Since(began)}}:
		case <-w.dead:
		}
	}()
}

// safeRun turns a panic that escaped Run into a failure.
func (w *Worker) safeRun(ctx context.Context, c *Claimed) (res Result) {
	defer func() {
		if p := recover(); p != nil {
			res = Result{Err: fmt.Errorf("panic: %v", p), ErrorType: "panic"}
		}
	}()
	return w.cfg.Run(ctx, c)
}

// completeLoop records outcomes. Whatever arrives while a batch is being
// written forms the next batch, so batches grow with load and a lone
// outcome is written at once.
func (w *Worker) completeLoop() {
	for {
		var batch []completion
		select {
		case c := <-w.completions:
			batch = append(batch, c)
		case <-w.dead:
			for {
				select {
				case c := <-w.completions:
					batch = append(batch, c)
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				w.record(batch)
			}
			return
		}
	drain:
		for len(batch) < DefaultCompletionBatch {
			select {
			case c := <-w.completions:
				batch = append(batch, c)
			default:
				break drain
			}
		}
		w.record(batch)
	}
}

// record writes a batch of outcomes, then lets go of their leases.
func (w *Worker) record(batch []completion) {
	outcomes := make([]Outcome, 0, len(batch))
	logs := make([]*slog.Logger, 0, len(batch))
	w.mu.Lock()
	for _, c := range batch {
		if !c.run.lost {
			outcomes = append(outcomes, c.outcome)
			logs = append(logs, c.run.log)
		}
	}
	w.mu.Unlock()
	w.recordOutcomes(batch, outcomes, logs)
	w.mu.Lock()
	for _, c := range batch {
		delete(w.running, eventlog.TaskRef{ExecutionID: c.outcome.Lease.ExecutionID, Key: c.outcome.Lease.Key})
	}
	w.mu.Unlock()
}

// maxRecordTries is how often a batch that fails while the database
// answers is tried before it is split in halves (or, for one outcome,
// given up on).
const maxRecordTries = 5

// recordOutcomes writes outcomes in one transaction. While the database is
// unreachable it retries until the leases expire. When the database answers
// but the batch keeps failing, one outcome must be unrecordable: the batch
// is split so that the others are recorded, and the culprit is given up —
// its lease expires and the retry policy decides, as for a dead worker. A
// retry after an unknown commit outcome is safe: fencing rejects outcomes
// already recorded as lease lost.
func (w *Worker) recordOutcomes(batch []completion, outcomes []Outcome, logs []*slog.Logger) {
	delay := 50 * time.Millisecond
	for tries := 0; len(outcomes) > 0; {
		results, err := w.eng.Complete(context.Background(), outcomes)
		if err == nil {
			w.eng.observer().OutcomesRecorded(len(outcomes))
			for i, res := range results {
				if res != nil {
					logs[i].Warn("attempt outcome not recorded", "err", res)
				}
			}
			return
		}
		if w.eng.store.Ping(context.Background()) == nil {
			tries++
		}
		if tries >= maxRecordTries {
			if len(outcomes) == 1 {
				logs[0].Error("giving up recording this attempt's outcome; its lease will expire and the job will be retried", "err", err)
				return
			}
			half := len(outcomes) / 2
			w.recordOutcomes(batch, outcomes[:half], logs[:half])
			w.recordOutcomes(batch, outcomes[half:], logs[half:])
			return
		}
		w.log.Error("recording attempt outcomes failed; retrying", "outcomes", len(outcomes), "err", err)
		time.Sleep(delay)
		delay = min(2*delay, 5*time.Second)
		if w.allExpired(batch) {
			w.log.Error("leases expired before outcomes could be recorded; the jobs will be retried", "outcomes", len(outcomes))
			return
		}
	}
}

func (w *Worker) allExpired(batch []completion) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range batch {
		if time.Now().Before(c.run.confirmed) {
			return false
		}
	}
	return true
}

// heartbeatLoop extends the leases of running jobs in one statement per
// beat and cancels the handlers of leases that were lost, or that could
// not be confirmed before they expired.
func (w *Worker) heartbeatLoop(stop chan struct{}) {
	t := time.NewTicker(w.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		w.mu.Lock()
		runs := make([]*running, 0, len(w.running))
		leases := make([]eventlog.Lease, 0, len(w.running))
		for _, r := range w.running {
			if !r.lost && !r.fixed {
				runs = append(runs, r)
				leases = append(leases, r.lease)
			}
		}
		w.mu.Unlock()
		if len(leases) == 0 {
			continue
		}
		sent := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.HeartbeatInterval)
		lost, err := w.eng.store.ExtendLeases(ctx, leases, w.cfg.LeaseDuration)
		cancel()
		w.mu.Lock()
		if err != nil {
			w.log.Error("extending leases failed", "leases", len(leases), "err", err)
			for _, r := range runs {
				if time.Now().After(r.confirmed) {
					r.lost = true
					r.cancel(fmt.Errorf("lease of attempt %d could not be renewed before it expired: %w", r.lease.Attempt, ErrLeaseLost))
				}
			}
		} else {
			lostSet := map[eventlog.Lease]bool{}
			for _, l := range lost {
				lostSet[l] = true
			}
			for _, r := range runs {
				if lostSet[r.lease] {
					r.lost = true
					r.cancel(fmt.Errorf("attempt %d: %w", r.lease.Attempt, ErrLeaseLost))
					r.log.Warn("lease lost; canceling the handler")
				} else {
					r.confirmed = sent.Add(w.cfg.LeaseDuration)
				}
			}
		}
		w.mu.Unlock()
	}
}
