package postgres

import (
	"context"
	"errors"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// LatestRunOf returns the latest run of a workflow ID, or nil.
func (tx *Tx) LatestRunOf(ctx context.Context, workflowID string) (*eventlog.Execution, error) {
	x, err := latestRun(ctx, tx.q, workflowID)
	if errors.Is(err, eventlog.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &x, nil
}
