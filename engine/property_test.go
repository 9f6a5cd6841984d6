package engine_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// TestPropertyJobStateMachine drives jobs with random retry policies through
// random command sequences — right and wrong fencing tokens, transient and
// permanent failures, time outs, operator retries, resolves and cancels —
// and checks after every command that it was accepted or refused as a simple
// model of the state machine predicts, and that the history keeps every
// invariant.
func TestPropertyJobStateMachine(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		policy := drawPolicy(t)
		h := newJob(t, policy)
		checkInvariants(t, h)
		steps := rapid.IntRange(1, 120).Draw(t, "steps")
		for range steps {
			h.now = h.now.Add(time.Duration(rapid.Int64Range(0, int64(2*time.Hour)).Draw(t, "advance"))).Truncate(time.Microsecond)
			h.random = rapid.Float64Range(0, 0.999999).Draw(t, "random")
			cmd := drawCommand(t, h.job, h.now)
			before := h.job
			wantErr, wantOK := model(before, cmd)
			events, err := h.try(cmd) // try ticks the clock by one second
			if before.Status.Final() && err == nil {
				t.Fatalf("%#v accepted for a job that is %s (final)", cmd, before.Status)
			}
			if !wantOK {
				if err == nil {
					t.Fatalf("%#v in %s accepted with %v; the model refuses it", cmd, before.Status, types(events))
				}
				if wantErr != nil && !errors.Is(err, wantErr) {
					t.Fatalf("%#v in %s refused with %v; want %v", cmd, before.Status, err, wantErr)
				}
				if wantErr == nil && (errors.Is(err, engine.ErrLeaseLost) || errors.Is(err, engine.ErrInvalidState) || errors.Is(err, engine.ErrInvalidInput)) {
					t.Fatalf("%#v in %s refused with %v; want a projection-fault error", cmd, before.Status, err)
				}
			} else {
				if err != nil {
					t.Fatalf("%#v in %s refused: %v; the model accepts it", cmd, before.Status, err)
				}
				checkOutcome(t, before, cmd, h)
			}
			checkInvariants(t, h)
		}
	})
}

func drawPolicy(t *rapid.T) engine.RetryPolicy {
	p := engine.RetryPolicy{MaximumAttempts: rapid.IntRange(0, 5).Draw(t, "max attempts")} // 0: the default 10
	if rapid.Bool().Draw(t, "schedule") {
		n := rapid.IntRange(1, 3).Draw(t, "schedule length")
		for range n {
			p.Schedule = append(p.Schedule, time.Duration(rapid.Int64Range(0, int64(time.Hour)).Draw(t, "scheduled delay")))
		}
	} else {
		p.InitialInterval = time.Duration(rapid.Int64Range(0, int64(time.Minute)).Draw(t, "initial interval"))
		p.BackoffCoefficient = rapid.SampledFrom([]float64{0, 1, 1.5, 2, 3}).Draw(t, "coefficient")
		p.MaximumInterval = time.Duration(rapid.Int64Range(0, int64(24*time.Hour)).Draw(t, "maximum interval"))
	}
	p.Jitter = rapid.SampledFrom([]float64{0, 0.1, 0.5, 1}).Draw(t, "jitter")
	if rapid.Bool().Draw(t, "non-retryable") {
		p.NonRetryableErrorTypes = []string{"Bad"}
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("generated an invalid policy: %v", err)
	}
	return p
}

