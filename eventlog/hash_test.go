package eventlog_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

var t0 = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)

// sealedHistory returns a sealed history of n events with canonical data.
func sealedHistory(t *testing.T, n int) []eventlog.Event {
	t.Helper()
	id := eventlog.NewID(t0)
	types := []string{"JobEnqueued", "AttemptStarted", "AttemptFailed", "AttemptStarted", "AttemptSucceeded"}
	events := make([]eventlog.Event, n)
	for i := range events {
		data, err := eventlog.Canonicalize([]byte(`{"step":` + string(rune('0'+i%10)) + `,"note":"event","attempt":1.0}`))
		if err != nil {
			t.Fatal(err)
		}
		events[i] = eventlog.Event{
			ExecutionID: id,
			Seq:         int64(i + 1),
			Type:        types[i%len(types)],
			Data:        data,
			RecordedAt:  t0.Add(time.Duration(i) * time.Second).Add(123 * time.Microsecond),
		}
	}
	last := eventlog.Seal(eventlog.GenesisHash, events)
	if !bytes.Equal(last, events[n-1].Hash) {
		t.Fatalf("Seal returned %x, want the last event's hash %x", last, events[n-1].Hash)
	}
	return events
}

func clone(history []eventlog.Event) []eventlog.Event {
	out := make([]eventlog.Event, len(history))
	for i, e := range history {
		e.Data = append(json.RawMessage(nil), e.Data...)
		e.PrevHash = append([]byte(nil), e.PrevHash...)
		e.Hash = append([]byte(nil), e.Hash...)
		out[i] = e
	}
	return out
}

func TestSealThenCheckChain(t *testing.T) {
	t.Parallel()
	h := sealedHistory(t, 5)
	if !bytes.Equal(h[0].PrevHash, eventlog.GenesisHash) {
		t.Fatalf("first PrevHash = %x, want the genesis hash", h[0].PrevHash)
	}
	if len(eventlog.GenesisHash) != eventlog.HashSize || !bytes.Equal(eventlog.GenesisHash, make([]byte, eventlog.HashSize)) {
		t.Fatalf("GenesisHash = %x, want %d zero bytes", eventlog.GenesisHash, eventlog.HashSize)
	}
	seen := map[string]bool{}
	for i, e := range h {
		if len(e.Hash) != eventlog.HashSize {
			t.Fatalf("event %d hash has %d bytes", e.Seq, len(e.Hash))
		}
		if i > 0 && !bytes.Equal(e.PrevHash, h[i-1].Hash) {
			t.Fatalf("event %d PrevHash does not link to event %d", e.Seq, h[i-1].Seq)
		}
		if !bytes.Equal(e.Hash, eventlog.HashEvent(e.PrevHash, e)) {
			t.Fatalf("event %d hash is not HashEvent of its content", e.Seq)
		}
		if seen[string(e.Hash)] {
			t.Fatalf("event %d repeats a hash", e.Seq)
		}
		seen[string(e.Hash)] = true
	}
	if err := eventlog.CheckChain(h); err != nil {
		t.Fatalf("CheckChain on a sealed history: %v", err)
	}
	if err := eventlog.CheckChain(nil); err != nil {
		t.Fatalf("CheckChain(nil) = %v, want nil", err)
	}
}

// TestSealContinues: sealing a history in two parts gives the same chain as
// sealing it at once.
func TestHashSealContinues(t *testing.T) {
	t.Parallel()
	whole := sealedHistory(t, 5)
	parts := clone(whole)
	for i := range parts {
		parts[i].PrevHash, parts[i].Hash = nil, nil
	}
	mid := eventlog.Seal(eventlog.GenesisHash, parts[:2])
	eventlog.Seal(mid, parts[2:])
	for i := range whole {
		if !bytes.Equal(parts[i].Hash, whole[i].Hash) {
			t.Fatalf("event %d: sealing in two parts gave %x, at once %x", i+1, parts[i].Hash, whole[i].Hash)
		}
	}
}

