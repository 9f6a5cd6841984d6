package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// verifyHistory checks one history against its projection rows: a
// schedule's against its schedules row, anything else as a job's. seen
// collects the schedules met, for verifyScheduleRows.
func (e *Engine) verifyHistory(ctx context.Context, row *eventlog.Execution, tasks []eventlog.Task, history []eventlog.Event, seen map[eventlog.ID]bool) []string {
	if !IsScheduleHistory(history) {
		return verifyOne(row, tasks, history)
	}
	id := history[0].ExecutionID
	seen[id] = true
	if err := eventlog.CheckChain(history); err != nil {
		var ce *eventlog.ChainError
		if errors.As(err, &ce) {
			return []string{fmt.Sprintf("hash chain broken at event %d: %s", ce.Seq, ce.Reason)}
		}
		return []string{err.Error()}
	}
	s, err := FoldSchedule(history)
	if err != nil {
		return []string{"schedule history does not fold: " + err.Error()}
	}
	var out []string
	if row != nil {
		out = append(out, "a schedule's history has a row in executions; schedules belong in the schedules table")
	}
	if len(tasks) > 0 {
		out = append(out, fmt.Sprintf("ready queue holds %d tasks of a schedule", len(tasks)))
	}
	got, err := e.store.GetSchedule(ctx, id)
	if errors.Is(err, eventlog.ErrNotFound) {
		return append(out, "schedule history without a schedules row (run chronicle projections rebuild)")
	}
	if err != nil {
		return append(out, "read schedules row: "+err.Error())
	}
	return append(out, diffScheduleRow(got, s.Row())...)
}

// diffScheduleRow lists the fields where a schedules row disagrees with the
// fold of its history.
func diffScheduleRow(got, want eventlog.ScheduleRow) []string {
	var out []string
	diff := func(field string, g, w any) {
		out = append(out, fmt.Sprintf("schedules row %s is %v, history says %v", field, g, w))
	}
	if got.Name != want.Name || got.Status != want.Status {
		diff("name/status", got.Name+"/"+got.Status, want.Name+"/"+want.Status)
	}
	if !equalJSON(got.Definition, want.Definition) {
		diff("definition", string(got.Definition), string(want.Definition))
	}
	if !got.CursorTick.Equal(want.CursorTick) {
		diff("cursor_tick", got.CursorTick.UTC(), want.CursorTick.UTC())
	}
	if !sameTime(got.NextFireAt, want.NextFireAt) {
		diff("next_fire_at", got.NextFireAt, want.NextFireAt)
	}
	if !sameTime(got.BufferedTick, want.BufferedTick) {
		diff("buffered_tick", got.BufferedTick, want.BufferedTick)
	}
	if !sameTime(got.LastFiredTick, want.LastFiredTick) {
		diff("last_fired_tick", got.LastFiredTick, want.LastFiredTick)
	}
	if got.LastJobID != want.LastJobID || got.Runs != want.Runs {
		diff("last_job_id/runs", fmt.Sprint(got.LastJobID, "/", got.Runs), fmt.Sprint(want.LastJobID, "/", want.Runs))
	}
	if got.LastSeq != want.LastSeq || !bytes.Equal(got.LastHash, want.LastHash) {
		diff("last_seq", got.LastSeq, want.LastSeq)
	}
	return out
}

// verifyScheduleRows reports schedules rows whose history verify did not
// meet: rows without events.
func (e *Engine) verifyScheduleRows(ctx context.Context, r *VerifyReport, seen map[eventlog.ID]bool) error {
	rows, err := e.store.ListSchedules(ctx, true)
	if err != nil {
		return err
	}
	for _, row := range rows {
		if !seen[row.ID] {
			r.Problems = append(r.Problems, Problem{ID: row.ID, Message: fmt.Sprintf("schedules row %s without any events", row.Name)})
		}
	}
	return nil
}

// rebuildSchedules recreates the schedules table from the schedule
// histories, refusing a broken one as RebuildProjections does.
func (e *Engine) rebuildSchedules(ctx context.Context) (int, error) {
	return e.store.RebuildSchedules(ctx, EventScheduleCreated, func(history []eventlog.Event) (*eventlog.ScheduleRow, error) {
		if err := eventlog.CheckChain(history); err != nil {
			return nil, fmt.Errorf("%w; nothing was rebuilt (chronicle verify lists every broken history)", err)
		}
		s, err := FoldSchedule(history)
		if err != nil {
			return nil, err
		}
		row := s.Row()
		return &row, nil
	})
}
