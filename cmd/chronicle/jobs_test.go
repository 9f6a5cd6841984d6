package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

func TestEnqueueListShowHistory(t *testing.T) {
	t.Parallel()
	c := setup(t)
	id := c.enqueue("email.send", "--payload", `{"to": "ada@example.com", "n": 1.50}`, "--queue", "emails", "--priority", "high")

	table := c.ok("jobs", "list")
	for _, want := range []string{"ID", "LAST_ERROR", id.String(), "email.send", "emails", "pending"} {
		if !strings.Contains(table, want) {
			t.Fatalf("jobs list lacks %q:\n%s", want, table)
		}
	}
	jobs := c.list("jobs", "list", "--status", "pending", "--type", "email.send", "--queue", "emails")
	if len(jobs) != 1 || jobs[0].ID != id.String() {
		t.Fatalf("filtered list: %+v", jobs)
	}
	if jobs := c.list("jobs", "list", "--status", "succeeded,dead_lettered"); len(jobs) != 0 {
		t.Fatalf("list of succeeded jobs: %+v", jobs)
	}
	if jobs := c.list("jobs", "list", "--queue", "default"); len(jobs) != 0 {
		t.Fatalf("list of queue default: %+v", jobs)
	}
	c.fails(`--status "done"`, "jobs", "list", "--status", "done")

	j := c.show(id)
	if j.Type != "email.send" || j.Queue != "emails" || j.Priority != "high" || j.Status != "pending" || j.Attempt != 0 || j.MaxAttempts != 4 || j.Events != 1 {
		t.Fatalf("show --json: %+v", j)
	}
	var payload map[string]any
	if err := json.Unmarshal(j.Payload, &payload); err != nil || payload["to"] != "ada@example.com" || payload["n"] != 1.5 {
		t.Fatalf("payload %s (%v)", j.Payload, err)
	}
	text := c.ok("jobs", "show", id.String())
	for _, want := range []string{"Status:", "pending", "Priority:", "high", "ada@example.com", "4 attempts, retries after 1m0s, 5m0s, 15m0s"} {
		if !strings.Contains(text, want) {
			t.Fatalf("jobs show lacks %q:\n%s", want, text)
		}
	}

	h := c.history(id)
	if len(h) != 1 || h[0].Seq != 1 || h[0].Type != "JobEnqueued" || len(h[0].Hash) != 64 {
		t.Fatalf("history --json: %+v", h)
	}
	var enq struct {
		Queue   string         `json:"queue"`
		Payload map[string]any `json:"payload"`
	}
	if err := json.Unmarshal(h[0].Data, &enq); err != nil || enq.Queue != "emails" || enq.Payload["to"] != "ada@example.com" {
		t.Fatalf("JobEnqueued data %s (%v)", h[0].Data, err)
	}
	if text := c.ok("jobs", "history", id.String()); !strings.Contains(text, "SEQ") || !strings.Contains(text, "JobEnqueued") || !strings.Contains(text, `"queue": "emails"`) {
		t.Fatalf("jobs history:\n%s", text)
	}
}

func TestEnqueueOptions(t *testing.T) {
	t.Parallel()
	c := setup(t)

	first := c.ok("enqueue", "webhook.deliver", "--idempotency-key", "webhook:1:2", "--idempotency-ttl", "1h")
	again := c.ok("enqueue", "webhook.deliver", "--idempotency-key", "webhook:1:2")
	if strings.TrimSpace(again) != strings.TrimSpace(first)+" (existing)" {
		t.Fatalf("second enqueue with the key printed %q, first %q", again, first)
	}

	delayed := c.show(c.enqueue("data.export", "--delay", "1h"))
	if d := delayed.RunAt.Sub(delayed.CreatedAt); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("--delay 1h: run_at %s is %s after created_at", delayed.RunAt, d)
	}
	at := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	if j := c.show(c.enqueue("data.export", "--run-at", at.Format(time.RFC3339))); !j.RunAt.Equal(at) {
		t.Fatalf("--run-at: run_at %s", j.RunAt)
	}
	j := c.show(c.enqueue("email.send", "--max-attempts", "2"))
	if j.MaxAttempts != 2 || len(j.RetryPolicy.Schedule) != 3 {
		t.Fatalf("--max-attempts 2 should keep the type's schedule: %+v", j.RetryPolicy)
	}
	if j := c.show(c.enqueue("custom.thing")); j.Queue != "default" || j.Priority != "normal" || j.MaxAttempts != 10 {
		t.Fatalf("unregistered type defaults: %+v", j)
	}
}