func TestHashEventCoversEveryField(t *testing.T) {
	t.Parallel()
	e := sealedHistory(t, 1)[0]
	base := eventlog.HashEvent(eventlog.GenesisHash, e)
	other := e
	other.ExecutionID = eventlog.NewID(t0.Add(time.Hour))
	variants := map[string]eventlog.Event{
		"execution id": other,
		"seq":          func() eventlog.Event { v := e; v.Seq = 2; return v }(),
		"type":         func() eventlog.Event { v := e; v.Type += "x"; return v }(),
		"recorded at":  func() eventlog.Event { v := e; v.RecordedAt = v.RecordedAt.Add(time.Microsecond); return v }(),
		"data":         func() eventlog.Event { v := e; v.Data = json.RawMessage(`{}`); return v }(),
		// Type and data are length-prefixed apart: moving a byte from one to
		// the other must change the hash.
		"type/data boundary": func() eventlog.Event {
			v := e
			v.Type, v.Data = e.Type+string(e.Data[:1]), e.Data[1:]
			return v
		}(),
	}
	for name, v := range variants {
		if bytes.Equal(eventlog.HashEvent(eventlog.GenesisHash, v), base) {
			t.Errorf("changing the %s does not change the hash", name)
		}
	}
	// Without the type's length prefix these two events would hash the
	// same bytes: the second moves the type's last byte into the time and
	// the time's last byte into the data.
	a := e
	a.Type = "AB"
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(a.RecordedAt.UnixMicro()))
	b := a
	b.Type = "A"
	b.RecordedAt = time.UnixMicro(int64(binary.BigEndian.Uint64(append([]byte{'B'}, ts[:7]...))))
	b.Data = append([]byte{ts[7]}, a.Data...)
	if bytes.Equal(eventlog.HashEvent(eventlog.GenesisHash, a), eventlog.HashEvent(eventlog.GenesisHash, b)) {
		t.Error("shifting bytes between type, time and data gives the same hash: fields are not length-prefixed")
	}
	prev := bytes.Repeat([]byte{1}, eventlog.HashSize)
	if bytes.Equal(eventlog.HashEvent(prev, e), base) {
		t.Error("changing the previous hash does not change the hash")
	}
	// Precision below a microsecond is not stored by PostgreSQL and not hashed.
	sub := e
	sub.RecordedAt = sub.RecordedAt.Add(999 * time.Nanosecond)
	if !bytes.Equal(eventlog.HashEvent(eventlog.GenesisHash, sub), base) {
		t.Error("nanoseconds below a microsecond change the hash; a history read back from PostgreSQL would not verify")
	}
	// Time zone is not part of the hash, only the instant.
	local := e
	local.RecordedAt = e.RecordedAt.In(time.FixedZone("X", 3600))
	if !bytes.Equal(eventlog.HashEvent(eventlog.GenesisHash, local), base) {
		t.Error("the recorded time's zone changes the hash")
	}
}

