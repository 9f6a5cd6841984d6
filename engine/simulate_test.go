package engine_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// t0 is when every fixture job was enqueued and first due.
var t0 = time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC)

// fixture builds a history by hand: each event at t0 plus whole seconds.
type fixture struct {
	t      *testing.T
	id     eventlog.ID
	events []eventlog.Event
}

var emailPolicy = engine.RetryPolicy{MaximumAttempts: 4, Schedule: []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute}}

func newFixture(t *testing.T, policy engine.RetryPolicy) *fixture {
	f := &fixture{t: t, id: eventlog.NewID(t0)}
	return f.add(0, engine.EventJobEnqueued, engine.JobEnqueued{Type: "email.send", Queue: "default", Priority: engine.PriorityNormal,
		Payload: json.RawMessage(`{}`), RunAt: t0, RetryPolicy: policy})
}

func secs(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func (f *fixture) add(at int, typ string, data any) *fixture {
	raw, err := json.Marshal(data)
	if err != nil {
		f.t.Fatal(err)
	}
	f.events = append(f.events, eventlog.Event{ExecutionID: f.id, Seq: int64(len(f.events) + 1), Type: typ, Data: raw, RecordedAt: secs(at)})
	return f
}

func (f *fixture) start(at int) *fixture {
	return f.add(at, engine.EventAttemptStarted, engine.AttemptStarted{WorkerID: "w"})
}

func (f *fixture) succeed(at int) *fixture {
	return f.add(at, engine.EventAttemptSucceeded, engine.AttemptSucceeded{})
}

// fail records a failure whose retry is due at retryAt (seconds), or none
// when retryAt is negative.
func (f *fixture) fail(at, retryAt int, errorType string, permanent bool) *fixture {
	d := engine.AttemptFailed{Error: "boom", ErrorType: errorType, Permanent: permanent}
	if retryAt >= 0 {
		r := secs(retryAt)
		d.RetryAt = &r
	}
	return f.add(at, engine.EventAttemptFailed, d)
}

func (f *fixture) timeOut(at, retryAt int) *fixture {
	r := secs(retryAt)
	return f.add(at, engine.EventAttemptTimedOut, engine.AttemptTimedOut{WorkerID: "w", RetryAt: &r})
}

func (f *fixture) deadLetter(at int) *fixture {
	return f.add(at, engine.EventJobDeadLettered, engine.JobDeadLettered{Reason: "all 4 attempts failed"})
}

// simulationFixture is seven email.send jobs (policy: 4 attempts, retries
// after 1m, 5m, 15m), with their outcomes and completion delays:
//
//	A  fails (SMTPError), succeeds on attempt 2            succeeded, 2 attempts, 66s
//	B  fails 4 times (one a time out)                      dead-lettered, 4 attempts, 1266s
//	C  succeeds at once                                    succeeded, 1 attempt, 2s
//	D  fails permanently (sdk.Permanent)                   dead-lettered, 1 attempt, 2s
//	E  fails 4 times; an operator's retry then succeeds    dead-lettered, 4 attempts, 1268s
//	F  failed once, retry pending                          unfinished
//	G  canceled while pending                              canceled
func simulationFixture(t *testing.T) [][]eventlog.Event {
	a := newFixture(t, emailPolicy).start(2).fail(3, 63, "SMTPError", false).start(65).succeed(66)
	b := newFixture(t, emailPolicy).start(1).fail(2, 62, "TimeoutError", false).start(62).fail(63, 363, "TimeoutError", false).
		start(364).timeOut(365, 1265).start(1265).fail(1266, -1, "TimeoutError", false).deadLetter(1266)
	c := newFixture(t, emailPolicy).start(1).succeed(2)
	d := newFixture(t, emailPolicy).start(1).fail(2, -1, "InvalidAddress", true).deadLetter(2)
	e := newFixture(t, emailPolicy).start(1).fail(2, 62, "TimeoutError", false).start(63).fail(64, 364, "TimeoutError", false).
		start(365).fail(366, 1266, "TimeoutError", false).start(1267).fail(1268, -1, "TimeoutError", false).deadLetter(1268).
		add(2000, engine.EventJobRetried, engine.JobRetried{Actor: "ada"}).start(2001).succeed(2002)
	f := newFixture(t, emailPolicy).start(1).fail(2, 100_000, "TimeoutError", false)
	g := newFixture(t, emailPolicy).add(5, engine.EventJobCanceled, engine.JobCanceled{Actor: "ada"})
	return [][]eventlog.Event{a.events, b.events, c.events, d.events, e.events, f.events, g.events}
}

func TestSimulateRetryPolicyOnFixture(t *testing.T) {
	t.Parallel()
	histories := simulationFixture(t)
	s := time.Second
	base := engine.SimulationReport{Jobs: 5, WithFailures: 4, Unfinished: 1, Canceled: 1,
		Actual: engine.OutcomeCounts{Succeeded: 2, DeadLettered: 3}}
	for _, tc := range []struct {
		name   string
		policy engine.RetryPolicy
		want   func(*engine.SimulationReport)
	}{
		{
			// The policy the jobs ran under replays to what happened.
			name: "same policy", policy: emailPolicy,
			want: func(r *engine.SimulationReport) {
				r.Simulated = engine.OutcomeCounts{Succeeded: 2, DeadLettered: 3}
				r.ActualAttempts, r.SimulatedAttempts = 12, 12
				r.ActualDelay = engine.DelayStats{P50: 66 * s, P95: 1268 * s}
				r.SimulatedDelay = r.ActualDelay
			},
		},
		{
			// 2 attempts, retry after 30s. A: 2s wait + 1s run + 30s + 2s wait
			// + 1s run = 36s. B: 1+1+30+0+1 = 33s, dead-lettered at attempt 2.
			// E: 1+1+30+1+1 = 34s, dead-lettered. Delays [2 2 33 34 36] against
			// [2 2 66 1266 1268]: p50 33s (was 66s), p95 36s (was 1268s).
			name: "stricter", policy: engine.RetryPolicy{MaximumAttempts: 2, Schedule: []time.Duration{30 * time.Second}},
			want: func(r *engine.SimulationReport) {
				r.Simulated = engine.OutcomeCounts{Succeeded: 2, DeadLettered: 3}
				r.ActualAttempts, r.SimulatedAttempts = 12, 8
				r.ActualDelay = engine.DelayStats{P50: 66 * s, P95: 1268 * s}
				r.SimulatedDelay = engine.DelayStats{P50: 33 * s, P95: 36 * s}
				r.DelayChange = engine.DelayStats{P50: -33 * s, P95: -1232 * s}
			},
		},
		{
			// 6 attempts, retry after 10s. B would need a fifth attempt that
			// never ran: undetermined. E's fifth attempt is the operator's
			// retry, which succeeded: 2+10+2+10+2+10+2+10+2 = 50s. A: 3+10+3 = 16s.
			// Over A, C, D, E: [2 2 66 1268] against [2 2 16 50].
			name: "more generous", policy: engine.RetryPolicy{MaximumAttempts: 6, Schedule: []time.Duration{10 * time.Second}},
			want: func(r *engine.SimulationReport) {
				r.Simulated = engine.OutcomeCounts{Succeeded: 3, DeadLettered: 1, Undetermined: 1}
				r.DeadLetteredToSucceeded = 1
				r.ActualAttempts, r.SimulatedAttempts = 8, 9
				r.ActualDelay = engine.DelayStats{P50: 2 * s, P95: 1268 * s}
				r.SimulatedDelay = engine.DelayStats{P50: 2 * s, P95: 50 * s}
				r.DelayChange = engine.DelayStats{P50: 0, P95: -1218 * s}
			},
		},
		{
			// SMTPError becomes non-retryable: A is dead-lettered after its
			// first attempt (2+1 = 3s); the rest replay as they ran.
			name: "non-retryable type", policy: engine.RetryPolicy{MaximumAttempts: 4, Schedule: emailPolicy.Schedule, NonRetryableErrorTypes: []string{"SMTPError"}},
			want: func(r *engine.SimulationReport) {
				r.Simulated = engine.OutcomeCounts{Succeeded: 1, DeadLettered: 4}
				r.SucceededToDeadLettered = 1
				r.ActualAttempts, r.SimulatedAttempts = 12, 11
				r.ActualDelay = engine.DelayStats{P50: 66 * s, P95: 1268 * s}
				r.SimulatedDelay = engine.DelayStats{P50: 3 * s, P95: 1268 * s}
				r.DelayChange = engine.DelayStats{P50: -63 * s, P95: 0}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := base
			want.Policy = tc.policy
			tc.want(&want)
			got, err := engine.SimulateRetryPolicy(histories, tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("report\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestSimulateRetryPolicyPermanence(t *testing.T) {
	t.Parallel()
	// Under a policy that made InvalidAddress non-retryable, the failure was
	// permanent by type, not by the handler's say: a policy that retries the
	// type would need a second attempt, which never ran.
	byType := engine.RetryPolicy{MaximumAttempts: 4, NonRetryableErrorTypes: []string{"InvalidAddress"}}
	h := newFixture(t, byType).start(1).fail(2, -1, "InvalidAddress", true).deadLetter(2).events
	got, err := engine.SimulateRetryPolicy([][]eventlog.Event{h}, engine.RetryPolicy{MaximumAttempts: 4})
	if err != nil {
		t.Fatal(err)
	}
	if got.Simulated != (engine.OutcomeCounts{Undetermined: 1}) {
		t.Fatalf("a failure permanent by type under a policy that retries it: %+v", got.Simulated)
	}
	// A time out is never permanent, whatever the types.
	h = newFixture(t, emailPolicy).start(1).timeOut(31, 91).start(91).succeed(92).events
	got, err = engine.SimulateRetryPolicy([][]eventlog.Event{h}, engine.RetryPolicy{MaximumAttempts: 2, Schedule: []time.Duration{time.Second},
		NonRetryableErrorTypes: []string{""}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Simulated != (engine.OutcomeCounts{Succeeded: 1}) || got.SimulatedDelay.P50 != 33*time.Second {
		t.Fatalf("time out then success: %+v, delay %s (want 1+30+1+0+1 = 33s)", got.Simulated, got.SimulatedDelay.P50)
	}
}

func TestParseRetryPolicyJSON(t *testing.T) {
	t.Parallel()
	p, err := engine.ParseRetryPolicyJSON([]byte(`{"maximum_attempts": 5, "schedule": ["30s", "2m"], "non_retryable_error_types": ["X"]}`))
	if err != nil || p.MaximumAttempts != 5 || !reflect.DeepEqual(p.Schedule, []time.Duration{30 * time.Second, 2 * time.Minute}) || p.NonRetryableErrorTypes[0] != "X" {
		t.Fatalf("parse: %+v, %v", p, err)
	}
	round, _ := json.Marshal(p)
	if q, err := engine.ParseRetryPolicyJSON(round); err != nil || !reflect.DeepEqual(p, q) {
		t.Fatalf("round trip of %s: %+v, %v", round, q, err)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"max_attempts": 5}`, `unknown field "max_attempts"`},
		{`{"maximum_attempts": 5, "schedule": ["soon"]}`, `schedule[0]`},
		{`{"maximum_attempts": -1}`, "MaximumAttempts is -1"},
		{`[1]`, "cannot unmarshal array"},
		{`{"maximum_attempts": 3, "jitter": 2}`, "Jitter is 2"},
	} {
		_, err := engine.ParseRetryPolicyJSON([]byte(tc.in))
		if !errors.Is(err, engine.ErrInvalidInput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRetryPolicyJSON(%s): %v, want an input error containing %q", tc.in, err, tc.want)
		}
	}
}
