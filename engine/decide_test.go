package engine_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// start is the fixed time histories begin at.
var start = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)

const leaseDuration = 30 * time.Second

// tb is what the helpers need of a *testing.T or a *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// jobHistory is a job's history built with Decide and Record, the way the
// engine builds it, with a clock that advances one second per command.
type jobHistory struct {
	t       tb
	job     engine.Job
	history []eventlog.Event
	now     time.Time
	random  float64
}

// newJob enqueues a job with the policy at start, due at start.
func newJob(t tb, policy engine.RetryPolicy) *jobHistory {
	t.Helper()
	h := &jobHistory{t: t, now: start, random: 0.5}
	d := engine.JobEnqueued{Type: "email.send", Queue: "email", Priority: engine.PriorityHigh,
		Payload: json.RawMessage(`{"to":"ada@example.com"}`), RunAt: start, RetryPolicy: policy, IdempotencyKey: "email:welcome:42:1"}
	j, events, err := engine.Record(engine.Job{ID: eventlog.NewID(start)}, []engine.Decision{{Type: engine.EventJobEnqueued, Data: d}}, h.now)
	if err != nil {
		t.Fatalf("record JobEnqueued: %v", err)
	}
	h.job, h.history = j, events
	h.verify()
	return h
}

func (h *jobHistory) env() engine.Env {
	r := h.random
	return engine.Env{Now: h.now, Random: func() float64 { return r }}
}

// tick advances the clock by one second.
func (h *jobHistory) tick() { h.now = h.now.Add(time.Second).Truncate(time.Microsecond) }

// try decides cmd and, when it is accepted, records its events. A refused
// command must change nothing.
func (h *jobHistory) try(cmd engine.Command) ([]eventlog.Event, error) {
	h.t.Helper()
	h.tick()
	before := h.job.Row()
	decisions, err := engine.Decide(h.job, cmd, h.env())
	if err != nil {
		if len(decisions) != 0 {
			h.t.Fatalf("Decide(%#v) returned %d decisions with error %v", cmd, len(decisions), err)
		}
		if after := h.job.Row(); !reflect.DeepEqual(before, after) {
			h.t.Fatalf("refused %#v changed the state", cmd)
		}
		return nil, err
	}
	if len(decisions) == 0 {
		h.t.Fatalf("Decide(%#v) accepted the command but decided no events", cmd)
	}
	j, events, err := engine.Record(h.job, decisions, h.now)
	if err != nil {
		h.t.Fatalf("Record(%#v): %v", cmd, err)
	}
	if len(events) != len(decisions) {
		h.t.Fatalf("Record made %d events of %d decisions", len(events), len(decisions))
	}
	h.job = j
	h.history = append(h.history, events...)
	h.verify()
	return events, nil
}

// do applies a command that must be accepted.
func (h *jobHistory) do(cmd engine.Command) []eventlog.Event {
	h.t.Helper()
	events, err := h.try(cmd)
	if err != nil {
		h.t.Fatalf("%#v in status %s: %v", cmd, h.job.Status, err)
	}
	return events
}

func (h *jobHistory) claimCmd() engine.Claim {
	return engine.Claim{WorkerID: "worker-1", Attempt: h.job.Attempt + 1, LeaseExpiresAt: h.now.Add(time.Second + leaseDuration)}
}

func (h *jobHistory) claim() []eventlog.Event { h.t.Helper(); return h.do(h.claimCmd()) }

func (h *jobHistory) complete() []eventlog.Event {
	h.t.Helper()
	return h.do(engine.Complete{Attempt: h.job.Attempt, Duration: 1500 * time.Microsecond})
}

func (h *jobHistory) fail(msg string) []eventlog.Event {
	h.t.Helper()
	return h.do(engine.Fail{Attempt: h.job.Attempt, Error: msg, ErrorType: "SMTPError", Duration: 20 * time.Millisecond})
}

// verify checks what must hold of every history: seq runs 1, 2, 3, … and
// matches the state, the hash chain verifies, and folding the history gives
// the state that Record evolved.
func (h *jobHistory) verify() {
	h.t.Helper()
	for i, e := range h.history {
		if e.Seq != int64(i+1) {
			h.t.Fatalf("event %d has seq %d", i+1, e.Seq)
		}
		if e.ExecutionID != h.job.ID {
			h.t.Fatalf("event %d belongs to %s, not %s", e.Seq, e.ExecutionID, h.job.ID)
		}
	}
	if err := eventlog.CheckChain(h.history); err != nil {
		h.t.Fatalf("CheckChain: %v", err)
	}
	last := h.history[len(h.history)-1]
	if h.job.Seq != last.Seq || !bytes.Equal(h.job.LastHash, last.Hash) {
		h.t.Fatalf("state ends at seq %d hash %x; history at %d %x", h.job.Seq, h.job.LastHash, last.Seq, last.Hash)
	}
	folded, err := engine.Fold(h.history)
	if err != nil {
		h.t.Fatalf("Fold: %v", err)
	}
	if got, want := folded.Row(), h.job.Row(); !reflect.DeepEqual(got, want) {
		h.t.Fatalf("Fold(history).Row() =\n%+v\nwant\n%+v", got, want)
	}
	if got, want := folded.Task(), h.job.Task(); !reflect.DeepEqual(got, want) {
		h.t.Fatalf("Fold(history).Task() = %+v, want %+v", got, want)
	}
}

func types(events []eventlog.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Type
	}
	return out
}

