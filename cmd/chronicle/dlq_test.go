package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

func TestDeadLetterFlow(t *testing.T) {
	t.Parallel()
	c := setup(t)
	exhausted := c.enqueue("demo.fail", "--payload", `{"message": "kaboom"}`, "--max-attempts", "1")
	permanent := c.enqueue("demo.fail", "--payload", `{"message": "bad input", "permanent": true}`)
	slept := c.enqueue("demo.sleep", "--payload", `{"ms": 20}`)

	w := c.startWorker("--queues", "default=4", "--poll", "100ms", "--log-format", "json")
	status := func(id eventlog.ID, want string) func() bool {
		return func() bool { return c.show(id).Status == want }
	}
	eventually(t, "the exhausted job to be dead-lettered", 20*time.Second, status(exhausted, "dead_lettered"))
	eventually(t, "the permanent failure to be dead-lettered", 20*time.Second, status(permanent, "dead_lettered"))
	eventually(t, "demo.sleep to succeed", 20*time.Second, status(slept, "succeeded"))

	// A retried dead letter runs again with a fresh budget; this one fails
	// permanently again.
	if out := c.ok("dlq", "retry", permanent.String(), "--note", "after the fix", "--actor", "ops"); !strings.Contains(out, "re-queued job "+permanent.String()) {
		t.Fatalf("dlq retry printed %q", out)
	}
	eventually(t, "the retried job's second attempt to be dead-lettered", 20*time.Second, func() bool {
		j := c.show(permanent)
		return j.Status == "dead_lettered" && j.Attempt == 2
	})
	logs := w.stop(t)
	if !strings.Contains(logs, `"msg":"worker started"`) || !strings.Contains(logs, `"worker_id"`) || !strings.Contains(logs, `"queues":"default=4"`) {
		t.Fatalf("worker logs lack the start line:\n%s", logs)
	}
	if !strings.Contains(logs, `"msg":"worker stopped"`) {
		t.Fatalf("worker logs lack the stop line:\n%s", logs)
	}

	table := c.ok("dlq", "list")
	for _, want := range []string{exhausted.String(), "kaboom", permanent.String(), "permanent: bad input"} {
		if !strings.Contains(table, want) {
			t.Fatalf("dlq list lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, slept.String()) {
		t.Fatalf("dlq list shows a succeeded job:\n%s", table)
	}
	dead := c.list("dlq", "list", "--type", "demo.fail", "--queue", "default")
	if len(dead) != 2 || dead[0].ID != exhausted.String() || dead[0].LastError != "kaboom" {
		t.Fatalf("dlq list --json: %+v", dead)
	}

	c.fails("--notes is required", "dlq", "resolve", exhausted.String())
	c.fails("--notes is required", "dlq", "resolve", exhausted.String(), "--notes", "  ")
	if out := c.ok("dlq", "resolve", exhausted.String(), "--notes", "customer deleted; nothing to send", "--actor", "ops"); !strings.Contains(out, "resolved job "+exhausted.String()) {
		t.Fatalf("dlq resolve printed %q", out)
	}
	if j := c.show(exhausted); j.Status != "resolved" {
		t.Fatalf("after resolve: %+v", j)
	}
	h := c.history(exhausted)
	var types []string
	for _, e := range h {
		types = append(types, e.Type)
	}
	if got := strings.Join(types, ","); got != "JobEnqueued,AttemptStarted,AttemptFailed,JobDeadLettered,JobResolved" {
		t.Fatalf("history: %s", got)
	}
	var resolved struct{ Actor, Notes string }
	if err := json.Unmarshal(h[len(h)-1].Data, &resolved); err != nil || resolved.Notes != "customer deleted; nothing to send" || resolved.Actor != "ops" {
		t.Fatalf("JobResolved data %s (%v)", h[len(h)-1].Data, err)
	}
	if text := c.ok("jobs", "history", exhausted.String()); !strings.Contains(text, "JobResolved") || !strings.Contains(text, "customer deleted; nothing to send") {
		t.Fatalf("jobs history:\n%s", text)
	}

	var retried bool
	for _, e := range c.history(permanent) {
		var d struct{ Actor, Note string }
		if e.Type == "JobRetried" && json.Unmarshal(e.Data, &d) == nil && d.Actor == "ops" && d.Note == "after the fix" {
			retried = true
		}
	}
	if !retried {
		t.Fatalf("history of the retried job lacks JobRetried by ops: %+v", c.history(permanent))
	}

	c.fails("only dead-lettered jobs can be resolved", "dlq", "resolve", exhausted.String(), "--notes", "again")
	c.fails("only dead-lettered jobs can be retried", "dlq", "retry", slept.String())
	if dead := c.list("dlq", "list"); len(dead) != 1 || dead[0].ID != permanent.String() {
		t.Fatalf("dlq after resolving one: %+v", dead)
	}
	// 3 jobs, and the 4 built-in cleanup schedules that chronicle worker created.
	if out := c.ok("verify"); !strings.Contains(out, "verified 7 executions") || !strings.Contains(out, ": OK") {
		t.Fatalf("verify after the flow:\n%s", out)
	}
}
