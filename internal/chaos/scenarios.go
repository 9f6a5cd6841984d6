package chaos

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/sdk"
)

// feed enqueues batches of chaos.effect jobs until ctx ends or stop
// closes, and returns how many it enqueued.
func (e *env) feed(ctx context.Context, until time.Time, batch, workMS int, every time.Duration, tag string) (int, error) {
	n := 0
	for i := 0; time.Now().Before(until); i++ {
		ids, err := e.enqueueEffects(ctx, batch, workMS, fmt.Sprintf("%s-%d", tag, i))
		if err != nil {
			return n, err
		}
		n += len(ids)
		if err := sleep(ctx, every); err != nil {
			return n, err
		}
	}
	return n, nil
}

// runKill9: worker processes running a steady load are SIGKILLed at random
// moments and replaced. Every job must succeed exactly once and each
// idempotency key's effect must happen once.
func runKill9(ctx context.Context, e *env, r *Result) error {
	const workers = 3
	gen := 0
	start := func() (*proc, error) {
		gen++
		return e.startWorker(workerOpts{ID: fmt.Sprintf("kill9-%d", gen), Lease: time.Second, Maintenance: true})
	}
	procs := make([]*proc, workers)
	for i := range procs {
		p, err := start()
		if err != nil {
			return err
		}
		procs[i] = p
	}
	until := time.Now().Add(e.cfg.Duration)
	fed := make(chan error, 1)
	go func() {
		n, err := e.feed(ctx, until, 10, 200, 150*time.Millisecond, "kill9")
		r.Operations = n
		fed <- err
	}()
	for time.Now().Before(until) {
		if err := sleep(ctx, e.between(100*time.Millisecond, 500*time.Millisecond)); err != nil {
			return err
		}
		i := e.rng.IntN(workers)
		procs[i].kill()
		r.Faults++
		p, err := start()
		if err != nil {
			return err
		}
		procs[i] = p
	}
	if err := <-fed; err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	if err := e.waitSettled(ctx); err != nil {
		return err
	}
	r.note("%d kills across %d worker processes", r.Faults, gen)
	return e.check(ctx, r, r.Operations)
}

// runFencing: a worker holding a job is SIGSTOPped past its lease; another
// takes the job over and finishes it; the first is resumed. Its attempt
// must write nothing, and its handler's context must be canceled.
func runFencing(ctx context.Context, e *env, r *Result) error {
	until := time.Now().Add(e.cfg.Duration)
	for round := 0; round == 0 || time.Now().Before(until); round++ {
		if err := fencingRound(ctx, e, r, round); err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
	}
	return e.check(ctx, r, r.Operations)
}