func decode[T any](t tb, e eventlog.Event) T {
	t.Helper()
	var v T
	if err := e.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDecideEnqueueClaimSucceed(t *testing.T) {
	t.Parallel()
	h := newJob(t, emailSendPolicy)
	j := h.job
	if j.Status != engine.StatusPending || j.Attempt != 0 || j.Seq != 1 || !j.RunAt.Equal(start) || !j.CreatedAt.Equal(start) {
		t.Fatalf("after enqueue: %+v", j)
	}
	if j.Type != "email.send" || j.Queue != "email" || j.Priority != engine.PriorityHigh || j.IdempotencyKey != "email:welcome:42:1" ||
		string(j.Payload) != `{"to":"ada@example.com"}` || !reflect.DeepEqual(j.RetryPolicy, emailSendPolicy) {
		t.Fatalf("enqueued fields lost: %+v", j)
	}
	if task := j.Task(); task == nil || task.Attempt != 0 || task.LeasedBy != "" || !task.RunAt.Equal(start) || task.Priority != 1 {
		t.Fatalf("pending task = %+v", task)
	}

	claimed := h.claimCmd()
	events := h.do(claimed)
	if got := types(events); !reflect.DeepEqual(got, []string{engine.EventAttemptStarted}) {
		t.Fatalf("claim events = %v", got)
	}
	started := decode[engine.AttemptStarted](t, events[0])
	if started.Attempt != 1 || started.WorkerID != "worker-1" || !started.LeaseExpiresAt.Equal(claimed.LeaseExpiresAt) {
		t.Fatalf("AttemptStarted = %+v", started)
	}
	j = h.job
	if j.Status != engine.StatusRunning || j.Attempt != 1 || j.WorkerID != "worker-1" || j.LeaseExpiresAt == nil ||
		!j.LeaseExpiresAt.Equal(claimed.LeaseExpiresAt) || j.AttemptsInBudget() != 1 {
		t.Fatalf("after claim: %+v", j)
	}
	if task := j.Task(); task == nil || task.Attempt != 1 || task.LeasedBy != "worker-1" || !task.LeaseExpiresAt.Equal(claimed.LeaseExpiresAt) {
		t.Fatalf("running task = %+v", task)
	}

	events = h.complete()
	if got := types(events); !reflect.DeepEqual(got, []string{engine.EventAttemptSucceeded}) {
		t.Fatalf("complete events = %v", got)
	}
	if string(events[0].Data) != `{"attempt":1,"duration_ms":1.5}` {
		t.Fatalf("AttemptSucceeded data = %s", events[0].Data)
	}
	j = h.job
	if j.Status != engine.StatusSucceeded || !j.Status.Final() || j.Attempt != 1 || j.WorkerID != "" || j.LeaseExpiresAt != nil ||
		j.FinishedAt == nil || !j.FinishedAt.Equal(h.now) || !j.UpdatedAt.Equal(h.now) || j.LastError != "" {
		t.Fatalf("after success: %+v", j)
	}
	if task := j.Task(); task != nil {
		t.Fatalf("succeeded job still has a task: %+v", task)
	}
	if len(h.history) != 3 {
		t.Fatalf("history has %d events, want 3", len(h.history))
	}
}

func TestDecideFailRetriesPerSchedule(t *testing.T) {
	t.Parallel()
	h := newJob(t, emailSendPolicy) // 4 attempts, then 1m, 5m, 15m
	for i, delay := range emailSendPolicy.Schedule {
		attempt := i + 1
		h.claim()
		if h.job.Attempt != attempt {
			t.Fatalf("claim %d: Attempt = %d", attempt, h.job.Attempt)
		}
		msg := fmt.Sprintf("smtp 451 on attempt %d", attempt)
		events := h.fail(msg)
		if got := types(events); !reflect.DeepEqual(got, []string{engine.EventAttemptFailed}) {
			t.Fatalf("attempt %d: fail events = %v", attempt, got)
		}
		failed := decode[engine.AttemptFailed](t, events[0])
		wantRetry := h.now.Add(delay)
		if failed.RetryAt == nil || !failed.RetryAt.Equal(wantRetry) {
			t.Fatalf("attempt %d: retry_at = %v, want %s (now + %s)", attempt, failed.RetryAt, wantRetry, delay)
		}
		if failed.Attempt != attempt || failed.Error != msg || failed.ErrorType != "SMTPError" || failed.Permanent || failed.DurationMS != 20 {
			t.Fatalf("attempt %d: AttemptFailed = %+v", attempt, failed)
		}
		j := h.job
		if j.Status != engine.StatusRetrying || !j.RunAt.Equal(wantRetry) || j.LastError != msg || j.WorkerID != "" || j.LeaseExpiresAt != nil || j.FinishedAt != nil {
			t.Fatalf("attempt %d: after failure %+v", attempt, j)
		}
		if task := j.Task(); task == nil || !task.RunAt.Equal(wantRetry) || task.LeasedBy != "" || task.Attempt != attempt {
			t.Fatalf("attempt %d: retrying task = %+v", attempt, task)
		}
	}
}

func TestDecideFailOnLastAttemptDeadLetters(t *testing.T) {
	t.Parallel()
	h := newJob(t, emailSendPolicy)
	for range 3 {
		h.claim()
		h.fail("smtp 451")
	}
	h.claim()
	events := h.fail("smtp 550 mailbox unavailable")
	if got := types(events); !reflect.DeepEqual(got, []string{engine.EventAttemptFailed, engine.EventJobDeadLettered}) {
		t.Fatalf("last failure events = %v", got)
	}
	if !strings.Contains(string(events[0].Data), `"retry_at":null`) {
		t.Fatalf("AttemptFailed data = %s, want retry_at null", events[0].Data)
	}
	if failed := decode[engine.AttemptFailed](t, events[0]); failed.RetryAt != nil || failed.Attempt != 4 || failed.Permanent {
		t.Fatalf("AttemptFailed = %+v", failed)
	}
	dl := decode[engine.JobDeadLettered](t, events[1])
	if dl != (engine.JobDeadLettered{Attempts: 4, LastError: "smtp 550 mailbox unavailable", Reason: "all 4 attempts failed"}) {
		t.Fatalf("JobDeadLettered = %+v", dl)
	}
	if events[1].Seq != events[0].Seq+1 || !events[1].RecordedAt.Equal(events[0].RecordedAt) {
		t.Fatalf("dead letter is not the next event of the same transaction: %d@%s after %d@%s", events[1].Seq, events[1].RecordedAt, events[0].Seq, events[0].RecordedAt)
	}
	j := h.job
	if j.Status != engine.StatusDeadLettered || j.Status.Final() || j.Attempt != 4 || j.LastError != "smtp 550 mailbox unavailable" ||
		j.FinishedAt != nil || j.WorkerID != "" || j.LeaseExpiresAt != nil {
		t.Fatalf("after last failure: %+v", j)
	}
	if task := j.Task(); task != nil {
		t.Fatalf("dead letter still has a task: %+v", task)
	}
	// Nothing claims it.
	if _, err := h.try(h.claimCmd()); !errors.Is(err, engine.ErrInvalidState) {
		t.Fatalf("claim of a dead letter = %v, want ErrInvalidState", err)
	}
}

func TestDecideMaximumAttemptsOneNeverRetries(t *testing.T) {
	t.Parallel()
	h := newJob(t, engine.RetryPolicy{MaximumAttempts: 1})
	h.claim()
	events := h.fail("boom")
	if got := types(events); !reflect.DeepEqual(got, []string{engine.EventAttemptFailed, engine.EventJobDeadLettered}) {
		t.Fatalf("events = %v", got)
	}
	if h.job.Status != engine.StatusDeadLettered {
		t.Fatalf("status = %s", h.job.Status)
	}
}

func TestDecideDefaultPolicyAllowsTenAttempts(t *testing.T) {
	t.Parallel()
	h := newJob(t, engine.RetryPolicy{})
	for attempt := 1; attempt <= engine.DefaultMaximumAttempts; attempt++ {
		h.claim()
		h.fail("boom")
		want := engine.StatusRetrying
		if attempt == engine.DefaultMaximumAttempts {
			want = engine.StatusDeadLettered
		}
		if h.job.Status != want {
			t.Fatalf("after attempt %d: status %s, want %s", attempt, h.job.Status, want)
		}
	}
	// Exponential delays from 1s, doubling.
	var delays []time.Duration
	for _, e := range h.history {
		if e.Type == engine.EventAttemptFailed {
			if f := decode[engine.AttemptFailed](t, e); f.RetryAt != nil {
				delays = append(delays, f.RetryAt.Sub(e.RecordedAt))
			}
		}
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256}
	for i := range want {
		want[i] *= time.Second
	}
	if !reflect.DeepEqual(delays, want) {
		t.Fatalf("retry delays = %v, want %v", delays, want)
	}
}

func TestDecideJitterUsesEnvRandom(t *testing.T) {
	t.Parallel()
	policy := engine.RetryPolicy{MaximumAttempts: 3, Schedule: []time.Duration{100 * time.Second}, Jitter: 0.2}
	for _, tt := range []struct {
		random float64
		delay  time.Duration
	}{{0, 80 * time.Second}, {0.5, 100 * time.Second}, {0.75, 110 * time.Second}} {
		h := newJob(t, policy)
		h.random = tt.random
		h.claim()
		h.fail("boom")
		if got := h.job.RunAt.Sub(h.now); got != tt.delay {
			t.Errorf("random %g: retry after %s, want %s", tt.random, got, tt.delay)
		}
	}
	// A nil Random is 0.5: no jitter.
	h := newJob(t, policy)
	h.claim()
	h.tick()
	d, err := engine.Decide(h.job, engine.Fail{Attempt: 1, Error: "boom"}, engine.Env{Now: h.now})
	if err != nil {
		t.Fatal(err)
	}
	if at := d[0].Data.(engine.AttemptFailed).RetryAt; at == nil || !at.Equal(h.now.Add(100*time.Second)) {
		t.Fatalf("retry_at with nil Random = %v", at)
	}
}

func TestDecidePermanentErrors(t *testing.T) {
	t.Parallel()
	policy := engine.RetryPolicy{MaximumAttempts: 5, Schedule: []time.Duration{time.Minute}, NonRetryableErrorTypes: []string{"InvalidAddress", "Unauthorized"}}
	tests := []struct {
		name       string
		fail       engine.Fail
		wantReason string
	}{
		{"Permanent flag", engine.Fail{Error: "bad template", ErrorType: "TemplateError", Permanent: true}, "permanent error"},
		{"Permanent flag without type", engine.Fail{Error: "bad template", Permanent: true}, "permanent error"},
		{"non-retryable type", engine.Fail{Error: "no such mailbox", ErrorType: "InvalidAddress"}, "error type InvalidAddress is not retryable"},
		{"second non-retryable type", engine.Fail{Error: "401", ErrorType: "Unauthorized"}, "error type Unauthorized is not retryable"},
		{"Permanent flag and non-retryable type", engine.Fail{Error: "401", ErrorType: "Unauthorized", Permanent: true}, "permanent error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newJob(t, policy)
			h.claim()
			tt.fail.Attempt = 1
			events := h.do(tt.fail)
			if got := types(events); !reflect.DeepEqual(got, []string{engine.EventAttemptFailed, engine.EventJobDeadLettered}) {
				t.Fatalf("events = %v", got)
			}
			failed := decode[engine.AttemptFailed](t, events[0])
			if !failed.Permanent || failed.RetryAt != nil || failed.Error != tt.fail.Error || failed.ErrorType != tt.fail.ErrorType {
				t.Fatalf("AttemptFailed = %+v", failed)
			}
			dl := decode[engine.JobDeadLettered](t, events[1])
			if dl.Reason != tt.wantReason || dl.Attempts != 1 || dl.LastError != tt.fail.Error {
				t.Fatalf("JobDeadLettered = %+v, want reason %q after 1 attempt", dl, tt.wantReason)
			}
			if h.job.Status != engine.StatusDeadLettered || h.job.Attempt != 1 || h.job.LastError != tt.fail.Error {
				t.Fatalf("state = %+v", h.job)
			}
		})
	}
	// An error type that is not listed is retried.
	h := newJob(t, policy)
	h.claim()
	events := h.do(engine.Fail{Attempt: 1, Error: "timeout", ErrorType: "InvalidAddressX"})
	if got := types(events); !reflect.DeepEqual(got, []string{engine.EventAttemptFailed}) || h.job.Status != engine.StatusRetrying {
		t.Fatalf("unlisted error type: events %v, status %s", got, h.job.Status)
	}
}

