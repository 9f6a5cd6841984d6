package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/migrations"
	"github.com/chronicle-engine/chronicle/sdk"
)

// ledgerSQL creates the tables through which worker processes report what
// they did, outside Chronicle's own tables: every handler run, every side
// effect of an idempotent step, and marks such as a canceled context.
const ledgerSQL = `
CREATE TABLE chaos_runs (id bigserial PRIMARY KEY, job_id text NOT NULL, attempt int NOT NULL, worker_id text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE chaos_ledger (id bigserial PRIMARY KEY, key text NOT NULL, job_id text NOT NULL, attempt int NOT NULL, worker_id text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE chaos_marks (id bigserial PRIMARY KEY, job_id text NOT NULL, attempt int NOT NULL, worker_id text NOT NULL, mark text NOT NULL, detail text NOT NULL DEFAULT '', at timestamptz NOT NULL DEFAULT clock_timestamp());
`

// env is one scenario's world: its schema, a client of it, its worker
// processes and its random source.
type env struct {
	cfg    Config
	rng    *mrand.Rand
	schema string
	url    string // DatabaseURL selecting the schema
	pool   *pgxpool.Pool
	client *sdk.Client
	prefix string // NATS wake subject prefix, private to the scenario
	// exclude holds poisoned jobs: not counted as lost, and verify
	// problems naming them are expected (poison scenario).
	exclude []eventlog.ID

	mu    sync.Mutex
	procs []*proc
}

func newEnv(ctx context.Context, cfg Config, name string) (*env, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	e := &env{cfg: cfg, rng: mrand.New(mrand.NewPCG(uint64(cfg.Seed), 0x636861)), schema: "chaos_" + name + "_" + hex.EncodeToString(b[:])}
	admin, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect to %s (set DATABASE_URL or --database-url): %w", cfg.DatabaseURL, err)
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+e.schema); err != nil {
		return nil, fmt.Errorf("create schema %s (is PostgreSQL running at %s?): %w", e.schema, cfg.DatabaseURL, err)
	}
	e.url = withSearchPath(cfg.DatabaseURL, e.schema)
	e.prefix = "chaos." + e.schema
	if e.pool, err = pgxpool.New(ctx, e.url); err != nil {
		e.close()
		return nil, err
	}
	if _, err := migrations.Up(ctx, e.pool); err != nil {
		e.close()
		return nil, fmt.Errorf("migrate schema %s: %w", e.schema, err)
	}
	if _, err := e.pool.Exec(ctx, ledgerSQL); err != nil {
		e.close()
		return nil, fmt.Errorf("create ledger tables: %w", err)
	}
	e.client, err = sdk.NewClient(ctx, sdk.Config{Pool: e.pool, NATSURL: cfg.NATSURL, WakeSubjectPrefix: e.prefix, Logger: cfg.Log})
	if err != nil {
		e.close()
		return nil, err
	}
	if err := registerTypes(e.client); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// withSearchPath returns url selecting schema.
func withSearchPath(url, schema string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "search_path=" + schema
}

func (e *env) close() {
	e.mu.Lock()
	procs := e.procs
	e.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	if e.client != nil {
		e.client.Close()
	}
	if e.pool != nil {
		e.pool.Close()
	}
	if e.cfg.KeepSchema {
		return
	}
	admin, err := pgxpool.New(context.Background(), e.cfg.DatabaseURL)
	if err != nil {
		return
	}
	defer admin.Close()
	_, _ = admin.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+e.schema+" CASCADE")
}

// workerOpts configures one worker process.
type workerOpts struct {
	ID string
	// DatabaseURL overrides the scenario's (to go through a proxy).
	DatabaseURL string
	// NATSURL overrides the configured one (to point at nothing).
	NATSURL string
	Lease   time.Duration
	// Heartbeat is the lease-extension interval; zero takes the
	// worker's default (a third of the lease).
	Heartbeat   time.Duration
	Maintenance bool
	Concurrency int
}

