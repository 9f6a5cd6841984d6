package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// Tx is one transaction's view of the store. Row locks are always taken in
// execution-ID order (executions before their tasks), and claims skip locked
// rows instead of waiting, so concurrent operations cannot deadlock.
type Tx struct {
	q querier
}

var _ eventlog.Tx = (*Tx)(nil)

// Now returns the transaction's database time.
func (tx *Tx) Now(ctx context.Context) (time.Time, error) {
	var now time.Time
	err := tx.q.QueryRow(ctx, `SELECT now()`).Scan(&now)
	return now, err
}

// LockExecutions loads and row-locks executions in ID order. Lock their
// tasks first (LockTasks).
func (tx *Tx) LockExecutions(ctx context.Context, ids []eventlog.ID) ([]eventlog.Execution, error) {
	rows, err := tx.q.Query(ctx, `SELECT `+executionColumns+`
		FROM executions e WHERE e.id = ANY($1) ORDER BY e.id FOR UPDATE`, uuids(ids))
	if err != nil {
		return nil, fmt.Errorf("lock executions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventlog.Execution, error) { return scanExecution(r) })
	if err != nil {
		return nil, fmt.Errorf("lock executions: %w", err)
	}
	return out, nil
}

// The task row is the lock of an execution that has tasks: every operation
// that changes such an execution locks its tasks first (claims and lease
// expiry skip locked ones instead of waiting), then reads the execution in
// a later statement, whose fresh snapshot sees every change committed by
// the previous holder of the lock. Taking locks in that one order is what
// keeps claims, completions, heartbeats and operator commands free of
// deadlocks.

const leaseSQL = `
WITH picked AS (
	SELECT ctid FROM tasks
	WHERE queue = $1 AND lease_expires_at IS NULL AND run_at <= now()
	ORDER BY priority, run_at
	LIMIT $2
	FOR UPDATE SKIP LOCKED
)
UPDATE tasks t
SET attempt = t.attempt + 1, leased_by = $3, lease_expires_at = now() + make_interval(secs => $4)
WHERE t.ctid = ANY(ARRAY(SELECT ctid FROM picked))
RETURNING ` + taskColumns + `, now()`

// LeaseTasks claims ready tasks, one statement per queue, then reads their
// executions.
func (tx *Tx) LeaseTasks(ctx context.Context, p eventlog.LeaseParams) ([]eventlog.Leased, time.Time, error) {
	var tasks []eventlog.Task
	var now time.Time
	for _, q := range p.Queues {
		if len(tasks) >= p.Limit {
			break
		}
		rows, err := tx.q.Query(ctx, leaseSQL, q, p.Limit-len(tasks), p.WorkerID, p.Duration.Seconds())
		if err != nil {
			return nil, now, fmt.Errorf("lease tasks of queue %s: %w", q, err)
		}
		got, at, err := scanTasks(rows)
		if err != nil {
			return nil, now, fmt.Errorf("lease tasks of queue %s: %w", q, err)
		}
		tasks, now = append(tasks, got...), at
	}
	return tx.withExecutions(ctx, tasks, now)
}

// withExecutions pairs locked tasks with their executions' rows.
func (tx *Tx) withExecutions(ctx context.Context, tasks []eventlog.Task, now time.Time) ([]eventlog.Leased, time.Time, error) {
	if len(tasks) == 0 {
		return nil, now, nil
	}
	ids := make([][16]byte, len(tasks))
	for i, t := range tasks {
		ids[i] = t.ExecutionID
	}
	rows, err := tx.q.Query(ctx, `SELECT `+executionColumns+` FROM executions e WHERE e.id = ANY($1)`, ids)
	if err != nil {
		return nil, now, fmt.Errorf("read executions of %d tasks: %w", len(tasks), err)
	}
	execs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventlog.Execution, error) { return scanExecution(r) })
	if err != nil {
		return nil, now, fmt.Errorf("read executions of %d tasks: %w", len(tasks), err)
	}
	byID := make(map[eventlog.ID]int, len(execs))
	for i, x := range execs {
		byID[x.ID] = i
	}
	out := make([]eventlog.Leased, 0, len(tasks))
	for _, t := range tasks {
		l := eventlog.Leased{Task: t}
		if i, ok := byID[t.ExecutionID]; ok {
			l.Execution = execs[i]
		} else {
			l.Execution.ID = t.ExecutionID // a task without its execution: the engine reports it
		}
		out = append(out, l)
	}
	return out, now, nil
}

const lockLeasesSQL = `
SELECT ` + taskColumns + `, now()
FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[]) AS r(execution_id, key, attempt, worker)
JOIN tasks t ON t.execution_id = r.execution_id AND t.key = r.key
WHERE t.execution_id = ANY($1) AND t.attempt = r.attempt AND t.leased_by = r.worker AND t.lease_expires_at > now()
ORDER BY t.execution_id, t.key
FOR UPDATE OF t`