func TestDecideTimeOut(t *testing.T) {
	t.Parallel()
	policy := engine.RetryPolicy{MaximumAttempts: 2, Schedule: []time.Duration{time.Minute}}
	h := newJob(t, policy)
	claim := h.claimCmd()
	h.do(claim)
	events := h.do(engine.TimeOut{Attempt: 1})
	if got := types(events); !reflect.DeepEqual(got, []string{engine.EventAttemptTimedOut}) {
		t.Fatalf("events = %v", got)
	}
	to := decode[engine.AttemptTimedOut](t, events[0])
	if to.Attempt != 1 || to.WorkerID != "worker-1" || !to.LeaseExpiredAt.Equal(claim.LeaseExpiresAt) || to.RetryAt == nil || !to.RetryAt.Equal(h.now.Add(time.Minute)) {
		t.Fatalf("AttemptTimedOut = %+v", to)
	}
	wantErr := fmt.Sprintf("attempt 1 timed out: lease held by worker-1 expired at %s", claim.LeaseExpiresAt.Format(time.RFC3339Nano))
	if j := h.job; j.Status != engine.StatusRetrying || !j.RunAt.Equal(*to.RetryAt) || j.LastError != wantErr || j.WorkerID != "" || j.LeaseExpiresAt != nil {
		t.Fatalf("after time out: %+v", j)
	}
	// A second time out of the same attempt, or a late result from it, is refused.
	for _, cmd := range []engine.Command{engine.TimeOut{Attempt: 1}, engine.Complete{Attempt: 1}, engine.Fail{Attempt: 1, Error: "late"}} {
		if _, err := h.try(cmd); !errors.Is(err, engine.ErrLeaseLost) {
			t.Fatalf("%#v after time out = %v, want ErrLeaseLost", cmd, err)
		}
	}

	// The last attempt times out: dead letter.
	h.claim()
	events = h.do(engine.TimeOut{Attempt: 2})
	if got := types(events); !reflect.DeepEqual(got, []string{engine.EventAttemptTimedOut, engine.EventJobDeadLettered}) {
		t.Fatalf("last time out events = %v", got)
	}
	if !strings.Contains(string(events[0].Data), `"retry_at":null`) {
		t.Fatalf("AttemptTimedOut data = %s, want retry_at null", events[0].Data)
	}
	dl := decode[engine.JobDeadLettered](t, events[1])
	if dl != (engine.JobDeadLettered{Attempts: 2, LastError: "attempt 2 timed out", Reason: "all 2 attempts failed"}) {
		t.Fatalf("JobDeadLettered = %+v", dl)
	}
	if h.job.Status != engine.StatusDeadLettered || !strings.HasPrefix(h.job.LastError, "attempt 2 timed out") {
		t.Fatalf("after last time out: %+v", h.job)
	}
}

