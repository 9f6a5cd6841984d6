package engine

import (
	"bytes"
	"fmt"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// rebuildWorkflow derives a workflow run's projection rows from its
// history. A blocked run comes back as running: its next workflow task
// fails again and blocks it again.
func rebuildWorkflow(history []eventlog.Event) (*eventlog.Execution, []eventlog.Task, error) {
	w, err := FoldWorkflow(history)
	if err != nil {
		return nil, nil, err
	}
	row := w.Row()
	return &row, w.Tasks(), nil
}

// verifyWorkflow compares a workflow run's projection rows with the fold
// of its history. What the history cannot know is allowed to differ: a
// blocked status (with its error and failure count), leases (no event
// records a claim), and the backoff of a blocked workflow task.
func verifyWorkflow(row *eventlog.Execution, tasks []eventlog.Task, history []eventlog.Event) []string {
	w, err := FoldWorkflow(history)
	if err != nil {
		return []string{"history does not fold: " + err.Error()}
	}
	if row == nil {
		return []string{"history without a projection row (run chronicle projections rebuild)"}
	}
	var out []string
	want := w.Row()
	diff := func(field string, got, expect any) {
		out = append(out, fmt.Sprintf("projection %s is %v, history says %v", field, got, expect))
	}
	blocked := row.Status == string(StatusWorkflowBlocked) && want.Status == string(StatusWorkflowRunning)
	if row.Status != want.Status && !blocked {
		diff("status", row.Status, want.Status)
	}
	if row.Type != want.Type || row.Queue != want.Queue || row.Kind != want.Kind || row.IdempotencyKey != want.IdempotencyKey {
		diff("kind/type/queue/workflow_id", row.Kind+"/"+row.Type+"/"+row.Queue+"/"+row.IdempotencyKey, want.Kind+"/"+want.Type+"/"+want.Queue+"/"+want.IdempotencyKey)
	}
	if row.Priority != want.Priority {
		diff("priority", row.Priority, want.Priority)
	}
	if row.LastError != want.LastError && !blocked {
		diff("last_error", row.LastError, want.LastError)
	}
	if row.LastSeq != want.LastSeq || !bytes.Equal(row.LastHash, want.LastHash) {
		diff("last_seq", row.LastSeq, want.LastSeq)
	}
	if !sameTime(row.FinishedAt, want.FinishedAt) {
		diff("finished_at", row.FinishedAt, want.FinishedAt)
	}
	if !equalJSON(row.Payload, want.Payload) {
		diff("payload", string(row.Payload), string(want.Payload))
	}
	desired := map[string]eventlog.Task{}
	for _, t := range w.Tasks() {
		desired[t.Key] = t
	}
	for _, got := range tasks {
		t, ok := desired[got.Key]
		if !ok {
			out = append(out, fmt.Sprintf("ready queue holds task %q, but the history has no such pending task", got.Key))
			continue
		}
		delete(desired, got.Key)
		if got.Queue != t.Queue || got.Priority != t.Priority || got.Attempt < t.Attempt {
			out = append(out, fmt.Sprintf("task %q is queue=%s priority=%d attempt=%d, history says queue=%s priority=%d attempt>=%d",
				got.Key, got.Queue, got.Priority, got.Attempt, t.Queue, t.Priority, t.Attempt))
		}
		// A leased task's run_at may be its claim time; a waiting workflow
		// task may be held back by backoff.
		if got.LeaseExpiresAt == nil && !got.RunAt.Equal(t.RunAt) && !(got.Key == TaskKeyWorkflow && got.RunAt.After(t.RunAt)) {
			out = append(out, fmt.Sprintf("task %q run_at is %s, history says %s", got.Key, got.RunAt.UTC(), t.RunAt.UTC()))
		}
	}
	for key := range desired {
		out = append(out, fmt.Sprintf("ready queue lacks task %q that the history says is pending", key))
	}
	return out
}
