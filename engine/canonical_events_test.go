package engine

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// The hot-path events skip canonicalization in Record because
// encoding/json already writes them canonically. This test is what makes
// that true: for awkward values of every field, the encoding must equal its
// canonical form whenever the event says it encodes canonically.
func TestHotEventsEncodeCanonically(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 28, 23, 59, 59, 123456000, time.UTC)
	zone := time.FixedZone("X", -7*3600)
	strs := []string{"", "plain", `<b>&"quote"\ ` + "\n\t\u2028\u00e9\U0001F600", "smtp: 550 <a@b.c>"}
	durations := []float64{0, 0.001, 0.042, 1.5, 999999.999, 86400000, float64(math.MaxInt32)}
	var events []canonicalEvent
	for _, s := range strs {
		for _, d := range durations {
			retry := at.In(zone)
			events = append(events,
				AttemptStarted{Attempt: 3, LeaseExpiresAt: at.In(zone), WorkerID: s},
				AttemptSucceeded{Attempt: 1, DurationMS: d},
				AttemptFailed{Attempt: 2, DurationMS: d, Error: s, ErrorType: s, Permanent: s != "", RetryAt: &retry},
				AttemptFailed{Attempt: 2, DurationMS: d, Error: s},
				AttemptTimedOut{Attempt: 7, LeaseExpiredAt: at, WorkerID: s},
				AttemptTimedOut{Attempt: 7, LeaseExpiredAt: at, RetryAt: &retry, WorkerID: s},
				JobDeadLettered{Attempts: 4, LastError: s, Reason: s},
			)
		}
	}
	for _, e := range events {
		if !e.encodesCanonically() {
			t.Fatalf("%#v should encode canonically", e)
		}
		raw, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		canon, err := eventlog.Canonicalize(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, canon) {
			t.Fatalf("%T encodes as\n%s\nbut its canonical form is\n%s\n(declare its fields in key order)", e, raw, canon)
		}
	}
	if (AttemptFailed{Error: "bad \xff byte"}).encodesCanonically() {
		t.Fatal("an error with invalid UTF-8 must take the canonicalizing path")
	}
}

// An event whose strings are not valid UTF-8 still verifies: Record falls
// back to canonicalizing it.
func TestRecordInvalidUTF8StillVerifies(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	j, events, err := Record(Job{ID: eventlog.NewID(now)}, []Decision{{EventJobEnqueued, JobEnqueued{Type: "a.b", Queue: "q", Priority: PriorityNormal, Payload: json.RawMessage(`{}`), RunAt: now}}}, now)
	if err != nil {
		t.Fatal(err)
	}
	j, more, err := Record(j, []Decision{{EventAttemptStarted, AttemptStarted{Attempt: 1, LeaseExpiresAt: now, WorkerID: "w"}}}, now)
	if err != nil {
		t.Fatal(err)
	}
	events = append(events, more...)
	_, more, err = Record(j, []Decision{{EventAttemptFailed, AttemptFailed{Attempt: 1, Error: "bad \xff byte"}}}, now)
	if err != nil {
		t.Fatal(err)
	}
	events = append(events, more...)
	// What the database hands back is the value, re-spelled; CheckChain
	// canonicalizes it again before hashing.
	for i := range events {
		var v any
		if err := json.Unmarshal(events[i].Data, &v); err != nil {
			t.Fatal(err)
		}
		events[i].Data, _ = json.MarshalIndent(v, "", "  ")
	}
	if err := eventlog.CheckChain(events); err != nil {
		t.Fatal(err)
	}
}
