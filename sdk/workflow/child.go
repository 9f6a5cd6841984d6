package workflow

import "github.com/chronicle-engine/chronicle/sdk/internal/wfrt"

// ChildWorkflowOptions configure the child workflows started with a
// context: WorkflowID, TaskQueue, WorkflowExecutionTimeout, RetryPolicy
// and ParentClosePolicy.
type ChildWorkflowOptions = wfrt.ChildWorkflowOptions

// ChildWorkflowFuture is the result of a child workflow; its
// GetChildWorkflowExecution future is ready once the child started.
type ChildWorkflowFuture = wfrt.ChildWorkflowFuture

// ChildWorkflowExecutionError is how a child that did not complete
// reaches its parent; Cause says how it ended.
type ChildWorkflowExecutionError = wfrt.ChildWorkflowExecutionError

// ParentClosePolicy says what happens to a running child when its parent
// run ends.
type ParentClosePolicy = wfrt.ParentClosePolicy

// Parent-close policies.
const (
	// ParentClosePolicyUnspecified is ParentClosePolicyTerminate.
	ParentClosePolicyUnspecified = wfrt.ParentClosePolicyUnspecified
	// ParentClosePolicyTerminate terminates the child. The default.
	ParentClosePolicyTerminate = wfrt.ParentClosePolicyTerminate
	// ParentClosePolicyRequestCancel asks the child to cancel.
	ParentClosePolicyRequestCancel = wfrt.ParentClosePolicyRequestCancel
	// ParentClosePolicyAbandon leaves the child running; it is not
	// canceled with the parent's context either.
	ParentClosePolicyAbandon = wfrt.ParentClosePolicyAbandon
)

// WithChildOptions returns a context whose child workflows use o.
func WithChildOptions(ctx Context, o ChildWorkflowOptions) Context {
	return wfrt.WithChildOptions(ctx, o)
}

// GetChildWorkflowOptions returns the child workflow options of ctx.
func GetChildWorkflowOptions(ctx Context) ChildWorkflowOptions {
	return wfrt.GetChildWorkflowOptions(ctx)
}

// ExecuteChildWorkflow starts a child workflow, given as its function or
// registered name, with args encoded as JSON. Get stores the child's
// result or returns a *ChildWorkflowExecutionError. The child is a run of
// its own, with its own history; its outcome reaches the parent through
// the parent's history. Canceling ctx cancels the child unless its
// policy is ParentClosePolicyAbandon.
func ExecuteChildWorkflow(ctx Context, childWorkflow any, args ...any) ChildWorkflowFuture {
	return wfrt.ExecuteChildWorkflow(ctx, childWorkflow, args...)
}

// ContinueAsNewError continues a workflow as a new run; see
// NewContinueAsNewError.
type ContinueAsNewError = wfrt.ContinueAsNewError

// NewContinueAsNewError returns the error which, returned by a workflow
// function, ends its run and starts a fresh one of the same workflow ID:
// wf (its function or name) with args and an empty history. Signals and
// queries sent to the workflow ID reach the newest run.
func NewContinueAsNewError(ctx Context, wf any, args ...any) error {
	return wfrt.NewContinueAsNewError(ctx, wf, args...)
}

// IsContinueAsNewError reports whether err continues the workflow as new.
func IsContinueAsNewError(err error) bool { return wfrt.IsContinueAsNewError(err) }

// Version is a version of workflow code, returned by GetVersion.
type Version = wfrt.Version

// DefaultVersion is the version of runs that passed a GetVersion call
// before it was added to the code.
const DefaultVersion = wfrt.DefaultVersion

// VersionError blocks a run whose recorded version the code no longer
// supports.
type VersionError = wfrt.VersionError

// GetVersion lets workflow code change while runs of the old code are
// still open: new runs record maxSupported (a MarkerRecorded event) and
// take the new branch; runs that passed this point before the change get
// DefaultVersion and replay the old branch. A recorded version below
// minSupported blocks the run with a *VersionError: the old branch was
// removed too early. docs/workflows.md describes how to remove branches.
func GetVersion(ctx Context, changeID string, minSupported, maxSupported Version) Version {
	return wfrt.GetVersion(ctx, changeID, minSupported, maxSupported)
}
