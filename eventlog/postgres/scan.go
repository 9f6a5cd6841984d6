package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// scanPage is how many executions ScanHistories and RebuildProjections read at once.
const scanPage = 500

// pageIDs returns the next page of execution IDs that have events or a
// projection row.
func pageIDs(ctx context.Context, q querier, after [16]byte, withRows bool) ([][16]byte, error) {
	sql := `SELECT DISTINCT execution_id FROM events WHERE execution_id > $1 ORDER BY 1 LIMIT $2`
	if withRows {
		sql = `SELECT id FROM (
			SELECT DISTINCT execution_id AS id FROM events WHERE execution_id > $1
			UNION SELECT id FROM executions WHERE id > $1) ids ORDER BY id LIMIT $2`
	}
	rows, err := q.Query(ctx, sql, after, scanPage)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[[16]byte])
}

func historiesOf(ctx context.Context, q querier, ids [][16]byte) (map[eventlog.ID][]eventlog.Event, error) {
	rows, err := q.Query(ctx, `SELECT `+eventColumns+` FROM events WHERE execution_id = ANY($1) ORDER BY execution_id, seq`, ids)
	if err != nil {
		return nil, err
	}
	events, err := scanEvents(rows)
	if err != nil {
		return nil, err
	}
	out := make(map[eventlog.ID][]eventlog.Event, len(ids))
	for _, e := range events {
		out[e.ExecutionID] = append(out[e.ExecutionID], e)
	}
	return out, nil
}

// ScanHistories walks every execution with its projection rows and history.
func (s *Store) ScanHistories(ctx context.Context, fn func(*eventlog.Execution, []eventlog.Task, []eventlog.Event) error) error {
	var after [16]byte
	for {
		done := false
		// Each page is read in one repeatable-read snapshot, so that a
		// history and its projection rows agree even while workers write.
		err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(q pgx.Tx) error {
			var err error
			done, after, err = s.scanPage(ctx, q, after, fn)
			return err
		})
		if err != nil || done {
			return err
		}
	}
}

// scanPage reads and hands over one page of ScanHistories. It reports
// whether there was nothing left, and the last ID read.
func (s *Store) scanPage(ctx context.Context, q querier, after [16]byte, fn func(*eventlog.Execution, []eventlog.Task, []eventlog.Event) error) (bool, [16]byte, error) {
	ids, err := pageIDs(ctx, q, after, true)
	if err != nil {
		return false, after, fmt.Errorf("scan histories: %w", err)
	}
	if len(ids) == 0 {
		return true, after, nil
	}
	histories, err := historiesOf(ctx, q, ids)
	if err != nil {
		return false, after, fmt.Errorf("scan histories: %w", err)
	}
	rows, err := q.Query(ctx, `SELECT `+executionColumns+` FROM executions e WHERE e.id = ANY($1)`, ids)
	if err != nil {
		return false, after, fmt.Errorf("scan executions: %w", err)
	}
	execs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventlog.Execution, error) { return scanExecution(r) })
	if err != nil {
		return false, after, fmt.Errorf("scan executions: %w", err)
	}
	byID := make(map[eventlog.ID]*eventlog.Execution, len(execs))
	for i := range execs {
		byID[execs[i].ID] = &execs[i]
	}
	rows, err = q.Query(ctx, `SELECT `+taskColumns+` FROM tasks t WHERE t.execution_id = ANY($1) ORDER BY t.execution_id, t.key`, ids)
	if err != nil {
		return false, after, fmt.Errorf("scan tasks: %w", err)
	}
	tasks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventlog.Task, error) {
		var t eventlog.Task
		var id [16]byte
		err := r.Scan(taskDest(&t, &id)...)
		t.ExecutionID = id
		return t, err
	})
	if err != nil {
		return false, after, fmt.Errorf("scan tasks: %w", err)
	}
	tasksOf := make(map[eventlog.ID][]eventlog.Task)
	for _, t := range tasks {
		tasksOf[t.ExecutionID] = append(tasksOf[t.ExecutionID], t)
	}
	for _, id := range ids {
		if err := fn(byID[id], tasksOf[id], histories[id]); err != nil {
			return false, after, err
		}
	}
	return false, ids[len(ids)-1], nil
}

// RebuildProjections recreates executions and tasks from the events.
func (s *Store) RebuildProjections(ctx context.Context, fold func([]eventlog.Event) (*eventlog.Execution, []eventlog.Task, error)) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(ptx pgx.Tx) error {
		if _, err := ptx.Exec(ctx, `TRUNCATE executions, tasks`); err != nil {
			return err
		}
		tx := &Tx{q: ptx}
		var after [16]byte
		for {
			ids, err := pageIDs(ctx, ptx, after, false)
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				return nil
			}
			histories, err := historiesOf(ctx, ptx, ids)
			if err != nil {
				return err
			}
			var c eventlog.Changes
			for _, id := range ids {
				row, tasks, err := fold(histories[id])
				if err != nil {
					return fmt.Errorf("fold %s: %w", eventlog.ID(id), err)
				}
				if row != nil {
					c.NewExecutions = append(c.NewExecutions, *row)
					n++
				}
				c.Tasks = append(c.Tasks, tasks...)
			}
			if err := tx.Apply(ctx, c); err != nil {
				return err
			}
			after = ids[len(ids)-1]
		}
	})
	if err != nil {
		return 0, fmt.Errorf("rebuild projections: %w", err)
	}
	return n, nil
}