func TestCheckChainDetectsTampering(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		tamper  func(h []eventlog.Event) []eventlog.Event
		wantSeq int64
		reason  string // a substring of the ChainError's reason
	}{
		{"edited data field", func(h []eventlog.Event) []eventlog.Event {
			h[2].Data = json.RawMessage(strings.Replace(string(h[2].Data), `"event"`, `"evil"`, 1))
			return h
		}, 3, "edited"},
		{"added data field", func(h []eventlog.Event) []eventlog.Event {
			h[1].Data = json.RawMessage(`{"attempt":1,"extra":true,"note":"event","step":1}`)
			return h
		}, 2, "edited"},
		{"edited number value", func(h []eventlog.Event) []eventlog.Event {
			h[3].Data = json.RawMessage(`{"attempt":2,"note":"event","step":3}`)
			return h
		}, 4, "edited"},
		{"edited type", func(h []eventlog.Event) []eventlog.Event {
			h[4].Type = "AttemptFailed"
			return h
		}, 5, "edited"},
		{"changed recorded_at", func(h []eventlog.Event) []eventlog.Event {
			h[0].RecordedAt = h[0].RecordedAt.Add(time.Microsecond)
			return h
		}, 1, "edited"},
		{"changed execution id", func(h []eventlog.Event) []eventlog.Event {
			h[1].ExecutionID = eventlog.NewID(t0.Add(time.Hour))
			return h
		}, 2, "edited"},
		{"removed middle event", func(h []eventlog.Event) []eventlog.Event {
			return append(h[:2], h[3:]...)
		}, 4, "gap"},
		{"removed first event", func(h []eventlog.Event) []eventlog.Event {
			return h[1:]
		}, 2, "gap"},
		{"duplicated event", func(h []eventlog.Event) []eventlog.Event {
			return append(h[:3], h[2:]...)
		}, 3, "duplicate"},
		{"swapped events", func(h []eventlog.Event) []eventlog.Event {
			h[1], h[2] = h[2], h[1]
			return h
		}, 3, "seq"},
		{"swapped events renumbered", func(h []eventlog.Event) []eventlog.Event {
			h[1], h[2] = h[2], h[1]
			h[1].Seq, h[2].Seq = 2, 3
			return h
		}, 2, "prev_hash"},
		{"wrong prev_hash", func(h []eventlog.Event) []eventlog.Event {
			h[3].PrevHash = bytes.Repeat([]byte{7}, eventlog.HashSize)
			return h
		}, 4, "prev_hash"},
		{"first prev_hash not genesis", func(h []eventlog.Event) []eventlog.Event {
			h[0].PrevHash = bytes.Repeat([]byte{1}, eventlog.HashSize)
			return h
		}, 1, "prev_hash"},
		{"edited and re-hashed but not relinked", func(h []eventlog.Event) []eventlog.Event {
			h[1].Data = json.RawMessage(`{"attempt":9,"note":"event","step":1}`)
			h[1].Hash = eventlog.HashEvent(h[1].PrevHash, h[1])
			return h
		}, 3, "prev_hash"},
		{"wrong hash", func(h []eventlog.Event) []eventlog.Event {
			h[4].Hash[0] ^= 0xff
			return h
		}, 5, "edited"},
		{"data not JSON", func(h []eventlog.Event) []eventlog.Event {
			h[2].Data = json.RawMessage(`{"attempt":`)
			return h
		}, 3, "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := sealedHistory(t, 5)
			if err := eventlog.CheckChain(h); err != nil {
				t.Fatalf("untampered history: %v", err)
			}
			h = tt.tamper(clone(h))
			err := eventlog.CheckChain(h)
			var ce *eventlog.ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("CheckChain = %v, want a *ChainError", err)
			}
			if ce.Seq != tt.wantSeq {
				t.Errorf("ChainError.Seq = %d, want %d (%v)", ce.Seq, tt.wantSeq, err)
			}
			if !strings.Contains(ce.Reason, tt.reason) {
				t.Errorf("ChainError.Reason = %q, want it to mention %q", ce.Reason, tt.reason)
			}
			if ce.ExecutionID != h[0].ExecutionID && tt.name != "changed execution id" {
				t.Errorf("ChainError.ExecutionID = %s, want %s", ce.ExecutionID, h[0].ExecutionID)
			}
			if !strings.Contains(err.Error(), "is broken at event") {
				t.Errorf("error message %q does not say where the history is broken", err)
			}
		})
	}
}

// TestCheckChainCanonicalizesData: jsonb gives back the same value spelled
// differently (key order, white space, number forms); the history still
// verifies.
func TestCheckChainCanonicalizesData(t *testing.T) {
	t.Parallel()
	h := clone(sealedHistory(t, 5))
	// Sealed data is {"attempt":1,"note":"event","step":N}.
	h[0].Data = json.RawMessage(`{"step": 0, "note": "event", "attempt": 1.0}`)
	h[2].Data = json.RawMessage("{\n  \"step\" : 2,\n  \"attempt\" : 1e0,\n  \"note\" : \"ev\\u0065nt\"\n}")
	h[4].Data = json.RawMessage(`{"note":"event","attempt":10e-1,"step":4.00}`)
	if err := eventlog.CheckChain(h); err != nil {
		t.Fatalf("CheckChain on re-spelled data: %v", err)
	}
}
