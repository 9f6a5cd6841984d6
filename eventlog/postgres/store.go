package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// GetExecution returns one execution's projection row.
func (s *Store) GetExecution(ctx context.Context, id eventlog.ID) (eventlog.Execution, error) {
	x, err := scanExecution(s.pool.QueryRow(ctx, `SELECT `+executionColumns+` FROM executions e WHERE e.id = $1`, [16]byte(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		return x, fmt.Errorf("execution %s: %w", id, eventlog.ErrNotFound)
	}
	if err != nil {
		return x, fmt.Errorf("get execution %s: %w", id, err)
	}
	return x, nil
}

const eventColumns = `execution_id, seq, type, data, recorded_at, prev_hash, hash`

// History returns an execution's events in order.
func (s *Store) History(ctx context.Context, id eventlog.ID) ([]eventlog.Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events WHERE execution_id = $1 ORDER BY seq`, [16]byte(id))
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", id, err)
	}
	events, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", id, err)
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("history of %s: %w", id, eventlog.ErrNotFound)
	}
	return events, nil
}

// ListExecutions returns executions matching p in ID order.
func (s *Store) ListExecutions(ctx context.Context, p eventlog.ListParams) ([]eventlog.Execution, error) {
	if p.Limit <= 0 {
		p.Limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT `+executionColumns+` FROM executions e
		WHERE e.id > $1
		  AND (cardinality($2::text[]) = 0 OR e.status = ANY($2))
		  AND (cardinality($3::text[]) = 0 OR e.type = ANY($3))
		  AND ($4 = '' OR e.queue = $4)
		  AND ($6 = '' OR e.kind = $6)
		ORDER BY e.id LIMIT $5`, [16]byte(p.After), nonNil(p.Statuses), nonNil(p.Types), p.Queue, p.Limit, p.Kind)
	if err != nil {
		return nil, fmt.Errorf("list executions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventlog.Execution, error) { return scanExecution(r) })
	if err != nil {
		return nil, fmt.Errorf("list executions: %w", err)
	}
	return out, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// CountExecutions counts executions by queue, type and status.
func (s *Store) CountExecutions(ctx context.Context) ([]eventlog.QueueCount, error) {
	rows, err := s.pool.Query(ctx, `SELECT queue, type, status, count(*) FROM executions GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`)
	if err != nil {
		return nil, fmt.Errorf("count executions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventlog.QueueCount, error) {
		var c eventlog.QueueCount
		err := r.Scan(&c.Queue, &c.Type, &c.Status, &c.Count)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("count executions: %w", err)
	}
	return out, nil
}

const extendSQL = `
WITH locked AS (
	SELECT t.execution_id, t.key
	FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[]) AS r(execution_id, key, attempt, worker)
	JOIN tasks t ON t.execution_id = r.execution_id AND t.key = r.key
	WHERE t.execution_id = ANY($1) AND t.attempt = r.attempt AND t.leased_by = r.worker AND t.lease_expires_at > now()
	ORDER BY t.execution_id, t.key
	FOR UPDATE OF t
)
UPDATE tasks t SET lease_expires_at = now() + make_interval(secs => $5)
FROM locked l WHERE t.execution_id = l.execution_id AND t.key = l.key
RETURNING t.execution_id, t.key`

// ExtendLeases renews held leases and reports the lost ones.
func (s *Store) ExtendLeases(ctx context.Context, leases []eventlog.Lease, d time.Duration) ([]eventlog.Lease, error) {
	if len(leases) == 0 {
		return nil, nil
	}
	ids, keys, attempts, workers := leaseColumns(leases)
	rows, err := s.pool.Query(ctx, extendSQL, ids, keys, attempts, workers, d.Seconds())
	if err != nil {
		return nil, fmt.Errorf("extend leases: %w", err)
	}
	defer rows.Close()
	kept := make(map[eventlog.TaskRef]bool, len(leases))
	for rows.Next() {
		var id [16]byte
		var key string
		if err := rows.Scan(&id, &key); err != nil {
			return nil, fmt.Errorf("extend leases: %w", err)
		}
		kept[eventlog.TaskRef{ExecutionID: id, Key: key}] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("extend leases: %w", err)
	}
	var lost []eventlog.Lease
	for _, l := range leases {
		if !kept[eventlog.TaskRef{ExecutionID: l.ExecutionID, Key: l.Key}] {
			lost = append(lost, l)
		}
	}
	return lost, nil
}

// AcquireLeadership takes or renews a leader lease.
func (s *Store) AcquireLeadership(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	var got string
	err := s.pool.QueryRow(ctx, `
		INSERT INTO leaders (name, holder, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))
		ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
		WHERE leaders.holder = EXCLUDED.holder OR leaders.expires_at < now()
		RETURNING holder`, name, holder, ttl.Seconds()).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("acquire leadership of %s: %w", name, err)
	}
	return got == holder, nil
}

// ReleaseLeadership gives up a leader lease.
func (s *Store) ReleaseLeadership(ctx context.Context, name, holder string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM leaders WHERE name = $1 AND holder = $2`, name, holder)
	return err
}

// DueQueues returns queues with tasks that became due after since.
func (s *Store) DueQueues(ctx context.Context, since time.Time) ([]string, time.Time, error) {
	var queues []string
	var now time.Time
	err := s.pool.QueryRow(ctx, `
		SELECT coalesce(array_agg(DISTINCT queue), '{}'), now() FROM tasks
		WHERE lease_expires_at IS NULL AND run_at > $1 AND run_at <= now()`, since).Scan(&queues, &now)
	if err != nil {
		return nil, now, fmt.Errorf("find due queues: %w", err)
	}
	return queues, now, nil
}