// drawCommand draws a command, mostly with the right fencing token.
func drawCommand(t *rapid.T, j engine.Job, now time.Time) engine.Command {
	attempt := func(right int) int {
		if rapid.IntRange(0, 4).Draw(t, "wrong attempt") > 0 {
			return right
		}
		return right + rapid.SampledFrom([]int{-2, -1, 1, 2}).Draw(t, "attempt offset")
	}
	blankOr := func(label, s string) string {
		if rapid.IntRange(0, 5).Draw(t, label) == 0 {
			return rapid.SampledFrom([]string{"", " ", "\t\n"}).Draw(t, label+" blank")
		}
		return s
	}
	kind := rapid.SampledFrom([]string{
		"claim", "claim", "claim", "complete", "fail", "fail", "fail", "time out", "time out",
		"retry", "retry", "resolve", "cancel",
	}).Draw(t, "command")
	switch kind {
	case "claim":
		return engine.Claim{WorkerID: rapid.SampledFrom([]string{"worker-1", "worker-2"}).Draw(t, "worker"),
			Attempt: attempt(j.Attempt + 1), LeaseExpiresAt: now.Add(time.Duration(rapid.Int64Range(int64(time.Second), int64(time.Hour)).Draw(t, "lease"))).Truncate(time.Microsecond)}
	case "complete":
		return engine.Complete{Attempt: attempt(j.Attempt), Duration: time.Duration(rapid.Int64Range(0, int64(time.Minute)).Draw(t, "duration"))}
	case "fail":
		return engine.Fail{Attempt: attempt(j.Attempt), Error: rapid.SampledFrom([]string{"boom", "smtp 451", "ünïcode ✓"}).Draw(t, "error"),
			ErrorType: rapid.SampledFrom([]string{"", "Transient", "Bad"}).Draw(t, "error type"),
			Permanent: rapid.IntRange(0, 5).Draw(t, "permanent") == 0,
			Duration:  time.Duration(rapid.Int64Range(0, int64(time.Minute)).Draw(t, "duration"))}
	case "time out":
		return engine.TimeOut{Attempt: attempt(j.Attempt)}
	case "retry":
		return engine.RetryDeadLetter{Actor: blankOr("retry actor", "ops@example.com"), Note: "fixed"}
	case "resolve":
		return engine.Resolve{Actor: blankOr("resolve actor", "ops@example.com"), Notes: blankOr("notes", "not needed any more")}
	default:
		return engine.Cancel{Actor: blankOr("cancel actor", "ops@example.com"), Reason: "customer asked"}
	}
}

// model says whether cmd is accepted in state j and, when it is not, which
// sentinel the refusal matches (nil for a claim that names the wrong
// attempt, which is a projection fault rather than a typed condition).
func model(j engine.Job, cmd engine.Command) (error, bool) {
	blank := func(s string) bool { return strings.TrimSpace(s) == "" }
	holds := func(attempt int) bool { return j.Status == engine.StatusRunning && j.Attempt == attempt }
	switch c := cmd.(type) {
	case engine.Claim:
		if j.Status != engine.StatusPending && j.Status != engine.StatusRetrying {
			return engine.ErrInvalidState, false
		}
		return nil, c.Attempt == j.Attempt+1
	case engine.Complete:
		return engine.ErrLeaseLost, holds(c.Attempt)
	case engine.Fail:
		return engine.ErrLeaseLost, holds(c.Attempt)
	case engine.TimeOut:
		return engine.ErrLeaseLost, holds(c.Attempt)
	case engine.RetryDeadLetter:
		if j.Status != engine.StatusDeadLettered {
			return engine.ErrInvalidState, false
		}
		return engine.ErrInvalidInput, !blank(c.Actor)
	case engine.Resolve:
		if j.Status != engine.StatusDeadLettered {
			return engine.ErrInvalidState, false
		}
		return engine.ErrInvalidInput, !blank(c.Notes) && !blank(c.Actor)
	case engine.Cancel:
		if j.Status.Final() {
			return engine.ErrInvalidState, false
		}
		return engine.ErrInvalidInput, !blank(c.Actor)
	}
	panic("unknown command")
}