func fencingRound(ctx context.Context, e *env, r *Result, round int) error {
	victimID := fmt.Sprintf("stale-%d", round)
	key := fmt.Sprintf("payment:fence-%d:capture", round)
	res, err := e.client.Enqueue(ctx, effectJob, effectPayload{Key: key, HoldWorker: victimID})
	if err != nil {
		return err
	}
	r.Operations++
	victim, err := e.startWorker(workerOpts{ID: victimID, Lease: time.Second})
	if err != nil {
		return err
	}
	defer victim.kill()
	job := res.ID.String()
	if err := e.poll(ctx, "the victim to hold the job", 20*time.Second, `SELECT count(*) FROM chaos_marks WHERE job_id = $1 AND mark = 'holding'`, job); err != nil {
		return fmt.Errorf("%w\nvictim output:\n%s", err, victim.out.tail(2000))
	}
	var attempt int
	if err := e.pool.QueryRow(ctx, `SELECT attempt FROM chaos_marks WHERE job_id = $1 AND mark = 'holding'`, job).Scan(&attempt); err != nil {
		return err
	}
	if err := victim.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	r.Faults++
	survivor, err := e.startWorker(workerOpts{ID: fmt.Sprintf("survivor-%d", round), Lease: time.Second, Maintenance: true})
	if err != nil {
		return err
	}
	defer survivor.kill()
	if err := e.poll(ctx, "the survivor to finish the job", 20*time.Second, `SELECT count(*) FROM executions WHERE status = $2 AND id = (SELECT execution_id FROM events WHERE data->>'worker_id' = $1 LIMIT 1)`, survivor.id, engine.StatusSucceeded); err != nil {
		return err
	}
	if err := victim.signal(syscall.SIGCONT); err != nil {
		return err
	}
	if err := e.poll(ctx, "the resumed victim to try its stale effect", 20*time.Second, `SELECT count(*) FROM chaos_marks WHERE job_id = $1 AND mark = 'stale effect'`, job); err != nil {
		return fmt.Errorf("%w\nvictim output:\n%s", err, victim.out.tail(2000))
	}
	stale, err := e.count(ctx, `SELECT count(*) FROM events WHERE type IN ('StepCompleted', 'AttemptSucceeded', 'AttemptFailed') AND (data->>'attempt')::int = $1
		AND execution_id = (SELECT execution_id FROM events WHERE data->>'worker_id' = $2 LIMIT 1)`, attempt, victimID)
	if err != nil {
		return err
	}
	r.StaleWrites += stale
	if stale > 0 {
		r.violate("round %d: the stale attempt %d wrote %d events after losing its lease", round, attempt, stale)
	}
	var cause string
	if err := e.pool.QueryRow(ctx, `SELECT coalesce(max(detail), '') FROM chaos_marks WHERE job_id = $1 AND attempt = $2 AND mark = 'canceled'`, job, attempt).Scan(&cause); err != nil {
		return err
	}
	if !strings.Contains(cause, sdk.ErrLeaseLost.Error()) {
		r.violate("round %d: the stale handler's context was not canceled with ErrLeaseLost (cause %q)", round, cause)
	}
	if round == 0 {
		r.note("stale handler's context cause: %s", cause)
	}
	return nil
}

// poll waits until a counting query returns at least 1.
func (e *env) poll(ctx context.Context, what string, timeout time.Duration, sql string, args ...any) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := e.count(ctx, sql, args...)
		if err == nil && n > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s (last error: %v)", timeout, what, err)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// runPGCut: workers reach PostgreSQL through a proxy that cuts every
// connection at random moments, refuses connections for a while (the
// server restarting), and drops connections right after COMMIT is sent
// (the ambiguous commit). Nothing may be lost or doubled, and after the
// last fault the workers finish a fresh batch within 30s without restart.
func runPGCut(ctx context.Context, e *env, r *Result) error {
	upstream, err := upstreamOf(e.url)
	if err != nil {
		return err
	}
	px, err := startProxy(upstream, e.cfg.Seed)
	if err != nil {
		return err
	}
	defer px.close()
	viaURL, err := px.via(e.url)
	if err != nil {
		return err
	}
	px.setCommitDrop(0.05)
	for i := range 2 {
		if _, err := e.startWorker(workerOpts{ID: fmt.Sprintf("pgcut-%d", i), DatabaseURL: viaURL, Lease: 2 * time.Second, Maintenance: true}); err != nil {
			return err
		}
	}
	until := time.Now().Add(e.cfg.Duration)
	fed := make(chan error, 1)
	go func() {
		n, err := e.feed(ctx, until, 10, 50, 100*time.Millisecond, "pgcut")
		r.Operations = n
		fed <- err
	}()
	outages := 0
	for time.Now().Before(until) {
		if err := sleep(ctx, e.between(300*time.Millisecond, time.Second)); err != nil {
			return err
		}
		px.cut()
		r.Faults++
		if e.rng.IntN(3) == 0 { // a restart: down for a while
			outages++
			px.setRefuse(true)
			_ = sleep(ctx, e.between(200*time.Millisecond, 1500*time.Millisecond))
			px.setRefuse(false)
		}
	}
	px.setCommitDrop(0)
	if err := <-fed; err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	r.Faults += int(px.commitDrops.Load())
	// Recovery: a fresh batch after the last fault, timed.
	restored := time.Now()
	ids, err := e.enqueueEffects(ctx, 20, 0, "pgcut-probe")
	if err != nil {
		return err
	}
	r.Operations += len(ids)
	for _, id := range ids {
		for {
			j, err := e.client.Job(ctx, id)
			if err == nil && j.Status == sdk.StatusSucceeded {
				break
			}
			if time.Since(restored) > 30*time.Second {
				r.violate("workers did not finish a fresh batch within 30s of the database coming back")
				break
			}
			_ = sleep(ctx, 20*time.Millisecond)
		}
	}
	r.note("%d connection cuts (%d with the database refusing connections), %d connections dropped right after COMMIT; fresh batch done %s after the last fault",
		px.cuts.Load(), outages, px.commitDrops.Load(), time.Since(restored).Round(time.Millisecond))
	if err := e.waitSettled(ctx); err != nil {
		return err
	}
	return e.check(ctx, r, r.Operations)
}

