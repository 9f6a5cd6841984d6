package engine_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/chronicle-engine/chronicle/engine"
)

// TestDecideCompleteStep: a step is recorded only by the attempt holding
// the lease; the event changes nothing but the end of the history, and
// CompletedSteps reads it back.
func TestDecideCompleteStep(t *testing.T) {
	t.Parallel()
	h := newJob(t, emailSendPolicy)

	// Not running: no attempt holds a lease.
	if _, err := h.try(engine.CompleteStep{Attempt: 0, Key: "email:welcome:42:1"}); !errors.Is(err, engine.ErrLeaseLost) {
		t.Fatalf("step of a pending job: %v, want ErrLeaseLost", err)
	}
	h.claim()
	if _, err := h.try(engine.CompleteStep{Attempt: 2, Key: "email:welcome:42:1"}); !errors.Is(err, engine.ErrLeaseLost) {
		t.Fatalf("step of a later attempt: %v, want ErrLeaseLost", err)
	}
	for _, key := range []string{"", " \t", strings.Repeat("k", engine.MaxStepKeyLength+1)} {
		if _, err := h.try(engine.CompleteStep{Attempt: 1, Key: key}); !errors.Is(err, engine.ErrInvalidInput) {
			t.Fatalf("step with key %q: %v, want ErrInvalidInput", key, err)
		}
	}

	before := h.job
	events := h.do(engine.CompleteStep{Attempt: 1, Key: "email:welcome:42:1", Result: json.RawMessage(`{"message_id":"m-1"}`)})
	if got := types(events); !reflect.DeepEqual(got, []string{engine.EventStepCompleted}) {
		t.Fatalf("step events = %v", got)
	}
	after := h.job
	if after.Status != engine.StatusRunning || after.Attempt != before.Attempt || after.WorkerID != before.WorkerID ||
		!after.LeaseExpiresAt.Equal(*before.LeaseExpiresAt) || !reflect.DeepEqual(after.Task(), before.Task()) {
		t.Fatalf("StepCompleted changed the job: before %+v, after %+v", before, after)
	}
	h.do(engine.CompleteStep{Attempt: 1, Key: "payment:7:charge", OwnerID: "01JDQ3Z6V5N8G1Y1Y6Q9W4T2XH"})
	h.fail("smtp 451")
	h.claim()
	// A second record of a key: the first is what CompletedSteps keeps.
	h.do(engine.CompleteStep{Attempt: 2, Key: "email:welcome:42:1", Result: json.RawMessage(`"other"`)})
	h.complete()

	steps, err := engine.CompletedSteps(h.history)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 2 {
		t.Fatalf("CompletedSteps = %+v, want 2 keys", steps)
	}
	if s := steps["email:welcome:42:1"]; s.Attempt != 1 || string(s.Result) != `{"message_id":"m-1"}` || s.OwnerID != "" {
		t.Fatalf("email step = %+v", s)
	}
	if s := steps["payment:7:charge"]; string(s.Result) != "null" || s.OwnerID != "01JDQ3Z6V5N8G1Y1Y6Q9W4T2XH" {
		t.Fatalf("payment step = %+v", s)
	}
	if h.job.Status != engine.StatusSucceeded {
		t.Fatalf("job is %s, want succeeded", h.job.Status)
	}
}
