package eventlog

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned when an execution or event does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when an append expected a different next sequence
// number: another writer appended to the same history first.
var ErrConflict = errors.New("append conflict")

// ConflictError reports an optimistic-concurrency conflict on one history.
// It matches ErrConflict with errors.Is.
type ConflictError struct {
	ExecutionID ID
	// ExpectedSeq is the sequence number the writer tried to append.
	ExpectedSeq int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("append to %s at seq %d: another writer appended first; reload the history and decide again", e.ExecutionID, e.ExpectedSeq)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
