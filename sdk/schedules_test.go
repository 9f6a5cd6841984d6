package sdk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

// scheduleEvents summarizes a schedule's history after its creation, such
// as [Fired Skipped Fired(buffered)].
func scheduleEvents(t *testing.T, b *bundle, name string) []string {
	t.Helper()
	h, err := b.client.ScheduleHistory(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if err := eventlog.CheckChain(h); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range h[1:] {
		s := strings.TrimPrefix(e.Type, "Schedule")
		if e.Type == engine.EventScheduleFired && decodeEvent[engine.ScheduleFired](t, e, e.Type).Buffered {
			s += "(buffered)"
		}
		out = append(out, s)
	}
	return out
}

func countOf(events []string, name string) int {
	n := 0
	for _, e := range events {
		if e == name {
			n++
		}
	}
	return n
}

// TestScheduleOverlapWithARunningJob runs an every-second schedule whose
// job blocks until the test releases it. Under skip, the ticks meanwhile
// are skipped and the next tick after the release fires; under
// buffer_one, the first tick meanwhile is buffered, the others skipped,
// and the buffered tick fires as soon as the job finishes.
func TestScheduleOverlapWithARunningJob(t *testing.T) {
	t.Parallel()
	for _, overlap := range []sdk.OverlapPolicy{sdk.OverlapSkip, sdk.OverlapBufferOne} {
		t.Run(string(overlap), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			release := make(chan struct{})
			runs := make(chan string, 10)
			w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: 50 * time.Millisecond, MaintenanceInterval: 50 * time.Millisecond, LeaderTTL: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			var started atomic.Int32
			if err := w.Handle("report.build", func(ctx context.Context, _ json.RawMessage) error {
				info, _ := sdk.JobFromContext(ctx)
				runs <- info.ID.String()
				if started.Add(1) == 1 {
					<-release
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := b.client.CreateSchedule(ctx, sdk.ScheduleOptions{Name: "reports", Cron: "@every 1s", JobType: "report.build", Overlap: overlap}); err != nil {
				t.Fatal(err)
			}
			startWorker(t, w)
			recv(t, "the first run", runs, 5*time.Second)
			waitFor(t, "two ticks while the run is going", 5*time.Second, func() bool {
				ev := scheduleEvents(t, b, "reports")
				return len(ev) >= 3
			})
			ev := scheduleEvents(t, b, "reports")
			switch overlap {
			case sdk.OverlapSkip:
				if ev[0] != "Fired" || ev[1] != "Skipped" || ev[2] != "Skipped" {
					t.Fatalf("skip while running: %v", ev)
				}
			case sdk.OverlapBufferOne:
				if ev[0] != "Fired" || ev[1] != "Buffered" || ev[2] != "Skipped" {
					t.Fatalf("buffer one while running: %v", ev)
				}
			}
			close(release)
			recv(t, "the run after the release", runs, 5*time.Second)
			ev = scheduleEvents(t, b, "reports")
			if overlap == sdk.OverlapBufferOne && countOf(ev, "Fired(buffered)") != 1 {
				t.Fatalf("the buffered tick did not fire once: %v", ev)
			}
			if countOf(ev, "Fired")+countOf(ev, "Fired(buffered)") < 2 {
				t.Fatalf("no second run: %v", ev)
			}
			// Stop the worker (and its leader) so that verify reads a
			// database at rest.
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := w.Stop(sctx); err != nil {
				t.Fatal(err)
			}
			verifyOK(t, b)
		})
	}
}

// TestScheduleBadInputWritesNothing: an invalid cron expression, time zone,
// job type or policy is refused with a clear error and nothing is written.
func TestScheduleBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ok := sdk.ScheduleOptions{Name: "nightly", Cron: "0 3 * * *", JobType: sdk.JobTypeEmailSend}
	for _, tc := range []struct {
		mutate func(*sdk.ScheduleOptions)
		want   string
	}{
		{func(o *sdk.ScheduleOptions) { o.Cron = "0 25 * * *" }, `invalid cron: "0 25 * * *": end of range (25) above maximum (23)`},
		{func(o *sdk.ScheduleOptions) { o.Cron = "@sometimes" }, `invalid cron: "@sometimes"`},
		{func(o *sdk.ScheduleOptions) { o.TimeZone = "Europe/Atlantis" }, `invalid time zone: "Europe/Atlantis" is not a known IANA time zone`},
		{func(o *sdk.ScheduleOptions) { o.Cron = "CRON_TZ=Moon/Base 0 3 * * *" }, `invalid time zone: "Moon/Base"`},
		{func(o *sdk.ScheduleOptions) { o.Name = "two words" }, "invalid schedule name"},
		{func(o *sdk.ScheduleOptions) { o.JobType = "not.registered" }, "unknown job type"},
		{func(o *sdk.ScheduleOptions) { o.Queue = "bad queue" }, "invalid queue"},
		{func(o *sdk.ScheduleOptions) { o.Overlap = "sometimes" }, "invalid overlap policy"},
		{func(o *sdk.ScheduleOptions) { o.RetryPolicy = &sdk.RetryPolicy{MaximumAttempts: -2} }, "MaximumAttempts is -2"},
	} {
		o := ok
		tc.mutate(&o)
		_, err := b.client.CreateSchedule(ctx, o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CreateSchedule(%+v): %v, want an error containing %q", o, err, tc.want)
		}
		if _, err := b.client.RegisterSchedule(ctx, o); err == nil {
			t.Errorf("RegisterSchedule(%+v) accepted it", o)
		}
	}
	if n := countRows(t, b, `SELECT count(*) FROM events`) + countRows(t, b, `SELECT count(*) FROM schedules`); n != 0 {
		t.Fatalf("refused schedules wrote %d rows", n)
	}
	if _, err := b.client.CreateSchedule(ctx, ok); err != nil {
		t.Fatal(err)
	}
	_, err := b.client.CreateSchedule(ctx, ok)
	wantErrIs(t, err, sdk.ErrScheduleExists)
	_, err = b.client.PauseSchedule(ctx, "no-such-schedule", "ada", "why")
	wantErrIs(t, err, sdk.ErrNotFound)
	if n := countRows(t, b, `SELECT count(*) FROM events`); n != 1 {
		t.Fatalf("%d events after one creation and refused commands, want 1", n)
	}
}

// TestScheduleOperatorActions: pause, resume, trigger and delete are
// events with actor and reason; a trigger runs the job even while paused;
// a deleted schedule refuses further commands and its name is free.
func TestScheduleOperatorActions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	s, err := b.client.CreateSchedule(ctx, sdk.ScheduleOptions{Name: "nightly", Cron: "0 3 * * *", TimeZone: "Europe/Berlin",
		JobType: sdk.JobTypeEmailSend, Payload: map[string]string{"to": "ops@example.com"}, Actor: "ada", Reason: "nightly digest"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Definition.Job.Queue != sdk.DefaultQueue || s.Definition.Job.RetryPolicy.MaximumAttempts != 4 || s.NextFireAt == nil {
		t.Fatalf("created: %+v", s)
	}
	if _, err := b.client.PauseSchedule(ctx, "nightly", "ada", "holiday"); err != nil {
		t.Fatal(err)
	}
	jobID, err := b.client.TriggerSchedule(ctx, "nightly", "bob", "run it once now")
	if err != nil {
		t.Fatal(err)
	}
	j := jobOf(t, b, jobID)
	var payload map[string]string
	if err := json.Unmarshal(j.Payload, &payload); err != nil || j.Type != sdk.JobTypeEmailSend || payload["to"] != "ops@example.com" || j.Status != sdk.StatusPending {
		t.Fatalf("triggered job: %+v", j)
	}
	if _, err := b.client.ResumeSchedule(ctx, "nightly", "ada", "back"); err != nil {
		t.Fatal(err)
	}
	_, err = b.client.ResumeSchedule(ctx, "nightly", "ada", "again")
	wantErrIs(t, err, sdk.ErrInvalidState)
	if _, err := b.client.DeleteSchedule(ctx, "nightly", "ada", "replaced"); err != nil {
		t.Fatal(err)
	}
	_, err = b.client.TriggerSchedule(ctx, s.ID.String(), "ada", "")
	wantErrIs(t, err, sdk.ErrInvalidState)
	h, err := b.client.ScheduleHistory(ctx, s.ID.String())
	if err != nil {
		t.Fatal(err)
	}
	wantEventTypes(t, h, engine.EventScheduleCreated, engine.EventSchedulePaused, engine.EventScheduleTriggered, engine.EventScheduleResumed, engine.EventScheduleDeleted)
	for i, want := range []string{"ada/nightly digest", "ada/holiday", "bob/run it once now", "ada/back", "ada/replaced"} {
		var d struct{ Actor, Reason string }
		if err := json.Unmarshal(h[i].Data, &d); err != nil || d.Actor+"/"+d.Reason != want {
			t.Fatalf("event %d %s: %s, want actor/reason %s", i+1, h[i].Type, h[i].Data, want)
		}
	}
	if got := decodeEvent[engine.ScheduleTriggered](t, h[2], engine.EventScheduleTriggered).JobID; got != jobID {
		t.Fatalf("ScheduleTriggered names job %s, want %s", got, jobID)
	}
	// The name is free again.
	if _, err := b.client.CreateSchedule(ctx, sdk.ScheduleOptions{Name: "nightly", Cron: "@hourly", JobType: sdk.JobTypeEmailSend}); err != nil {
		t.Fatal(err)
	}
	if list, _ := b.client.ListSchedules(ctx, false); len(list) != 1 {
		t.Fatalf("live schedules: %d", len(list))
	}
	if list, _ := b.client.ListSchedules(ctx, true); len(list) != 2 {
		t.Fatalf("schedules with deleted ones: %d", len(list))
	}
	verifyOK(t, b)
}

// TestDefaultSchedulesAndRegistration: Migrate creates the built-in
// cleanup schedules once; a deleted one is not brought back; a schedule
// registered in code is updated when its definition changes; verify and
// projections rebuild cover schedules.
func TestDefaultSchedulesAndRegistration(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if err := b.client.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	list, err := b.client.ListSchedules(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range list {
		got = append(got, fmt.Sprintf("%s %s %s %s", s.Name, s.Definition.Cron, s.Definition.Job.Type, s.Definition.CatchUp))
	}
	want := []string{
		"cleanup.dead_letters 0 3 * * * cleanup.dead_letters latest",
		"cleanup.histories 20 3 * * * cleanup.histories latest",
		"cleanup.idempotency_keys 10 3 * * * cleanup.idempotency_keys latest",
		"cleanup.workers 30 3 * * * cleanup.workers latest",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("default schedules:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := b.client.DeleteSchedule(ctx, sdk.JobTypeCleanupWorkers, "ada", "we run our own"); err != nil {
		t.Fatal(err)
	}
	events := countRows(t, b, `SELECT count(*) FROM events`)
	if err := b.client.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, b, `SELECT count(*) FROM events`); n != events {
		t.Fatalf("a second Migrate wrote %d events", n-events)
	}
	if list, _ := b.client.ListSchedules(ctx, false); len(list) != 3 {
		t.Fatalf("after deleting one and migrating again: %d live schedules, want 3", len(list))
	}

	opts := sdk.ScheduleOptions{Name: "digest", Cron: "0 8 * * 1-5", JobType: sdk.JobTypeEmailSend}
	first, err := b.client.RegisterSchedule(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := b.client.RegisterSchedule(ctx, opts); err != nil || again.Seq != first.Seq {
		t.Fatalf("registering the same schedule again: seq %d → %d, %v", first.Seq, again.Seq, err)
	}
	opts.Cron = "0 9 * * 1-5"
	changed, err := b.client.RegisterSchedule(ctx, opts)
	if err != nil || changed.ID != first.ID || changed.Definition.Cron != "0 9 * * 1-5" {
		t.Fatalf("registering a changed schedule: %+v, %v", changed, err)
	}
	verifyOK(t, b)

	// A schedules row that disagrees with its history is found, and
	// rebuilt from the events.
	execSQL(t, b, `UPDATE schedules SET status = 'paused', runs = 7 WHERE name = 'digest'`)
	r, err := b.client.Engine().Verify(ctx, nil)
	if err != nil || r.OK() || !strings.Contains(fmt.Sprint(r.Problems), "schedules row name/status is digest/paused, history says digest/active") {
		t.Fatalf("verify after tampering with a schedules row: %v %v", err, r.Problems)
	}
	n, err := b.client.Engine().RebuildProjections(ctx)
	if err != nil || n != 5 {
		t.Fatalf("rebuild: %d rows, %v; want the 5 schedules", n, err)
	}
	verifyOK(t, b)
	if s, err := b.client.GetSchedule(ctx, "digest"); err != nil || s.Status != sdk.ScheduleStatusActive || s.Runs != 0 {
		t.Fatalf("rebuilt schedule: %+v, %v", s, err)
	}
}

// TestJobAtBetweenTwoEvents: a job fails once and then succeeds; at a
// moment between its failure and its second attempt it was retrying, with
// the first attempt's error, and the queue counted one retrying job.
func TestJobAtBetweenTwoEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if err := b.client.RegisterJobType("flaky.job", sdk.JobType{RetryPolicy: sdk.RetryPolicy{MaximumAttempts: 3, Schedule: []time.Duration{300 * time.Millisecond}}}); err != nil {
		t.Fatal(err)
	}
	w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var calls atomic.Int32
	if err := w.Handle("flaky.job", func(context.Context, json.RawMessage) error {
		if calls.Add(1) == 1 {
			return fmt.Errorf("smtp 451: try later")
		}
		close(done)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	res, err := b.client.Enqueue(ctx, "flaky.job", nil)
	if err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	recv(t, "the second attempt", done, 5*time.Second)
	waitFor(t, "success", 5*time.Second, func() bool { return jobOf(t, b, res.ID).Status == sdk.StatusSucceeded })
	h := historyOf(t, b, res.ID)
	wantEventTypes(t, h, engine.EventJobEnqueued, engine.EventAttemptStarted, engine.EventAttemptFailed, engine.EventAttemptStarted, engine.EventAttemptSucceeded)
	between := h[2].RecordedAt.Add(h[3].RecordedAt.Sub(h[2].RecordedAt) / 2)
	j, err := b.client.JobAt(ctx, res.ID, between)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != sdk.StatusRetrying || j.Attempt != 1 || j.LastError != "smtp 451: try later" || j.Seq != 3 || j.FinishedAt != nil {
		t.Fatalf("at %s the job was %s, attempt %d, error %q, %d events; want retrying after attempt 1", between, j.Status, j.Attempt, j.LastError, j.Seq)
	}
	stats, err := b.client.QueueStatsAt(ctx, between)
	if err != nil || len(stats) != 1 || stats[0] != (sdk.QueueStats{Queue: "default", Type: "flaky.job", Retrying: 1}) {
		t.Fatalf("queue stats at %s: %+v, %v", between, stats, err)
	}
	if j, err := b.client.JobAt(ctx, res.ID, time.Now().Add(time.Hour)); err != nil || j.Status != sdk.StatusSucceeded {
		t.Fatalf("later: %+v, %v", j.Status, err)
	}
	_, err = b.client.JobAt(ctx, res.ID, h[0].RecordedAt.Add(-time.Second))
	wantErrIs(t, err, sdk.ErrNotYet)
	if stats, err := b.client.QueueStatsAt(ctx, h[0].RecordedAt.Add(-time.Second)); err != nil || len(stats) != 0 {
		t.Fatalf("queue stats before the job: %+v, %v", stats, err)
	}
}
