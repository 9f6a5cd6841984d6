package chaos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chronicle-engine/chronicle/examples/approval/approvalflow"
	"github.com/chronicle-engine/chronicle/sdk"
)

// randomOps are the operations of the random scenario, picked by the seed.
var randomOps = []string{"enqueue", "enqueue", "start", "start", "signal", "cancel", "kill", "cut", "nats-outage"}

// randomWorkflowTimeout is how long an approval workflow of the random
// scenario waits for a decision before it expires on its own.
const randomWorkflowTimeout = 2 * time.Second

// runRandom: a seeded random sequence of enqueues, approval workflow
// starts (examples/approval), signals, workflow cancels, worker SIGKILLs,
// cut database connections (the pgcut proxy) and NATS outages (a worker
// restarted pointing at a dead NATS URL). Afterwards every job has
// succeeded, every workflow has ended, no job succeeded twice, every
// idempotency key's effect happened once and verify passes. The ops are
// printed with the seed on failure.
func runRandom(ctx context.Context, e *env, r *Result) error {
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
	const workers = 2
	gen := 0
	start := func(deafNATS bool) (*proc, error) {
		gen++
		o := workerOpts{ID: fmt.Sprintf("random-%d", gen), DatabaseURL: viaURL, Lease: time.Second, Maintenance: true}
		if deafNATS {
			o.NATSURL = "nats://127.0.0.1:1"
		}
		return e.startWorker(o)
	}
	procs := make([]*proc, workers)
	for i := range procs {
		if procs[i], err = start(false); err != nil {
			return err
		}
	}
	var (
		ops       []string
		workflows []string
		enqueued  int
		signals   int
		cancels   int
	)
	until := time.Now().Add(e.cfg.Duration)
	for step := 0; time.Now().Before(until); step++ {
		op := randomOps[e.rng.IntN(len(randomOps))]
		detail := ""
		switch op {
		case "enqueue":
			ids, err := e.enqueueEffects(ctx, 5, 50, fmt.Sprintf("random-%d", step))
			if err != nil {
				// The client goes straight to the database, not through
				// the proxy: an error here is not an injected fault.
				return fmt.Errorf("enqueue: %w", err)
			}
			enqueued += len(ids)
		case "start":
			id := fmt.Sprintf("expense-%d", len(workflows))
			if _, err := e.client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: id}, approvalflow.Approval,
				approvalflow.Request{ID: id, Amount: 10 + step, Requester: "ada"}, randomWorkflowTimeout); err != nil {
				return fmt.Errorf("start workflow %s: %w", id, err)
			}
			workflows = append(workflows, id)
			detail = id
		case "signal", "cancel":
			if len(workflows) == 0 {
				continue
			}
			id := workflows[e.rng.IntN(len(workflows))]
			detail = id
			if op == "signal" {
				err = e.client.SignalWorkflow(ctx, id, "", approvalflow.SignalDecision, approvalflow.Decision{Approved: e.rng.IntN(2) == 0, Approver: "grace"})
				signals++
			} else {
				err = e.client.CancelWorkflow(ctx, id, "")
				cancels++
			}
			if err != nil && !errors.Is(err, sdk.ErrWorkflowNotRunning) {
				return fmt.Errorf("%s workflow %s: %w", op, id, err)
			}
		case "kill", "nats-outage":
			i := e.rng.IntN(workers)
			procs[i].kill()
			r.Faults++
			if procs[i], err = start(op == "nats-outage"); err != nil {
				return err
			}
			detail = procs[i].id
		case "cut":
			px.cut()
			r.Faults++
		}
		ops = append(ops, strings.TrimSpace(op+" "+detail))
		if err := sleep(ctx, e.between(20*time.Millisecond, 200*time.Millisecond)); err != nil {
			return err
		}
	}
	r.Operations = len(ops)
	// NATS back for every worker and no more faults: what is left must finish.
	for i := range procs {
		if !procs[i].alive() {
			if procs[i], err = start(false); err != nil {
				return err
			}
		}
	}
	if err := e.waitSettled(ctx); err != nil {
		return err
	}
	if err := e.waitWorkflowsEnded(ctx, r); err != nil {
		return err
	}
	r.note("%d ops (%d jobs, %d workflows, %d signals, %d cancels, %d faults) across %d worker processes", len(ops), enqueued, len(workflows), signals, cancels, r.Faults, gen)
	if err := e.check(ctx, r, enqueued); err != nil {
		return err
	}
	if !r.OK() {
		r.note("op sequence: %s", strings.Join(ops, ", "))
	}
	return nil
}

// waitWorkflowsEnded waits (up to the settle time) until every workflow
// run has ended, and reports those that did not.
func (e *env) waitWorkflowsEnded(ctx context.Context, r *Result) error {
	deadline := time.Now().Add(e.cfg.Settle)
	for {
		n, err := e.count(ctx, `SELECT count(*) FROM executions WHERE kind = 'workflow' AND finished_at IS NULL`)
		if err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			r.violate("%d workflow runs did not end within %s of the last fault (last error: %v)", n, e.cfg.Settle, err)
			break
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	rows, err := e.pool.Query(ctx, `SELECT status, count(*) FROM executions WHERE kind = 'workflow' GROUP BY 1 ORDER BY 1`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return err
		}
		parts = append(parts, fmt.Sprintf("%d %s", n, s))
	}
	r.note("workflow runs: %s", strings.Join(parts, ", "))
	return rows.Err()
}
