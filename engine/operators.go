package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// MaxBatchCommand caps how many jobs one ExecuteMany changes in one
// transaction.
const MaxBatchCommand = 500

// ExecuteMany applies one operator command (retry, resolve, cancel) to
// each of ids in one transaction, as Execute does for one: every accepted
// command is one event carrying its actor and note. The returned slices
// hold, per ID, the new state and nil, or the error that refused it (a
// *StateError when the job is no longer in a state the command applies to,
// ErrNotFound when it does not exist); refused jobs are left untouched.
func (e *Engine) ExecuteMany(ctx context.Context, ids []eventlog.ID, cmd Command) ([]Job, []error, error) {
	if len(ids) > MaxBatchCommand {
		return nil, nil, &InputError{Field: "batch", Reason: fmt.Sprintf("%d jobs in one command; split it into batches of at most %d", len(ids), MaxBatchCommand)}
	}
	jobs := make([]Job, len(ids))
	errs := make([]error, len(ids))
	var wake []string
	err := e.store.InTx(ctx, func(tx eventlog.Tx) error {
		wake = wake[:0]
		clear(errs)
		if err := tx.LockTasks(ctx, ids); err != nil {
			return err
		}
		rows, err := tx.LockExecutions(ctx, ids)
		if err != nil {
			return err
		}
		byID := make(map[eventlog.ID]eventlog.Execution, len(rows))
		for _, r := range rows {
			byID[r.ID] = r
		}
		now, err := tx.Now(ctx)
		if err != nil {
			return err
		}
		seen := make(map[eventlog.ID]bool, len(ids))
		var c eventlog.Changes
		for i, id := range ids {
			row, ok := byID[id]
			if !ok {
				errs[i] = fmt.Errorf("job %s: %w", id, eventlog.ErrNotFound)
				continue
			}
			if seen[id] {
				errs[i] = &InputError{Field: "job id", Reason: fmt.Sprintf("%s is named twice", id)}
				continue
			}
			seen[id] = true
			j, err := JobFromRow(row, nil)
			if err != nil {
				return err
			}
			decisions, err := Decide(j, cmd, e.env(now))
			if err != nil {
				errs[i] = err
				continue
			}
			var events []eventlog.Event
			if j, events, err = Record(j, decisions, now); err != nil {
				return err
			}
			addJob(&c, &j, events, true)
			jobs[i] = j
			if j.Status == StatusPending && !slices.Contains(wake, j.Queue) {
				wake = append(wake, j.Queue)
			}
		}
		return tx.Apply(ctx, c)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s %d jobs: %w", cmd.commandName(), len(ids), err)
	}
	if len(wake) > 0 {
		e.waker.Wake(wake...)
	}
	return jobs, errs, nil
}