// LockLeases locks the tasks whose leases are still held.
func (tx *Tx) LockLeases(ctx context.Context, leases []eventlog.Lease) ([]eventlog.Leased, time.Time, error) {
	ids, keys, attempts, workers := leaseColumns(leases)
	rows, err := tx.q.Query(ctx, lockLeasesSQL, ids, keys, attempts, workers)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("lock leases: %w", err)
	}
	tasks, now, err := scanTasks(rows)
	if err != nil {
		return nil, now, fmt.Errorf("lock leases: %w", err)
	}
	if len(tasks) == 0 {
		// No row means no now() either; the caller still needs database time.
		now, err = tx.Now(ctx)
		return nil, now, err
	}
	return tx.withExecutions(ctx, tasks, now)
}

func leaseColumns(leases []eventlog.Lease) ([][16]byte, []string, []int32, []string) {
	ids := make([][16]byte, len(leases))
	keys := make([]string, len(leases))
	attempts := make([]int32, len(leases))
	workers := make([]string, len(leases))
	for i, l := range leases {
		ids[i], keys[i], attempts[i], workers[i] = l.ExecutionID, l.Key, int32(l.Attempt), l.WorkerID
	}
	return ids, keys, attempts, workers
}

const expiredSQL = `
SELECT ` + taskColumns + `, now()
FROM tasks t
WHERE t.lease_expires_at < now()
ORDER BY t.lease_expires_at
LIMIT $1
FOR UPDATE SKIP LOCKED`

// LockExpiredLeases locks tasks whose lease has expired.
func (tx *Tx) LockExpiredLeases(ctx context.Context, limit int) ([]eventlog.Leased, time.Time, error) {
	rows, err := tx.q.Query(ctx, expiredSQL, limit)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("lock expired leases: %w", err)
	}
	tasks, now, err := scanTasks(rows)
	if err != nil {
		return nil, now, fmt.Errorf("lock expired leases: %w", err)
	}
	return tx.withExecutions(ctx, tasks, now)
}

// LockTasks locks the tasks of executions, in ID order, waiting for other
// holders.
func (tx *Tx) LockTasks(ctx context.Context, ids []eventlog.ID) error {
	_, err := tx.q.Exec(ctx, `SELECT 1 FROM tasks WHERE execution_id = ANY($1) ORDER BY execution_id, key FOR UPDATE`, uuids(ids))
	if err != nil {
		return fmt.Errorf("lock tasks: %w", err)
	}
	return nil
}

// ClaimEnqueueKey reserves an enqueue idempotency key.
func (tx *Tx) ClaimEnqueueKey(ctx context.Context, key string, id eventlog.ID, expiresAt time.Time) (eventlog.ID, bool, error) {
	var got [16]byte
	err := tx.q.QueryRow(ctx, `
		INSERT INTO enqueue_keys (key, execution_id, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET execution_id = EXCLUDED.execution_id, expires_at = EXCLUDED.expires_at
		WHERE enqueue_keys.expires_at <= now()
		RETURNING execution_id`, key, [16]byte(id), expiresAt).Scan(&got)
	if err == nil {
		return got, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return eventlog.ID{}, false, fmt.Errorf("claim enqueue key %q: %w", key, err)
	}
	if err := tx.q.QueryRow(ctx, `SELECT execution_id FROM enqueue_keys WHERE key = $1`, key).Scan(&got); err != nil {
		return eventlog.ID{}, false, fmt.Errorf("read enqueue key %q: %w", key, err)
	}
	return got, false, nil
}

const insertEventsSQL = `
INSERT INTO events (execution_id, seq, type, data, recorded_at, prev_hash, hash)
SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::bytea[], $7::bytea[])`

const insertExecutionsSQL = `
INSERT INTO executions (id, kind, type, queue, priority, status, payload, attempt, budget_start,
	max_attempts, retry_policy, run_at, last_error, idempotency_key, created_at, updated_at,
	finished_at, last_seq, last_hash)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::smallint[], $6::text[],
	$7::jsonb[], $8::int[], $9::int[], $10::int[], $11::jsonb[], $12::timestamptz[], $13::text[],
	$14::text[], $15::timestamptz[], $16::timestamptz[], $17::timestamptz[], $18::bigint[], $19::bytea[])`

const updateExecutionsSQL = `
UPDATE executions e SET status = u.status, attempt = u.attempt, budget_start = u.budget_start,
	run_at = u.run_at, last_error = u.last_error, updated_at = u.updated_at,
	finished_at = u.finished_at, last_seq = u.last_seq, last_hash = u.last_hash
FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[], $5::timestamptz[], $6::text[],
	$7::timestamptz[], $8::timestamptz[], $9::bigint[], $10::bytea[])
	AS u(id, status, attempt, budget_start, run_at, last_error, updated_at, finished_at, last_seq, last_hash)
WHERE e.id = ANY($1) AND e.id = u.id`

const upsertTasksSQL = `
INSERT INTO tasks (execution_id, key, queue, priority, run_at, attempt, leased_by, lease_expires_at)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::smallint[], $5::timestamptz[], $6::int[], $7::text[], $8::timestamptz[])
ON CONFLICT (execution_id, key) DO UPDATE SET
	queue = EXCLUDED.queue, priority = EXCLUDED.priority, run_at = EXCLUDED.run_at,
	attempt = EXCLUDED.attempt, leased_by = EXCLUDED.leased_by, lease_expires_at = EXCLUDED.lease_expires_at`

