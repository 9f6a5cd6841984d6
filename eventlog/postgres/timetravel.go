package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// countLastEventsSQL walks the executions that existed at $1 and had not
// finished by then, and finds each one's last counted event at or before
// $1 by a backward scan of its history's primary key. Executions that
// finished earlier are passed over through the projection's finished_at,
// which is derived from the same events (chronicle verify proves it).
const countLastEventsSQL = `
SELECT x.queue, x.type, le.type, count(*)
FROM executions x
CROSS JOIN LATERAL (
	SELECT e.type FROM events e
	WHERE e.execution_id = x.id AND e.recorded_at <= $1 AND e.type = ANY($3)
	ORDER BY e.seq DESC
	LIMIT 1
) le
WHERE x.kind = $2 AND x.created_at <= $1 AND (x.finished_at IS NULL OR x.finished_at > $1)
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3`

// CountLastEvents counts executions by the type of their last counted
// event at a past moment.
func (s *Store) CountLastEvents(ctx context.Context, p eventlog.LastEventParams) ([]eventlog.LastEventCount, error) {
	rows, err := s.pool.Query(ctx, countLastEventsSQL, p.At, p.Kind, nonNil(p.Types))
	if err != nil {
		return nil, fmt.Errorf("count last events at %s: %w", p.At, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventlog.LastEventCount, error) {
		var c eventlog.LastEventCount
		err := r.Scan(&c.Queue, &c.Type, &c.EventType, &c.Count)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("count last events at %s: %w", p.At, err)
	}
	return out, nil
}

// CountStatuses counts executions of one kind in the given statuses.
func (s *Store) CountStatuses(ctx context.Context, kind string, statuses []string) ([]eventlog.QueueCount, error) {
	rows, err := s.pool.Query(ctx, `SELECT queue, type, status, count(*) FROM executions
		WHERE kind = $1 AND status = ANY($2) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`, kind, nonNil(statuses))
	if err != nil {
		return nil, fmt.Errorf("count %s statuses: %w", kind, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventlog.QueueCount, error) {
		var c eventlog.QueueCount
		err := r.Scan(&c.Queue, &c.Type, &c.Status, &c.Count)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("count %s statuses: %w", kind, err)
	}
	return out, nil
}

// ScanHistoriesOf pages through the executions matching p, in ID order,
// and calls fn with each full history.
func (s *Store) ScanHistoriesOf(ctx context.Context, p eventlog.HistoryScanParams, fn func([]eventlog.Event) error) error {
	var after [16]byte
	for {
		rows, err := s.pool.Query(ctx, `SELECT id FROM executions
			WHERE id > $1 AND kind = $2 AND type = $3
			  AND ($4::float8 = 0 OR created_at >= now() - make_interval(secs => $4::float8))
			ORDER BY id LIMIT $5`, after, p.Kind, p.Type, p.Within.Seconds(), scanPage)
		if err != nil {
			return fmt.Errorf("scan histories of %s: %w", p.Type, err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[[16]byte])
		if err != nil {
			return fmt.Errorf("scan histories of %s: %w", p.Type, err)
		}
		if len(ids) == 0 {
			return nil
		}
		histories, err := historiesOf(ctx, s.pool, ids)
		if err != nil {
			return fmt.Errorf("scan histories of %s: %w", p.Type, err)
		}
		for _, id := range ids {
			if h := histories[id]; len(h) > 0 {
				if err := fn(h); err != nil {
					return err
				}
			}
		}
		after = ids[len(ids)-1]
	}
}