// checkOutcome checks the state an accepted command led to against the model.
func checkOutcome(t *rapid.T, before engine.Job, cmd engine.Command, h *jobHistory) {
	t.Helper()
	j := h.job
	policy := before.RetryPolicy.WithDefaults()
	// afterAttempt is the model of a failed or timed-out attempt.
	afterAttempt := func(permanent bool) {
		used := before.AttemptsInBudget()
		if permanent || used >= policy.MaximumAttempts {
			if j.Status != engine.StatusDeadLettered {
				t.Fatalf("%#v with %d of %d attempts used (permanent %v): status %s, want dead_lettered", cmd, used, policy.MaximumAttempts, permanent, j.Status)
			}
			return
		}
		wantRunAt := h.now.Add(before.RetryPolicy.Delay(used, h.random)).Truncate(time.Microsecond)
		if j.Status != engine.StatusRetrying || !j.RunAt.Equal(wantRunAt) {
			t.Fatalf("%#v with %d of %d attempts used: status %s run at %s, want retrying at %s", cmd, used, policy.MaximumAttempts, j.Status, j.RunAt, wantRunAt)
		}
	}
	want := before.Attempt
	switch c := cmd.(type) {
	case engine.Claim:
		want++
		if j.Status != engine.StatusRunning || j.WorkerID != c.WorkerID {
			t.Fatalf("after claim: %+v", j)
		}
	case engine.Complete:
		if j.Status != engine.StatusSucceeded || j.FinishedAt == nil {
			t.Fatalf("after complete: %+v", j)
		}
	case engine.Fail:
		afterAttempt(c.Permanent || c.ErrorType == "Bad" && len(before.RetryPolicy.NonRetryableErrorTypes) > 0)
		if j.LastError != c.Error {
			t.Fatalf("after fail: LastError %q, want %q", j.LastError, c.Error)
		}
	case engine.TimeOut:
		afterAttempt(false)
		if !strings.HasPrefix(j.LastError, "attempt ") || !strings.Contains(j.LastError, "timed out") {
			t.Fatalf("after time out: LastError %q", j.LastError)
		}
	case engine.RetryDeadLetter:
		if j.Status != engine.StatusPending || j.BudgetStart != before.Attempt || j.AttemptsInBudget() != 0 || !j.RunAt.Equal(h.now) {
			t.Fatalf("after retry: %+v", j)
		}
	case engine.Resolve:
		if j.Status != engine.StatusResolved || j.FinishedAt == nil {
			t.Fatalf("after resolve: %+v", j)
		}
	case engine.Cancel:
		if j.Status != engine.StatusCanceled || j.FinishedAt == nil || j.Task() != nil {
			t.Fatalf("after cancel: %+v", j)
		}
	}
	if j.Attempt != want {
		t.Fatalf("after %#v: Attempt %d, want %d", cmd, j.Attempt, want)
	}
}

