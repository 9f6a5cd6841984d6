package bench

import (
	"fmt"
	"testing"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk/workflowtest"
)

// recordLoop records a history of LoopActivities(n) on the test
// environment's virtual clock.
func recordLoop(n int) (history []eventlog.Event, err error) {
	tb := &recorderTB{}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("record history: %v", p)
		}
		tb.cleanup()
	}()
	env := workflowtest.NewEnvironment(tb)
	env.RegisterWorkflow(LoopActivities)
	env.RegisterActivity(NoopActivity)
	env.ExecuteWorkflow(LoopActivities, n)
	if err := env.WorkflowError(); err != nil {
		return nil, err
	}
	return env.History(), nil
}

// recorderTB lets the test environment run outside a test.
type recorderTB struct {
	testing.TB
	cleanups []func()
}

func (t *recorderTB) Helper()                   {}
func (t *recorderTB) Cleanup(f func())          { t.cleanups = append(t.cleanups, f) }
func (t *recorderTB) Fatal(args ...any)         { panic(fmt.Sprint(args...)) }
func (t *recorderTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (t *recorderTB) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
