package sdk

import (
	"context"

	"github.com/chronicle-engine/chronicle/engine"
)

// ErrInvalidResetPoint: ResetWorkflow was given an event that is not a
// WorkflowTaskCompleted of the run.
var ErrInvalidResetPoint = engine.ErrInvalidResetPoint

// ResetWorkflow resets a run (the latest run of workflowID when runID is
// empty) to an earlier workflow task: a new run of the workflow ID gets a
// copy of the run's events before toSeq, which must be one of its
// WorkflowTaskCompleted events, and runs that task again with the code
// deployed now; activities completed before toSeq are not run again. The
// workflow ID's running run is terminated, recording actor and reason.
// It returns the new run.
func (c *Client) ResetWorkflow(ctx context.Context, workflowID, runID string, toSeq int64, actor, reason string) (WorkflowRun, error) {
	row, err := c.resolveRun(ctx, workflowID, runID)
	if err != nil {
		return nil, err
	}
	id, err := c.eng.ResetWorkflow(ctx, engine.ResetWorkflowParams{RunID: row.ID, ToSeq: toSeq, Actor: actor, Reason: reason})
	if err != nil {
		return nil, err
	}
	return &workflowRun{c: c, workflowID: row.IdempotencyKey, runID: id}, nil
}