// proc is one worker process.
type proc struct {
	id     string
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
	err    error
	once   sync.Once
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		l.b.Reset()
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// Environment of a worker process; see RunWorkerFromEnv.
const (
	envWorker      = "CHRONICLE_CHAOS_WORKER"
	envWorkerID    = "CHRONICLE_CHAOS_WORKER_ID"
	envWakePrefix  = "CHRONICLE_CHAOS_WAKE_PREFIX"
	envLease       = "CHRONICLE_CHAOS_LEASE"
	envMaintenance = "CHRONICLE_CHAOS_MAINTENANCE"
	envConcurrency = "CHRONICLE_CHAOS_CONCURRENCY"
	envHeartbeat   = "CHRONICLE_CHAOS_HEARTBEAT"
)

// startWorker starts a worker process.
func (e *env) startWorker(o workerOpts) (*proc, error) {
	if o.Lease <= 0 {
		o.Lease = 2 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	db := firstNonEmpty(o.DatabaseURL, e.url)
	nurl := firstNonEmpty(o.NATSURL, e.cfg.NATSURL)
	cmd := e.cfg.Command()
	cmd.Env = append(os.Environ(), envWorker+"=1", "DATABASE_URL="+db, "NATS_URL="+nurl, envWorkerID+"="+o.ID,
		envWakePrefix+"="+e.prefix, envLease+"="+o.Lease.String(), envMaintenance+"="+fmt.Sprint(o.Maintenance),
		envConcurrency+"="+fmt.Sprint(o.Concurrency), envHeartbeat+"="+o.Heartbeat.String())
	p := &proc{id: o.ID, cmd: cmd, out: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker process %s: %w", o.ID, err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p, nil
}

// kill is SIGKILL: no deferred code, no graceful shutdown, no released
// lease. It waits for the process to be gone.
func (p *proc) kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGCONT) // a stopped process dies as well, but be explicit
		_ = p.cmd.Process.Kill()
	})
	<-p.exited
}

func (p *proc) signal(s syscall.Signal) error { return p.cmd.Process.Signal(s) }

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// enqueueEffects enqueues n chaos.effect jobs, one idempotency key each.
func (e *env) enqueueEffects(ctx context.Context, n, workMS int, tag string) ([]eventlog.ID, error) {
	reqs := make([]sdk.JobRequest, n)
	for i := range reqs {
		reqs[i] = sdk.JobRequest{Type: effectJob, Payload: effectPayload{Key: fmt.Sprintf("payment:%s-%d:capture", tag, i), WorkMS: workMS}}
	}
	res, err := e.client.EnqueueMany(ctx, reqs)
	if err != nil {
		return nil, err
	}
	ids := make([]eventlog.ID, len(res))
	for i, r := range res {
		ids[i] = r.ID
	}
	return ids, nil
}

// count runs a counting query.
func (e *env) count(ctx context.Context, sql string, args ...any) (int, error) {
	var n int
	err := e.pool.QueryRow(ctx, sql, args...).Scan(&n)
	return n, err
}

