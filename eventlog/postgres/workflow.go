package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// LockWorkflows locks the executions, then every task of them, in ID
// order (see eventlog.WorkflowTx for why in that order), and reads their
// histories: three statements in one round trip.
func (tx *Tx) LockWorkflows(ctx context.Context, ids []eventlog.ID) (eventlog.LockedWorkflows, error) {
	var out eventlog.LockedWorkflows
	u := uuids(ids)
	var b pgx.Batch
	b.Queue(`SELECT `+executionColumns+` FROM executions e WHERE e.id = ANY($1) ORDER BY e.id FOR UPDATE`, u)
	b.Queue(`SELECT `+taskColumns+`, now() FROM tasks t WHERE t.execution_id = ANY($1) ORDER BY t.execution_id, t.key FOR UPDATE`, u)
	b.Queue(`SELECT `+eventColumns+` FROM events WHERE execution_id = ANY($1) ORDER BY execution_id, seq`, u)
	b.Queue(`SELECT now()`)
	br := tx.q.SendBatch(ctx, &b)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return out, fmt.Errorf("lock workflows: %w", err)
	}
	if out.Executions, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventlog.Execution, error) { return scanExecution(r) }); err != nil {
		return out, fmt.Errorf("lock workflows: %w", err)
	}
	if rows, err = br.Query(); err != nil {
		return out, fmt.Errorf("lock workflow tasks: %w", err)
	}
	if out.Tasks, _, err = scanTasks(rows); err != nil {
		return out, fmt.Errorf("lock workflow tasks: %w", err)
	}
	if rows, err = br.Query(); err != nil {
		return out, fmt.Errorf("read workflow histories: %w", err)
	}
	events, err := scanEvents(rows)
	if err != nil {
		return out, fmt.Errorf("read workflow histories: %w", err)
	}
	out.Histories = make(map[eventlog.ID][]eventlog.Event, len(ids))
	for _, e := range events {
		out.Histories[e.ExecutionID] = append(out.Histories[e.ExecutionID], e)
	}
	if err := br.QueryRow().Scan(&out.Now); err != nil {
		return out, fmt.Errorf("lock workflows: %w", err)
	}
	return out, br.Close()
}

// ScheduledActivities returns ActivityScheduled events with their
// activities' heartbeat details. An activity's task key is "activity:"
// and the seq of its ActivityScheduled event.
func (tx *Tx) ScheduledActivities(ctx context.Context, refs []eventlog.EventRef) ([]eventlog.ScheduledActivity, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	ids := make([][16]byte, len(refs))
	seqs := make([]int64, len(refs))
	for i, r := range refs {
		ids[i], seqs[i] = r.ExecutionID, r.Seq
	}
	rows, err := tx.q.Query(ctx, `SELECT e.execution_id, e.seq, e.type, e.data, e.recorded_at, e.prev_hash, e.hash, h.details
		FROM unnest($1::uuid[], $2::bigint[]) AS r(execution_id, seq)
		JOIN events e ON e.execution_id = r.execution_id AND e.seq = r.seq
		LEFT JOIN activity_heartbeats h ON h.execution_id = r.execution_id AND h.key = 'activity:' || r.seq
		WHERE e.execution_id = ANY($1)`, ids, seqs)
	if err != nil {
		return nil, fmt.Errorf("read %d scheduled activities: %w", len(refs), err)
	}
	defer rows.Close()
	var out []eventlog.ScheduledActivity
	for rows.Next() {
		var a eventlog.ScheduledActivity
		var id [16]byte
		if err := rows.Scan(&id, &a.Event.Seq, &a.Event.Type, &a.Event.Data, &a.Event.RecordedAt, &a.Event.PrevHash, &a.Event.Hash, &a.HeartbeatDetails); err != nil {
			return nil, fmt.Errorf("read scheduled activities: %w", err)
		}
		a.Event.ExecutionID = id
		out = append(out, a)
	}
	return out, rows.Err()
}

// ActivityHeartbeats returns recorded heartbeat details.
func (tx *Tx) ActivityHeartbeats(ctx context.Context, refs []eventlog.TaskRef) (map[eventlog.TaskRef]json.RawMessage, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	ids := make([][16]byte, len(refs))
	keys := make([]string, len(refs))
	for i, r := range refs {
		ids[i], keys[i] = r.ExecutionID, r.Key
	}
	rows, err := tx.q.Query(ctx, `SELECT h.execution_id, h.key, h.details
		FROM unnest($1::uuid[], $2::text[]) AS r(execution_id, key)
		JOIN activity_heartbeats h ON h.execution_id = r.execution_id AND h.key = r.key
		WHERE h.execution_id = ANY($1)`, ids, keys)
	if err != nil {
		return nil, fmt.Errorf("read activity heartbeats: %w", err)
	}
	defer rows.Close()
	out := map[eventlog.TaskRef]json.RawMessage{}
	for rows.Next() {
		var id [16]byte
		var key string
		var details json.RawMessage
		if err := rows.Scan(&id, &key, &details); err != nil {
			return nil, fmt.Errorf("read activity heartbeats: %w", err)
		}
		out[eventlog.TaskRef{ExecutionID: id, Key: key}] = details
	}
	return out, rows.Err()
}

