package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

// runPoison: one job's stored JobEnqueued event is tampered with (its hash
// no longer matches), another's payload does not decode as its handler's
// type. Every other job must run to success, the undecodable one must end
// in the dead-letter queue rather than block anything, and verify must
// name the tampered execution and nothing else.
func runPoison(ctx context.Context, e *env, r *Result) error {
	good, err := e.enqueueEffects(ctx, 30, 0, "poison")
	if err != nil {
		return err
	}
	bad, err := e.client.Enqueue(ctx, effectJob, json.RawMessage(`{"key": 5, "work_ms": "soon"}`))
	if err != nil {
		return err
	}
	tampered := good[e.rng.IntN(len(good))]
	if _, err := e.pool.Exec(ctx, `UPDATE events SET data = data || '{"payload": {"key": "payment:forged:capture"}}' WHERE execution_id = $1::uuid AND seq = 1`, uuidOf(tampered)); err != nil {
		return err
	}
	r.Operations = len(good) + 1
	r.Faults = 2
	e.exclude = []eventlog.ID{bad.ID, tampered}
	if _, err := e.startWorker(workerOpts{ID: "poison-0", Maintenance: true}); err != nil {
		return err
	}
	if err := e.waitSettled(ctx); err != nil {
		return err
	}
	j, err := e.client.Job(ctx, bad.ID)
	if err != nil {
		return err
	}
	if j.Status != sdk.StatusDeadLettered {
		r.violate("the job with an undecodable payload is %s after %d attempts; want dead_lettered after one (a decode error is permanent)", j.Status, j.Attempt)
	}
	r.note("undecodable payload: %s after %d attempt(s): %s", j.Status, j.Attempt, firstLine(j.LastError))
	if err := e.check(ctx, r, len(good)-1); err != nil {
		return err
	}
	rep, err := e.client.Engine().Verify(ctx, nil)
	if err != nil {
		return err
	}
	named := false
	for _, p := range rep.Problems {
		if p.ID == tampered {
			named = true
		}
	}
	if !named {
		r.violate("verify did not name the tampered execution %s (problems: %v)", tampered, rep.Problems)
	}
	if i := slices.IndexFunc(rep.Problems, func(p engine.Problem) bool { return p.ID != tampered }); i >= 0 {
		r.violate("verify named an execution that was not tampered with: %s", rep.Problems[i])
	}
	r.note("verify names the tampered execution %s: %s", tampered, strings.Trim(fmt.Sprint(rep.Problems), "[]"))
	return nil
}
