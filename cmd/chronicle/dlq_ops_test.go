package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

// sdkClient is a client on the test's schema, for making fixtures quickly.
func (c *cli) sdkClient() *sdk.Client {
	c.t.Helper()
	client, err := sdk.NewClient(context.Background(), sdk.Config{Pool: c.pool, DisableNATS: true, AllowUnregisteredTypes: true})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(client.Close)
	return client
}

// deadLetter makes a dead letter of jobType in queue failing with errText.
func (c *cli) deadLetter(client *sdk.Client, jobType, queue, errText string) eventlog.ID {
	c.t.Helper()
	ctx := context.Background()
	res, err := client.Enqueue(ctx, jobType, struct{}{}, sdk.WithQueue(queue), sdk.WithRetryPolicy(sdk.RetryPolicy{MaximumAttempts: 1}))
	if err != nil {
		c.t.Fatal(err)
	}
	claimed, err := client.Engine().Claim(ctx, engine.ClaimParams{Queues: []string{queue}, Limit: 1, WorkerID: "fixture", LeaseDuration: time.Minute})
	if err != nil || len(claimed) != 1 || claimed[0].Job.ID != res.ID {
		c.t.Fatalf("claim %s: %v %v", res.ID, claimed, err)
	}
	if _, err := client.Engine().Complete(ctx, []engine.Outcome{{Lease: claimed[0].Lease, Err: errors.New(errText)}}); err != nil {
		c.t.Fatal(err)
	}
	return res.ID
}

// runIn runs chronicle with stdin.
func (c *cli) runIn(stdin string, args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := c.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		res.code = cmd.ProcessState.ExitCode()
	}
	return res
}

func (c *cli) events() int64 {
	c.t.Helper()
	var n int64
	if err := c.pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n); err != nil {
		c.t.Fatal(err)
	}
	return n
}

func jobIDs(jobs []jobJSON) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

func sameIDs(got []string, want ...eventlog.ID) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		if got[i] != want[i].String() {
			return false
		}
	}
	return true
}

