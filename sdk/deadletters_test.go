package sdk_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

// deadLetter enqueues a job with one attempt, claims it and fails it with
// errText, leaving it dead-lettered. The queue must hold nothing else ready.
func deadLetter(t *testing.T, b *bundle, jobType, queue, errText string) eventlog.ID {
	t.Helper()
	res, err := b.client.Enqueue(context.Background(), jobType, struct{}{}, sdk.WithQueue(queue), sdk.WithRetryPolicy(sdk.RetryPolicy{MaximumAttempts: 1}))
	if err != nil {
		t.Fatal(err)
	}
	c := claimOne(t, b, queue, "dl-worker", time.Minute)
	if c.Job.ID != res.ID {
		t.Fatalf("claimed %s, want %s", c.Job.ID, res.ID)
	}
	if err := complete(t, b, engine.Outcome{Lease: c.Lease, Err: errors.New(errText)}); err != nil {
		t.Fatal(err)
	}
	if j := jobOf(t, b, res.ID); j.Status != sdk.StatusDeadLettered {
		t.Fatalf("job is %s, want dead_lettered", j.Status)
	}
	return res.ID
}

// age moves a job's projection timestamps back, as if its last change (and,
// when finished, its end) happened d earlier. Only projection columns that
// verify does not compare are touched; the history stays intact.
func age(t *testing.T, b *bundle, id eventlog.ID, d time.Duration) {
	t.Helper()
	execSQL(t, b, `UPDATE executions SET updated_at = updated_at - make_interval(secs => $2),
		finished_at = finished_at - make_interval(secs => $2) WHERE id = $1`, [16]byte(id), d.Seconds())
}