func TestDecideRetryDeadLetterGivesFreshBudget(t *testing.T) {
	t.Parallel()
	policy := engine.RetryPolicy{MaximumAttempts: 3, Schedule: []time.Duration{time.Minute}}
	h := newJob(t, policy)
	for range 3 {
		h.claim()
		h.fail("boom")
	}
	if h.job.Status != engine.StatusDeadLettered || h.job.AttemptsInBudget() != 3 {
		t.Fatalf("not dead-lettered after 3 attempts: %+v", h.job)
	}
	// Retry needs an actor.
	_, err := h.try(engine.RetryDeadLetter{Actor: "  ", Note: "x"})
	var ie *engine.InputError
	if !errors.As(err, &ie) || ie.Field != "actor" || !errors.Is(err, engine.ErrInvalidInput) {
		t.Fatalf("retry without actor = %v, want an InputError on actor", err)
	}

	events := h.do(engine.RetryDeadLetter{Actor: "ops@example.com", Note: "SMTP relay fixed"})
	if got := types(events); !reflect.DeepEqual(got, []string{engine.EventJobRetried}) {
		t.Fatalf("events = %v", got)
	}
	if r := decode[engine.JobRetried](t, events[0]); r != (engine.JobRetried{Actor: "ops@example.com", Note: "SMTP relay fixed"}) {
		t.Fatalf("JobRetried = %+v", r)
	}
	j := h.job
	if j.Status != engine.StatusPending || j.Attempt != 3 || j.BudgetStart != 3 || j.AttemptsInBudget() != 0 || !j.RunAt.Equal(h.now) || j.FinishedAt != nil {
		t.Fatalf("after retry: %+v", j)
	}
	if task := j.Task(); task == nil || !task.RunAt.Equal(h.now) || task.Attempt != 3 {
		t.Fatalf("retried task = %+v", task)
	}
	// Attempt numbers continue (they are fencing tokens); the budget restarts.
	for i := 1; i <= 3; i++ {
		h.claim()
		if h.job.Attempt != 3+i || h.job.AttemptsInBudget() != i {
			t.Fatalf("retry claim %d: Attempt %d, in budget %d", i, h.job.Attempt, h.job.AttemptsInBudget())
		}
		events = h.fail("boom again")
		if i < 3 {
			if h.job.Status != engine.StatusRetrying || !h.job.RunAt.Equal(h.now.Add(time.Minute)) {
				t.Fatalf("retry attempt %d: %+v", i, h.job)
			}
		}
	}
	if got := types(events); !reflect.DeepEqual(got, []string{engine.EventAttemptFailed, engine.EventJobDeadLettered}) {
		t.Fatalf("last attempt of the new budget: %v", got)
	}
	if dl := decode[engine.JobDeadLettered](t, events[1]); dl.Attempts != 3 {
		t.Fatalf("JobDeadLettered.Attempts = %d, want 3 (this budget's attempts)", dl.Attempts)
	}
	if h.job.Status != engine.StatusDeadLettered || h.job.Attempt != 6 {
		t.Fatalf("after second budget: %+v", h.job)
	}
	// A retried job can succeed.
	h.do(engine.RetryDeadLetter{Actor: "ops@example.com"})
	h.claim()
	h.complete()
	if h.job.Status != engine.StatusSucceeded || h.job.Attempt != 7 {
		t.Fatalf("after retry and success: %+v", h.job)
	}
}