// checkInvariants checks what must hold of every job history. (h.try has
// already checked seq, the hash chain and Fold against the evolved state.)
func checkInvariants(t *rapid.T, h *jobHistory) {
	t.Helper()
	j := h.job
	for i, e := range h.history {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i+1, e.Seq)
		}
	}
	if err := eventlog.CheckChain(h.history); err != nil {
		t.Fatalf("CheckChain: %v", err)
	}
	folded, err := engine.Fold(h.history)
	if err != nil {
		t.Fatalf("Fold: %v", err)
	}
	if !reflect.DeepEqual(folded.Row(), j.Row()) || !reflect.DeepEqual(folded.Task(), j.Task()) {
		t.Fatalf("Fold(history) = %+v, evolved state %+v", folded, j)
	}

	// Attempts: each starts once, in order, while no other runs; each ends
	// at most once, and only after it started.
	open, started, budgetStart, succeeded := 0, 0, 0, 0
	ended := map[int]bool{}
	// lastStatusEvent is the last event that changed the status: a failure
	// that is dead-lettered leaves that to the JobDeadLettered after it.
	var lastStatusEvent string
	for i, e := range h.history {
		terminal := func(attempt int) {
			if open != attempt {
				t.Fatalf("%s of attempt %d at seq %d, but the running attempt is %d", e.Type, attempt, e.Seq, open)
			}
			if ended[attempt] {
				t.Fatalf("attempt %d ends twice (seq %d)", attempt, e.Seq)
			}
			ended[attempt], open = true, 0
		}
		// deadLetterNext checks that a failure without a retry time is
		// followed, in the same transaction, by JobDeadLettered, and one with
		// a retry time is not, and does not retry in the past.
		deadLetterNext := func(retryAt *time.Time) {
			next := i+1 < len(h.history) && h.history[i+1].Type == engine.EventJobDeadLettered
			if retryAt == nil && (!next || !h.history[i+1].RecordedAt.Equal(e.RecordedAt)) {
				t.Fatalf("%s at seq %d has no retry_at but no JobDeadLettered follows it", e.Type, e.Seq)
			}
			if retryAt != nil && (next || retryAt.Before(e.RecordedAt)) {
				t.Fatalf("%s at seq %d retries at %s (recorded %s), dead letter next %v", e.Type, e.Seq, retryAt, e.RecordedAt, next)
			}
		}
		switch e.Type {
		case engine.EventJobEnqueued:
			if e.Seq != 1 {
				t.Fatalf("JobEnqueued at seq %d", e.Seq)
			}
		case engine.EventAttemptStarted:
			d := decode[engine.AttemptStarted](t, e)
			if open != 0 || d.Attempt != started+1 {
				t.Fatalf("attempt %d starts at seq %d while attempt %d runs, after %d started", d.Attempt, e.Seq, open, started)
			}
			started, open = d.Attempt, d.Attempt
		case engine.EventAttemptSucceeded:
			terminal(decode[engine.AttemptSucceeded](t, e).Attempt)
			if succeeded++; succeeded > 1 {
				t.Fatalf("second AttemptSucceeded at seq %d", e.Seq)
			}
		case engine.EventAttemptFailed:
			d := decode[engine.AttemptFailed](t, e)
			terminal(d.Attempt)
			deadLetterNext(d.RetryAt)
			if d.RetryAt == nil {
				continue
			}
		case engine.EventAttemptTimedOut:
			d := decode[engine.AttemptTimedOut](t, e)
			terminal(d.Attempt)
			deadLetterNext(d.RetryAt)
			if d.RetryAt == nil {
				continue
			}
		case engine.EventJobDeadLettered:
			prev := h.history[i-1].Type
			if prev != engine.EventAttemptFailed && prev != engine.EventAttemptTimedOut {
				t.Fatalf("JobDeadLettered at seq %d follows %s", e.Seq, prev)
			}
			if d := decode[engine.JobDeadLettered](t, e); d.Attempts != started-budgetStart {
				t.Fatalf("JobDeadLettered at seq %d counts %d attempts; the budget used %d", e.Seq, d.Attempts, started-budgetStart)
			}
		case engine.EventJobRetried:
			budgetStart = started
		case engine.EventJobCanceled:
			open = 0
		}
		lastStatusEvent = e.Type
	}
	if j.Attempt != started || j.BudgetStart != budgetStart {
		t.Fatalf("state has Attempt %d, BudgetStart %d; the history started %d attempts, the budget at %d", j.Attempt, j.BudgetStart, started, budgetStart)
	}
	if (j.Status == engine.StatusRunning) != (open != 0) || (open != 0 && open != j.Attempt) {
		t.Fatalf("status %s, attempt %d, but the history's running attempt is %d", j.Status, j.Attempt, open)
	}
	if (j.Status == engine.StatusSucceeded) != (succeeded == 1) {
		t.Fatalf("status %s after %d AttemptSucceeded", j.Status, succeeded)
	}
	if limit := j.RetryPolicy.WithDefaults().MaximumAttempts; j.AttemptsInBudget() > limit || j.AttemptsInBudget() < 0 {
		t.Fatalf("%d attempts in budget, maximum %d", j.AttemptsInBudget(), limit)
	}
	if j.Status == engine.StatusDeadLettered && lastStatusEvent != engine.EventJobDeadLettered {
		t.Fatalf("dead-lettered, but the last status change is %s", lastStatusEvent)
	}
	if j.Status == engine.StatusDeadLettered && h.history[len(h.history)-1].Type != engine.EventJobDeadLettered {
		t.Fatalf("dead-lettered, but the last event is %s", h.history[len(h.history)-1].Type)
	}
	if j.Status.Final() != (j.FinishedAt != nil) {
		t.Fatalf("status %s with FinishedAt %v", j.Status, j.FinishedAt)
	}
	if (j.Task() == nil) != (j.Status.Final() || j.Status == engine.StatusDeadLettered) {
		t.Fatalf("status %s with task %+v", j.Status, j.Task())
	}

	// The projection row gives back the same state.
	row, task := j.Row(), j.Task()
	back, err := engine.JobFromRow(row, task)
	if err != nil {
		t.Fatalf("JobFromRow: %v", err)
	}
	if !reflect.DeepEqual(back.Row(), row) || !reflect.DeepEqual(back.Task(), task) {
		t.Fatalf("JobFromRow(Row(), Task()) =\n%+v\nwant\n%+v", back, j)
	}
	if !reflect.DeepEqual(back.RetryPolicy.WithDefaults(), j.RetryPolicy.WithDefaults()) {
		t.Fatalf("retry policy through the row = %+v, want %+v", back.RetryPolicy, j.RetryPolicy)
	}
}
