package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// searchWhere builds the WHERE clause of SearchParams, arguments from $1.
func searchWhere(p eventlog.SearchParams) (string, []any) {
	conds := []string{"true"}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if p.Kind != "" {
		conds = append(conds, "e.kind = "+arg(p.Kind))
	}
	if len(p.Statuses) > 0 {
		conds = append(conds, "e.status = ANY("+arg(p.Statuses)+"::text[])")
	}
	var exact, prefixes []string
	for _, t := range p.Types {
		if pre, ok := strings.CutSuffix(t, "*"); ok {
			prefixes = append(prefixes, likeEscape(pre)+"%")
		} else {
			exact = append(exact, t)
		}
	}
	if len(exact) > 0 || len(prefixes) > 0 {
		conds = append(conds, "(e.type = ANY("+arg(nonNil(exact))+"::text[]) OR e.type LIKE ANY("+arg(nonNil(prefixes))+"::text[]))")
	}
	if len(p.Queues) > 0 {
		conds = append(conds, "e.queue = ANY("+arg(p.Queues)+"::text[])")
	}
	if p.Text != "" {
		t := arg(p.Text)
		c := "strpos(lower(e.last_error), lower(" + t + ")) > 0 OR strpos(lower(e.idempotency_key), lower(" + t + ")) > 0"
		if p.TextID != nil {
			c += " OR e.id = " + arg([16]byte(*p.TextID))
		}
		conds = append(conds, "("+c+")")
	}
	if !p.CreatedFrom.IsZero() {
		conds = append(conds, "e.created_at >= "+arg(p.CreatedFrom))
	}
	if !p.CreatedTo.IsZero() {
		conds = append(conds, "e.created_at < "+arg(p.CreatedTo))
	}
	if p.Before != nil {
		conds = append(conds, "e.id < "+arg([16]byte(*p.Before)))
	}
	if p.After != nil {
		conds = append(conds, "e.id > "+arg([16]byte(*p.After)))
	}
	return strings.Join(conds, " AND "), args
}

// SearchExecutions returns executions matching p, newest first. Paging
// after a cursor reads the oldest matches above it and reverses them, so
// that either direction is one ordered scan of the primary key.
func (s *Store) SearchExecutions(ctx context.Context, p eventlog.SearchParams) ([]eventlog.Execution, error) {
	if p.Limit <= 0 {
		p.Limit = 50
	}
	where, args := searchWhere(p)
	order := "DESC"
	if p.After != nil && p.Before == nil {
		order = "ASC"
	}
	args = append(args, p.Limit)
	rows, err := s.pool.Query(ctx, `SELECT `+executionColumns+` FROM executions e WHERE `+where+
		fmt.Sprintf(` ORDER BY e.id %s LIMIT $%d`, order, len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("search executions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventlog.Execution, error) { return scanExecution(r) })
	if err != nil {
		return nil, fmt.Errorf("search executions: %w", err)
	}
	if order == "ASC" {
		slices.Reverse(out)
	}
	return out, nil
}

// countEventsSQL buckets recent events by time. recorded_at has a BRIN
// index, so the window reads only the newest block ranges of events.
const countEventsSQL = `
SELECT to_timestamp(floor(extract(epoch FROM recorded_at) / $3) * $3) AS bucket, type, count(*)
FROM events
WHERE recorded_at > now() - make_interval(secs => $1) AND type = ANY($2::text[])
GROUP BY 1, 2 ORDER BY 1, 2`

// CountEventsByTime counts recent events by bucket and type.
func (s *Store) CountEventsByTime(ctx context.Context, p eventlog.EventCountParams) ([]eventlog.EventCount, time.Time, error) {
	if p.Window <= 0 || p.Bucket <= 0 {
		return nil, time.Time{}, fmt.Errorf("count events: window %s and bucket %s must be positive", p.Window, p.Bucket)
	}
	var now time.Time
	var out []eventlog.EventCount
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// One transaction: now() is the same in both statements.
		if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, countEventsSQL, p.Window.Seconds(), nonNil(p.Types), p.Bucket.Seconds())
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventlog.EventCount, error) {
			var c eventlog.EventCount
			err := r.Scan(&c.Start, &c.Type, &c.Count)
			return c, err
		})
		return err
	})
	if err != nil {
		return nil, now, fmt.Errorf("count events of the last %s: %w", p.Window, err)
	}
	return out, now, nil
}

// LeasedTasks returns the tasks whose lease is held, with their executions.
func (s *Store) LeasedTasks(ctx context.Context, id *eventlog.ID) ([]eventlog.LeasedTask, time.Time, error) {
	q := `SELECT ` + taskColumns + `, e.kind, e.type, e.idempotency_key, now()
		FROM tasks t JOIN executions e ON e.id = t.execution_id
		WHERE t.lease_expires_at IS NOT NULL`
	var args []any
	if id != nil {
		q += ` AND t.execution_id = $1`
		args = append(args, [16]byte(*id))
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY t.lease_expires_at, t.execution_id, t.key`, args...)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("list leased tasks: %w", err)
	}
	defer rows.Close()
	var out []eventlog.LeasedTask
	var now time.Time
	for rows.Next() {
		var lt eventlog.LeasedTask
		var eid [16]byte
		dest := append(taskDest(&lt.Task, &eid), &lt.Kind, &lt.Type, &lt.WorkflowID, &now)
		if err := rows.Scan(dest...); err != nil {
			return nil, now, fmt.Errorf("list leased tasks: %w", err)
		}
		lt.Task.ExecutionID = eid
		if lt.Kind != "workflow" {
			lt.WorkflowID = ""
		}
		out = append(out, lt)
	}
	if err := rows.Err(); err != nil {
		return nil, now, fmt.Errorf("list leased tasks: %w", err)
	}
	if now.IsZero() {
		if err := s.pool.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
			return nil, now, fmt.Errorf("list leased tasks: %w", err)
		}
	}
	return out, now, nil
}
