package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-engine/chronicle/eventlog"
)

const beatWorkerSQL = `
INSERT INTO worker_heartbeats (worker_id, host, pid, queues, version, started_at, last_seen_at, jobs_running)
VALUES ($1, $2, $3, $4, $5, now(), now(), $6)
ON CONFLICT (worker_id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid, queues = EXCLUDED.queues,
	version = EXCLUDED.version, last_seen_at = now(), jobs_running = EXCLUDED.jobs_running`

// BeatWorker inserts or refreshes a worker's heartbeat row.
func (s *Store) BeatWorker(ctx context.Context, hb eventlog.WorkerHeartbeat) error {
	_, err := s.pool.Exec(ctx, beatWorkerSQL, hb.WorkerID, hb.Host, hb.PID, nonNil(hb.Queues), hb.Version, hb.JobsRunning)
	if err != nil {
		return fmt.Errorf("heartbeat of worker %s: %w", hb.WorkerID, err)
	}
	return nil
}

// RemoveWorker deletes a worker's heartbeat row.
func (s *Store) RemoveWorker(ctx context.Context, workerID string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM worker_heartbeats WHERE worker_id = $1`, workerID); err != nil {
		return fmt.Errorf("remove heartbeat of worker %s: %w", workerID, err)
	}
	return nil
}

// ListWorkers returns every heartbeat row, oldest heartbeat first.
func (s *Store) ListWorkers(ctx context.Context) ([]eventlog.WorkerHeartbeat, time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT worker_id, host, pid, queues, version, started_at, last_seen_at, jobs_running, now()
		FROM worker_heartbeats ORDER BY last_seen_at, worker_id`)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("list worker heartbeats: %w", err)
	}
	defer rows.Close()
	var out []eventlog.WorkerHeartbeat
	var now time.Time
	for rows.Next() {
		var hb eventlog.WorkerHeartbeat
		if err := rows.Scan(&hb.WorkerID, &hb.Host, &hb.PID, &hb.Queues, &hb.Version, &hb.StartedAt, &hb.LastSeenAt, &hb.JobsRunning, &now); err != nil {
			return nil, now, fmt.Errorf("list worker heartbeats: %w", err)
		}
		out = append(out, hb)
	}
	if err := rows.Err(); err != nil {
		return nil, now, fmt.Errorf("list worker heartbeats: %w", err)
	}
	if now.IsZero() {
		if err := s.pool.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
			return nil, now, fmt.Errorf("list worker heartbeats: %w", err)
		}
	}
	return out, now, nil
}

// queueDepthsSQL counts the ready queue by state, and the executions in the
// two statuses that need attention. Both halves read only small, indexed
// sets: tasks holds unfinished work only, and executions_status_type
// serves the status filter however many finished jobs there are.
const queueDepthsSQL = `
WITH t AS (
	SELECT queue,
		count(*) FILTER (WHERE lease_expires_at IS NULL AND run_at <= now()) AS pending,
		count(*) FILTER (WHERE lease_expires_at IS NULL AND run_at > now())  AS scheduled,
		count(*) FILTER (WHERE lease_expires_at IS NOT NULL)                 AS processing
	FROM tasks GROUP BY queue
), x AS (
	SELECT queue,
		count(*) FILTER (WHERE status = 'retrying')      AS retrying,
		count(*) FILTER (WHERE status = 'dead_lettered') AS dead_lettered,
		max(updated_at) FILTER (WHERE status = 'dead_lettered') AS newest_dead_letter
	FROM executions WHERE status IN ('retrying', 'dead_lettered') GROUP BY queue
)
SELECT coalesce(t.queue, x.queue), coalesce(t.pending, 0), coalesce(t.scheduled, 0), coalesce(t.processing, 0),
	coalesce(x.retrying, 0), coalesce(x.dead_lettered, 0), x.newest_dead_letter, now()
FROM t FULL JOIN x ON x.queue = t.queue
ORDER BY 1`

// QueueDepths counts every queue's work.
func (s *Store) QueueDepths(ctx context.Context) ([]eventlog.QueueDepth, time.Time, error) {
	rows, err := s.pool.Query(ctx, queueDepthsSQL)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("count queue stats: %w", err)
	}
	defer rows.Close()
	var out []eventlog.QueueDepth
	var now time.Time
	for rows.Next() {
		var q eventlog.QueueDepth
		if err := rows.Scan(&q.Queue, &q.Pending, &q.Scheduled, &q.Processing, &q.Retrying, &q.DeadLettered, &q.NewestDeadLetterAt, &now); err != nil {
			return nil, now, fmt.Errorf("count queue stats: %w", err)
		}
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, now, fmt.Errorf("count queue stats: %w", err)
	}
	if now.IsZero() {
		if err := s.pool.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
			return nil, now, fmt.Errorf("count queue stats: %w", err)
		}
	}
	return out, now, nil
}

// firstEventFieldsSQL reads the named fields of event 1 in the order
// given, NULL where absent: an index probe per execution, and no other
// part of the event's data leaves the server.
const firstEventFieldsSQL = `
SELECT e.execution_id, ARRAY(SELECT e.data -> f FROM unnest($2::text[]) WITH ORDINALITY AS u(f, i) ORDER BY i)
FROM events e WHERE e.execution_id = ANY($1) AND e.seq = 1`

// FirstEventFields reads named fields of each execution's first event.
func (tx *Tx) FirstEventFields(ctx context.Context, ids []eventlog.ID, fields []string) (map[eventlog.ID]map[string]json.RawMessage, error) {
	out := make(map[eventlog.ID]map[string]json.RawMessage, len(ids))
	if len(ids) == 0 || len(fields) == 0 {
		return out, nil
	}
	rows, err := tx.q.Query(ctx, firstEventFieldsSQL, uuids(ids), fields)
	if err != nil {
		return nil, fmt.Errorf("read first events of %d executions: %w", len(ids), err)
	}
	var id [16]byte
	var values [][]byte
	_, err = pgx.ForEachRow(rows, []any{&id, &values}, func() error {
		if len(values) != len(fields) {
			return fmt.Errorf("event 1 of %s: %d fields read, want %d", eventlog.ID(id), len(values), len(fields))
		}
		m := make(map[string]json.RawMessage, len(fields))
		for i, v := range values {
			if v != nil {
				m[fields[i]] = json.RawMessage(v)
			}
		}
		out[id] = m
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read first events of %d executions: %w", len(ids), err)
	}
	return out, nil
}
