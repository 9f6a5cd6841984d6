package engine_test

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
)

// emailSendPolicy is the runbook's policy for email.send: 3 retries after
// 1, 5 and 15 minutes.
var emailSendPolicy = engine.RetryPolicy{
	MaximumAttempts: 4,
	Schedule:        []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute},
}

func TestRetryPolicyDelaySchedule(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]time.Duration{
		1: time.Minute,
		2: 5 * time.Minute,
		3: 15 * time.Minute,
		4: 15 * time.Minute, // the last entry repeats
		9: 15 * time.Minute,
	} {
		if got := emailSendPolicy.Delay(n, 0.5); got != want {
			t.Errorf("email.send Delay(%d) = %s, want %s", n, got, want)
		}
	}
	// The schedule wins over the exponential fields.
	p := emailSendPolicy
	p.InitialInterval, p.BackoffCoefficient, p.MaximumInterval = time.Hour, 10, 100*time.Hour
	if got := p.Delay(2, 0.5); got != 5*time.Minute {
		t.Errorf("with exponential fields set, Delay(2) = %s, want the schedule's 5m", got)
	}
}

func TestRetryPolicyDelayExponential(t *testing.T) {
	t.Parallel()
	p := engine.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second}
	want := []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		// random 0.5 places the jitter at zero; there is no jitter anyway.
		for _, r := range []float64{0, 0.5, 0.999} {
			if got := p.Delay(i+1, r); got != w {
				t.Errorf("Delay(%d, %g) = %s, want %s", i+1, r, got, w)
			}
		}
	}
	// Coefficient 1.5 from 100ms.
	q := engine.RetryPolicy{InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 1.5, MaximumInterval: time.Minute}
	for i, w := range []time.Duration{100 * time.Millisecond, 150 * time.Millisecond, 225 * time.Millisecond} {
		if got := q.Delay(i+1, 0.5); got != w {
			t.Errorf("coefficient 1.5: Delay(%d) = %s, want %s", i+1, got, w)
		}
	}
}

func TestRetryPolicyDelayDefaults(t *testing.T) {
	t.Parallel()
	var p engine.RetryPolicy // all defaults: 1s, ×2, cap 1h
	for i, w := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if got := p.Delay(i+1, 0.5); got != w {
			t.Errorf("default Delay(%d) = %s, want %s", i+1, got, w)
		}
	}
	if got := p.Delay(30, 0.5); got != engine.DefaultMaximumInterval {
		t.Errorf("default Delay(30) = %s, want the cap %s", got, engine.DefaultMaximumInterval)
	}
	d := p.WithDefaults()
	if d.MaximumAttempts != engine.DefaultMaximumAttempts || d.InitialInterval != engine.DefaultInitialInterval ||
		d.BackoffCoefficient != engine.DefaultBackoffCoefficient || d.MaximumInterval != engine.DefaultMaximumInterval {
		t.Errorf("WithDefaults() = %+v", d)
	}
	// A schedule leaves the exponential fields alone; set fields are kept.
	s := engine.RetryPolicy{MaximumAttempts: 1, Schedule: []time.Duration{time.Minute}}.WithDefaults()
	if s.MaximumAttempts != 1 || s.InitialInterval != 0 || s.BackoffCoefficient != 0 || s.MaximumInterval != 0 {
		t.Errorf("WithDefaults() of a schedule policy = %+v", s)
	}
}

func TestRetryPolicyDelayJitter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		policy engine.RetryPolicy
		n      int
		random float64
		want   time.Duration
	}{
		{"schedule, random 0 is -20%", engine.RetryPolicy{Schedule: []time.Duration{time.Minute}, Jitter: 0.2}, 1, 0, 48 * time.Second},
		{"schedule, random 0.5 is none", engine.RetryPolicy{Schedule: []time.Duration{time.Minute}, Jitter: 0.2}, 1, 0.5, time.Minute},
		{"schedule, random 0.75 is +10%", engine.RetryPolicy{Schedule: []time.Duration{time.Minute}, Jitter: 0.2}, 1, 0.75, 66 * time.Second},
		{"exponential, random 0 is -20%", engine.RetryPolicy{InitialInterval: 10 * time.Second, Jitter: 0.2}, 2, 0, 16 * time.Second},
		{"full jitter, random 0 is zero", engine.RetryPolicy{Schedule: []time.Duration{time.Minute}, Jitter: 1}, 1, 0, 0},
	}
	for _, tt := range tests {
		if got := tt.policy.Delay(tt.n, tt.random); got != tt.want {
			t.Errorf("%s: Delay(%d, %g) = %s, want %s", tt.name, tt.n, tt.random, got, tt.want)
		}
	}
	// random just below 1 gives just below +20%.
	p := engine.RetryPolicy{Schedule: []time.Duration{time.Minute}, Jitter: 0.2}
	got := p.Delay(1, 0.9999999)
	if got <= 71*time.Second || got > 72*time.Second {
		t.Errorf("Delay(1, ~1) = %s, want just under 1m12s", got)
	}
	// Every random in [0, 1) stays within ±20%.
	for r := 0.0; r < 1; r += 0.01 {
		d := p.Delay(1, r)
		if d < 48*time.Second || d > 72*time.Second {
			t.Fatalf("Delay(1, %g) = %s, outside ±20%% of 1m", r, d)
		}
	}
}

