package sdk

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// Dead-letter operations: the runbook's dead-letter queue. A dead letter is
// a job in status dead_lettered; the queue is a view over the executions
// projection, and every change an operator makes is an event in the job's
// history naming who made it and why.

// DeadLetterFilter selects dead letters. Zero fields do not filter. Ages
// are measured in database time from when the job was dead-lettered.
type DeadLetterFilter struct {
	// Types keeps these job types; a type ending in ".*" keeps its family
	// ("email.*").
	Types  []string
	Queues []string
	// ErrorContains keeps dead letters whose last error contains it,
	// ignoring case.
	ErrorContains string
	// OlderThan keeps dead letters dead-lettered at least this long ago.
	OlderThan time.Duration
	// NewerThan keeps dead letters dead-lettered at most this long ago.
	NewerThan time.Duration
	// After pages ListDeadLetters: dead letters with a larger ID.
	After eventlog.ID
	// Limit caps the dead letters listed (default 100) or, for bulk
	// operations, acted on (default: every match).
	Limit int
}

func (f DeadLetterFilter) validate() error {
	if f.OlderThan < 0 || f.NewerThan < 0 {
		return &engine.InputError{Field: "dead-letter age", Reason: fmt.Sprintf("older than %s, newer than %s: ages cannot be negative", f.OlderThan, f.NewerThan)}
	}
	if f.NewerThan > 0 && f.OlderThan >= f.NewerThan {
		return &engine.InputError{Field: "dead-letter age", Reason: fmt.Sprintf("older than %s and newer than %s: nothing can match; the newer-than age must be the larger", f.OlderThan, f.NewerThan)}
	}
	if f.Limit < 0 {
		return &engine.InputError{Field: "limit", Reason: fmt.Sprintf("%d is negative", f.Limit)}
	}
	for _, t := range f.Types {
		if err := ValidateJobType(t, true); err != nil {
			return err
		}
	}
	return nil
}

func (f DeadLetterFilter) store(status Status) eventlog.ExecutionFilter {
	return eventlog.ExecutionFilter{Statuses: []string{string(status)}, Types: f.Types, Queues: f.Queues,
		ErrorContains: f.ErrorContains, MinAge: f.OlderThan, MaxAge: f.NewerThan, After: f.After, Limit: f.Limit}
}

// ListDeadLetters returns dead letters matching f, oldest first.
func (c *Client) ListDeadLetters(ctx context.Context, f DeadLetterFilter) ([]Job, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	rows, err := c.eng.Store().FindExecutions(ctx, f.store(StatusDeadLettered))
	if err != nil {
		return nil, err
	}
	return jobsOf(rows)
}

// CountDeadLetters counts dead letters matching f (ignoring After and Limit).
func (c *Client) CountDeadLetters(ctx context.Context, f DeadLetterFilter) (int64, error) {
	if err := f.validate(); err != nil {
		return 0, err
	}
	return c.eng.Store().CountMatching(ctx, f.store(StatusDeadLettered))
}

