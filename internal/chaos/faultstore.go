package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/eventlog/postgres"
)

// Fault kinds the fault store injects.
const (
	// faultSerialization: a statement inside the transaction fails with
	// SQLSTATE 40001; the transaction rolls back. Safe to retry.
	faultSerialization = "40001 serialization_failure (rolled back)"
	// faultAdminShutdown: the connection is terminated (SQLSTATE 57P01)
	// before the transaction did anything. Safe to retry.
	faultAdminShutdown = "57P01 admin_shutdown (before the transaction)"
	// faultCommitTimeout: the transaction committed but the caller sees a
	// timeout: the outcome is unknown to it, so a retry must be one that
	// fencing or an idempotency key makes harmless.
	faultCommitTimeout = "timeout after COMMIT (outcome unknown)"
)

// errInjected marks injected errors in logs.
var errInjected = errors.New("injected by the chaos fault store")

// faultStore is an eventlog.Store that fails a fraction of its calls, as a
// flaky database does: serialization failures inside transactions,
// terminated connections before them, and timeouts after a commit.
type faultStore struct {
	eventlog.Store
	rate float64

	mu  sync.Mutex
	rng *mrand.Rand

	counts sync.Map // kind → *atomic.Int64
}

func newFaultStore(s eventlog.Store, rate float64, seed int64) *faultStore {
	return &faultStore{Store: s, rate: rate, rng: mrand.New(mrand.NewPCG(uint64(seed), 0x5a17))}
}

func (f *faultStore) roll() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.Float64() < f.rate
}

func (f *faultStore) pick(n int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.IntN(n)
}

func (f *faultStore) count(kind string) {
	v, _ := f.counts.LoadOrStore(kind, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// injected returns how many faults of each kind were injected.
func (f *faultStore) injected() map[string]int64 {
	out := map[string]int64{}
	f.counts.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

func (f *faultStore) InTx(ctx context.Context, fn func(eventlog.Tx) error) error {
	if f.roll() {
		if f.pick(2) == 0 {
			f.count(faultAdminShutdown)
			return fmt.Errorf("begin transaction: %w (%w)", &pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}, errInjected)
		}
		if err := f.Store.InTx(ctx, fn); err != nil {
			return err
		}
		f.count(faultCommitTimeout)
		return fmt.Errorf("commit: %w (%w)", context.DeadlineExceeded, errInjected)
	}
	return f.Store.InTx(ctx, func(tx eventlog.Tx) error { return fn(&faultTx{Tx: tx, f: f}) })
}

func (f *faultStore) ExtendLeases(ctx context.Context, leases []eventlog.Lease, d time.Duration) ([]eventlog.Lease, error) {
	if f.roll() {
		f.count(faultAdminShutdown)
		return nil, fmt.Errorf("extend leases: %w (%w)", &pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}, errInjected)
	}
	return f.Store.ExtendLeases(ctx, leases, d)
}

func (f *faultStore) AcquireLeadership(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if f.roll() {
		f.count(faultAdminShutdown)
		return false, fmt.Errorf("acquire leadership: %w (%w)", &pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}, errInjected)
	}
	return f.Store.AcquireLeadership(ctx, name, holder, ttl)
}

// faultTx fails a fraction of the writes and locks of a transaction with a
// serialization failure.
type faultTx struct {
	eventlog.Tx
	f *faultStore
}

func (t *faultTx) fail(op string) error {
	t.f.count(faultSerialization)
	return fmt.Errorf("%s: %w (%w)", op, &pgconn.PgError{Severity: "ERROR", Code: "40001", Message: "could not serialize access due to concurrent update"}, errInjected)
}

func (t *faultTx) LeaseTasks(ctx context.Context, p eventlog.LeaseParams) ([]eventlog.Leased, time.Time, error) {
	if t.f.roll() {
		return nil, time.Time{}, t.fail("lease tasks")
	}
	return t.Tx.LeaseTasks(ctx, p)
}

func (t *faultTx) LockLeases(ctx context.Context, leases []eventlog.Lease) ([]eventlog.Leased, time.Time, error) {
	if t.f.roll() {
		return nil, time.Time{}, t.fail("lock leases")
	}
	return t.Tx.LockLeases(ctx, leases)
}

