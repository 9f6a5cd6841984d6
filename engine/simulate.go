package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// ParseRetryPolicyJSON reads a retry policy in the form MarshalJSON writes
// (and JobEnqueued records), refusing unknown fields so that a misspelt
// one is not silently ignored, and validates it.
func ParseRetryPolicyJSON(b []byte) (RetryPolicy, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var j retryPolicyJSON
	if err := dec.Decode(&j); err != nil {
		return RetryPolicy{}, &InputError{Field: "retry policy", Reason: fmt.Sprintf("%v; write JSON such as "+
			`{"maximum_attempts": 5, "schedule": ["1m", "5m", "15m"]} or {"maximum_attempts": 8, "initial_interval": "1s", "backoff_coefficient": 2, "maximum_interval": "1h"}`, err)}
	}
	raw, _ := json.Marshal(j)
	var p RetryPolicy
	if err := p.UnmarshalJSON(raw); err != nil {
		return p, &InputError{Field: "retry policy", Reason: err.Error()}
	}
	if err := p.Validate(); err != nil {
		return p, &InputError{Field: "retry policy", Reason: err.Error()}
	}
	return p, nil
}

// Simulated outcomes of one job.
const (
	OutcomeSucceeded    = "succeeded"
	OutcomeDeadLettered = "dead_lettered"
	// OutcomeUndetermined: the proposed policy would have made an attempt
	// the history does not record, so its outcome is unknown.
	OutcomeUndetermined = "undetermined"
)

// OutcomeCounts counts jobs by outcome.
type OutcomeCounts struct {
	Succeeded    int `json:"succeeded"`
	DeadLettered int `json:"dead_lettered"`
	Undetermined int `json:"undetermined,omitempty"`
}

// DelayStats are percentiles of completion delay: from when a job was
// first due to its success or dead-lettering. Percentiles are nearest-rank.
type DelayStats struct {
	P50 time.Duration `json:"p50"`
	P95 time.Duration `json:"p95"`
}

// SimulationReport is what replaying histories under a proposed retry
// policy gives. It compares the jobs' first automatic runs (up to their
// first success or dead-lettering) with what the proposed policy would
// have done with the same attempt outcomes.
type SimulationReport struct {
	Policy RetryPolicy `json:"policy"`
	// Jobs is how many histories were replayed: those whose first run
	// ended in success or dead-lettering.
	Jobs int `json:"jobs"`
	// WithFailures counts replayed jobs with at least one failed or
	// timed-out attempt.
	WithFailures int `json:"with_failures"`
	// Unfinished and Canceled count histories passed over: still pending,
	// running or retrying, or canceled before their first run ended.
	Unfinished int           `json:"unfinished"`
	Canceled   int           `json:"canceled"`
	Actual     OutcomeCounts `json:"actual"`
	Simulated  OutcomeCounts `json:"simulated"`
	// SucceededToDeadLettered counts jobs that succeeded but would have
	// been dead-lettered; DeadLetteredToSucceeded the reverse (possible
	// when an operator's retry of the dead letter later succeeded).
	SucceededToDeadLettered int `json:"succeeded_to_dead_lettered"`
	DeadLetteredToSucceeded int `json:"dead_lettered_to_succeeded"`
	// ActualAttempts and SimulatedAttempts sum the attempts of the jobs
	// whose simulated outcome is determined.
	ActualAttempts    int `json:"actual_attempts"`
	SimulatedAttempts int `json:"simulated_attempts"`
	// ActualDelay and SimulatedDelay are over the jobs whose simulated
	// outcome is determined; DelayChange is simulated minus actual.
	ActualDelay    DelayStats `json:"actual_delay"`
	SimulatedDelay DelayStats `json:"simulated_delay"`
	DelayChange    DelayStats `json:"delay_change"`
}

// recordedAttempt is one attempt as its history records it.
type recordedAttempt struct {
	// due is when the attempt became due: the job's run_at, the previous
	// failure's retry_at, or an operator's retry.
	due, start, end time.Time
	ended           bool
	succeeded       bool
	timedOut        bool
	permanent       bool
	errorType       string
}