func jobsOf(rows []eventlog.Execution) ([]Job, error) {
	jobs := make([]Job, 0, len(rows))
	for _, r := range rows {
		j, err := engine.JobFromRow(r, nil)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// DeadLetter is one dead letter with its full history.
type DeadLetter struct {
	Job Job
	// History is every event of the job, oldest first.
	History []eventlog.Event
	// DeadLetteredAt is when the job was last dead-lettered, and Dead that
	// JobDeadLettered event: after how many attempts, with which error, why.
	DeadLetteredAt time.Time
	Dead           engine.JobDeadLettered
}

// DeadLetter returns a job that was dead-lettered — whether it still is,
// was resolved, or was retried since — with its whole history. A job that
// never was a dead letter is ErrInvalidState; an unknown ID ErrNotFound.
func (c *Client) DeadLetter(ctx context.Context, id eventlog.ID) (DeadLetter, error) {
	h, err := c.eng.Store().History(ctx, id)
	if err != nil {
		return DeadLetter{}, err
	}
	j, err := engine.Fold(h)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("job %s: %w", id, err)
	}
	d := DeadLetter{Job: j, History: h}
	found := false
	for _, e := range h {
		if e.Type == engine.EventJobDeadLettered {
			if err := e.Decode(&d.Dead); err != nil {
				return DeadLetter{}, err
			}
			d.DeadLetteredAt, found = e.RecordedAt, true
		}
	}
	if !found {
		return DeadLetter{}, &engine.StateError{ID: id, Command: "show as a dead letter", Status: j.Status, Want: "it was never dead-lettered (chronicle jobs history shows any job)"}
	}
	return d, nil
}

// BulkOptions control a bulk retry or resolve.
type BulkOptions struct {
	// DryRun counts the matching dead letters and changes nothing.
	DryRun bool
	// Confirm, when set, is called with the number of matching dead letters
	// before anything changes; returning false changes nothing. The
	// command then acts on exactly the dead letters that were counted.
	Confirm func(matched int) bool
}

// BulkResult reports a bulk retry or resolve.
type BulkResult struct {
	// Matched lists the dead letters the filter selected.
	Matched []eventlog.ID
	// Changed counts those retried or resolved; zero for a dry run or when
	// Confirm declined.
	Changed int
	// Skipped are matched dead letters that changed state (another operator
	// or a purge got there first) before the command reached them; each
	// error says why.
	Skipped []error
	// Declined is true when Confirm returned false.
	Declined bool
}

// RetryDeadLetters re-queues every dead letter matching f with a fresh
// attempt budget: one JobRetried event per job, naming actor and note.
func (c *Client) RetryDeadLetters(ctx context.Context, f DeadLetterFilter, actor, note string, opts BulkOptions) (BulkResult, error) {
	if strings.TrimSpace(actor) == "" {
		return BulkResult{}, &engine.InputError{Field: "actor", Reason: "say who is retrying the dead letters"}
	}
	return c.bulk(ctx, f, engine.RetryDeadLetter{Actor: actor, Note: note}, opts)
}

// ResolveDeadLetters closes every dead letter matching f without retrying
// it: one JobResolved event per job, naming actor and notes (required).
func (c *Client) ResolveDeadLetters(ctx context.Context, f DeadLetterFilter, actor, notes string, opts BulkOptions) (BulkResult, error) {
	if strings.TrimSpace(notes) == "" {
		return BulkResult{}, &engine.InputError{Field: "notes", Reason: "resolving dead letters needs notes explaining why they are not retried"}
	}
	if strings.TrimSpace(actor) == "" {
		return BulkResult{}, &engine.InputError{Field: "actor", Reason: "say who is resolving the dead letters"}
	}
	return c.bulk(ctx, f, engine.Resolve{Actor: actor, Notes: notes}, opts)
}

// bulkPage is how many matches are read, and changed, per transaction.
const bulkPage = 200

func (c *Client) bulk(ctx context.Context, f DeadLetterFilter, cmd engine.Command, opts BulkOptions) (BulkResult, error) {
	if err := f.validate(); err != nil {
		return BulkResult{}, err
	}
	// Select first, so that what is confirmed is what is changed.
	var res BulkResult
	sf := f.store(StatusDeadLettered)
	for {
		sf.Limit = bulkPage
		if f.Limit > 0 {
			sf.Limit = min(bulkPage, f.Limit-len(res.Matched))
		}
		if sf.Limit <= 0 {
			break
		}
		rows, err := c.eng.Store().FindExecutions(ctx, sf)
		if err != nil {
			return res, err
		}
		for _, r := range rows {
			res.Matched = append(res.Matched, r.ID)
		}
		if len(rows) < sf.Limit {
			break
		}
		sf.After = rows[len(rows)-1].ID
	}
	if opts.DryRun || len(res.Matched) == 0 {
		return res, nil
	}
	if opts.Confirm != nil && !opts.Confirm(len(res.Matched)) {
		res.Declined = true
		return res, nil
	}
	for start := 0; start < len(res.Matched); start += bulkPage {
		ids := res.Matched[start:min(start+bulkPage, len(res.Matched))]
		_, errs, err := c.eng.ExecuteMany(ctx, ids, cmd)
		if err != nil {
			return res, fmt.Errorf("after %d of %d dead letters: %w", res.Changed, len(res.Matched), err)
		}
		for _, err := range errs {
			switch {
			case err == nil:
				res.Changed++
			case errors.Is(err, ErrInvalidState), errors.Is(err, ErrNotFound):
				res.Skipped = append(res.Skipped, err)
			default:
				return res, err
			}
		}
	}
	return res, nil
}
