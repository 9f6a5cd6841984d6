package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

// formatTime shows database times in UTC, to the millisecond.
func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func formatTimePtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return formatTime(*t)
}

// oneLine flattens s to one line of at most n characters for a table cell.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// jobJSON is the --json form of a job.
type jobJSON struct {
	ID               string          `json:"id"`
	Type             string          `json:"type"`
	Queue            string          `json:"queue"`
	Priority         string          `json:"priority"`
	Status           string          `json:"status"`
	Payload          json.RawMessage `json:"payload"`
	Attempt          int             `json:"attempt"`
	AttemptsInBudget int             `json:"attempts_in_budget"`
	MaxAttempts      int             `json:"max_attempts"`
	RetryPolicy      sdk.RetryPolicy `json:"retry_policy"`
	RunAt            time.Time       `json:"run_at"`
	WorkerID         string          `json:"worker_id,omitempty"`
	LeaseExpiresAt   *time.Time      `json:"lease_expires_at,omitempty"`
	LastError        string          `json:"last_error,omitempty"`
	IdempotencyKey   string          `json:"idempotency_key,omitempty"`
	CreatedAt        time.Time       `json:"created_at"`
	UpdatedAt        time.Time       `json:"updated_at"`
	FinishedAt       *time.Time      `json:"finished_at,omitempty"`
	Events           int64           `json:"events"`
}

func toJSON(j sdk.Job) jobJSON {
	return jobJSON{
		ID: j.ID.String(), Type: j.Type, Queue: j.Queue, Priority: string(j.Priority), Status: string(j.Status),
		Payload: j.Payload, Attempt: j.Attempt, AttemptsInBudget: j.AttemptsInBudget(),
		MaxAttempts: j.RetryPolicy.WithDefaults().MaximumAttempts, RetryPolicy: j.RetryPolicy,
		RunAt: j.RunAt, WorkerID: j.WorkerID, LeaseExpiresAt: j.LeaseExpiresAt, LastError: j.LastError,
		IdempotencyKey: j.IdempotencyKey, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt, FinishedAt: j.FinishedAt,
		Events: j.Seq,
	}
}

// eventJSON is the --json form of one event.
type eventJSON struct {
	Seq        int64           `json:"seq"`
	RecordedAt time.Time       `json:"recorded_at"`
	Type       string          `json:"type"`
	Data       json.RawMessage `json:"data"`
	PrevHash   string          `json:"prev_hash"`
	Hash       string          `json:"hash"`
}

func eventToJSON(e eventlog.Event) eventJSON {
	return eventJSON{Seq: e.Seq, RecordedAt: e.RecordedAt, Type: e.Type, Data: e.Data,
		PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash)}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// describePolicy says a retry policy in a line.
func describePolicy(p sdk.RetryPolicy) string {
	d := p.WithDefaults()
	var b strings.Builder
	fmt.Fprintf(&b, "%d attempts", d.MaximumAttempts)
	if d.MaximumAttempts > 1 {
		if len(d.Schedule) > 0 {
			s := make([]string, len(d.Schedule))
			for i, x := range d.Schedule {
				s[i] = x.String()
			}
			fmt.Fprintf(&b, ", retries after %s", strings.Join(s, ", "))
		} else {
			fmt.Fprintf(&b, ", retries after %s ×%g up to %s", d.InitialInterval, d.BackoffCoefficient, d.MaximumInterval)
		}
		if d.Jitter > 0 {
			fmt.Fprintf(&b, " ±%g%%", d.Jitter*100)
		}
	}
	if len(d.NonRetryableErrorTypes) > 0 {
		fmt.Fprintf(&b, "; never retries %s", strings.Join(d.NonRetryableErrorTypes, ", "))
	}
	return b.String()
}

// printHistory prints events oldest first, as a table or as JSON.
func (a *app) printHistory(events []eventlog.Event, asJSON bool) error {
	if asJSON {
		return writeJSON(a.stdout, historyJSON(events))
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tRECORDED_AT\tTYPE\tDATA")
	for _, e := range events {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", e.Seq, formatTime(e.RecordedAt), e.Type, e.Data)
	}
	return tw.Flush()
}

func historyJSON(events []eventlog.Event) []eventJSON {
	out := make([]eventJSON, len(events))
	for i, e := range events {
		out[i] = eventToJSON(e)
	}
	return out
}