// runNATS: one worker's NATS is an address where nothing listens, the
// other's (started halfway) is real and flooded with duplicated wakeups
// and wakeups for queues that do not exist. Every job runs once, none is lost,
// and the deaf worker finds work by polling.
func runNATS(ctx context.Context, e *env, r *Result) error {
	if _, err := e.startWorker(workerOpts{ID: "nats-deaf", NATSURL: "nats://127.0.0.1:1", Maintenance: true}); err != nil {
		return err
	}
	nc, err := nats.Connect(e.cfg.NATSURL)
	if err != nil {
		return fmt.Errorf("connect to NATS at %s (set NATS_URL): %w", e.cfg.NATSURL, err)
	}
	defer nc.Close()
	until := time.Now().Add(e.cfg.Duration)
	fed := make(chan error, 1)
	go func() {
		n, err := e.feed(ctx, until, 5, 20, 100*time.Millisecond, "nats")
		r.Operations = n
		fed <- err
	}()
	// The first half: only the worker without NATS, which must poll.
	flooded := false
	half := time.Now().Add(e.cfg.Duration / 2)
	for time.Now().Before(until) {
		if !flooded && time.Now().After(half) {
			if _, err := e.startWorker(workerOpts{ID: "nats-flooded"}); err != nil {
				return err
			}
			flooded = true
		}
		for range 1 + e.rng.IntN(5) { // duplicates
			_ = nc.Publish(e.prefix+"."+sdk.DefaultQueue, nil)
			r.Faults++
		}
		_ = nc.Publish(e.prefix+".nosuchqueue", []byte("stray"))
		r.Faults++
		_ = sleep(ctx, e.between(time.Millisecond, 20*time.Millisecond))
	}
	if err := <-fed; err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	if err := e.waitSettled(ctx); err != nil {
		return err
	}
	runs, err := e.count(ctx, `SELECT count(*) FROM chaos_runs`)
	if err != nil {
		return err
	}
	jobs, err := e.count(ctx, `SELECT count(DISTINCT job_id) FROM chaos_runs`)
	if err != nil {
		return err
	}
	r.ExtraExecutions = runs - jobs
	if r.ExtraExecutions > 0 {
		r.violate("%d handler runs beyond one per job", r.ExtraExecutions)
	}
	deaf, err := e.count(ctx, `SELECT count(*) FROM chaos_runs WHERE worker_id = 'nats-deaf'`)
	if err != nil {
		return err
	}
	var p99 float64
	if err := e.pool.QueryRow(ctx, `SELECT coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at)), 0) FROM executions WHERE kind = 'job'`).Scan(&p99); err != nil {
		return err
	}
	r.note("the worker without NATS ran %d of %d jobs by polling; p99 enqueue-to-finish %.0fms (poll interval 100ms)", deaf, jobs, p99*1000)
	if p99 > 2 {
		r.violate("p99 enqueue-to-finish %.2fs; want it bounded by the poll interval (100ms) plus the work", p99)
	}
	return e.check(ctx, r, r.Operations)
}
