package sdk_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

const day = 24 * time.Hour

// registerReport registers the job type the cleanup tests use.
func registerReport(t *testing.T, b *bundle) {
	t.Helper()
	if err := b.client.RegisterJobType("report.build", sdk.JobType{}); err != nil {
		t.Fatal(err)
	}
}

// succeeded runs a job to success with the engine and returns its ID.
func succeeded(t *testing.T, b *bundle, queue string, opts ...sdk.EnqueueOption) eventlog.ID {
	t.Helper()
	registerReport(t, b)
	res, err := b.client.Enqueue(context.Background(), "report.build", struct{}{}, append(opts, sdk.WithQueue(queue))...)
	if err != nil {
		t.Fatal(err)
	}
	c := claimOne(t, b, queue, "cleanup-test", time.Minute)
	if err := complete(t, b, engine.Outcome{Lease: c.Lease}); err != nil {
		t.Fatal(err)
	}
	return res.ID
}

func resolved(t *testing.T, b *bundle, queue string) eventlog.ID {
	t.Helper()
	registerReport(t, b)
	id := deadLetter(t, b, "report.build", queue, "boom")
	if _, err := b.client.ResolveDeadLetter(context.Background(), id, "ops", "not needed"); err != nil {
		t.Fatal(err)
	}
	return id
}