// recordedRun is a job's history reduced to what the simulation needs.
type recordedRun struct {
	policy   RetryPolicy
	firstDue time.Time
	attempts []recordedAttempt
	// outcome of the first run: succeeded, dead_lettered, canceled or "".
	outcome   string
	endedAt   time.Time
	attempts1 int // attempts in the first run
}

// readRun extracts the attempts of a job's whole history and the outcome
// of its first run.
func readRun(history []eventlog.Event) (recordedRun, error) {
	var r recordedRun
	var nextDue time.Time
	for _, e := range history {
		switch e.Type {
		case EventJobEnqueued:
			var d JobEnqueued
			if err := e.Decode(&d); err != nil {
				return r, err
			}
			r.policy, r.firstDue, nextDue = d.RetryPolicy, d.RunAt, d.RunAt
		case EventAttemptStarted:
			r.attempts = append(r.attempts, recordedAttempt{due: nextDue, start: e.RecordedAt})
		case EventAttemptSucceeded, EventAttemptFailed, EventAttemptTimedOut:
			if len(r.attempts) == 0 {
				return r, fmt.Errorf("event %d of %s ends an attempt that never started", e.Seq, e.ExecutionID)
			}
			a := &r.attempts[len(r.attempts)-1]
			a.end, a.ended = e.RecordedAt, true
			switch e.Type {
			case EventAttemptSucceeded:
				a.succeeded = true
				if r.outcome == "" {
					r.outcome, r.endedAt, r.attempts1 = OutcomeSucceeded, e.RecordedAt, len(r.attempts)
				}
			case EventAttemptFailed:
				var d AttemptFailed
				if err := e.Decode(&d); err != nil {
					return r, err
				}
				a.permanent, a.errorType = d.Permanent, d.ErrorType
				if d.RetryAt != nil {
					nextDue = *d.RetryAt
				}
			case EventAttemptTimedOut:
				var d AttemptTimedOut
				if err := e.Decode(&d); err != nil {
					return r, err
				}
				a.timedOut = true
				if d.RetryAt != nil {
					nextDue = *d.RetryAt
				}
			}
		case EventJobDeadLettered:
			if r.outcome == "" {
				r.outcome, r.endedAt, r.attempts1 = OutcomeDeadLettered, e.RecordedAt, len(r.attempts)
			}
		case EventJobRetried:
			nextDue = e.RecordedAt
		case EventJobCanceled:
			if r.outcome == "" {
				r.outcome = "canceled"
			}
		}
	}
	return r, nil
}

// simulateRun replays a run's attempt outcomes under policy p and returns
// the outcome, the attempts made and the completion delay.
func simulateRun(r recordedRun, p RetryPolicy) (outcome string, attempts int, delay time.Duration) {
	p = p.WithDefaults()
	old := r.policy.WithDefaults()
	for k := 1; ; k++ {
		if k > len(r.attempts) || !r.attempts[k-1].ended {
			return OutcomeUndetermined, k - 1, 0
		}
		a := r.attempts[k-1]
		// The wait for a worker, then the attempt itself, as recorded.
		delay += max(a.start.Sub(a.due), 0) + a.end.Sub(a.start)
		if a.succeeded {
			return OutcomeSucceeded, k, delay
		}
		// A failure was permanent on its own (sdk.Permanent) when the old
		// policy would have retried its type; otherwise only the proposed
		// policy's non-retryable types make it permanent.
		explicit := a.permanent && old.retryable(a.errorType)
		permanent := !a.timedOut && (explicit || !p.retryable(a.errorType))
		if permanent || k >= p.MaximumAttempts {
			return OutcomeDeadLettered, k, delay
		}
		delay += p.Delay(k, 0.5) // 0.5 places jitter at its midpoint: none
	}
}