func idsOf(jobs []sdk.Job) []eventlog.ID {
	out := make([]eventlog.ID, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

func eventCount(t *testing.T, b *bundle) int64 {
	t.Helper()
	return countRows(t, b, `SELECT count(*) FROM events`)
}

// dlqFixture is a dead-letter queue with letters of two types in two
// queues, one of them old, and a job that is not dead.
type dlqFixture struct {
	b                                        *bundle
	mailbox, tryLater, http500, gone, export eventlog.ID
}

func newDLQFixture(t *testing.T) *dlqFixture {
	b := setup(t)
	f := &dlqFixture{b: b}
	f.mailbox = deadLetter(t, b, "email.send", "emails", "SMTP 550: mailbox unavailable")
	f.tryLater = deadLetter(t, b, "email.send", "emails", "smtp 421: try again later")
	f.http500 = deadLetter(t, b, "webhook.deliver", "hooks", "POST https://example.com/hook: HTTP 500")
	f.gone = deadLetter(t, b, "webhook.deliver", "hooks", "POST https://example.com/old: HTTP 410 gone")
	age(t, b, f.gone, 72*time.Hour)
	res, err := b.client.Enqueue(context.Background(), "data.export", struct{}{}, sdk.WithDelay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f.export = res.ID
	return f
}

// TestDeadLetterFilters: each filter — type (exact or family), queue,
// error text, age — and their combination select exactly the matching
// dead letters; the count agrees with the list.
func TestDeadLetterFilters(t *testing.T) {
	t.Parallel()
	f := newDLQFixture(t)
	ctx := context.Background()
	cases := []struct {
		name   string
		filter sdk.DeadLetterFilter
		want   []eventlog.ID
	}{
		{"all", sdk.DeadLetterFilter{}, []eventlog.ID{f.mailbox, f.tryLater, f.http500, f.gone}},
		{"type", sdk.DeadLetterFilter{Types: []string{"email.send"}}, []eventlog.ID{f.mailbox, f.tryLater}},
		{"type family", sdk.DeadLetterFilter{Types: []string{"webhook.*"}}, []eventlog.ID{f.http500, f.gone}},
		{"queue", sdk.DeadLetterFilter{Queues: []string{"hooks"}}, []eventlog.ID{f.http500, f.gone}},
		{"error text ignores case", sdk.DeadLetterFilter{ErrorContains: "SMTP"}, []eventlog.ID{f.mailbox, f.tryLater}},
		{"error text", sdk.DeadLetterFilter{ErrorContains: "550"}, []eventlog.ID{f.mailbox}},
		{"older than", sdk.DeadLetterFilter{OlderThan: 48 * time.Hour}, []eventlog.ID{f.gone}},
		{"newer than", sdk.DeadLetterFilter{NewerThan: 48 * time.Hour}, []eventlog.ID{f.mailbox, f.tryLater, f.http500}},
		{"combined", sdk.DeadLetterFilter{Types: []string{"webhook.deliver"}, ErrorContains: "http 500", NewerThan: time.Hour}, []eventlog.ID{f.http500}},
		{"no match", sdk.DeadLetterFilter{Types: []string{"data.export"}}, nil},
		{"limit", sdk.DeadLetterFilter{Limit: 2}, []eventlog.ID{f.mailbox, f.tryLater}},
	}
	for _, c := range cases {
		got, err := f.b.client.ListDeadLetters(ctx, c.filter)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !slices.Equal(idsOf(got), c.want) {
			t.Errorf("%s: listed %v, want %v", c.name, idsOf(got), c.want)
		}
		if c.filter.Limit > 0 {
			continue
		}
		n, err := f.b.client.CountDeadLetters(ctx, c.filter)
		if err != nil || n != int64(len(c.want)) {
			t.Errorf("%s: counted %d (%v), want %d", c.name, n, err, len(c.want))
		}
	}
	for _, bad := range []sdk.DeadLetterFilter{
		{OlderThan: -time.Hour},
		{OlderThan: 2 * time.Hour, NewerThan: time.Hour},
		{Types: []string{"Email Send"}},
		{Limit: -1},
	} {
		_, err := f.b.client.ListDeadLetters(ctx, bad)
		wantErrIs(t, err, sdk.ErrInvalidInput)
	}
}

// TestDeadLetterShow: a dead letter comes with its whole history and the
// dead-lettering; other jobs and unknown IDs are clear errors.
func TestDeadLetterShow(t *testing.T) {
	t.Parallel()
	f := newDLQFixture(t)
	ctx := context.Background()
	d, err := f.b.client.DeadLetter(ctx, f.mailbox)
	if err != nil {
		t.Fatal(err)
	}
	if d.Job.ID != f.mailbox || d.Job.Status != sdk.StatusDeadLettered || len(d.History) != 4 || d.History[3].Type != engine.EventJobDeadLettered {
		t.Fatalf("dead letter = %+v", d)
	}
	if d.Dead.LastError != "SMTP 550: mailbox unavailable" || d.Dead.Attempts != 1 || !d.DeadLetteredAt.Equal(d.History[3].RecordedAt) {
		t.Fatalf("dead-lettering = %+v at %s", d.Dead, d.DeadLetteredAt)
	}
	_, err = f.b.client.DeadLetter(ctx, f.export)
	wantErrIs(t, err, sdk.ErrInvalidState)
	_, err = f.b.client.DeadLetter(ctx, eventlog.NewID(time.Now()))
	wantErrIs(t, err, sdk.ErrNotFound)
}

// TestDeadLetterBulk: a dry run counts and changes nothing; a bulk resolve
// or retry by filter changes exactly the matching dead letters, one event
// each with actor and note; refusals change nothing; a dead letter that
// changes state between the count and the command is reported, not
// touched twice.
func TestDeadLetterBulk(t *testing.T) {
	t.Parallel()
	f := newDLQFixture(t)
	b := f.b
	ctx := context.Background()
	before := eventCount(t, b)

	smtp := sdk.DeadLetterFilter{ErrorContains: "smtp"}
	res, err := b.client.ResolveDeadLetters(ctx, smtp, "ops@example.com", "customers deleted", sdk.BulkOptions{DryRun: true})
	if err != nil || len(res.Matched) != 2 || res.Changed != 0 {
		t.Fatalf("dry run = %+v, %v", res, err)
	}
	res, err = b.client.ResolveDeadLetters(ctx, smtp, "ops@example.com", "customers deleted", sdk.BulkOptions{Confirm: func(n int) bool {
		if n != 2 {
			t.Errorf("confirm asked about %d, want 2", n)
		}
		return false
	}})
	if err != nil || !res.Declined || res.Changed != 0 {
		t.Fatalf("declined = %+v, %v", res, err)
	}
	_, err = b.client.ResolveDeadLetters(ctx, smtp, "ops@example.com", " ", sdk.BulkOptions{})
	wantErrIs(t, err, sdk.ErrInvalidInput)
	_, err = b.client.RetryDeadLetters(ctx, smtp, "", "no actor", sdk.BulkOptions{})
	wantErrIs(t, err, sdk.ErrInvalidInput)
	_, err = b.client.RetryDeadLetters(ctx, sdk.DeadLetterFilter{OlderThan: -1}, "ops", "", sdk.BulkOptions{})
	wantErrIs(t, err, sdk.ErrInvalidInput)
	if n := eventCount(t, b); n != before {
		t.Fatalf("dry run, declined and refused operations appended %d events", n-before)
	}

	// Resolve by queue: the two email letters, nothing else.
	res, err = b.client.ResolveDeadLetters(ctx, sdk.DeadLetterFilter{Queues: []string{"emails"}}, "ops@example.com", "customers deleted", sdk.BulkOptions{})
	if err != nil || res.Changed != 2 || !slices.Equal(res.Matched, []eventlog.ID{f.mailbox, f.tryLater}) || len(res.Skipped) != 0 {
		t.Fatalf("resolve = %+v, %v", res, err)
	}
	for _, id := range []eventlog.ID{f.mailbox, f.tryLater} {
		h := historyOf(t, b, id)
		r := decodeEvent[engine.JobResolved](t, h[len(h)-1], engine.EventJobResolved)
		if r.Actor != "ops@example.com" || r.Notes != "customers deleted" {
			t.Fatalf("JobResolved = %+v", r)
		}
	}
	if n := eventCount(t, b); n != before+2 {
		t.Fatalf("bulk resolve of 2 appended %d events", n-before)
	}

	// Retry by type and age: only the old webhook letter.
	res, err = b.client.RetryDeadLetters(ctx, sdk.DeadLetterFilter{Types: []string{"webhook.deliver"}, OlderThan: 24 * time.Hour}, "ops@example.com", "endpoint restored", sdk.BulkOptions{})
	if err != nil || res.Changed != 1 || !slices.Equal(res.Matched, []eventlog.ID{f.gone}) {
		t.Fatalf("retry = %+v, %v", res, err)
	}
	if j := jobOf(t, b, f.gone); j.Status != sdk.StatusPending || j.BudgetStart != 1 {
		t.Fatalf("retried job is %s from budget %d", j.Status, j.BudgetStart)
	}
	h := historyOf(t, b, f.gone)
	if r := decodeEvent[engine.JobRetried](t, h[len(h)-1], engine.EventJobRetried); r.Actor != "ops@example.com" || r.Note != "endpoint restored" {
		t.Fatalf("JobRetried = %+v", r)
	}
	if j := jobOf(t, b, f.http500); j.Status != sdk.StatusDeadLettered {
		t.Fatalf("unmatched letter is %s", j.Status)
	}
	wantEventTypes(t, historyOf(t, b, f.export), "JobEnqueued")

	// A letter resolved by someone else between the count and the command.
	other := deadLetter(t, b, "webhook.deliver", "hooks2", "HTTP 502")
	res, err = b.client.RetryDeadLetters(ctx, sdk.DeadLetterFilter{ErrorContains: "http 5"}, "ops@example.com", "", sdk.BulkOptions{Confirm: func(n int) bool {
		if _, err := b.client.ResolveDeadLetter(ctx, other, "someone@else", "duplicate"); err != nil {
			t.Error(err)
		}
		return n == 2
	}})
	if err != nil || len(res.Matched) != 2 || res.Changed != 1 || len(res.Skipped) != 1 || !errors.Is(res.Skipped[0], sdk.ErrInvalidState) {
		t.Fatalf("retry with a concurrent resolve = %+v, %v", res, err)
	}
	if j := jobOf(t, b, other); j.Status != sdk.StatusResolved {
		t.Fatalf("concurrently resolved letter is %s", j.Status)
	}
	verifyOK(t, b)
}

// TestExecuteMany: one transaction applies a command to every job it
// applies to and reports, per ID, why the others were refused — unknown,
// wrong state, named twice — leaving them untouched.
func TestExecuteMany(t *testing.T) {
	t.Parallel()
	f := newDLQFixture(t)
	b := f.b
	ctx := context.Background()
	before := eventCount(t, b)
	unknown := eventlog.NewID(time.Now())
	ids := []eventlog.ID{f.mailbox, unknown, f.export, f.tryLater, f.mailbox}
	jobs, errs, err := b.client.Engine().ExecuteMany(ctx, ids, engine.Resolve{Actor: "ops", Notes: "batch"})
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[3] != nil || jobs[0].Status != sdk.StatusResolved || jobs[3].Status != sdk.StatusResolved {
		t.Fatalf("accepted ones: %v %v, %+v %+v", errs[0], errs[3], jobs[0].Status, jobs[3].Status)
	}
	wantErrIs(t, errs[1], sdk.ErrNotFound)
	wantErrIs(t, errs[2], sdk.ErrInvalidState)
	wantErrIs(t, errs[4], sdk.ErrInvalidInput)
	if n := eventCount(t, b); n != before+2 {
		t.Fatalf("appended %d events, want 2", n-before)
	}
	_, _, err = b.client.Engine().ExecuteMany(ctx, ids, engine.Resolve{Actor: "ops", Notes: " "})
	if err != nil {
		t.Fatal(err) // refusals are per ID
	}
	if n := eventCount(t, b); n != before+2 {
		t.Fatalf("a refused batch appended %d events", n-before-2)
	}
	verifyOK(t, b)
}