func canceled(t *testing.T, b *bundle) eventlog.ID {
	t.Helper()
	registerReport(t, b)
	res, err := b.client.Enqueue(context.Background(), "report.build", struct{}{}, sdk.WithDelay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Cancel(context.Background(), res.ID, "ops", "not needed"); err != nil {
		t.Fatal(err)
	}
	return res.ID
}

// oldJob writes the history of a job that lived at at: enqueued, claimed
// and then succeeded, canceled, dead-lettered or resolved, each event a
// second after the last. The history is decided and sealed as the engine
// does, so it verifies; only its times are in the past.
func oldJob(t *testing.T, b *bundle, at time.Time, end sdk.Status, enqueueKey string) eventlog.ID {
	t.Helper()
	now := at.UTC().Truncate(time.Microsecond)
	j, events, err := engine.Record(engine.Job{ID: eventlog.NewID(now)}, []engine.Decision{{Type: engine.EventJobEnqueued,
		Data: engine.JobEnqueued{Type: "report.build", Queue: "q1", Priority: engine.PriorityNormal, Payload: json.RawMessage(`{}`),
			RunAt: now, RetryPolicy: engine.RetryPolicy{MaximumAttempts: 1}, IdempotencyKey: enqueueKey}}}, now)
	if err != nil {
		t.Fatal(err)
	}
	do := func(cmd engine.Command) {
		t.Helper()
		now = now.Add(time.Second)
		d, err := engine.Decide(j, cmd, engine.Env{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		var more []eventlog.Event
		if j, more, err = engine.Record(j, d, now); err != nil {
			t.Fatal(err)
		}
		events = append(events, more...)
	}
	if end == sdk.StatusCanceled {
		do(engine.Cancel{Actor: "ops", Reason: "not needed"})
	} else {
		do(engine.Claim{WorkerID: "w", Attempt: 1, LeaseExpiresAt: now.Add(time.Minute)})
		if end == sdk.StatusSucceeded {
			do(engine.Complete{Attempt: 1})
		} else {
			do(engine.Fail{Attempt: 1, Error: "boom"})
		}
		if end == sdk.StatusResolved {
			do(engine.Resolve{Actor: "ops", Notes: "not needed"})
		}
	}
	if j.Status != end {
		t.Fatalf("old job is %s, want %s", j.Status, end)
	}
	err = b.client.Engine().Store().InTx(context.Background(), func(tx eventlog.Tx) error {
		if enqueueKey != "" {
			if _, _, err := tx.ClaimEnqueueKey(context.Background(), enqueueKey, j.ID, time.Now().Add(365*day)); err != nil {
				return err
			}
		}
		return tx.Apply(context.Background(), eventlog.Changes{Events: events, NewExecutions: []eventlog.Execution{j.Row()}})
	})
	if err != nil {
		t.Fatal(err)
	}
	return j.ID
}

// exists reports whether a job has a projection row and events.
func exists(t *testing.T, b *bundle, id eventlog.ID) bool {
	t.Helper()
	rows := countRows(t, b, `SELECT count(*) FROM executions WHERE id = $1`, [16]byte(id))
	events := countRows(t, b, `SELECT count(*) FROM events WHERE execution_id = $1`, [16]byte(id))
	if (rows == 0) != (events == 0) {
		t.Fatalf("job %s has %d rows and %d events: a purge left half of it", id, rows, events)
	}
	return rows > 0
}

func eventsOf(t *testing.T, b *bundle, ids ...eventlog.ID) int64 {
	t.Helper()
	var n int64
	for _, id := range ids {
		n += countRows(t, b, `SELECT count(*) FROM events WHERE execution_id = $1`, [16]byte(id))
	}
	return n
}

// TestCleanupDeadLetterJobs: resolved dead letters older than the given
// days go with their events; younger ones, unresolved dead letters however
// old, and other finished jobs stay.
func TestCleanupDeadLetterJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	now := time.Now()
	old := oldJob(t, b, now.Add(-100*day), sdk.StatusResolved, "")
	old2 := oldJob(t, b, now.Add(-91*day), sdk.StatusResolved, "")
	young := oldJob(t, b, now.Add(-89*day), sdk.StatusResolved, "")
	fresh := resolved(t, b, "q1")
	unresolved := oldJob(t, b, now.Add(-200*day), sdk.StatusDeadLettered, "")
	done := oldJob(t, b, now.Add(-200*day), sdk.StatusSucceeded, "")
	wantEvents := eventsOf(t, b, old, old2)

	for _, days := range []int{0, -1} {
		_, err := b.client.CleanupDeadLetterJobs(ctx, days)
		wantErrIs(t, err, sdk.ErrInvalidInput)
	}
	r, err := b.client.CleanupDeadLetterJobs(ctx, 90)
	if err != nil {
		t.Fatal(err)
	}
	if r.Executions != 2 || r.Events != wantEvents || wantEvents != 10 {
		t.Fatalf("report %+v, want 2 executions with %d events (10)", r, wantEvents)
	}
	if r.String() != "removed 2 executions with 10 events" {
		t.Fatalf("report says %q", r)
	}
	for id, want := range map[eventlog.ID]bool{old: false, old2: false, young: true, fresh: true, unresolved: true, done: true} {
		if got := exists(t, b, id); got != want {
			t.Errorf("job %s exists = %v, want %v", id, got, want)
		}
	}
	_, err = b.client.History(ctx, old)
	wantErrIs(t, err, sdk.ErrNotFound)
	if r, err := b.client.CleanupDeadLetterJobs(ctx, 90); err != nil || r != (sdk.CleanupReport{}) {
		t.Fatalf("second run = %+v, %v; want nothing removed", r, err)
	}
	verifyOK(t, b)
}

// TestCleanupHistories: succeeded and canceled jobs that finished before
// the retention go with their events and enqueue keys; everything else
// stays — including resolved dead letters, which have their own rule.
func TestCleanupHistories(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	now := time.Now()
	oldDone := oldJob(t, b, now.Add(-40*day), sdk.StatusSucceeded, "report:2024-01")
	newDone := oldJob(t, b, now.Add(-20*day), sdk.StatusSucceeded, "")
	oldCanceled := oldJob(t, b, now.Add(-31*day), sdk.StatusCanceled, "")
	oldResolved := oldJob(t, b, now.Add(-40*day), sdk.StatusResolved, "")
	dead := oldJob(t, b, now.Add(-40*day), sdk.StatusDeadLettered, "")
	justDone := succeeded(t, b, "q1")
	justCanceled := canceled(t, b)
	registerReport(t, b)
	pending, err := b.client.Enqueue(ctx, "report.build", struct{}{}, sdk.WithDelay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	wantEvents := eventsOf(t, b, oldDone, oldCanceled)

	_, err = b.client.CleanupHistories(ctx, time.Second)
	wantErrIs(t, err, sdk.ErrInvalidInput)
	r, err := b.client.CleanupHistories(ctx, sdk.DefaultHistoryRetention)
	if err != nil {
		t.Fatal(err)
	}
	if r.Executions != 2 || r.Events != wantEvents {
		t.Fatalf("report %+v, want 2 executions with %d events", r, wantEvents)
	}
	for id, want := range map[eventlog.ID]bool{oldDone: false, oldCanceled: false, newDone: true, oldResolved: true, dead: true, justDone: true, justCanceled: true, pending.ID: true} {
		if got := exists(t, b, id); got != want {
			t.Errorf("job %s exists = %v, want %v", id, got, want)
		}
	}
	if n := countRows(t, b, `SELECT count(*) FROM enqueue_keys WHERE key = 'report:2024-01'`); n != 0 {
		t.Fatalf("the purged job's enqueue key is still there")
	}
	verifyOK(t, b)
}

// TestCleanupIdempotencyKeys: expired keys go — completed ones, and
// running claims whose attempt ended — and expired enqueue keys; live
// keys, and a claim whose owner still runs, stay.
func TestCleanupIdempotencyKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// A running job whose attempt holds a claim past its expiry.
	registerReport(t, b)
	res, err := b.client.Enqueue(ctx, "report.build", struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	live := claimOne(t, b, "default", "w", time.Minute)
	dead := eventlog.NewID(time.Now())
	insert := func(key string, owner eventlog.ID, attempt int, state, expires string) {
		execSQL(t, b, `INSERT INTO idempotency_keys (key, owner_id, owner_attempt, state, result, created_at, expires_at)
			VALUES ($1, $2, $3, $4, 'null', now(), now() + $5::interval)`, key, [16]byte(owner), attempt, state, expires)
	}
	insert("completed:expired", dead, 1, "completed", "-1 minute")
	insert("completed:live", dead, 1, "completed", "1 hour")
	insert("running:expired:dead-owner", dead, 1, "running", "-1 minute")
	insert("running:expired:live-owner", res.ID, live.Lease.Attempt, "running", "-1 minute")
	insert("running:live", dead, 1, "running", "1 hour")
	execSQL(t, b, `INSERT INTO enqueue_keys (key, execution_id, expires_at) VALUES ('enq:expired', $1, now() - interval '1 second'), ('enq:live', $1, now() + interval '1 hour')`, [16]byte(dead))

	r, err := b.client.CleanupIdempotencyKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r != (sdk.CleanupReport{IdempotencyKeys: 2, EnqueueKeys: 1}) {
		t.Fatalf("report %+v, want 2 idempotency keys and 1 enqueue key", r)
	}
	var left []string
	rows, err := b.client.Pool().Query(ctx, `SELECT key FROM idempotency_keys UNION ALL SELECT key FROM enqueue_keys ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		left = append(left, k)
	}
	want := []string{"completed:live", "enq:live", "running:expired:live-owner", "running:live"}
	if len(left) != len(want) {
		t.Fatalf("keys left %v, want %v", left, want)
	}
	for i := range want {
		if left[i] != want[i] {
			t.Fatalf("keys left %v, want %v", left, want)
		}
	}
}

// TestCleanupJobs: the cleanup.* handlers run as jobs, delete by their
// rules, and record what they removed in their history and log.
func TestCleanupJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	oldResolved := oldJob(t, b, time.Now().Add(-100*day), sdk.StatusResolved, "")
	oldDone := oldJob(t, b, time.Now().Add(-10*day), sdk.StatusSucceeded, "")
	keep := succeeded(t, b, "q1")
	execSQL(t, b, `INSERT INTO idempotency_keys (key, owner_id, owner_attempt, state, result, created_at, expires_at)
		VALUES ('old', $1, 1, 'completed', 'null', now(), now() - interval '1 second')`, [16]byte(keep))
	wantDL := eventsOf(t, b, oldResolved)
	wantHist := eventsOf(t, b, oldDone)

	w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// History retention of a week, from the config; dead letters default to 90 days.
	if err := sdk.RegisterCleanupJobs(w, sdk.CleanupConfig{HistoryRetention: 7 * day}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	run := func(jobType string, payload any) sdk.CleanupReport {
		t.Helper()
		res, err := b.client.Enqueue(ctx, jobType, payload)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, jobType+" to finish", 10*time.Second, func() bool { j := jobOf(t, b, res.ID); return j.Status.Final() || j.Status == sdk.StatusDeadLettered })
		if j := jobOf(t, b, res.ID); j.Status != sdk.StatusSucceeded {
			t.Fatalf("%s is %s: %s", jobType, j.Status, j.LastError)
		}
		steps := stepsOf(t, b, res.ID)
		if len(steps) != 1 {
			t.Fatalf("%s recorded %d steps, want its report", jobType, len(steps))
		}
		var r sdk.CleanupReport
		if err := json.Unmarshal(steps[0].Result, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := run(sdk.JobTypeCleanupDeadLetters, nil); r != (sdk.CleanupReport{Executions: 1, Events: wantDL}) {
		t.Fatalf("cleanup.dead_letters reported %+v", r)
	}
	if r := run(sdk.JobTypeCleanupHistories, nil); r != (sdk.CleanupReport{Executions: 1, Events: wantHist}) {
		t.Fatalf("cleanup.histories reported %+v", r)
	}
	// The cleanup jobs just run are younger than any retention; a payload
	// can narrow it, and keep (finished seconds ago) survives a minute.
	if r := run(sdk.JobTypeCleanupHistories, sdk.CleanupPayload{OlderThan: "1m"}); r.Executions != 0 {
		t.Fatalf("cleanup.histories with a minute's retention reported %+v", r)
	}
	if r := run(sdk.JobTypeCleanupIdempotencyKeys, nil); r.IdempotencyKeys != 1 {
		t.Fatalf("cleanup.idempotency_keys reported %+v", r)
	}
	insertWorker(t, b, "gone-for-two-days", 48*time.Hour)
	insertWorker(t, b, "quiet-for-an-hour", time.Hour)
	if r := run(sdk.JobTypeCleanupWorkers, nil); r != (sdk.CleanupReport{Workers: 1}) {
		t.Fatalf("cleanup.workers reported %+v", r)
	}
	if n := countRows(t, b, `SELECT count(*) FROM worker_heartbeats WHERE worker_id IN ('gone-for-two-days', 'quiet-for-an-hour')`); n != 1 {
		t.Fatalf("%d of the two test workers left, want the recent one", n)
	}
	if exists(t, b, oldResolved) || exists(t, b, oldDone) || !exists(t, b, keep) {
		t.Fatal("the cleanup jobs removed the wrong jobs")
	}
	// A bad payload dead-letters at once, with a clear error.
	res, err := b.client.Enqueue(ctx, sdk.JobTypeCleanupHistories, sdk.CleanupPayload{OlderThan: "30 days"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the bad cleanup to be dead-lettered", 10*time.Second, func() bool { return jobOf(t, b, res.ID).Status == sdk.StatusDeadLettered })
	if j := jobOf(t, b, res.ID); !strings.Contains(j.LastError, `older_than "30 days" is not a positive duration`) {
		t.Fatalf("bad payload failed with %q", j.LastError)
	}
	verifyOK(t, b)
}

// insertWorker adds a heartbeat row of a worker last seen ago.
func insertWorker(t *testing.T, b *bundle, id string, ago time.Duration) {
	t.Helper()
	execSQL(t, b, `INSERT INTO worker_heartbeats (worker_id, host, pid, queues, version, started_at, last_seen_at)
		VALUES ($1, 'host-1', 42, '{default}', 'test', now() - make_interval(secs => $2) - interval '1 hour', now() - make_interval(secs => $2))`, id, ago.Seconds())
}

// TestCleanupWorkers: heartbeat rows of workers not seen for longer than
// the retention go; the rest stay.
func TestCleanupWorkers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	insertWorker(t, b, "dead-a", 25*time.Hour)
	insertWorker(t, b, "dead-b", 30*day)
	insertWorker(t, b, "alive", 10*time.Second)
	_, err := b.client.CleanupWorkers(ctx, time.Second)
	wantErrIs(t, err, sdk.ErrInvalidInput)
	r, err := b.client.CleanupWorkers(ctx, sdk.DefaultWorkerRetention)
	if err != nil || r != (sdk.CleanupReport{Workers: 2}) || r.String() != "removed 2 worker heartbeats" {
		t.Fatalf("report %+v (%q), %v; want 2 workers", r, r, err)
	}
	if n := countRows(t, b, `SELECT count(*) FROM worker_heartbeats WHERE worker_id = 'alive'`); n != 1 {
		t.Fatal("the live worker's row was deleted")
	}
}