func TestRetryPolicyValidate(t *testing.T) {
	t.Parallel()
	valid := []engine.RetryPolicy{
		{},
		emailSendPolicy,
		{MaximumAttempts: 1},
		{InitialInterval: time.Second, BackoffCoefficient: 1, MaximumInterval: time.Minute, Jitter: 1},
		{Schedule: []time.Duration{0}},
	}
	for _, p := range valid {
		if err := p.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", p, err)
		}
	}
	invalid := []struct {
		policy engine.RetryPolicy
		field  string
	}{
		{engine.RetryPolicy{MaximumAttempts: -1}, "MaximumAttempts"},
		{engine.RetryPolicy{Schedule: []time.Duration{time.Minute, -time.Second}}, "Schedule[1]"},
		{engine.RetryPolicy{InitialInterval: -time.Second}, "InitialInterval"},
		{engine.RetryPolicy{MaximumInterval: -time.Second}, "MaximumInterval"},
		{engine.RetryPolicy{BackoffCoefficient: 0.5}, "BackoffCoefficient"},
		{engine.RetryPolicy{Jitter: -0.1}, "Jitter"},
		{engine.RetryPolicy{Jitter: 1.5}, "Jitter"},
		{engine.RetryPolicy{Jitter: math.NaN()}, "Jitter"},
		{engine.RetryPolicy{BackoffCoefficient: math.NaN()}, "BackoffCoefficient"},
		{engine.RetryPolicy{BackoffCoefficient: math.Inf(1)}, "BackoffCoefficient"},
	}
	for _, tt := range invalid {
		err := tt.policy.Validate()
		if err == nil {
			t.Errorf("Validate(%+v) = nil, want an error naming %s", tt.policy, tt.field)
			continue
		}
		if !strings.Contains(err.Error(), tt.field) {
			t.Errorf("Validate(%+v) = %q, want it to name %s", tt.policy, err, tt.field)
		}
	}
	// Several faults are all reported.
	err := engine.RetryPolicy{MaximumAttempts: -2, Jitter: 2}.Validate()
	if err == nil || !strings.Contains(err.Error(), "MaximumAttempts") || !strings.Contains(err.Error(), "Jitter") {
		t.Errorf("Validate with two faults = %v, want both named", err)
	}
}

func TestRetryPolicyJSON(t *testing.T) {
	t.Parallel()
	full := engine.RetryPolicy{
		MaximumAttempts:        4,
		Schedule:               []time.Duration{time.Minute, 5 * time.Minute, 90 * time.Second},
		InitialInterval:        1500 * time.Millisecond,
		BackoffCoefficient:     1.5,
		MaximumInterval:        2 * time.Hour,
		Jitter:                 0.2,
		NonRetryableErrorTypes: []string{"InvalidAddress", "Unauthorized"},
	}
	b, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"maximum_attempts":4,"schedule":["1m0s","5m0s","1m30s"],"initial_interval":"1.5s","backoff_coefficient":1.5,` +
		`"maximum_interval":"2h0m0s","jitter":0.2,"non_retryable_error_types":["InvalidAddress","Unauthorized"]}`
	if string(b) != want {
		t.Fatalf("json.Marshal = %s\nwant           %s", b, want)
	}
	var back engine.RetryPolicy
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, full) {
		t.Fatalf("round trip = %+v, want %+v", back, full)
	}

	// Zero fields are left out and come back zero.
	b, err = json.Marshal(engine.RetryPolicy{MaximumAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"maximum_attempts":1}` {
		t.Fatalf("json.Marshal of a minimal policy = %s", b)
	}
	back = engine.RetryPolicy{Jitter: 0.5, Schedule: []time.Duration{time.Second}}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, engine.RetryPolicy{MaximumAttempts: 1}) {
		t.Fatalf("Unmarshal into a used policy = %+v, want only MaximumAttempts 1", back)
	}

	// Inside an event.
	type ev struct {
		P engine.RetryPolicy `json:"retry_policy"`
	}
	b, err = json.Marshal(ev{emailSendPolicy})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"retry_policy":{"maximum_attempts":4,"schedule":["1m0s","5m0s","15m0s"]}}` {
		t.Fatalf("policy inside an event = %s", b)
	}
}

func TestRetryPolicyJSONErrors(t *testing.T) {
	t.Parallel()
	for doc, field := range map[string]string{
		`{"initial_interval":"soon"}`:  "initial_interval",
		`{"maximum_interval":"5"}`:     "maximum_interval",
		`{"schedule":["1m","later"]}`:  "schedule[1]",
		`{"maximum_attempts":"four"}`:  "maximum_attempts",
		`{"schedule":"1m"}`:            "schedule",
		`{"jitter":"a lot"}`:           "jitter",
		`{"backoff_coefficient":true}`: "backoff_coefficient",
	} {
		var p engine.RetryPolicy
		err := json.Unmarshal([]byte(doc), &p)
		if err == nil {
			t.Errorf("Unmarshal(%s) = nil, want an error", doc)
			continue
		}
		if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(field)) {
			t.Errorf("Unmarshal(%s) = %q, want it to name %s", doc, err, field)
		}
	}
}
