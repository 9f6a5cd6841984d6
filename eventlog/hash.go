package eventlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// HashSize is the length of an event hash in bytes.
const HashSize = sha256.Size

// GenesisHash is the PrevHash of every history's first event.
var GenesisHash = make([]byte, HashSize)

// HashEvent computes an event's hash: SHA-256 over its predecessor's hash, the
// execution ID, seq, type, recorded time (microseconds since the Unix epoch)
// and canonical data. Fields are length-prefixed so that no two different
// events hash the same input.
func HashEvent(prevHash []byte, e Event) []byte {
	h := sha256.New()
	var n [8]byte
	h.Write(prevHash)
	h.Write(e.ExecutionID[:])
	binary.BigEndian.PutUint64(n[:], uint64(e.Seq))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(len(e.Type)))
	h.Write(n[:])
	h.Write([]byte(e.Type))
	binary.BigEndian.PutUint64(n[:], uint64(e.RecordedAt.UnixMicro()))
	h.Write(n[:])
	h.Write(e.Data)
	return h.Sum(nil)
}

// Seal chains events onto a history whose last hash is prevHash: it sets each
// event's PrevHash and Hash in order and returns the last hash. Data must
// already be canonical.
func Seal(prevHash []byte, events []Event) []byte {
	for i := range events {
		events[i].PrevHash = prevHash
		events[i].Hash = HashEvent(prevHash, events[i])
		prevHash = events[i].Hash
	}
	return prevHash
}

// ChainError describes one break in a stored history's hash chain.
type ChainError struct {
	ExecutionID ID
	Seq         int64
	Reason      string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("history of %s is broken at event %d: %s", e.ExecutionID, e.Seq, e.Reason)
}

// CheckChain verifies a complete stored history: seq runs 1, 2, 3, … without
// gaps, each event links to its predecessor's hash, and each hash matches the
// event's content. Data as read back from storage is canonicalized first. It
// returns the first break found, or nil.
func CheckChain(history []Event) error {
	prev := GenesisHash
	for i, e := range history {
		if e.Seq != int64(i+1) {
			return &ChainError{e.ExecutionID, e.Seq, fmt.Sprintf("expected seq %d (a gap or a duplicate)", i+1)}
		}
		if !bytes.Equal(e.PrevHash, prev) {
			return &ChainError{e.ExecutionID, e.Seq, "prev_hash does not match the previous event's hash"}
		}
		data, err := Canonicalize(e.Data)
		if err != nil {
			return &ChainError{e.ExecutionID, e.Seq, "data is not valid JSON: " + err.Error()}
		}
		e.Data = data
		if !bytes.Equal(HashEvent(prev, e), e.Hash) {
			return &ChainError{e.ExecutionID, e.Seq, "hash does not match the event's content (the event was edited)"}
		}
		prev = e.Hash
	}
	return nil
}