// DeleteActivityHeartbeats forgets heartbeat details.
func (tx *Tx) DeleteActivityHeartbeats(ctx context.Context, refs []eventlog.TaskRef, all []eventlog.ID) error {
	if len(refs) == 0 && len(all) == 0 {
		return nil
	}
	ids := make([][16]byte, len(refs))
	keys := make([]string, len(refs))
	for i, r := range refs {
		ids[i], keys[i] = r.ExecutionID, r.Key
	}
	_, err := tx.q.Exec(ctx, `DELETE FROM activity_heartbeats h
		WHERE h.execution_id = ANY($3)
		   OR (h.execution_id = ANY($1) AND (h.execution_id, h.key) IN (SELECT * FROM unnest($1::uuid[], $2::text[])))`,
		ids, keys, uuids(all))
	if err != nil {
		return fmt.Errorf("delete activity heartbeats: %w", err)
	}
	return nil
}

// LockWorkflowID takes a transaction-scoped advisory lock on the workflow
// ID and returns its latest run.
func (tx *Tx) LockWorkflowID(ctx context.Context, workflowID string) (*eventlog.Execution, error) {
	// One round trip: the select runs after the lock is granted, with a
	// snapshot that sees every start committed before it.
	var b pgx.Batch
	b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended('chronicle.workflow_id:' || $1, 0))`, workflowID)
	b.Queue(`SELECT `+executionColumns+` FROM executions e
		WHERE e.kind = 'workflow' AND e.idempotency_key = $1 ORDER BY e.id DESC LIMIT 1`, workflowID)
	br := tx.q.SendBatch(ctx, &b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("lock workflow ID %q: %w", workflowID, err)
	}
	x, err := scanExecution(br.QueryRow())
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, br.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("find the latest run of workflow %q: %w", workflowID, err)
	}
	return &x, br.Close()
}

func latestRun(ctx context.Context, q querier, workflowID string) (eventlog.Execution, error) {
	x, err := scanExecution(q.QueryRow(ctx, `SELECT `+executionColumns+` FROM executions e
		WHERE e.kind = 'workflow' AND e.idempotency_key = $1 ORDER BY e.id DESC LIMIT 1`, workflowID))
	if errors.Is(err, pgx.ErrNoRows) {
		return x, fmt.Errorf("workflow %q: %w", workflowID, eventlog.ErrNotFound)
	}
	if err != nil {
		return x, fmt.Errorf("find the latest run of workflow %q: %w", workflowID, err)
	}
	return x, nil
}

// LatestRun returns the latest run of a workflow ID.
func (s *Store) LatestRun(ctx context.Context, workflowID string) (eventlog.Execution, error) {
	return latestRun(ctx, s.pool, workflowID)
}

// HistoryAfter returns the events after afterSeq.
func (s *Store) HistoryAfter(ctx context.Context, id eventlog.ID, afterSeq int64) ([]eventlog.Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events WHERE execution_id = $1 AND seq > $2 ORDER BY seq`, [16]byte(id), afterSeq)
	if err != nil {
		return nil, fmt.Errorf("history of %s after event %d: %w", id, afterSeq, err)
	}
	events, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("history of %s after event %d: %w", id, afterSeq, err)
	}
	return events, nil
}

const heartbeatActivitySQL = `
WITH held AS (
	UPDATE tasks t SET lease_expires_at = CASE WHEN $6::float8 > 0
		THEN least(now() + make_interval(secs => $6), $7) ELSE t.lease_expires_at END
	WHERE t.execution_id = $1 AND t.key = $2 AND t.attempt = $3 AND t.leased_by = $4 AND t.lease_expires_at > now()
	RETURNING t.execution_id, t.key
), saved AS (
	INSERT INTO activity_heartbeats (execution_id, key, details, recorded_at)
	SELECT execution_id, key, $5, now() FROM held WHERE $5::jsonb IS NOT NULL
	ON CONFLICT (execution_id, key) DO UPDATE SET details = EXCLUDED.details, recorded_at = EXCLUDED.recorded_at
)
SELECT count(*) FROM held`

// HeartbeatActivity extends an activity's lease and saves its details.
func (s *Store) HeartbeatActivity(ctx context.Context, l eventlog.Lease, details json.RawMessage, extend time.Duration, until time.Time) (bool, error) {
	var d *string
	if len(details) > 0 {
		v := string(details)
		d = &v
	}
	var n int
	err := s.pool.QueryRow(ctx, heartbeatActivitySQL, [16]byte(l.ExecutionID), l.Key, int32(l.Attempt), l.WorkerID, d, extend.Seconds(), until).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("heartbeat of activity %s/%s: %w", l.ExecutionID, l.Key, err)
	}
	return n == 1, nil
}
