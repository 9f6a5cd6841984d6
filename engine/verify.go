package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// Problem is one disagreement found by Verify.
type Problem struct {
	ID      eventlog.ID
	Message string
}

func (p Problem) String() string { return fmt.Sprintf("%s: %s", p.ID, p.Message) }

// VerifyReport summarizes a verification.
type VerifyReport struct {
	Executions int
	Events     int
	Problems   []Problem
}

// OK reports whether nothing disagreed.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

// Verify folds every history, checks its hash chain and compares the result
// with the projection rows. progress, when not nil, is called after each
// execution with the running totals.
func (e *Engine) Verify(ctx context.Context, progress func(*VerifyReport)) (*VerifyReport, error) {
	r := &VerifyReport{}
	schedules := map[eventlog.ID]bool{} // schedule histories seen; see verify_schedules.go
	err := e.store.ScanHistories(ctx, func(row *eventlog.Execution, tasks []eventlog.Task, history []eventlog.Event) error {
		r.Executions++
		r.Events += len(history)
		id := idOf(row, tasks, history)
		for _, msg := range e.verifyHistory(ctx, row, tasks, history, schedules) {
			r.Problems = append(r.Problems, Problem{ID: id, Message: msg})
		}
		if progress != nil {
			progress(r)
		}
		return ctx.Err()
	})
	if err == nil {
		err = e.verifyScheduleRows(ctx, r, schedules)
	}
	return r, err
}

func idOf(row *eventlog.Execution, tasks []eventlog.Task, history []eventlog.Event) eventlog.ID {
	switch {
	case row != nil:
		return row.ID
	case len(history) > 0:
		return history[0].ExecutionID
	case len(tasks) > 0:
		return tasks[0].ExecutionID
	}
	return eventlog.ID{}
}

func verifyOne(row *eventlog.Execution, tasks []eventlog.Task, history []eventlog.Event) []string {
	if len(history) == 0 {
		return []string{"projection row without any events"}
	}
	if err := eventlog.CheckChain(history); err != nil {
		var ce *eventlog.ChainError
		if errors.As(err, &ce) {
			return []string{fmt.Sprintf("hash chain broken at event %d: %s", ce.Seq, ce.Reason)}
		}
		return []string{err.Error()}
	}
	if history[0].Type == EventWorkflowStarted {
		return verifyWorkflow(row, tasks, history)
	}
	j, err := Fold(history)
	if err != nil {
		return []string{"history does not fold: " + err.Error()}
	}
	if row == nil {
		return []string{"history without a projection row (run chronicle projections rebuild)"}
	}
	var out []string
	want := j.Row()
	diff := func(field string, got, expect any) {
		out = append(out, fmt.Sprintf("projection %s is %v, history says %v", field, got, expect))
	}
	if row.Status != want.Status {
		diff("status", row.Status, want.Status)
	}
	if row.Type != want.Type || row.Queue != want.Queue || row.Kind != want.Kind {
		diff("kind/type/queue", row.Kind+"/"+row.Type+"/"+row.Queue, want.Kind+"/"+want.Type+"/"+want.Queue)
	}
	if row.Priority != want.Priority {
		diff("priority", row.Priority, want.Priority)
	}
	if row.Attempt != want.Attempt || row.BudgetStart != want.BudgetStart || row.MaxAttempts != want.MaxAttempts {
		diff("attempt/budget_start/max_attempts", fmt.Sprint(row.Attempt, "/", row.BudgetStart, "/", row.MaxAttempts),
			fmt.Sprint(want.Attempt, "/", want.BudgetStart, "/", want.MaxAttempts))
	}
	if !row.RunAt.Equal(want.RunAt) {
		diff("run_at", row.RunAt.UTC(), want.RunAt.UTC())
	}
	if row.LastError != want.LastError {
		diff("last_error", row.LastError, want.LastError)
	}
	if row.LastSeq != want.LastSeq || !bytes.Equal(row.LastHash, want.LastHash) {
		diff("last_seq", row.LastSeq, want.LastSeq)
	}
	if !sameTime(row.FinishedAt, want.FinishedAt) {
		diff("finished_at", row.FinishedAt, want.FinishedAt)
	}
	if !equalJSON(row.Payload, want.Payload) {
		diff("payload", string(row.Payload), string(want.Payload))
	}
	out = append(out, verifyTasks(j, tasks)...)
	return out
}

func verifyTasks(j Job, tasks []eventlog.Task) []string {
	want := j.Task()
	if want == nil {
		if len(tasks) > 0 {
			return []string{fmt.Sprintf("ready queue holds a task, but the job is %s", j.Status)}
		}
		return nil
	}
	if len(tasks) != 1 {
		return []string{fmt.Sprintf("ready queue holds %d tasks, want 1 (the job is %s)", len(tasks), j.Status)}
	}
	got := tasks[0]
	var out []string
	if got.Queue != want.Queue || got.Priority != want.Priority || got.Attempt != want.Attempt || got.LeasedBy != want.LeasedBy {
		out = append(out, fmt.Sprintf("task is queue=%s priority=%d attempt=%d leased_by=%q, history says queue=%s priority=%d attempt=%d leased_by=%q",
			got.Queue, got.Priority, got.Attempt, got.LeasedBy, want.Queue, want.Priority, want.Attempt, want.LeasedBy))
	}
	if !got.RunAt.Equal(want.RunAt) {
		out = append(out, fmt.Sprintf("task run_at is %s, history says %s", got.RunAt.UTC(), want.RunAt.UTC()))
	}
	// Heartbeats extend a lease without an event, so it may only be later.
	if (got.LeaseExpiresAt == nil) != (want.LeaseExpiresAt == nil) ||
		(got.LeaseExpiresAt != nil && got.LeaseExpiresAt.Before(*want.LeaseExpiresAt)) {
		out = append(out, fmt.Sprintf("task lease expiry is %v, history says %v or later", got.LeaseExpiresAt, want.LeaseExpiresAt))
	}
	return out
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func equalJSON(a, b []byte) bool {
	ca, err1 := eventlog.Canonicalize(a)
	cb, err2 := eventlog.Canonicalize(b)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}

// RebuildProjections recreates the executions and tasks tables from the
// events, in one transaction. It returns how many executions it rebuilt.
// It refuses to rebuild from a history whose hash chain is broken.
// Leases extended by heartbeats since their claim fall back to the expiry
// recorded at the claim, so run it while workers are stopped.
func (e *Engine) RebuildProjections(ctx context.Context) (int, error) {
	n, err := e.store.RebuildProjections(ctx, func(history []eventlog.Event) (*eventlog.Execution, []eventlog.Task, error) {
		if IsScheduleHistory(history) {
			return nil, nil, nil // rebuilt by rebuildSchedules below
		}
		// A projection built from a tampered history would hide the
		// tampering; refuse, and let verify name the history.
		if err := eventlog.CheckChain(history); err != nil {
			return nil, nil, fmt.Errorf("%w; nothing was rebuilt (chronicle verify lists every broken history)", err)
		}
		if history[0].Type == EventWorkflowStarted {
			return rebuildWorkflow(history)
		}
		j, err := Fold(history)
		if err != nil {
			return nil, nil, err
		}
		row := j.Row()
		var tasks []eventlog.Task
		if t := j.Task(); t != nil {
			tasks = append(tasks, *t)
		}
		return &row, tasks, nil
	})
	if err != nil {
		return n, err
	}
	m, err := e.rebuildSchedules(ctx)
	return n + m, err
}
