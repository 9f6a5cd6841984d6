package postgres

import (
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// executionColumns lists executions' columns in the order scanExecution reads them.
const executionColumns = `e.id, e.kind, e.type, e.queue, e.priority, e.status, e.payload, e.attempt,
	e.budget_start, e.max_attempts, e.retry_policy, e.run_at, e.last_error, e.idempotency_key,
	e.created_at, e.updated_at, e.finished_at, e.last_seq, e.last_hash`

func executionDest(x *eventlog.Execution, id *[16]byte) []any {
	return []any{id, &x.Kind, &x.Type, &x.Queue, &x.Priority, &x.Status, &x.Payload, &x.Attempt,
		&x.BudgetStart, &x.MaxAttempts, &x.RetryPolicy, &x.RunAt, &x.LastError, &x.IdempotencyKey,
		&x.CreatedAt, &x.UpdatedAt, &x.FinishedAt, &x.LastSeq, &x.LastHash}
}

func scanExecution(row pgx.Row) (eventlog.Execution, error) {
	var x eventlog.Execution
	var id [16]byte
	err := row.Scan(executionDest(&x, &id)...)
	x.ID = id
	return x, err
}

const taskColumns = `t.execution_id, t.key, t.queue, t.priority, t.run_at, t.attempt, coalesce(t.leased_by, ''), t.lease_expires_at`

func taskDest(t *eventlog.Task, id *[16]byte) []any {
	return []any{id, &t.Key, &t.Queue, &t.Priority, &t.RunAt, &t.Attempt, &t.LeasedBy, &t.LeaseExpiresAt}
}

// scanTasks reads rows of taskColumns and now().
func scanTasks(rows pgx.Rows) ([]eventlog.Task, time.Time, error) {
	defer rows.Close()
	var out []eventlog.Task
	var now time.Time
	for rows.Next() {
		var t eventlog.Task
		var id [16]byte
		if err := rows.Scan(append(taskDest(&t, &id), &now)...); err != nil {
			return nil, now, err
		}
		t.ExecutionID = id
		out = append(out, t)
	}
	return out, now, rows.Err()
}

func scanEvents(rows pgx.Rows) ([]eventlog.Event, error) {
	defer rows.Close()
	var out []eventlog.Event
	for rows.Next() {
		var e eventlog.Event
		var id [16]byte
		if err := rows.Scan(&id, &e.Seq, &e.Type, &e.Data, &e.RecordedAt, &e.PrevHash, &e.Hash); err != nil {
			return nil, err
		}
		e.ExecutionID = id
		out = append(out, e)
	}
	return out, rows.Err()
}