func (t *faultTx) LockExpiredLeases(ctx context.Context, limit int) ([]eventlog.Leased, time.Time, error) {
	if t.f.roll() {
		return nil, time.Time{}, t.fail("lock expired leases")
	}
	return t.Tx.LockExpiredLeases(ctx, limit)
}

func (t *faultTx) Apply(ctx context.Context, c eventlog.Changes) error {
	if t.f.roll() {
		return t.fail("apply changes")
	}
	return t.Tx.Apply(ctx, c)
}

// runSQLFaults runs an in-process engine (the store wrapper needs one)
// whose store fails rate of its calls; the enqueuer retries with an
// enqueue idempotency key, as a caller facing an unknown commit outcome
// must. Every job must succeed once; nothing may be doubled.
func runSQLFaults(ctx context.Context, e *env, r *Result) error {
	const rate = 0.08
	fs := newFaultStore(postgres.New(e.pool), rate, e.cfg.Seed)
	eng := engine.New(fs, nil, e.cfg.Log)
	run := func(ctx context.Context, c *engine.Claimed) engine.Result {
		if _, err := e.pool.Exec(ctx, `INSERT INTO chaos_runs (job_id, attempt, worker_id) VALUES ($1, $2, $3)`, c.Job.ID.String(), c.Lease.Attempt, c.Lease.WorkerID); err != nil {
			return engine.Result{Err: err}
		}
		return engine.Result{}
	}
	mctx, stopMaintenance := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var workers []*engine.Worker
	for i := range 2 {
		w, err := eng.NewWorker(engine.WorkerConfig{ID: fmt.Sprintf("sqlfaults-%d", i), Queues: map[string]int{"default": 8},
			LeaseDuration: 2 * time.Second, PollInterval: 50 * time.Millisecond, Run: run})
		if err != nil {
			stopMaintenance()
			return err
		}
		if err := w.Start(); err != nil {
			stopMaintenance()
			return err
		}
		workers = append(workers, w)
		m := eng.NewMaintenance(w.ID(), 100*time.Millisecond, 2*time.Second)
		wg.Add(1)
		go func() { defer wg.Done(); m.Run(mctx) }()
	}
	defer func() {
		for _, w := range workers {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = w.Stop(sctx)
			cancel()
		}
		stopMaintenance()
		wg.Wait()
	}()
	until := time.Now().Add(e.cfg.Duration)
	enqueueRetries := 0
	for i := 0; time.Now().Before(until); i++ {
		jobs := make([]engine.NewJob, 10)
		for k := range jobs {
			p, _ := json.Marshal(effectPayload{Key: fmt.Sprintf("payment:sql-%d-%d:capture", i, k)})
			jobs[k] = engine.NewJob{Type: effectJob, Queue: "default", Payload: p, RetryPolicy: effectPolicy,
				IdempotencyKey: fmt.Sprintf("sqlfaults-%d-%d", i, k), IdempotencyTTL: time.Hour}
		}
		for {
			_, err := eng.Enqueue(ctx, nil, jobs)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			enqueueRetries++ // the same keys: a retry after an unknown outcome cannot double a job
		}
		r.Operations += len(jobs)
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	if err := e.waitSettled(ctx); err != nil {
		return err
	}
	for kind, n := range fs.injected() {
		r.Faults += int(n)
		r.note("injected %d × %s", n, kind)
	}
	r.note("fault rate %.0f%% per call; the enqueuer retried %d times with the same idempotency keys", rate*100, enqueueRetries)
	committed, err := e.count(ctx, `SELECT count(*) FROM executions WHERE kind = 'job'`)
	if err != nil {
		return err
	}
	if committed != r.Operations {
		r.violate("%d jobs committed for %d distinct enqueue keys", committed, r.Operations)
	}
	runs, err := e.count(ctx, `SELECT count(*) - count(DISTINCT job_id) FROM chaos_runs`)
	if err != nil {
		return err
	}
	r.ExtraExecutions = runs
	if runs > 0 {
		r.note("%d handler runs beyond one per job (leases lost to failed heartbeats; at-least-once)", runs)
	}
	return e.check(ctx, r, r.Operations)
}
