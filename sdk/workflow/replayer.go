package workflow

import (
	"errors"
	"fmt"
	"os"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk/internal/wfrt"
)

// RegisterOptions names a workflow or activity differently from its
// function.
type RegisterOptions struct {
	// Name defaults to the function's name without its package.
	Name string
}

// Replayer replays recorded histories through registered workflow code
// and reports where the code departs from them: run it in tests before
// deploying changed workflow code.
type Replayer struct{ reg *wfrt.Registry }

// NewReplayer returns a replayer with no workflows registered.
func NewReplayer() *Replayer { return &Replayer{reg: wfrt.NewRegistry()} }

// RegisterWorkflow registers a workflow function under its name.
func (r *Replayer) RegisterWorkflow(fn any) error { return r.reg.RegisterWorkflow(fn, "") }

// RegisterWorkflowWithOptions registers a workflow function under o.Name.
func (r *Replayer) RegisterWorkflowWithOptions(fn any, o RegisterOptions) error {
	return r.reg.RegisterWorkflow(fn, o.Name)
}

// ReplayWorkflowHistory replays every workflow task recorded in history.
// It returns nil when the code issues exactly the recorded commands, a
// *NonDeterminismError (errors.Is ErrNonDeterminism) naming the first
// event where it does not, or the code's panic.
func (r *Replayer) ReplayWorkflowHistory(history []eventlog.Event) error {
	return replay(r.reg, history)
}

// ReplayWorkflowHistoryFromJSONFile replays a history file written by
// `chronicle history ID --json`.
func (r *Replayer) ReplayWorkflowHistoryFromJSONFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	h, err := eventlog.UnmarshalHistory(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return r.ReplayWorkflowHistory(h)
}

func replay(reg *wfrt.Registry, history []eventlog.Event) error {
	if len(history) == 0 {
		return errors.New("replay: the history is empty")
	}
	run := wfrt.NewRun(reg, nil)
	defer run.Close()
	return run.Apply(history)
}

// NonDeterminismError says where replayed code departed from its history:
// at event Seq the history has Expected and the code issued Got.
type NonDeterminismError = engine.NonDeterminismError

// ErrNonDeterminism matches every *NonDeterminismError with errors.Is.
var ErrNonDeterminism = engine.ErrNonDeterminism
