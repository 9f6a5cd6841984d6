package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/eventlog/postgres"
)

func (c *cli) countSQL(sql string) int64 {
	c.t.Helper()
	var n int64
	if err := c.pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		c.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestSchedulesCommands(t *testing.T) {
	t.Parallel()
	c := setup(t)

	// Bad input: a clear error and nothing written.
	c.fails(`invalid cron: "0 3 * *": expected 5 to 6 fields, found 4`, "schedules", "create", "nightly", "--cron", "0 3 * *", "--type", "email.send")
	c.fails(`invalid time zone: "Europe/Nowhere" is not a known IANA time zone`, "schedules", "create", "nightly", "--cron", "0 3 * * *", "--time-zone", "Europe/Nowhere", "--type", "email.send")
	c.fails(`invalid overlap policy: "never"`, "schedules", "create", "nightly", "--cron", "0 3 * * *", "--type", "email.send", "--overlap", "never")
	c.fails("--cron is required", "schedules", "create", "nightly", "--type", "email.send")
	if n := c.countSQL(`SELECT count(*) FROM events`) + c.countSQL(`SELECT count(*) FROM schedules`); n != 0 {
		t.Fatalf("refused creations wrote %d rows", n)
	}

	out := c.ok("schedules", "create", "nightly", "--cron", "0 3 * * *", "--time-zone", "Europe/Berlin", "--type", "email.send",
		"--payload", `{"to": "ops@example.com"}`, "--overlap", "buffer_one", "--catch-up", "latest", "--reason", "nightly digest")
	if !strings.Contains(out, "schedule nightly") || !strings.Contains(out, "0 3 * * * Europe/Berlin") {
		t.Fatalf("create printed %q", out)
	}
	c.fails("schedule exists", "schedules", "create", "nightly", "--cron", "@hourly", "--type", "email.send")

	var s scheduleJSON
	decodeJSON(t, c.ok("schedules", "show", "nightly", "--json"), &s)
	if s.Status != "active" || s.Definition.Overlap != engine.OverlapBufferOne || s.Definition.CatchUp != engine.CatchUpLatest ||
		s.Definition.Job.Queue != "default" || s.Definition.Job.RetryPolicy.MaximumAttempts != 4 || s.NextFireAt == nil {
		t.Fatalf("show --json: %+v", s)
	}
	if h := s.NextFireAt.UTC().Hour(); h != 1 && h != 2 { // 03:00 in Berlin
		t.Fatalf("next fire %s is not 03:00 in Berlin", s.NextFireAt)
	}
	if text := c.ok("schedules", "list"); !strings.Contains(text, "NEXT_FIRE") || !strings.Contains(text, "nightly") || !strings.Contains(text, "buffer_one") {
		t.Fatalf("list:\n%s", text)
	}

	c.fails("--reason is required", "schedules", "pause", "nightly")
	if out := c.ok("schedules", "pause", "nightly", "--reason", "holiday", "--actor", "ada"); strings.TrimSpace(out) != "paused schedule nightly" {
		t.Fatalf("pause printed %q", out)
	}
	c.fails("cannot pause schedule nightly: it is paused", "schedules", "pause", "nightly", "--reason", "again")
	jobID, err := eventlog.ParseID(strings.TrimSpace(c.ok("schedules", "trigger", "nightly", "--reason", "run it now")))
	if err != nil {
		t.Fatal(err)
	}
	if j := c.show(jobID); j.Type != "email.send" || j.Status != "pending" {
		t.Fatalf("triggered job: %+v", j)
	}
	c.ok("schedules", "resume", "nightly")
	c.ok("schedules", "create", "nightly", "--cron", "0 4 * * *", "--time-zone", "Europe/Berlin", "--type", "email.send", "--replace", "--reason", "later")
	c.fails(`schedule "missing"`, "schedules", "trigger", "missing")
	c.ok("schedules", "delete", "nightly", "--reason", "replaced by the weekly one")
	c.fails("not found", "schedules", "show", "nightly")
	decodeJSON(t, c.ok("schedules", "show", s.ID, "--json"), &s) // a deleted schedule, by ID
	if s.Status != "deleted" || s.Definition.Cron != "0 4 * * *" {
		t.Fatalf("deleted schedule: %+v", s)
	}

	var h []eventJSON
	decodeJSON(t, c.ok("schedules", "history", s.ID, "--json"), &h)
	var got []string
	for _, e := range h {
		var d struct{ Actor, Reason string }
		_ = json.Unmarshal(e.Data, &d)
		got = append(got, e.Type+":"+d.Reason)
	}
	want := "ScheduleCreated:nightly digest SchedulePaused:holiday ScheduleTriggered:run it now ScheduleResumed: ScheduleUpdated:later ScheduleDeleted:replaced by the weekly one"
	if strings.Join(got, " ") != want {
		t.Fatalf("history:\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
	if list := c.ok("schedules", "list", "--json"); strings.TrimSpace(list) != "[]" {
		t.Fatalf("list after deleting: %s", list)
	}
	c.ok("verify")
}

func TestMigrateCreatesDefaultSchedules(t *testing.T) {
	t.Parallel()
	c := emptySchema(t)
	out := c.ok("migrate")
	for _, name := range []string{"cleanup.dead_letters", "cleanup.idempotency_keys", "cleanup.histories", "cleanup.workers"} {
		if !strings.Contains(out, "created schedule "+name) {
			t.Fatalf("migrate did not create %s:\n%s", name, out)
		}
	}
	c.ok("schedules", "delete", "cleanup.workers", "--reason", "we clean workers ourselves")
	if out := c.ok("migrate"); strings.TrimSpace(out) != "already up to date" {
		t.Fatalf("second migrate:\n%s", out)
	}
	var list []scheduleJSON
	decodeJSON(t, c.ok("schedules", "list", "--json"), &list)
	if len(list) != 3 {
		t.Fatalf("%d schedules after deleting one of four and migrating again", len(list))
	}
}

// engineDriver drives jobs through the engine on the test's schema.
type engineDriver struct {
	t   *testing.T
	eng *engine.Engine
}

func (c *cli) driver() *engineDriver {
	return &engineDriver{t: c.t, eng: engine.New(postgres.New(c.pool), nil, nil)}
}

func (h *engineDriver) enqueue(typ string, policy engine.RetryPolicy) eventlog.ID {
	h.t.Helper()
	out, err := h.eng.Enqueue(context.Background(), nil, []engine.NewJob{{Type: typ, Queue: "default", Payload: json.RawMessage(`{}`), RetryPolicy: policy}})
	if err != nil {
		h.t.Fatal(err)
	}
	return out[0].ID
}

// attempt claims the next job of the default queue and records its outcome.
func (h *engineDriver) attempt(failure error) {
	h.t.Helper()
	got, err := h.eng.Claim(context.Background(), engine.ClaimParams{Queues: []string{"default"}, Limit: 1, WorkerID: "w", LeaseDuration: time.Minute})
	if err != nil || len(got) != 1 {
		h.t.Fatalf("claim: %d jobs, %v", len(got), err)
	}
	res, err := h.eng.Complete(context.Background(), []engine.Outcome{{Lease: got[0].Lease, Err: failure}})
	if err != nil || res[0] != nil {
		h.t.Fatalf("complete: %v %v", err, res)
	}
}

func TestTimeTravelCommands(t *testing.T) {
	t.Parallel()
	c := setup(t)
	h := c.driver()
	id := h.enqueue("email.send", engine.RetryPolicy{MaximumAttempts: 3, Schedule: []time.Duration{time.Hour}})
	h.attempt(errors.New("mailbox full"))
	events := c.history(id)
	between := events[1].RecordedAt.Add(events[2].RecordedAt.Sub(events[1].RecordedAt) / 2) // running
	after := events[2].RecordedAt.Add(time.Millisecond)                                     // retrying

	var j jobJSON
	decodeJSON(t, c.ok("jobs", "show", id.String(), "--at", between.Format(time.RFC3339Nano), "--json"), &j)
	if j.Status != "running" || j.Attempt != 1 || j.LastError != "" || j.Events != 2 {
		t.Fatalf("at %s: %+v", between, j)
	}
	text := c.ok("jobs", "show", id.String(), "--at", after.Format(time.RFC3339Nano))
	for _, want := range []string{"As of " + formatTime(after), "retrying", "mailbox full"} {
		if !strings.Contains(text, want) {
			t.Fatalf("jobs show --at lacks %q:\n%s", want, text)
		}
	}
	c.fails("did not exist yet", "jobs", "show", id.String(), "--at", events[0].RecordedAt.Add(-time.Minute).Format(time.RFC3339Nano))
	c.fails(`--at "yesterday-ish"`, "jobs", "show", id.String(), "--at", "yesterday-ish")
	c.fails("did not exist yet", "jobs", "show", id.String(), "--at", "1d ago")

	var stats []engine.QueueStats
	decodeJSON(t, c.ok("queues", "stats", "--at", between.Format(time.RFC3339Nano), "--json"), &stats)
	if len(stats) != 1 || stats[0] != (engine.QueueStats{Queue: "default", Type: "email.send", Running: 1}) {
		t.Fatalf("queues stats --at %s: %+v", between, stats)
	}
	decodeJSON(t, c.ok("queues", "stats", "--json"), &stats)
	if len(stats) != 1 || stats[0] != (engine.QueueStats{Queue: "default", Type: "email.send", Retrying: 1}) {
		t.Fatalf("queues stats now: %+v", stats)
	}
	text = c.ok("queues", "stats", "--at", "2020-01-01 00:00:00")
	if !strings.Contains(text, "As of 2020-01-01T00:00:00.000Z") || strings.Contains(text, "email.send") {
		t.Fatalf("queues stats before anything:\n%s", text)
	}
}

// TestPolicySimulate replays real histories — one job that failed then
// succeeded, one dead-lettered after four failures, one that succeeded at
// once — under a policy of a single attempt: the first becomes a dead
// letter. Nothing in the database changes.
func TestPolicySimulate(t *testing.T) {
	t.Parallel()
	c := setup(t)
	h := c.driver()
	now := engine.RetryPolicy{MaximumAttempts: 4, Schedule: []time.Duration{0}}
	boom := errors.New("smtp 451")
	h.enqueue("email.send", now)
	h.attempt(boom)
	h.attempt(nil)
	h.enqueue("email.send", now)
	for range 4 {
		h.attempt(boom)
	}
	h.enqueue("email.send", now)
	h.attempt(nil)
	h.enqueue("webhook.deliver", now) // another type: not replayed
	h.attempt(boom)

	fingerprint := func() string {
		var s string
		if err := c.pool.QueryRow(context.Background(), `SELECT count(*) || ':' || md5(string_agg(encode(hash, 'hex'), ',' ORDER BY execution_id, seq))
			|| ':' || (SELECT md5(string_agg(e::text, ',' ORDER BY id)) FROM executions e) FROM events`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := fingerprint()
	var rep simulationJSON
	decodeJSON(t, c.ok("policy", "simulate", "--type", "email.send", "--since", "1d", "--policy", `{"maximum_attempts": 1}`, "--json"), &rep)
	if rep.Jobs != 3 || rep.WithFailures != 2 || rep.Actual != (engine.OutcomeCounts{Succeeded: 2, DeadLettered: 1}) ||
		rep.Simulated != (engine.OutcomeCounts{Succeeded: 1, DeadLettered: 2}) || rep.SucceededToDeadLettered != 1 ||
		rep.ActualAttempts != 7 || rep.SimulatedAttempts != 3 || rep.Policy.MaximumAttempts != 1 {
		t.Fatalf("simulation: %+v", rep)
	}
	text := c.ok("policy", "simulate", "--type", "email.send", "--policy", `{"maximum_attempts": 6, "schedule": ["1s"]}`)
	for _, want := range []string{"Replayed 3 jobs of type email.send enqueued in the last 7d (2 with failures)", "Proposed policy: 6 attempts, retries after 1s",
		"undetermined", "p95 completion delay", "Nothing was changed"} {
		if !strings.Contains(text, want) {
			t.Fatalf("simulate output lacks %q:\n%s", want, text)
		}
	}
	if after := fingerprint(); after != before {
		t.Fatalf("policy simulate changed the database: %s → %s", before, after)
	}
	c.fails(`invalid retry policy: json: unknown field "max_attempts"`, "policy", "simulate", "--type", "email.send", "--policy", `{"max_attempts": 1}`)
	c.fails("--type is required", "policy", "simulate", "--policy", `{"maximum_attempts": 1}`)
	c.fails(`--since "a week"`, "policy", "simulate", "--type", "email.send", "--since", "a week", "--policy", `{"maximum_attempts": 1}`)
}