func TestDecideResolve(t *testing.T) {
	t.Parallel()
	deadLetter := func(t *testing.T) *jobHistory {
		h := newJob(t, engine.RetryPolicy{MaximumAttempts: 1})
		h.claim()
		h.fail("boom")
		return h
	}
	t.Run("needs notes", func(t *testing.T) {
		t.Parallel()
		h := deadLetter(t)
		for _, notes := range []string{"", " \n\t"} {
			_, err := h.try(engine.Resolve{Actor: "ops", Notes: notes})
			var ie *engine.InputError
			if !errors.As(err, &ie) || ie.Field != "notes" || !errors.Is(err, engine.ErrInvalidInput) || errors.Is(err, engine.ErrInvalidState) {
				t.Fatalf("resolve with notes %q = %v, want an InputError on notes", notes, err)
			}
			if !strings.Contains(err.Error(), "notes") {
				t.Fatalf("error %q does not name the notes", err)
			}
		}
		_, err := h.try(engine.Resolve{Notes: "customer deleted"})
		var ie *engine.InputError
		if !errors.As(err, &ie) || ie.Field != "actor" {
			t.Fatalf("resolve without actor = %v, want an InputError on actor", err)
		}
		if h.job.Status != engine.StatusDeadLettered {
			t.Fatalf("refused resolve changed status to %s", h.job.Status)
		}
	})
	t.Run("closes a dead letter", func(t *testing.T) {
		t.Parallel()
		h := deadLetter(t)
		events := h.do(engine.Resolve{Actor: "ops@example.com", Notes: "customer deleted their account"})
		if got := types(events); !reflect.DeepEqual(got, []string{engine.EventJobResolved}) {
			t.Fatalf("events = %v", got)
		}
		if r := decode[engine.JobResolved](t, events[0]); r != (engine.JobResolved{Actor: "ops@example.com", Notes: "customer deleted their account"}) {
			t.Fatalf("JobResolved = %+v", r)
		}
		j := h.job
		if j.Status != engine.StatusResolved || !j.Status.Final() || j.FinishedAt == nil || !j.FinishedAt.Equal(h.now) || j.LastError != "boom" {
			t.Fatalf("after resolve: %+v", j)
		}
		if task := j.Task(); task != nil {
			t.Fatalf("resolved job has a task: %+v", task)
		}
	})
	t.Run("only from dead_lettered", func(t *testing.T) {
		t.Parallel()
		h := newJob(t, engine.RetryPolicy{MaximumAttempts: 2})
		check := func() {
			t.Helper()
			status := h.job.Status
			_, err := h.try(engine.Resolve{Actor: "ops", Notes: "n"})
			var se *engine.StateError
			if !errors.As(err, &se) || !errors.Is(err, engine.ErrInvalidState) || errors.Is(err, engine.ErrInvalidInput) {
				t.Fatalf("resolve in %s = %v, want a StateError", status, err)
			}
			if se.Status != status || se.Command != "resolve" || se.ID != h.job.ID || !strings.Contains(err.Error(), string(status)) {
				t.Fatalf("StateError = %+v (%v)", se, err)
			}
		}
		check() // pending
		h.claim()
		check() // running
		h.fail("boom")
		check() // retrying
		h.claim()
		h.complete()
		check() // succeeded
	})
}