// TestDLQOperations: list filters, show with history, bulk retry and
// resolve with dry run, confirmation and --yes, cleanup and the audit of
// it all, through the binary.
func TestDLQOperations(t *testing.T) {
	t.Parallel()
	c := setup(t)
	client := c.sdkClient()
	mailbox := c.deadLetter(client, "email.send", "emails", "SMTP 550: mailbox unavailable")
	tryLater := c.deadLetter(client, "email.send", "emails", "smtp 421: try again later")
	hook := c.deadLetter(client, "webhook.deliver", "hooks", "POST https://example.com/hook: HTTP 500")
	c.exec(`UPDATE executions SET updated_at = updated_at - interval '3 days' WHERE id = $1`, [16]byte(hook))
	pending := c.enqueue("data.export", "--delay", "1h")

	// List with filters.
	if got := jobIDs(c.list("dlq", "list", "--error", "SMTP")); !sameIDs(got, mailbox, tryLater) {
		t.Fatalf("--error SMTP listed %v", got)
	}
	if got := jobIDs(c.list("dlq", "list", "--older-than", "2d")); !sameIDs(got, hook) {
		t.Fatalf("--older-than 2d listed %v", got)
	}
	if got := jobIDs(c.list("dlq", "list", "--type", "webhook.*", "--newer-than", "1h")); len(got) != 0 {
		t.Fatalf("--type webhook.* --newer-than 1h listed %v", got)
	}
	if got := jobIDs(c.list("dlq", "list", "--queue", "emails", "--error", "550")); !sameIDs(got, mailbox) {
		t.Fatalf("--queue emails --error 550 listed %v", got)
	}
	c.fails("want an age such as", "dlq", "list", "--older-than", "3 weeks")

	// Show: state, why, and the full history.
	out := c.ok("dlq", "show", mailbox.String())
	for _, want := range []string{"Status:", "dead_lettered", "Dead-lettered", "after 1 attempt: all 1 attempts failed", "JobEnqueued", "AttemptFailed", "JobDeadLettered", "SMTP 550"} {
		if !strings.Contains(out, want) {
			t.Fatalf("dlq show lacks %q:\n%s", want, out)
		}
	}
	var shown struct {
		Job     jobJSON     `json:"job"`
		History []eventJSON `json:"history"`
	}
	decodeJSON(t, c.ok("dlq", "show", mailbox.String(), "--json"), &shown)
	if shown.Job.ID != mailbox.String() || len(shown.History) != 4 || shown.History[3].Type != "JobDeadLettered" {
		t.Fatalf("dlq show --json: %+v", shown)
	}
	c.fails("never dead-lettered", "dlq", "show", pending.String())
	c.fails("not found", "dlq", "show", eventlog.NewID(time.Now()).String())

	// Bulk: refusals change nothing.
	before := c.events()
	out = c.ok("dlq", "retry", "--error", "smtp", "--dry-run")
	if !strings.Contains(out, "dry run: 2 dead letters would be retried; nothing changed") || !strings.Contains(out, mailbox.String()) || !strings.Contains(out, tryLater.String()) {
		t.Fatalf("dry run printed:\n%s", out)
	}
	c.fails("name a job ID, or select dead letters", "dlq", "retry")
	c.fails("not found", "dlq", "retry", eventlog.NewID(time.Now()).String())
	c.fails("only dead-lettered jobs can be retried", "dlq", "retry", pending.String())
	c.fails("only dead-lettered jobs can be resolved", "dlq", "resolve", pending.String(), "--notes", "n/a")
	c.fails("not both", "dlq", "retry", mailbox.String(), "--type", "email.send")
	c.fails("--notes is required", "dlq", "resolve", "--queue", "emails")
	if res := c.runIn("n\n", "dlq", "resolve", "--queue", "emails", "--notes", "customers left"); res.code != 0 ||
		!strings.Contains(res.stderr, "Resolve 2 dead letters? [y/N]") || !strings.Contains(res.stdout, "not confirmed; nothing resolved") {
		t.Fatalf("declined resolve: %s", res)
	}
	if n := c.events(); n != before {
		t.Fatalf("dry run and refusals appended %d events", n-before)
	}

	// Bulk resolve, confirmed on stdin; bulk retry with --yes.
	if res := c.runIn("y\n", "dlq", "resolve", "--queue", "emails", "--notes", "customers left", "--actor", "alice@ops"); res.code != 0 ||
		!strings.Contains(res.stdout, "resolved 2 of 2 matching dead letters") {
		t.Fatalf("confirmed resolve: %s", res)
	}
	var bulk bulkResultJSON
	decodeJSON(t, c.ok("dlq", "retry", "--type", "webhook.deliver", "--older-than", "2d", "--note", "endpoint is back", "--actor", "bob@ops", "--yes", "--json"), &bulk)
	if bulk.Matched != 1 || bulk.Changed != 1 || !sameIDs(bulk.IDs, hook) {
		t.Fatalf("bulk retry --json: %+v", bulk)
	}
	if n := c.events(); n != before+3 {
		t.Fatalf("bulk operations on 3 jobs appended %d events", n-before)
	}
	for id, want := range map[eventlog.ID]string{mailbox: "resolved", tryLater: "resolved", hook: "pending", pending: "pending"} {
		if got := c.show(id).Status; got != want {
			t.Fatalf("job %s is %s, want %s", id, got, want)
		}
	}

	// Audit: each action with actor and reason.
	var all, audit []sdk.AuditEntry
	decodeJSON(t, c.ok("audit", "--since", "24h", "--json"), &all)
	for _, e := range all {
		if e.Kind == "job" { // schedules' own actions may be listed too
			audit = append(audit, e)
		}
	}
	if len(audit) != 3 {
		t.Fatalf("audit: %+v", audit)
	}
	wantAudit := []struct{ action, actor, reason, id string }{
		{"JobResolved", "alice@ops", "customers left", mailbox.String()},
		{"JobResolved", "alice@ops", "customers left", tryLater.String()},
		{"JobRetried", "bob@ops", "endpoint is back", hook.String()},
	}
	for i, w := range wantAudit {
		if a := audit[i]; a.Action != w.action || a.Actor != w.actor || a.Reason != w.reason || a.ExecutionID != w.id {
			t.Fatalf("audit entry %d = %+v, want %+v", i, a, w)
		}
	}
	table := c.ok("audit", "--since", "1d", "--actor", "bob@ops")
	if !strings.Contains(table, "JobRetried") || !strings.Contains(table, "endpoint is back") || strings.Contains(table, "JobResolved") {
		t.Fatalf("audit --actor bob@ops:\n%s", table)
	}
	c.fails("--since", "audit", "--since", "yesterday")

	// Cleanup of resolved dead letters older than 90 days.
	c.exec(`UPDATE executions SET finished_at = finished_at - interval '100 days' WHERE id = $1`, [16]byte(mailbox))
	c.fails("want 1 or more", "dlq", "cleanup", "--older-than-days", "0")
	if out := c.ok("dlq", "cleanup", "--older-than-days", "90"); !strings.Contains(out, "removed 1 executions with 5 events") {
		t.Fatalf("dlq cleanup printed %q", out)
	}
	c.fails("not found", "jobs", "show", mailbox.String())
	if out := c.ok("dlq", "cleanup"); !strings.Contains(out, "removed nothing") {
		t.Fatalf("second dlq cleanup printed %q", out)
	}
	if out := c.ok("verify"); !strings.Contains(out, ": OK") {
		t.Fatalf("verify:\n%s", out)
	}
}
