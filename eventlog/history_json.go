package eventlog

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// HistoryJSON is the file form of one execution's history, as
// `chronicle history ID --json` writes it and replay tools read it.
type HistoryJSON struct {
	ExecutionID string      `json:"execution_id"`
	Events      []EventJSON `json:"events"`
}

// EventJSON is one event of a HistoryJSON; hashes are hex.
type EventJSON struct {
	Seq        int64           `json:"seq"`
	Type       string          `json:"type"`
	RecordedAt time.Time       `json:"recorded_at"`
	Data       json.RawMessage `json:"data"`
	PrevHash   string          `json:"prev_hash"`
	Hash       string          `json:"hash"`
}

// MarshalHistory writes a history in its file form, indented.
func MarshalHistory(events []Event) ([]byte, error) {
	h := HistoryJSON{Events: make([]EventJSON, len(events))}
	for i, e := range events {
		if i == 0 {
			h.ExecutionID = e.ExecutionID.String()
		}
		h.Events[i] = EventJSON{Seq: e.Seq, Type: e.Type, RecordedAt: e.RecordedAt.UTC(), Data: e.Data,
			PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash)}
	}
	out, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// UnmarshalHistory reads a history's file form.
func UnmarshalHistory(b []byte) ([]Event, error) {
	var h HistoryJSON
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("read history: want the JSON of `chronicle history ID --json`: %w", err)
	}
	id, err := ParseID(h.ExecutionID)
	if err != nil {
		return nil, fmt.Errorf("read history: execution_id: %w", err)
	}
	out := make([]Event, len(h.Events))
	for i, e := range h.Events {
		prev, err1 := hex.DecodeString(e.PrevHash)
		hash, err2 := hex.DecodeString(e.Hash)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("read history: event %d: hashes must be hex", e.Seq)
		}
		data, err := Canonicalize(e.Data)
		if err != nil {
			return nil, fmt.Errorf("read history: event %d: %w", e.Seq, err)
		}
		out[i] = Event{ExecutionID: id, Seq: e.Seq, Type: e.Type, Data: data, RecordedAt: e.RecordedAt, PrevHash: prev, Hash: hash}
	}
	return out, nil
}