// waitSettled waits until every job has finished (or the settle deadline).
func (e *env) waitSettled(ctx context.Context) error {
	deadline := time.Now().Add(e.cfg.Settle)
	for {
		n, err := e.count(ctx, `SELECT count(*) FROM executions WHERE kind = 'job' AND finished_at IS NULL AND id <> ALL($1::uuid[])`, e.excluded())
		if err == nil && n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return nil // check() counts what is missing
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// check fills the figures every scenario shares: lost jobs (committed but
// not succeeded), duplicate successes, duplicate effects and verify.
func (e *env) check(ctx context.Context, r *Result, enqueued int) error {
	succeeded, err := e.count(ctx, `SELECT count(*) FROM executions WHERE kind = 'job' AND status = $1 AND id <> ALL($2::uuid[])`, engine.StatusSucceeded, e.excluded())
	if err != nil {
		return err
	}
	committed, err := e.count(ctx, `SELECT count(*) FROM executions WHERE kind = 'job' AND id <> ALL($1::uuid[])`, e.excluded())
	if err != nil {
		return err
	}
	r.Lost = committed - succeeded
	if committed < enqueued {
		r.Lost += enqueued - committed
	}
	if r.Lost > 0 {
		rows, _ := e.pool.Query(ctx, `SELECT status, count(*) FROM executions WHERE kind = 'job' AND status <> $1 AND id <> ALL($2::uuid[]) GROUP BY 1`, engine.StatusSucceeded, e.excluded())
		var parts []string
		for rows.Next() {
			var s string
			var n int
			_ = rows.Scan(&s, &n)
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
		rows.Close()
		r.violate("%d of %d jobs did not succeed (%s; %d committed)", r.Lost, enqueued, strings.Join(parts, ", "), committed)
	}
	if r.DuplicateSuccesses, err = e.count(ctx, `SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM events WHERE type = $1 GROUP BY execution_id) s`, engine.EventAttemptSucceeded); err != nil {
		return err
	}
	if r.DuplicateSuccesses > 0 {
		r.violate("%d duplicate AttemptSucceeded events", r.DuplicateSuccesses)
	}
	if err := e.checkLedger(ctx, r); err != nil {
		return err
	}
	rep, err := e.client.Engine().Verify(ctx, nil)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if rep.OK() {
		r.Verify = fmt.Sprintf("OK (%d executions, %d events)", rep.Executions, rep.Events)
		return nil
	}
	var ps, unexpected []string
	for _, p := range rep.Problems {
		ps = append(ps, p.String())
		if !slices.Contains(e.exclude, p.ID) {
			unexpected = append(unexpected, p.String())
		}
	}
	r.Verify = fmt.Sprintf("%d problems (%d executions, %d events): %s", len(ps), rep.Executions, rep.Events, strings.Join(ps, "; "))
	if len(unexpected) > 0 {
		r.violate("verify found %d problems: %s", len(unexpected), strings.Join(unexpected, "; "))
	}
	return nil
}

// excluded returns the poisoned jobs' IDs as UUID strings, for SQL.
func (e *env) excluded() []string {
	out := make([]string, len(e.exclude))
	for i, id := range e.exclude {
		out[i] = uuidOf(id)
	}
	return out
}

// uuidOf formats a ULID as the uuid it is stored as.
func uuidOf(id eventlog.ID) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16])
}

// checkLedger classifies ledger rows beyond the first per key: a row
// written after an earlier attempt's StepCompleted for the key is a
// duplicate effect (a broken promise); one whose predecessors never got
// their step recorded fell in the documented crash window.
func (e *env) checkLedger(ctx context.Context, r *Result) error {
	rows, err := e.pool.Query(ctx, `SELECT l.key, l.job_id, l.attempt FROM chaos_ledger l
		JOIN (SELECT key FROM chaos_ledger GROUP BY key HAVING count(*) > 1) d USING (key) ORDER BY l.key, l.id`)
	if err != nil {
		return err
	}
	type row struct {
		key, job string
		attempt  int
	}
	var dups []row
	for rows.Next() {
		var x row
		if err := rows.Scan(&x.key, &x.job, &x.attempt); err != nil {
			rows.Close()
			return err
		}
		dups = append(dups, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	first := ""
	for _, x := range dups {
		if x.key != first {
			first = x.key
			continue
		}
		id, err := eventlog.ParseID(x.job)
		if err != nil {
			return err
		}
		h, err := e.client.History(ctx, id)
		if err != nil {
			return err
		}
		recordedBefore := false
		for _, ev := range h {
			if ev.Type != engine.EventStepCompleted {
				continue
			}
			var s engine.StepCompleted
			if json.Unmarshal(ev.Data, &s) == nil && s.Key == x.key && s.Attempt < x.attempt {
				recordedBefore = true
			}
		}
		if recordedBefore {
			r.DuplicateEffects++
			r.violate("key %s: attempt %d of job %s ran the effect after the step was recorded", x.key, x.attempt, x.job)
		} else {
			r.WindowEffects++
		}
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// between returns a random duration in [lo, hi).
func (e *env) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(e.rng.Int64N(int64(hi-lo)))
}
