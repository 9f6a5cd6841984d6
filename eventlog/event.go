package eventlog

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
)

// ID identifies an execution. It is a ULID: sortable by creation time, stored
// in a uuid column and shown as its 26-character string.
type ID = ulid.ULID

// NewID returns a fresh execution ID for the given time.
func NewID(t time.Time) ID {
	return ulid.MustNew(ulid.Timestamp(t), rand.Reader)
}

// ParseID parses the 26-character string form of an execution ID.
func ParseID(s string) (ID, error) {
	id, err := ulid.ParseStrict(s)
	if err != nil {
		return ID{}, fmt.Errorf("invalid execution id %q: want a 26-character ULID such as 01JDQ3Z6V5N8G1Y1Y6Q9W4T2XH: %w", s, err)
	}
	return id, nil
}

// Event is one immutable fact in an execution's history.
type Event struct {
	ExecutionID ID
	// Seq numbers the execution's events from 1 with no gaps.
	Seq int64
	// Type names the fact, such as "JobEnqueued" or "AttemptFailed".
	Type string
	// Data is the event's fields as canonical JSON (see Canonicalize).
	Data json.RawMessage
	// RecordedAt is the database time of the transaction that appended it.
	RecordedAt time.Time
	// PrevHash is the Hash of event Seq-1, or 32 zero bytes for the first event.
	PrevHash []byte
	// Hash is SHA-256 over PrevHash and this event's content (see HashEvent).
	Hash []byte
}

// Decode unmarshals the event's data into v.
func (e Event) Decode(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("decode %s event %d of %s: %w", e.Type, e.Seq, e.ExecutionID, err)
	}
	return nil
}
