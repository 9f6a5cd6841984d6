package eventlog

import "context"

// WorkflowRunsTx finds workflow runs inside a transaction without locking
// anything.
type WorkflowRunsTx interface {
	// LatestRunOf returns the row of the latest run of a workflow ID, or
	// nil when it has none.
	LatestRunOf(ctx context.Context, workflowID string) (*Execution, error)
}