// percentile returns the nearest-rank percentile q (0 < q ≤ 1) of sorted.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// SimulateRetryPolicy replays job histories under a proposed retry policy.
// The model: each attempt's outcome is as recorded (a success stays a
// success, a failure a failure, whenever it would have run); attempts
// beyond the proposed MaximumAttempts do not happen; the delays between
// attempts follow the proposed policy (without jitter), while the time
// each attempt waited for a worker and ran is as recorded. Attempts an
// operator started after a dead letter count as the next attempts of the
// run, so a more generous policy can be judged by them; a job that would
// need an attempt that was never made is undetermined. It is a pure
// function.
func SimulateRetryPolicy(histories [][]eventlog.Event, p RetryPolicy) (SimulationReport, error) {
	sim := newSimulation(p)
	for _, h := range histories {
		if err := sim.add(h); err != nil {
			return sim.rep, err
		}
	}
	return sim.report(), nil
}

// simulation accumulates a SimulationReport one history at a time.
type simulation struct {
	p                 RetryPolicy
	rep               SimulationReport
	actual, simulated []time.Duration
}

func newSimulation(p RetryPolicy) *simulation {
	return &simulation{p: p, rep: SimulationReport{Policy: p}}
}

func (s *simulation) add(h []eventlog.Event) error {
	rep := &s.rep
	r, err := readRun(h)
	if err != nil {
		return err
	}
	switch r.outcome {
	case "":
		rep.Unfinished++
		return nil
	case "canceled":
		rep.Canceled++
		return nil
	}
	rep.Jobs++
	for _, a := range r.attempts[:r.attempts1] {
		if a.ended && !a.succeeded {
			rep.WithFailures++
			break
		}
	}
	if r.outcome == OutcomeSucceeded {
		rep.Actual.Succeeded++
	} else {
		rep.Actual.DeadLettered++
	}
	outcome, n, delay := simulateRun(r, s.p)
	switch outcome {
	case OutcomeUndetermined:
		rep.Simulated.Undetermined++
		return nil
	case OutcomeSucceeded:
		rep.Simulated.Succeeded++
		if r.outcome == OutcomeDeadLettered {
			rep.DeadLetteredToSucceeded++
		}
	case OutcomeDeadLettered:
		rep.Simulated.DeadLettered++
		if r.outcome == OutcomeSucceeded {
			rep.SucceededToDeadLettered++
		}
	}
	rep.ActualAttempts += r.attempts1
	rep.SimulatedAttempts += n
	s.actual = append(s.actual, r.endedAt.Sub(r.firstDue))
	s.simulated = append(s.simulated, delay)
	return nil
}

func (s *simulation) report() SimulationReport {
	rep := s.rep
	sort.Slice(s.actual, func(i, j int) bool { return s.actual[i] < s.actual[j] })
	sort.Slice(s.simulated, func(i, j int) bool { return s.simulated[i] < s.simulated[j] })
	rep.ActualDelay = DelayStats{P50: percentile(s.actual, 0.5), P95: percentile(s.actual, 0.95)}
	rep.SimulatedDelay = DelayStats{P50: percentile(s.simulated, 0.5), P95: percentile(s.simulated, 0.95)}
	rep.DelayChange = DelayStats{P50: rep.SimulatedDelay.P50 - rep.ActualDelay.P50, P95: rep.SimulatedDelay.P95 - rep.ActualDelay.P95}
	return rep
}

// SimulateRetryPolicy replays the histories of jobs of jobType created
// within the last `within` (database time; zero for all) under policy p,
// one history at a time. It only reads.
func (e *Engine) SimulateRetryPolicy(ctx context.Context, jobType string, within time.Duration, p RetryPolicy) (SimulationReport, error) {
	if err := p.Validate(); err != nil {
		return SimulationReport{}, &InputError{Field: "retry policy", Reason: err.Error()}
	}
	sim := newSimulation(p)
	err := e.store.ScanHistoriesOf(ctx, eventlog.HistoryScanParams{Kind: "job", Type: jobType, Within: within}, sim.add)
	if err != nil {
		return SimulationReport{}, fmt.Errorf("simulate retry policy for %s: %w", jobType, err)
	}
	return sim.report(), nil
}
