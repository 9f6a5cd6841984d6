package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// scheduleColumns lists schedules' columns in the order scanSchedule reads them.
const scheduleColumns = `s.id, s.name, s.status, s.definition, s.cursor_tick, s.next_fire_at, s.buffered_tick,
	s.last_fired_tick, s.last_job_id, s.runs, s.created_at, s.updated_at, s.last_seq, s.last_hash`

func scanSchedule(row pgx.Row) (eventlog.ScheduleRow, error) {
	var r eventlog.ScheduleRow
	var id [16]byte
	var lastJob *[16]byte
	err := row.Scan(&id, &r.Name, &r.Status, &r.Definition, &r.CursorTick, &r.NextFireAt, &r.BufferedTick,
		&r.LastFiredTick, &lastJob, &r.Runs, &r.CreatedAt, &r.UpdatedAt, &r.LastSeq, &r.LastHash)
	r.ID = id
	if lastJob != nil {
		r.LastJobID = *lastJob
	}
	return r, err
}

func collectSchedules(rows pgx.Rows) ([]eventlog.ScheduleRow, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventlog.ScheduleRow, error) { return scanSchedule(r) })
}

// GetSchedule returns one schedule's row by ID.
func (s *Store) GetSchedule(ctx context.Context, id eventlog.ID) (eventlog.ScheduleRow, error) {
	r, err := scanSchedule(s.pool.QueryRow(ctx, `SELECT `+scheduleColumns+` FROM schedules s WHERE s.id = $1`, [16]byte(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("schedule %s: %w", id, eventlog.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("get schedule %s: %w", id, err)
	}
	return r, nil
}

// GetScheduleByName returns the live schedule named name.
func (s *Store) GetScheduleByName(ctx context.Context, name string) (eventlog.ScheduleRow, error) {
	r, err := scanSchedule(s.pool.QueryRow(ctx, `SELECT `+scheduleColumns+` FROM schedules s WHERE s.name = $1 AND s.status <> 'deleted'`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("schedule %q: %w", name, eventlog.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("get schedule %q: %w", name, err)
	}
	return r, nil
}

// ListSchedules returns schedules ordered by name.
func (s *Store) ListSchedules(ctx context.Context, includeDeleted bool) ([]eventlog.ScheduleRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+scheduleColumns+` FROM schedules s
		WHERE $1 OR s.status <> 'deleted' ORDER BY s.name, s.id`, includeDeleted)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	out, err := collectSchedules(rows)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	return out, nil
}

// ScheduleNamesUsed returns the names any schedule has had.
func (s *Store) ScheduleNamesUsed(ctx context.Context, names []string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT name FROM schedules WHERE name = ANY($1) ORDER BY 1`, nonNil(names))
	if err != nil {
		return nil, fmt.Errorf("look up schedule names: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("look up schedule names: %w", err)
	}
	return out, nil
}

// RebuildSchedules recreates the schedules table from the histories whose
// first event has type firstEventType.
func (s *Store) RebuildSchedules(ctx context.Context, firstEventType string, fold func([]eventlog.Event) (*eventlog.ScheduleRow, error)) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(ptx pgx.Tx) error {
		if _, err := ptx.Exec(ctx, `TRUNCATE schedules`); err != nil {
			return err
		}
		// Schedules are few: one pass over the first events finds them all.
		rows, err := ptx.Query(ctx, `SELECT execution_id FROM events WHERE seq = 1 AND type = $1 ORDER BY 1`, firstEventType)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[[16]byte])
		if err != nil {
			return err
		}
		tx := &Tx{q: ptx}
		for len(ids) > 0 {
			page := ids[:min(len(ids), scanPage)]
			ids = ids[len(page):]
			histories, err := historiesOf(ctx, ptx, page)
			if err != nil {
				return err
			}
			var out []eventlog.ScheduleRow
			for _, id := range page {
				row, err := fold(histories[id])
				if err != nil {
					return fmt.Errorf("fold schedule %s: %w", eventlog.ID(id), err)
				}
				if row != nil {
					out = append(out, *row)
				}
			}
			if err := tx.PutSchedules(ctx, out); err != nil {
				return err
			}
			n += len(out)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("rebuild schedules: %w", err)
	}
	return n, nil
}

// LockDueSchedules locks due schedules, skipping those others hold. A row
// another leader updated after this statement's snapshot is re-read and
// re-checked under its lock, so a tick fired meanwhile is not due again.
func (tx *Tx) LockDueSchedules(ctx context.Context, limit int) ([]eventlog.ScheduleRow, time.Time, error) {
	rows, err := tx.q.Query(ctx, `SELECT `+scheduleColumns+` FROM schedules s
		WHERE s.status = 'active' AND (s.next_fire_at <= now() OR s.buffered_tick IS NOT NULL)
		ORDER BY s.next_fire_at NULLS FIRST, s.id
		LIMIT $1
		FOR UPDATE SKIP LOCKED`, limit)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("lock due schedules: %w", err)
	}
	out, err := collectSchedules(rows)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("lock due schedules: %w", err)
	}
	now, err := tx.Now(ctx)
	if err != nil {
		return nil, now, fmt.Errorf("lock due schedules: %w", err)
	}
	return out, now, nil
}

// LockSchedule locks one schedule row.
func (tx *Tx) LockSchedule(ctx context.Context, id eventlog.ID) (eventlog.ScheduleRow, error) {
	r, err := scanSchedule(tx.q.QueryRow(ctx, `SELECT `+scheduleColumns+` FROM schedules s WHERE s.id = $1 FOR UPDATE`, [16]byte(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("schedule %s: %w", id, eventlog.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("lock schedule %s: %w", id, err)
	}
	return r, nil
}

// ExecutionStatuses reads the status of executions without locking them.
func (tx *Tx) ExecutionStatuses(ctx context.Context, ids []eventlog.ID) (map[eventlog.ID]string, error) {
	out := make(map[eventlog.ID]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := tx.q.Query(ctx, `SELECT id, status FROM executions WHERE id = ANY($1)`, uuids(ids))
	if err != nil {
		return nil, fmt.Errorf("read execution statuses: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id [16]byte
		var status string
		if err := rows.Scan(&id, &status); err != nil {
			return nil, fmt.Errorf("read execution statuses: %w", err)
		}
		out[id] = status
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read execution statuses: %w", err)
	}
	return out, nil
}

const putSchedulesSQL = `
INSERT INTO schedules (id, name, status, definition, cursor_tick, next_fire_at, buffered_tick,
	last_fired_tick, last_job_id, runs, created_at, updated_at, last_seq, last_hash)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::timestamptz[],
	$7::timestamptz[], $8::timestamptz[], $9::uuid[], $10::bigint[], $11::timestamptz[], $12::timestamptz[],
	$13::bigint[], $14::bytea[])
ON CONFLICT (id) DO UPDATE SET
	name = EXCLUDED.name, status = EXCLUDED.status, definition = EXCLUDED.definition,
	cursor_tick = EXCLUDED.cursor_tick, next_fire_at = EXCLUDED.next_fire_at,
	buffered_tick = EXCLUDED.buffered_tick, last_fired_tick = EXCLUDED.last_fired_tick,
	last_job_id = EXCLUDED.last_job_id, runs = EXCLUDED.runs, updated_at = EXCLUDED.updated_at,
	last_seq = EXCLUDED.last_seq, last_hash = EXCLUDED.last_hash`

// PutSchedules upserts schedule rows in one statement.
func (tx *Tx) PutSchedules(ctx context.Context, rows []eventlog.ScheduleRow) error {
	n := len(rows)
	if n == 0 {
		return nil
	}
	ids, lastJob := make([][16]byte, n), make([]*[16]byte, n)
	names, statuses, defs := make([]string, n), make([]string, n), make([]string, n)
	cursor, created, updated := make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
	next, buffered, lastFired := make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
	runs, lastSeq := make([]int64, n), make([]int64, n)
	lastHash := make([][]byte, n)
	for i, r := range rows {
		ids[i], names[i], statuses[i], defs[i] = r.ID, r.Name, r.Status, string(r.Definition)
		cursor[i], next[i], buffered[i], lastFired[i] = r.CursorTick, r.NextFireAt, r.BufferedTick, r.LastFiredTick
		if r.LastJobID != (eventlog.ID{}) {
			id := [16]byte(r.LastJobID)
			lastJob[i] = &id
		}
		runs[i], created[i], updated[i], lastSeq[i], lastHash[i] = r.Runs, r.CreatedAt, r.UpdatedAt, r.LastSeq, r.LastHash
	}
	_, err := tx.q.Exec(ctx, putSchedulesSQL, ids, names, statuses, defs, cursor, next, buffered, lastFired, lastJob,
		runs, created, updated, lastSeq, lastHash)
	if pgErr, ok := isUniqueViolation(err); ok && pgErr.ConstraintName == "schedules_name" {
		return fmt.Errorf("write %d schedules: %w", n, eventlog.ErrScheduleNameTaken)
	}
	if err != nil {
		return fmt.Errorf("write %d schedules: %w", n, err)
	}
	return nil
}
