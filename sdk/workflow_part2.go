package sdk

import "github.com/chronicle-engine/chronicle/engine"

// HistorySizeLimitExceeded is the error type of a workflow run that failed
// because its history outgrew Config.WorkflowHistoryLimits: continue such
// workflows as new (workflow.NewContinueAsNewError) before that.
const HistorySizeLimitExceeded = engine.ErrorTypeHistorySizeLimitExceeded

// WorkflowHistoryLimits bound workflow histories: past the Warn fields a
// warning is logged once, past the Max fields the run fails with
// HistorySizeLimitExceeded. Zero fields take engine's defaults (10,240
// events or 10 MiB to warn; 51,200 events or 50 MiB to fail).
type WorkflowHistoryLimits = engine.HistoryLimits