func TestDecideCancel(t *testing.T) {
	t.Parallel()
	cancelable := map[engine.Status]func(t *testing.T) *jobHistory{
		engine.StatusPending: func(t *testing.T) *jobHistory { return newJob(t, emailSendPolicy) },
		engine.StatusRunning: func(t *testing.T) *jobHistory {
			h := newJob(t, emailSendPolicy)
			h.claim()
			return h
		},
		engine.StatusRetrying: func(t *testing.T) *jobHistory {
			h := newJob(t, emailSendPolicy)
			h.claim()
			h.fail("boom")
			return h
		},
		engine.StatusDeadLettered: func(t *testing.T) *jobHistory {
			h := newJob(t, engine.RetryPolicy{MaximumAttempts: 1})
			h.claim()
			h.fail("boom")
			return h
		},
	}
	for status, setup := range cancelable {
		t.Run(string(status), func(t *testing.T) {
			t.Parallel()
			h := setup(t)
			if h.job.Status != status {
				t.Fatalf("setup reached %s, want %s", h.job.Status, status)
			}
			if _, err := h.try(engine.Cancel{Reason: "no actor"}); !errors.Is(err, engine.ErrInvalidInput) {
				t.Fatalf("cancel without actor = %v, want ErrInvalidInput", err)
			}
			attempt := h.job.Attempt
			events := h.do(engine.Cancel{Actor: "ops", Reason: "customer asked"})
			if got := types(events); !reflect.DeepEqual(got, []string{engine.EventJobCanceled}) {
				t.Fatalf("events = %v", got)
			}
			if c := decode[engine.JobCanceled](t, events[0]); c != (engine.JobCanceled{Actor: "ops", Reason: "customer asked"}) {
				t.Fatalf("JobCanceled = %+v", c)
			}
			j := h.job
			if j.Status != engine.StatusCanceled || !j.Status.Final() || j.FinishedAt == nil || !j.FinishedAt.Equal(h.now) ||
				j.WorkerID != "" || j.LeaseExpiresAt != nil || j.Attempt != attempt {
				t.Fatalf("after cancel: %+v", j)
			}
			if task := j.Task(); task != nil {
				t.Fatalf("canceled job has a task: %+v", task)
			}
			// A worker that still runs the attempt has lost its lease.
			if attempt > 0 {
				for _, cmd := range []engine.Command{engine.Complete{Attempt: attempt}, engine.Fail{Attempt: attempt, Error: "x"}, engine.TimeOut{Attempt: attempt}} {
					if _, err := h.try(cmd); !errors.Is(err, engine.ErrLeaseLost) {
						t.Fatalf("%#v after cancel = %v, want ErrLeaseLost", cmd, err)
					}
				}
			}
		})
	}

	final := map[engine.Status]func(t *testing.T) *jobHistory{
		engine.StatusSucceeded: func(t *testing.T) *jobHistory {
			h := newJob(t, emailSendPolicy)
			h.claim()
			h.complete()
			return h
		},
		engine.StatusResolved: func(t *testing.T) *jobHistory {
			h := cancelable[engine.StatusDeadLettered](t)
			h.do(engine.Resolve{Actor: "ops", Notes: "n"})
			return h
		},
		engine.StatusCanceled: func(t *testing.T) *jobHistory {
			h := newJob(t, emailSendPolicy)
			h.do(engine.Cancel{Actor: "ops"})
			return h
		},
	}
	for status, setup := range final {
		t.Run(string(status), func(t *testing.T) {
			t.Parallel()
			h := setup(t)
			if h.job.Status != status {
				t.Fatalf("setup reached %s, want %s", h.job.Status, status)
			}
			_, err := h.try(engine.Cancel{Actor: "ops", Reason: "too late"})
			var se *engine.StateError
			if !errors.As(err, &se) || !errors.Is(err, engine.ErrInvalidState) || se.Status != status || se.Command != "cancel" {
				t.Fatalf("cancel of %s job = %v, want a StateError", status, err)
			}
		})
	}
}

func TestDecideFencing(t *testing.T) {
	t.Parallel()
	h := newJob(t, emailSendPolicy)
	// Before any claim nothing can report a result.
	for _, cmd := range []engine.Command{engine.Complete{Attempt: 0}, engine.Complete{Attempt: 1}, engine.Fail{Attempt: 1, Error: "x"}, engine.TimeOut{Attempt: 1}} {
		if _, err := h.try(cmd); !errors.Is(err, engine.ErrLeaseLost) {
			t.Fatalf("%#v on a pending job = %v, want ErrLeaseLost", cmd, err)
		}
	}
	h.claim()
	h.fail("boom")
	h.claim() // attempt 2 holds the lease
	for _, cmd := range []engine.Command{
		engine.Complete{Attempt: 1}, engine.Fail{Attempt: 1, Error: "stale"}, engine.TimeOut{Attempt: 1},
		engine.Complete{Attempt: 3}, engine.Fail{Attempt: 3, Error: "future"}, engine.TimeOut{Attempt: 3},
	} {
		_, err := h.try(cmd)
		if !errors.Is(err, engine.ErrLeaseLost) {
			t.Fatalf("%#v while attempt 2 runs = %v, want ErrLeaseLost", cmd, err)
		}
		if errors.Is(err, engine.ErrInvalidState) {
			t.Fatalf("%#v: lease lost must not also be an invalid state: %v", cmd, err)
		}
	}
	// Claim of a running job is refused, whatever attempt it names.
	for _, attempt := range []int{2, 3} {
		_, err := h.try(engine.Claim{WorkerID: "worker-2", Attempt: attempt, LeaseExpiresAt: h.now.Add(time.Minute)})
		var se *engine.StateError
		if !errors.As(err, &se) || !errors.Is(err, engine.ErrInvalidState) || se.Status != engine.StatusRunning || se.Command != "claim" {
			t.Fatalf("claim of a running job as attempt %d = %v, want a StateError", attempt, err)
		}
	}
	if h.job.Attempt != 2 || h.job.WorkerID != "worker-1" {
		t.Fatalf("refused commands changed the job: %+v", h.job)
	}
	h.complete()
	if h.job.Status != engine.StatusSucceeded {
		t.Fatalf("status = %s", h.job.Status)
	}
}