const deleteTasksSQL = `
DELETE FROM tasks t USING unnest($1::uuid[], $2::text[]) AS r(execution_id, key)
WHERE t.execution_id = ANY($1) AND t.execution_id = r.execution_id AND t.key = r.key`

// Apply writes events and projection rows in one round trip.
func (tx *Tx) Apply(ctx context.Context, c eventlog.Changes) error {
	if c.Empty() {
		return nil
	}
	var b pgx.Batch
	if n := len(c.Events); n > 0 {
		ids := make([][16]byte, n)
		seqs := make([]int64, n)
		types := make([]string, n)
		data := make([]string, n)
		at := make([]time.Time, n)
		prev := make([][]byte, n)
		hash := make([][]byte, n)
		for i, e := range c.Events {
			ids[i], seqs[i], types[i], data[i], at[i], prev[i], hash[i] = e.ExecutionID, e.Seq, e.Type, string(e.Data), e.RecordedAt, e.PrevHash, e.Hash
		}
		b.Queue(insertEventsSQL, ids, seqs, types, data, at, prev, hash)
	}
	if n := len(c.NewExecutions); n > 0 {
		ids := make([][16]byte, n)
		kind, typ, queue, status, lastErr, key := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		prio, attempt, budget, maxAtt := make([]int16, n), make([]int32, n), make([]int32, n), make([]int32, n)
		payload, policy := make([]string, n), make([]string, n)
		runAt, created, updated := make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		finished := make([]*time.Time, n)
		lastSeq := make([]int64, n)
		lastHash := make([][]byte, n)
		for i, x := range c.NewExecutions {
			ids[i], kind[i], typ[i], queue[i], prio[i], status[i] = x.ID, x.Kind, x.Type, x.Queue, int16(x.Priority), x.Status
			payload[i], attempt[i], budget[i], maxAtt[i], policy[i] = string(x.Payload), int32(x.Attempt), int32(x.BudgetStart), int32(x.MaxAttempts), string(x.RetryPolicy)
			runAt[i], lastErr[i], key[i], created[i], updated[i], finished[i] = x.RunAt, x.LastError, x.IdempotencyKey, x.CreatedAt, x.UpdatedAt, x.FinishedAt
			lastSeq[i], lastHash[i] = x.LastSeq, x.LastHash
		}
		b.Queue(insertExecutionsSQL, ids, kind, typ, queue, prio, status, payload, attempt, budget, maxAtt, policy, runAt, lastErr, key, created, updated, finished, lastSeq, lastHash)
	}
	if n := len(c.Executions); n > 0 {
		ids := make([][16]byte, n)
		status, lastErr := make([]string, n), make([]string, n)
		attempt, budget := make([]int32, n), make([]int32, n)
		runAt, updated := make([]time.Time, n), make([]time.Time, n)
		finished := make([]*time.Time, n)
		lastSeq := make([]int64, n)
		lastHash := make([][]byte, n)
		for i, x := range c.Executions {
			ids[i], status[i], attempt[i], budget[i], runAt[i] = x.ID, x.Status, int32(x.Attempt), int32(x.BudgetStart), x.RunAt
			lastErr[i], updated[i], finished[i], lastSeq[i], lastHash[i] = x.LastError, x.UpdatedAt, x.FinishedAt, x.LastSeq, x.LastHash
		}
		b.Queue(updateExecutionsSQL, ids, status, attempt, budget, runAt, lastErr, updated, finished, lastSeq, lastHash)
	}
	if n := len(c.Tasks); n > 0 {
		ids := make([][16]byte, n)
		keys, queues := make([]string, n), make([]string, n)
		prio := make([]int16, n)
		runAt := make([]time.Time, n)
		attempt := make([]int32, n)
		leasedBy := make([]*string, n)
		expires := make([]*time.Time, n)
		for i, t := range c.Tasks {
			ids[i], keys[i], queues[i], prio[i], runAt[i], attempt[i], expires[i] = t.ExecutionID, t.Key, t.Queue, int16(t.Priority), t.RunAt, int32(t.Attempt), t.LeaseExpiresAt
			if t.LeasedBy != "" {
				leasedBy[i] = &c.Tasks[i].LeasedBy
			}
		}
		b.Queue(upsertTasksSQL, ids, keys, queues, prio, runAt, attempt, leasedBy, expires)
	}
	if n := len(c.DeleteTasks); n > 0 {
		ids := make([][16]byte, n)
		keys := make([]string, n)
		for i, r := range c.DeleteTasks {
			ids[i], keys[i] = r.ExecutionID, r.Key
		}
		b.Queue(deleteTasksSQL, ids, keys)
	}
	if err := tx.q.SendBatch(ctx, &b).Close(); err != nil {
		if pgErr, ok := isUniqueViolation(err); ok && pgErr.ConstraintName == "events_pkey" {
			return conflictError(pgErr, c.Events)
		}
		return fmt.Errorf("append %d events: %w", len(c.Events), err)
	}
	return nil
}