func TestEnqueueRejectsBadInput(t *testing.T) {
	t.Parallel()
	c := setup(t)
	for _, tc := range []struct {
		want string
		args []string
	}{
		{"invalid payload: invalid JSON", []string{"email.send", "--payload", `{"to": `}},
		{"invalid payload: invalid JSON", []string{"email.send", "--payload", `{} {}`}},
		{`--priority: invalid priority: "urgent"`, []string{"email.send", "--priority", "urgent"}},
		{"--queue: invalid queue", []string{"email.send", "--queue", "no spaces"}},
		{"invalid job type", []string{"Email.Send"}},
		{"--delay: invalid delay", []string{"email.send", "--delay", "-5m"}},
		{"--run-at", []string{"email.send", "--run-at", "tomorrow"}},
		{"--delay and --run-at", []string{"email.send", "--delay", "1m", "--run-at", "2030-01-01T00:00:00Z"}},
		{"--max-attempts: invalid max attempts", []string{"email.send", "--max-attempts", "0"}},
		{"--idempotency-ttl needs --idempotency-key", []string{"email.send", "--idempotency-ttl", "1h"}},
		{"--idempotency-key: invalid idempotency TTL", []string{"email.send", "--idempotency-key", "k", "--idempotency-ttl", "0s"}},
	} {
		c.fails(tc.want, append([]string{"enqueue"}, tc.args...)...)
	}
	if jobs := c.list("jobs", "list"); len(jobs) != 0 {
		t.Fatalf("refused enqueues wrote jobs: %+v", jobs)
	}
	var events int
	if err := c.pool.QueryRow(t.Context(), "SELECT count(*) FROM events").Scan(&events); err != nil || events != 0 {
		t.Fatalf("refused enqueues wrote %d events (%v)", events, err)
	}
}

func TestJobIDs(t *testing.T) {
	t.Parallel()
	c := setup(t)
	missing := eventlog.NewID(time.Now()).String()
	for _, sub := range [][]string{{"jobs", "show"}, {"jobs", "history"}, {"jobs", "cancel", "--reason", "r"},
		{"dlq", "retry"}, {"dlq", "resolve", "--notes", "n"}} {
		c.fails("job "+missing+" not found", append(sub, missing)...)
		c.fails(`invalid execution id "not-an-id"`, append(sub, "not-an-id")...)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	c := setup(t)
	id := c.enqueue("demo.sleep", "--payload", `{"ms": 10}`, "--delay", "1h")
	c.fails("--reason is required", "jobs", "cancel", id.String())
	if out := c.ok("jobs", "cancel", id.String(), "--reason", "not needed", "--actor", "ops@example"); !strings.Contains(out, "canceled job "+id.String()) {
		t.Fatalf("cancel printed %q", out)
	}
	if j := c.show(id); j.Status != "canceled" || j.FinishedAt == nil {
		t.Fatalf("after cancel: %+v", j)
	}
	h := c.history(id)
	last := h[len(h)-1]
	var d struct{ Actor, Reason string }
	if err := json.Unmarshal(last.Data, &d); err != nil || last.Type != "JobCanceled" || d.Actor != "ops@example" || d.Reason != "not needed" {
		t.Fatalf("last event %s %s (%v)", last.Type, last.Data, err)
	}
	c.fails("cannot cancel job "+id.String()+": it is canceled", "jobs", "cancel", id.String(), "--reason", "again")
}