func TestDecideClaimWithWrongAttemptRefused(t *testing.T) {
	t.Parallel()
	h := newJob(t, emailSendPolicy)
	for _, attempt := range []int{0, 2, -1} {
		_, err := h.try(engine.Claim{WorkerID: "w", Attempt: attempt, LeaseExpiresAt: h.now.Add(time.Minute)})
		if err == nil || !strings.Contains(err.Error(), "chronicle verify") {
			t.Fatalf("claim as attempt %d of a fresh job = %v, want a refusal pointing at chronicle verify", attempt, err)
		}
	}
	if h.job.Attempt != 0 || h.job.Status != engine.StatusPending || len(h.history) != 1 {
		t.Fatalf("refused claims changed the job: %+v", h.job)
	}
}

// TestDecideTransitionTable applies every command in every status and
// checks what is accepted, what it records, and how refusals are typed.
func TestDecideTransitionTable(t *testing.T) {
	t.Parallel()
	policy := engine.RetryPolicy{MaximumAttempts: 2, Schedule: []time.Duration{time.Minute}}
	setups := map[engine.Status]func(h *jobHistory){
		engine.StatusPending: func(h *jobHistory) {},
		engine.StatusRunning: func(h *jobHistory) { h.claim() },
		engine.StatusRetrying: func(h *jobHistory) {
			h.claim()
			h.fail("boom")
		},
		engine.StatusSucceeded: func(h *jobHistory) {
			h.claim()
			h.complete()
		},
		engine.StatusDeadLettered: func(h *jobHistory) {
			h.claim()
			h.do(engine.Fail{Attempt: 1, Error: "boom", Permanent: true})
		},
		engine.StatusResolved: func(h *jobHistory) {
			h.claim()
			h.do(engine.Fail{Attempt: 1, Error: "boom", Permanent: true})
			h.do(engine.Resolve{Actor: "ops", Notes: "n"})
		},
		engine.StatusCanceled: func(h *jobHistory) { h.do(engine.Cancel{Actor: "ops"}) },
	}
	commands := map[string]func(j engine.Job, now time.Time) engine.Command{
		"claim": func(j engine.Job, now time.Time) engine.Command {
			return engine.Claim{WorkerID: "w", Attempt: j.Attempt + 1, LeaseExpiresAt: now.Add(time.Minute)}
		},
		"complete": func(j engine.Job, _ time.Time) engine.Command { return engine.Complete{Attempt: j.Attempt} },
		"fail":     func(j engine.Job, _ time.Time) engine.Command { return engine.Fail{Attempt: j.Attempt, Error: "e"} },
		"time out": func(j engine.Job, _ time.Time) engine.Command { return engine.TimeOut{Attempt: j.Attempt} },
		"retry":    func(engine.Job, time.Time) engine.Command { return engine.RetryDeadLetter{Actor: "ops"} },
		"resolve":  func(engine.Job, time.Time) engine.Command { return engine.Resolve{Actor: "ops", Notes: "n"} },
		"cancel":   func(engine.Job, time.Time) engine.Command { return engine.Cancel{Actor: "ops"} },
	}
	type outcome struct {
		events []string
		status engine.Status
		err    error
	}
	ok := func(status engine.Status, events ...string) outcome { return outcome{events: events, status: status} }
	leaseLost := outcome{err: engine.ErrLeaseLost}
	invalid := outcome{err: engine.ErrInvalidState}
	refusedEverywhere := map[string]outcome{
		"claim": invalid, "complete": leaseLost, "fail": leaseLost, "time out": leaseLost,
		"retry": invalid, "resolve": invalid, "cancel": invalid,
	}
	want := map[engine.Status]map[string]outcome{
		engine.StatusPending: {
			"claim": ok(engine.StatusRunning, engine.EventAttemptStarted), "complete": leaseLost, "fail": leaseLost, "time out": leaseLost,
			"retry": invalid, "resolve": invalid, "cancel": ok(engine.StatusCanceled, engine.EventJobCanceled),
		},
		engine.StatusRunning: {
			"claim": invalid, "complete": ok(engine.StatusSucceeded, engine.EventAttemptSucceeded),
			"fail": ok(engine.StatusRetrying, engine.EventAttemptFailed), "time out": ok(engine.StatusRetrying, engine.EventAttemptTimedOut),
			"retry": invalid, "resolve": invalid, "cancel": ok(engine.StatusCanceled, engine.EventJobCanceled),
		},
		engine.StatusRetrying: {
			"claim": ok(engine.StatusRunning, engine.EventAttemptStarted), "complete": leaseLost, "fail": leaseLost, "time out": leaseLost,
			"retry": invalid, "resolve": invalid, "cancel": ok(engine.StatusCanceled, engine.EventJobCanceled),
		},
		engine.StatusSucceeded: refusedEverywhere,
		engine.StatusDeadLettered: {
			"claim": invalid, "complete": leaseLost, "fail": leaseLost, "time out": leaseLost,
			"retry": ok(engine.StatusPending, engine.EventJobRetried), "resolve": ok(engine.StatusResolved, engine.EventJobResolved),
			"cancel": ok(engine.StatusCanceled, engine.EventJobCanceled),
		},
		engine.StatusResolved: refusedEverywhere,
		engine.StatusCanceled: refusedEverywhere,
	}
	for status, setup := range setups {
		for name, command := range commands {
			t.Run(string(status)+"/"+name, func(t *testing.T) {
				t.Parallel()
				h := newJob(t, policy)
				setup(h)
				if h.job.Status != status {
					t.Fatalf("setup reached %s, want %s", h.job.Status, status)
				}
				w := want[status][name]
				seq := h.job.Seq
				events, err := h.try(command(h.job, h.now.Add(time.Second)))
				if w.err != nil {
					if !errors.Is(err, w.err) {
						t.Fatalf("err = %v, want %v", err, w.err)
					}
					if len(h.history) != int(seq) {
						t.Fatalf("a refused command recorded events")
					}
					return
				}
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if got := types(events); !reflect.DeepEqual(got, w.events) {
					t.Fatalf("events = %v, want %v", got, w.events)
				}
				if events[0].Seq != seq+1 {
					t.Fatalf("first new event has seq %d, want %d", events[0].Seq, seq+1)
				}
				if h.job.Status != w.status {
					t.Fatalf("status = %s, want %s", h.job.Status, w.status)
				}
			})
		}
	}
}

