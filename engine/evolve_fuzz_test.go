package engine_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// fuzzEventTypes are the event types FuzzEvolve decodes its input as; the
// fuzzer's first argument picks one.
var fuzzEventTypes = []string{
	engine.EventJobEnqueued, engine.EventAttemptStarted, engine.EventAttemptFailed,
	engine.EventAttemptTimedOut, engine.EventAttemptSucceeded, engine.EventStepCompleted,
}

// FuzzEvolve feeds arbitrary stored event data through the decoders of a
// job's history (eventlog.Event into engine events via engine.Evolve) and
// through canonical JSON (chaos scenario 12, poison input). Whatever the
// bytes, nothing panics: a history either folds or is refused with an
// error; a folded job projects to a row; canonical JSON is a fixed point
// and folds to the same job as the bytes it came from. The seed corpus in
// testdata/fuzz/FuzzEvolve runs with every `go test`; explore with
// `go test ./engine -run '^$' -fuzz FuzzEvolve -fuzztime 1m`.
func FuzzEvolve(f *testing.F) {
	f.Add(byte(0), []byte(`{"type":"email.send","queue":"default","priority":"normal","payload":{"to":"ada"},"run_at":"2026-01-01T00:00:00Z","retry_policy":{}}`))
	f.Add(byte(1), []byte(`{"attempt":1,"worker_id":"w1","lease_expires_at":"2026-01-01T00:00:30Z"}`))
	f.Add(byte(2), []byte(`{"attempt":1,"error":"boom","retry_at":"2026-01-01T00:01:00Z"}`))
	f.Fuzz(func(t *testing.T, which byte, data []byte) {
		typ := fuzzEventTypes[int(which)%len(fuzzEventTypes)]
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		id := eventlog.NewID(at)
		var history []eventlog.Event
		if typ != engine.EventJobEnqueued {
			history = append(history, eventlog.Event{ExecutionID: id, Seq: 1, Type: engine.EventJobEnqueued, RecordedAt: at,
				Data: []byte(`{"type":"t","queue":"default","priority":"normal","payload":{},"run_at":"2026-01-01T00:00:00Z","retry_policy":{}}`)})
		}
		history = append(history, eventlog.Event{ExecutionID: id, Seq: int64(len(history) + 1), Type: typ, Data: data, RecordedAt: at})
		j, err := engine.Fold(history)
		if err != nil {
			return // refused with an error, not a panic
		}
		_ = j.Row()
		canon, err := eventlog.Canonicalize(data)
		if err != nil {
			return
		}
		again, err := eventlog.Canonicalize(canon)
		if err != nil || !bytes.Equal(again, canon) {
			t.Fatalf("canonical JSON is not a fixed point: %q -> %q (%v)", canon, again, err)
		}
		history[len(history)-1].Data = canon
		k, err := engine.Fold(history)
		if err != nil {
			t.Fatalf("%s data %q folds, its canonical form %q does not: %v", typ, data, canon, err)
		}
		if j.Type != k.Type || j.Queue != k.Queue || j.Priority != k.Priority || j.Status != k.Status || j.Attempt != k.Attempt || j.IdempotencyKey != k.IdempotencyKey || j.LastError != k.LastError {
			t.Fatalf("%s data %q and its canonical form %q fold to different jobs:\n%+v\n%+v", typ, data, canon, j, k)
		}
	})
}
