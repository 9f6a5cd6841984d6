package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// ErrInvalidResetPoint: a reset was asked for an event that is not the
// end of a completed workflow task.
var ErrInvalidResetPoint = errors.New("invalid reset point")

// ResetPoints lists the seqs a run can be reset to: its
// WorkflowTaskCompleted events.
func ResetPoints(history []eventlog.Event) []int64 {
	var out []int64
	for _, e := range history {
		if e.Type == EventWorkflowTaskCompleted {
			out = append(out, e.Seq)
		}
	}
	return out
}

// ResetWorkflowParams says which run to reset, to where, by whom and why.
type ResetWorkflowParams struct {
	RunID eventlog.ID
	// ToSeq is the seq of a WorkflowTaskCompleted of the run: the new run
	// has the events before it, and runs that workflow task again with the
	// code deployed now. Activities completed before it are not run again.
	ToSeq  int64
	Actor  string
	Reason string
}

// ResetWorkflow starts a new run of the run's workflow ID whose history is
// a copy of the run's events before ToSeq, and terminates the workflow ID's
// running run (if any) in the same transaction. It returns the new run's ID.
// Child workflows the old run started are not linked to the new one.
func (e *Engine) ResetWorkflow(ctx context.Context, p ResetWorkflowParams) (eventlog.ID, error) {
	if strings.TrimSpace(p.Actor) == "" {
		return eventlog.ID{}, &InputError{Field: "actor", Reason: "say who is resetting the workflow"}
	}
	row, err := e.store.GetExecution(ctx, p.RunID)
	if err != nil {
		return eventlog.ID{}, fmt.Errorf("workflow run %s: %w", p.RunID, err)
	}
	if row.Kind != KindWorkflow {
		return eventlog.ID{}, fmt.Errorf("execution %s is a job: %w", p.RunID, ErrNotWorkflow)
	}
	history, err := e.store.History(ctx, p.RunID)
	if err != nil {
		return eventlog.ID{}, err
	}
	if p.ToSeq < 2 || p.ToSeq > int64(len(history)) || history[p.ToSeq-1].Type != EventWorkflowTaskCompleted {
		return eventlog.ID{}, fmt.Errorf("%w: event %d of run %s is not a %s; reset to one of %v (chronicle history %s)",
			ErrInvalidResetPoint, p.ToSeq, p.RunID, EventWorkflowTaskCompleted, ResetPoints(history), p.RunID)
	}
	var newID eventlog.ID
	var wake []string
	var later map[string]time.Duration
	err = e.inWorkflowTx(ctx, func(ctx context.Context, tx eventlog.Tx) error {
		latest, err := tx.LockWorkflowID(ctx, row.IdempotencyKey)
		if err != nil {
			return err
		}
		ids := []eventlog.ID{p.RunID}
		if latest != nil && latest.FinishedAt == nil {
			ids = append(ids, latest.ID)
		}
		b, err := lockWorkflows(ctx, tx, ids)
		if err != nil {
			return err
		}
		prev := p.RunID
		if latest != nil {
			prev = latest.ID
		}
		newID = newRunID(b.now, prev)
		if latest != nil && latest.FinishedAt == nil {
			if s := b.byID[latest.ID]; s != nil {
				if err := s.apply(TerminateWorkflow{Actor: p.Actor, Reason: fmt.Sprintf("reset to event %d of run %s as run %s: %s", p.ToSeq, p.RunID, newID, p.Reason)}, e.env(b.now)); err != nil {
					return err
				}
			}
		}
		events, w, err := copyHistory(newID, history[:p.ToSeq-1], p.RunID, p.ToSeq)
		if err != nil {
			return err
		}
		b.byID[newID] = &wfTx{w: w, events: events, tasks: map[string]eventlog.Task{}, released: map[string]bool{}, isNew: true, handled: len(events)}
		wake, later, err = b.write(ctx, tx)
		return err
	})
	if err != nil {
		return eventlog.ID{}, err
	}
	e.wakeAfter(wake, later)
	return newID, nil
}

// copyHistory re-seals events as the history of run id, keeping their
// data and times; WorkflowStarted records where they came from.
func copyHistory(id eventlog.ID, events []eventlog.Event, from eventlog.ID, toSeq int64) ([]eventlog.Event, Workflow, error) {
	var w Workflow
	out := make([]eventlog.Event, 0, len(events))
	prev := eventlog.GenesisHash
	for _, src := range events {
		// Stored data comes back reformatted; hashes cover its canonical form.
		data, err := eventlog.Canonicalize(src.Data)
		if err != nil {
			return nil, w, err
		}
		if src.Type == EventWorkflowStarted {
			var d WorkflowStarted
			if err := src.Decode(&d); err != nil {
				return nil, w, err
			}
			d.ResetFrom, d.ResetToSeq = &from, toSeq
			raw, err := json.Marshal(d)
			if err == nil {
				raw, err = eventlog.Canonicalize(raw)
			}
			if err != nil {
				return nil, w, err
			}
			data = raw
		}
		ev := eventlog.Event{ExecutionID: id, Seq: src.Seq, Type: src.Type, Data: data, RecordedAt: src.RecordedAt, PrevHash: prev}
		ev.Hash = eventlog.HashEvent(prev, ev)
		if w, err = EvolveWorkflow(w, ev); err != nil {
			return nil, w, err
		}
		prev = ev.Hash
		out = append(out, ev)
	}
	return out, w, nil
}