func TestDecideRecordNumbersAndSeals(t *testing.T) {
	t.Parallel()
	h := newJob(t, emailSendPolicy)
	h.claim()
	first := h.history[0]
	if first.Seq != 1 || first.Type != engine.EventJobEnqueued || !bytes.Equal(first.PrevHash, eventlog.GenesisHash) || !first.RecordedAt.Equal(start) {
		t.Fatalf("first event = %+v", first)
	}
	// Data is canonical: sorted keys, numbers by value.
	canon, err := eventlog.Canonicalize(first.Data)
	if err != nil || !bytes.Equal(canon, first.Data) {
		t.Fatalf("JobEnqueued data is not canonical: %s", first.Data)
	}
	if !strings.HasPrefix(string(first.Data), `{"idempotency_key":"email:welcome:42:1","payload":{"to":"ada@example.com"},"priority":"high","queue":"email",`) {
		t.Fatalf("JobEnqueued data = %s", first.Data)
	}
	if !bytes.Equal(h.history[1].PrevHash, first.Hash) || !h.history[1].RecordedAt.Equal(h.now) {
		t.Fatalf("second event = %+v", h.history[1])
	}

	// Data that JSON cannot encode, or that jsonb cannot store, is refused
	// and leaves the state as it was.
	j := h.job
	for _, d := range []engine.Decision{
		{Type: engine.EventJobCanceled, Data: engine.JobCanceled{Actor: "ops", Reason: "nul \x00 byte"}},
		{Type: engine.EventJobCanceled, Data: func() {}},
	} {
		got, events, err := engine.Record(j, []engine.Decision{d}, h.now)
		if err == nil || events != nil {
			t.Fatalf("Record(%T) = %d events, %v; want an error", d.Data, len(events), err)
		}
		if !reflect.DeepEqual(got.Row(), j.Row()) {
			t.Fatalf("failed Record changed the state")
		}
	}
}

func TestDecideJobFromRowRoundTrip(t *testing.T) {
	t.Parallel()
	policy := engine.RetryPolicy{MaximumAttempts: 3, InitialInterval: 2 * time.Second, BackoffCoefficient: 3, MaximumInterval: time.Minute,
		Jitter: 0.1, NonRetryableErrorTypes: []string{"Bad"}}
	h := newJob(t, policy)
	check := func() {
		t.Helper()
		row, task := h.job.Row(), h.job.Task()
		back, err := engine.JobFromRow(row, task)
		if err != nil {
			t.Fatal(err)
		}
		if got := back.Row(); !reflect.DeepEqual(got, row) {
			t.Fatalf("JobFromRow(Row()).Row() =\n%+v\nwant\n%+v", got, row)
		}
		if got := back.Task(); !reflect.DeepEqual(got, task) {
			t.Fatalf("JobFromRow(Row()).Task() = %+v, want %+v", got, task)
		}
		if !reflect.DeepEqual(back.RetryPolicy, policy) {
			t.Fatalf("retry policy through the row = %+v, want %+v", back.RetryPolicy, policy)
		}
		if back.Status == engine.StatusRunning && (back.WorkerID != h.job.WorkerID || !back.LeaseExpiresAt.Equal(*h.job.LeaseExpiresAt)) {
			t.Fatalf("lease through the row: %+v", back)
		}
	}
	check()
	h.claim()
	check()
	h.fail("boom")
	check()
	h.claim()
	h.complete()
	check()
	if row := h.job.Row(); row.Kind != "job" || row.MaxAttempts != 3 || row.Priority != 1 || row.Attempt != 2 || row.Status != "succeeded" || row.LastSeq != 5 {
		t.Fatalf("Row() = %+v", row)
	}
}
