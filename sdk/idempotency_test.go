package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

// ledgerSQL creates the table in which the tests' side effects are
// counted: one row per effect that really happened.
const ledgerSQL = `CREATE TABLE ledger (key text NOT NULL, job_id text NOT NULL, attempt int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`

// charge is the side effect under test: it writes one ledger row and
// returns a charge ID, as a payment provider would.
func charge(ctx context.Context, b *bundle, key string) (string, error) {
	info, _ := sdk.JobFromContext(ctx)
	if _, err := b.client.Pool().Exec(ctx, `INSERT INTO ledger (key, job_id, attempt) VALUES ($1, $2, $3)`, key, info.ID.String(), info.Attempt); err != nil {
		return "", err
	}
	return fmt.Sprintf("ch_%s_%d", info.ID, info.Attempt), nil
}

func stepsOf(t *testing.T, b *bundle, id eventlog.ID) []engine.StepCompleted {
	t.Helper()
	var out []engine.StepCompleted
	for _, e := range historyOf(t, b, id) {
		if e.Type == engine.EventStepCompleted {
			out = append(out, decodeEvent[engine.StepCompleted](t, e, engine.EventStepCompleted))
		}
	}
	return out
}

// TestIdempotencyAcrossRetries: a job whose handler fails after its
// side effect is retried three times; the effect happens once, and every
// attempt gets the result of the first from the job's history.
func TestIdempotencyAcrossRetries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	execSQL(t, b, ledgerSQL)
	if err := b.client.RegisterJobType("payment.capture", sdk.JobType{RetryPolicy: sdk.RetryPolicy{MaximumAttempts: 4, Schedule: []time.Duration{0}}}); err != nil {
		t.Fatal(err)
	}
	w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[int]string{} // attempt → charge ID the step returned
	var ran atomic.Int32
	const key = "payment:order-7:capture"
	if err := sdk.RegisterJobHandler(w, "payment.capture", func(ctx context.Context, _ struct{}) error {
		id, err := sdk.WithIdempotencyResult(ctx, key, 24*time.Hour, func(ctx context.Context) (string, error) {
			ran.Add(1)
			return charge(ctx, b, key)
		})
		if err != nil {
			return err
		}
		info, _ := sdk.JobFromContext(ctx)
		mu.Lock()
		seen[info.Attempt] = id
		mu.Unlock()
		if info.Attempt <= 3 {
			return fmt.Errorf("receipt service unavailable (attempt %d)", info.Attempt)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	res, err := b.client.Enqueue(ctx, "payment.capture", struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fourth attempt to succeed", 10*time.Second, func() bool { return jobOf(t, b, res.ID).Status == sdk.StatusSucceeded })

	if n := countRows(t, b, `SELECT count(*) FROM ledger`); n != 1 {
		t.Fatalf("the side effect happened %d times, want 1", n)
	}
	if n := ran.Load(); n != 1 {
		t.Fatalf("fn ran %d times, want 1", n)
	}
	want := fmt.Sprintf("ch_%s_1", res.ID)
	mu.Lock()
	for attempt := 1; attempt <= 4; attempt++ {
		if seen[attempt] != want {
			t.Errorf("attempt %d got charge %q, want %q (the first attempt's)", attempt, seen[attempt], want)
		}
	}
	mu.Unlock()
	wantEventTypes(t, historyOf(t, b, res.ID), "JobEnqueued",
		"AttemptStarted", "StepCompleted", "AttemptFailed",
		"AttemptStarted", "AttemptFailed", "AttemptStarted", "AttemptFailed",
		"AttemptStarted", "AttemptSucceeded")
	steps := stepsOf(t, b, res.ID)
	if len(steps) != 1 || steps[0].Key != key || steps[0].Attempt != 1 || string(steps[0].Result) != `"`+want+`"` || steps[0].OwnerID != "" {
		t.Fatalf("StepCompleted events = %+v", steps)
	}
	// The keys table holds the result for other jobs.
	if n := countRows(t, b, `SELECT count(*) FROM idempotency_keys WHERE key = $1 AND state = 'completed' AND owner_id = $2 AND result = to_jsonb($3::text)
		AND expires_at > now() + interval '23 hours'`, key, [16]byte(res.ID), want); n != 1 {
		t.Fatalf("keys table lacks the completed key")
	}
	verifyOK(t, b)
}

// TestIdempotencyConcurrentJobs: twenty jobs on two workers run the step
// with one key at the same time. With the default, one runs it and the
// others wait for its result; with FailIfInProgress the others fail with
// a typed error, are retried, and then find the result. Either way the
// effect happens once and every job sees the same result.
func TestIdempotencyConcurrentJobs(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"wait", "fail fast"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			execSQL(t, b, ledgerSQL)
			if err := b.client.RegisterJobType("webhook.fanout", sdk.JobType{RetryPolicy: sdk.RetryPolicy{MaximumAttempts: 100, Schedule: []time.Duration{100 * time.Millisecond}}}); err != nil {
				t.Fatal(err)
			}
			const jobs = 20
			const key = "webhook:wh_1:delivery_42"
			var ran atomic.Int32
			started := make(chan struct{})
			release := make(chan struct{})
			var opts []sdk.IdempotencyOption
			if mode == "fail fast" {
				opts = append(opts, sdk.FailIfInProgress())
			}
			var inProgressJobs sync.Map // job ID → struct{}: jobs that got the typed error
			countInProgress := func() int {
				n := 0
				inProgressJobs.Range(func(any, any) bool { n++; return true })
				return n
			}
			var mu sync.Mutex
			results := map[eventlog.ID]string{}
			handler := func(ctx context.Context, _ struct{}) error {
				id, err := sdk.WithIdempotencyResult(ctx, key, time.Hour, func(ctx context.Context) (string, error) {
					if ran.Add(1) == 1 {
						close(started)
						<-release // hold the key while the others arrive
					}
					return charge(ctx, b, key)
				}, opts...)
				var ip *sdk.InProgressError
				if errors.As(err, &ip) {
					if !errors.Is(err, sdk.ErrStepInProgress) || ip.Key != key || ip.OwnerAttempt != 1 {
						t.Errorf("in-progress error %+v", ip)
					}
					info, _ := sdk.JobFromContext(ctx)
					inProgressJobs.Store(info.ID, struct{}{})
				}
				if err != nil {
					return err
				}
				info, _ := sdk.JobFromContext(ctx)
				mu.Lock()
				results[info.ID] = id
				mu.Unlock()
				return nil
			}
			for i := range 2 {
				w, err := b.client.NewWorker(sdk.WorkerConfig{ID: fmt.Sprintf("w%d", i), Queues: map[string]int{"default": jobs / 2}, PollInterval: 20 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				if err := sdk.RegisterJobHandler(w, "webhook.fanout", handler); err != nil {
					t.Fatal(err)
				}
				startWorker(t, w)
			}
			reqs := make([]sdk.JobRequest, jobs)
			for i := range reqs {
				reqs[i] = sdk.JobRequest{Type: "webhook.fanout", Payload: struct{}{}}
			}
			enq, err := b.client.EnqueueMany(ctx, reqs)
			if err != nil {
				t.Fatal(err)
			}
			recv(t, "the first step to start", started, 10*time.Second)
			// Every other job reaches the step while the first holds the key.
			if mode == "wait" {
				waitFor(t, "all jobs to be running", 10*time.Second, func() bool {
					return countRows(t, b, `SELECT count(*) FROM executions WHERE status = 'running'`) == jobs
				})
			} else {
				waitFor(t, "the others to fail with the key in progress", 10*time.Second, func() bool { return countInProgress() == jobs-1 })
			}
			time.Sleep(50 * time.Millisecond) // let the waiters poll while the key is held (not a synchronization)
			close(release)
			waitFor(t, "every job to succeed", 20*time.Second, func() bool {
				return countRows(t, b, `SELECT count(*) FROM executions WHERE status = 'succeeded'`) == jobs
			})
			if n := countRows(t, b, `SELECT count(*) FROM ledger`); n != 1 {
				t.Fatalf("the side effect happened %d times, want 1", n)
			}
			if n := ran.Load(); n != 1 {
				t.Fatalf("fn ran %d times, want 1", n)
			}
			var winner eventlog.ID
			for _, e := range enq {
				for _, s := range stepsOf(t, b, e.ID) {
					if s.OwnerID == "" {
						winner = e.ID
					}
				}
			}
			want := fmt.Sprintf("ch_%s_1", winner)
			mu.Lock()
			defer mu.Unlock()
			for _, e := range enq {
				if results[e.ID] != want {
					t.Errorf("job %s got %q, want %q", e.ID, results[e.ID], want)
				}
				steps := stepsOf(t, b, e.ID)
				if len(steps) != 1 || string(steps[0].Result) != `"`+want+`"` {
					t.Fatalf("job %s recorded steps %+v", e.ID, steps)
				}
				if wantOwner := winner.String(); e.ID != winner && steps[0].OwnerID != wantOwner {
					t.Errorf("job %s step owner %q, want %q", e.ID, steps[0].OwnerID, wantOwner)
				}
			}
			failed := countRows(t, b, `SELECT count(*) FROM events WHERE type = 'AttemptFailed' AND data->>'error_type' = 'IdempotencyInProgress'`)
			if mode == "wait" && failed != 0 {
				t.Fatalf("%d attempts failed in wait mode", failed)
			}
			if mode == "fail fast" && failed < jobs-1 {
				t.Fatalf("%d attempts failed with IdempotencyInProgress, want at least %d", failed, jobs-1)
			}
			verifyOK(t, b)
		})
	}
}

// TestIdempotencyFailureReleasesKey: fn failing gives the key back, so the
// retry runs fn again.
func TestIdempotencyFailureReleasesKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	execSQL(t, b, ledgerSQL)
	if err := b.client.RegisterJobType("email.digest", sdk.JobType{RetryPolicy: sdk.RetryPolicy{MaximumAttempts: 3, Schedule: []time.Duration{0}}}); err != nil {
		t.Fatal(err)
	}
	w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const key = "email:digest:user-9:2024-w07"
	var calls atomic.Int32
	afterFailure := make(chan int64, 1)
	if err := sdk.RegisterJobHandler(w, "email.digest", func(ctx context.Context, _ struct{}) error {
		err := sdk.WithIdempotency(ctx, key, time.Hour, func(ctx context.Context) error {
			if calls.Add(1) == 1 {
				return errors.New("smtp: 421 service not available")
			}
			_, err := charge(ctx, b, key)
			return err
		})
		if err != nil {
			afterFailure <- countRows(t, b, `SELECT count(*) FROM idempotency_keys`)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	res, err := b.client.Enqueue(ctx, "email.digest", struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if n := recv(t, "the first attempt to fail", afterFailure, 10*time.Second); n != 0 {
		t.Fatalf("after fn failed the keys table holds %d rows, want the key released", n)
	}
	waitFor(t, "the retry to succeed", 10*time.Second, func() bool { return jobOf(t, b, res.ID).Status == sdk.StatusSucceeded })
	if n := calls.Load(); n != 2 {
		t.Fatalf("fn ran %d times, want 2 (failed, then succeeded)", n)
	}
	if n := countRows(t, b, `SELECT count(*) FROM ledger`); n != 1 {
		t.Fatalf("ledger has %d rows, want 1", n)
	}
	wantEventTypes(t, historyOf(t, b, res.ID), "JobEnqueued", "AttemptStarted", "AttemptFailed", "AttemptStarted", "StepCompleted", "AttemptSucceeded")
	verifyOK(t, b)
}

// TestIdempotencyTTL: once the key expires, the step runs again; within
// it, it does not.
func TestIdempotencyTTL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	execSQL(t, b, ledgerSQL)
	w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const key = "email:welcome:user-1:signup"
	type payload struct{ TTL time.Duration }
	if err := sdk.RegisterJobHandler(w, "email.welcome", func(ctx context.Context, p payload) error {
		return sdk.WithIdempotency(ctx, key, p.TTL, func(ctx context.Context) error {
			_, err := charge(ctx, b, key)
			return err
		})
	}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	run := func(ttl time.Duration) eventlog.ID {
		res, err := b.client.Enqueue(ctx, "email.welcome", payload{TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the job to succeed", 10*time.Second, func() bool { return jobOf(t, b, res.ID).Status == sdk.StatusSucceeded })
		return res.ID
	}
	run(time.Hour)
	second := run(time.Hour)
	if n := countRows(t, b, `SELECT count(*) FROM ledger`); n != 1 {
		t.Fatalf("within the TTL the effect happened %d times, want 1", n)
	}
	if s := stepsOf(t, b, second); len(s) != 1 || s[0].OwnerID == "" {
		t.Fatalf("second job's steps %+v, want one naming the first job as owner", s)
	}
	execSQL(t, b, `UPDATE idempotency_keys SET expires_at = now() - interval '1 second'`) // as if the hour had passed
	third := run(time.Hour)
	if n := countRows(t, b, `SELECT count(*) FROM ledger`); n != 2 {
		t.Fatalf("after the TTL the effect happened %d times in all, want 2", n)
	}
	if s := stepsOf(t, b, third); len(s) != 1 || s[0].OwnerID != "" {
		t.Fatalf("third job's steps %+v, want one it ran itself", s)
	}
	verifyOK(t, b)
}

// TestIdempotencyBadInput: a bad key or TTL, a nil function, or a context
// that is not a handler's is refused with a clear error, and nothing is
// written.
func TestIdempotencyBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	noop := func(context.Context) error { return nil }
	err := sdk.WithIdempotency(ctx, "payment:1:charge", time.Hour, noop)
	wantErrIs(t, err, sdk.ErrNotInJob)
	if !strings.Contains(err.Error(), "job handler") {
		t.Fatalf("error %q does not say where to call it", err)
	}

	w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan []error, 1)
	if err := w.Handle("idem.bad", func(ctx context.Context, _ json.RawMessage) error {
		var out []error
		out = append(out, sdk.WithIdempotency(ctx, "", time.Hour, noop))
		out = append(out, sdk.WithIdempotency(ctx, "  ", time.Hour, noop))
		out = append(out, sdk.WithIdempotency(ctx, strings.Repeat("k", 501), time.Hour, noop))
		out = append(out, sdk.WithIdempotency(ctx, "payment:1:charge", 0, noop))
		out = append(out, sdk.WithIdempotency(ctx, "payment:1:charge", -time.Second, noop))
		out = append(out, sdk.WithIdempotency(ctx, "payment:1:charge", time.Hour, nil))
		errs <- out
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	res, err := b.client.Enqueue(ctx, "idem.bad", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range recv(t, "the handler", errs, 10*time.Second) {
		if !errors.Is(err, sdk.ErrInvalidInput) {
			t.Errorf("case %d: error %v, want ErrInvalidInput", i, err)
		}
	}
	waitFor(t, "the job to succeed", 10*time.Second, func() bool { return jobOf(t, b, res.ID).Status == sdk.StatusSucceeded })
	if n := countRows(t, b, `SELECT count(*) FROM idempotency_keys`); n != 0 {
		t.Fatalf("refused calls wrote %d keys", n)
	}
	wantEventTypes(t, historyOf(t, b, res.ID), "JobEnqueued", "AttemptStarted", "AttemptSucceeded")
}

// TestIdempotencyWaiterTakesOver: a job waiting for another's step takes
// the key over when that step fails, and runs fn itself, rather than
// returning a result that never existed.
func TestIdempotencyWaiterTakesOver(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	execSQL(t, b, ledgerSQL)
	if err := b.client.RegisterJobType("webhook.once", sdk.JobType{RetryPolicy: sdk.RetryPolicy{MaximumAttempts: 2, Schedule: []time.Duration{time.Hour}}}); err != nil {
		t.Fatal(err)
	}
	w, err := b.client.NewWorker(sdk.WorkerConfig{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const key = "webhook:wh_3:delivery_7"
	var calls atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	if err := sdk.RegisterJobHandler(w, "webhook.once", func(ctx context.Context, _ struct{}) error {
		return sdk.WithIdempotency(ctx, key, time.Hour, func(ctx context.Context) error {
			if calls.Add(1) == 1 {
				close(started)
				<-release
				return errors.New("HTTP 503 from the receiver")
			}
			_, err := charge(ctx, b, key)
			return err
		})
	}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	first, err := b.client.Enqueue(ctx, "webhook.once", struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	recv(t, "the first job's step to start", started, 10*time.Second)
	second, err := b.client.Enqueue(ctx, "webhook.once", struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second job to be waiting on the key", 10*time.Second, func() bool { return jobOf(t, b, second.ID).Status == sdk.StatusRunning })
	close(release)
	waitFor(t, "the second job to succeed", 10*time.Second, func() bool { return jobOf(t, b, second.ID).Status == sdk.StatusSucceeded })
	if j := jobOf(t, b, first.ID); j.Status != sdk.StatusRetrying {
		t.Fatalf("first job is %s, want retrying", j.Status)
	}
	if n := countRows(t, b, `SELECT count(*) FROM ledger WHERE job_id = $1`, second.ID.String()); n != 1 || calls.Load() != 2 {
		t.Fatalf("the second job's effect happened %d times, fn ran %d times; want 1 and 2", n, calls.Load())
	}
	if s := stepsOf(t, b, second.ID); len(s) != 1 || s[0].OwnerID != "" {
		t.Fatalf("second job's steps %+v, want one it ran itself", s)
	}
	if s := stepsOf(t, b, first.ID); len(s) != 0 {
		t.Fatalf("the failed job recorded steps %+v", s)
	}
}
