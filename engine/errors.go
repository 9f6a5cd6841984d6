package engine

import (
	"errors"
	"fmt"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// Sentinel errors callers branch on.
var (
	// ErrLeaseLost: the attempt no longer holds its lease (it expired, the
	// job was canceled, or another worker claimed it). Nothing was written.
	ErrLeaseLost = errors.New("lease lost")
	// ErrInvalidState: the command does not apply to the job in its current
	// status, such as retrying a job that is not dead-lettered.
	ErrInvalidState = errors.New("invalid state")
	// ErrInvalidInput: a value given to an operation is not acceptable.
	ErrInvalidInput = errors.New("invalid input")
)

// StateError says why a command was refused in a job's current status.
type StateError struct {
	ID      eventlog.ID
	Command string
	Status  Status
	Want    string
}

func (e *StateError) Error() string {
	return fmt.Sprintf("cannot %s job %s: it is %s; %s", e.Command, e.ID, e.Status, e.Want)
}

// Is makes errors.Is(err, ErrInvalidState) true.
func (e *StateError) Is(target error) bool { return target == ErrInvalidState }

// InputError says which value was refused and why.
type InputError struct {
	Field  string
	Reason string
}

func (e *InputError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason) }

// Is makes errors.Is(err, ErrInvalidInput) true.
func (e *InputError) Is(target error) bool { return target == ErrInvalidInput }
