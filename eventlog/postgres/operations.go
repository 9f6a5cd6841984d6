package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// filterWhere builds the WHERE clause of an ExecutionFilter, with its
// arguments starting at $1. A type ending in ".*" matches its whole family.
func filterWhere(f eventlog.ExecutionFilter) (string, []any) {
	var exact, prefixes []string
	for _, t := range f.Types {
		if p, ok := strings.CutSuffix(t, "*"); ok {
			prefixes = append(prefixes, likeEscape(p)+"%")
		} else {
			exact = append(exact, t)
		}
	}
	conds := []string{"e.id > $1"}
	args := []any{[16]byte(f.After)}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if len(f.Statuses) > 0 {
		conds = append(conds, "e.status = ANY("+arg(f.Statuses)+"::text[])")
	}
	if len(exact) > 0 || len(prefixes) > 0 {
		conds = append(conds, "(e.type = ANY("+arg(nonNil(exact))+"::text[]) OR e.type LIKE ANY("+arg(nonNil(prefixes))+"::text[]))")
	}
	if len(f.Queues) > 0 {
		conds = append(conds, "e.queue = ANY("+arg(f.Queues)+"::text[])")
	}
	if f.ErrorContains != "" {
		conds = append(conds, "strpos(lower(e.last_error), lower("+arg(f.ErrorContains)+")) > 0")
	}
	if f.MinAge > 0 {
		conds = append(conds, "e.updated_at <= now() - make_interval(secs => "+arg(f.MinAge.Seconds())+")")
	}
	if f.MaxAge > 0 {
		conds = append(conds, "e.updated_at >= now() - make_interval(secs => "+arg(f.MaxAge.Seconds())+")")
	}
	return strings.Join(conds, " AND "), args
}

// likeEscape escapes LIKE's wildcards, which job types may contain ('_').
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// FindExecutions returns executions matching f, in ID order.
func (s *Store) FindExecutions(ctx context.Context, f eventlog.ExecutionFilter) ([]eventlog.Execution, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	where, args := filterWhere(f)
	args = append(args, f.Limit)
	rows, err := s.pool.Query(ctx, `SELECT `+executionColumns+` FROM executions e WHERE `+where+
		fmt.Sprintf(` ORDER BY e.id LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("find executions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventlog.Execution, error) { return scanExecution(r) })
	if err != nil {
		return nil, fmt.Errorf("find executions: %w", err)
	}
	return out, nil
}

// CountMatching counts executions matching f.
func (s *Store) CountMatching(ctx context.Context, f eventlog.ExecutionFilter) (int64, error) {
	f.After = eventlog.ID{}
	where, args := filterWhere(f)
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM executions e WHERE `+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count executions: %w", err)
	}
	return n, nil
}

// purgeSQL deletes a batch of finished executions with everything that
// belongs to them. Finished executions have no tasks, so no task lock is
// needed; the executions are locked (skipping rows an operator command
// holds) before anything is deleted.
const purgeSQL = `
WITH doomed AS (
	SELECT id, idempotency_key FROM executions
	WHERE kind = ANY($1::text[]) AND status = ANY($2::text[]) AND finished_at IS NOT NULL
	  AND finished_at < now() - make_interval(secs => $3)
	ORDER BY finished_at
	LIMIT $4
	FOR UPDATE SKIP LOCKED
), ev AS (
	DELETE FROM events WHERE execution_id IN (SELECT id FROM doomed) RETURNING 1
), tk AS (
	DELETE FROM tasks WHERE execution_id IN (SELECT id FROM doomed) RETURNING 1
), ek AS (
	DELETE FROM enqueue_keys k USING doomed d WHERE d.idempotency_key <> '' AND k.key = d.idempotency_key AND k.execution_id = d.id RETURNING 1
), ex AS (
	DELETE FROM executions WHERE id IN (SELECT id FROM doomed) RETURNING 1
)
SELECT (SELECT count(*) FROM ex), (SELECT count(*) FROM ev), (SELECT count(*) FROM tk), (SELECT count(*) FROM ek)`

// PurgeExecutions deletes a batch of finished executions and their histories.
func (s *Store) PurgeExecutions(ctx context.Context, p eventlog.PurgeParams) (eventlog.PurgeResult, error) {
	if len(p.Kinds) == 0 || len(p.Statuses) == 0 {
		return eventlog.PurgeResult{}, errors.New("purge executions: name the kinds and final statuses to delete")
	}
	if p.OlderThan < 0 {
		return eventlog.PurgeResult{}, fmt.Errorf("purge executions: retention %s is negative", p.OlderThan)
	}
	if p.Limit <= 0 {
		p.Limit = 1000
	}
	var r eventlog.PurgeResult
	var tasks, keys int64
	if err := s.pool.QueryRow(ctx, purgeSQL, p.Kinds, p.Statuses, p.OlderThan.Seconds(), p.Limit).Scan(&r.Executions, &r.Events, &tasks, &keys); err != nil {
		return eventlog.PurgeResult{}, fmt.Errorf("purge %v executions in %v finished over %s ago: %w", p.Kinds, p.Statuses, p.OlderThan, err)
	}
	return r, nil
}

// DeleteStaleWorkers deletes heartbeat rows of workers not seen for olderThan.
func (s *Store) DeleteStaleWorkers(ctx context.Context, olderThan time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM worker_heartbeats WHERE last_seen_at < now() - make_interval(secs => $1)`, olderThan.Seconds())
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
			return 0, fmt.Errorf("delete stale workers: table worker_heartbeats does not exist; run chronicle migrate: %w", err)
		}
		return 0, fmt.Errorf("delete stale workers: %w", err)
	}
	return tag.RowsAffected(), nil
}

// AuditEvents returns the most recent operator events matching p, oldest
// first. The time bound is applied on recorded_at, which the events table
// indexes with BRIN.
func (s *Store) AuditEvents(ctx context.Context, p eventlog.AuditParams) ([]eventlog.AuditEntry, error) {
	if p.Limit <= 0 {
		p.Limit = 1000
	}
	conds := []string{"ev.data ? 'actor'"}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if p.Within > 0 {
		conds = append(conds, "ev.recorded_at >= now() - make_interval(secs => "+arg(p.Within.Seconds())+")")
	}
	if len(p.Types) > 0 {
		conds = append(conds, "ev.type = ANY("+arg(p.Types)+"::text[])")
	}
	if p.Actor != "" {
		conds = append(conds, "ev.data->>'actor' = "+arg(p.Actor))
	}
	sql := `SELECT * FROM (
		SELECT ev.execution_id, ev.seq, ev.type, ev.data, ev.recorded_at, ev.prev_hash, ev.hash,
			coalesce(x.kind, '') AS x_kind, coalesce(x.type, '') AS x_type, coalesce(x.queue, '') AS x_queue
		FROM events ev LEFT JOIN executions x ON x.id = ev.execution_id
		WHERE ` + strings.Join(conds, " AND ") + `
		ORDER BY ev.recorded_at DESC, ev.execution_id DESC, ev.seq DESC
		LIMIT ` + arg(p.Limit) + `) recent
	ORDER BY recorded_at, execution_id, seq`
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("audit events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventlog.AuditEntry, error) {
		var a eventlog.AuditEntry
		var id [16]byte
		e := &a.Event
		err := r.Scan(&id, &e.Seq, &e.Type, &e.Data, &e.RecordedAt, &e.PrevHash, &e.Hash, &a.Kind, &a.ExecutionType, &a.Queue)
		e.ExecutionID = id
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("audit events: %w", err)
	}
	return out, nil
}
