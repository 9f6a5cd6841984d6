package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// The operator audit trail. Every operator action — retrying, resolving or
// canceling a job, and the schedule commands — is an event whose data names
// its actor and says why (reason, notes or note). The audit is a query of
// those events, by time, over the events table; nothing is kept twice.

// DefaultAuditLimit caps the entries Audit returns when AuditFilter.Limit
// is zero.
const DefaultAuditLimit = 1000

// AuditFilter selects audit entries. Zero fields do not filter.
type AuditFilter struct {
	// Since keeps actions recorded at most this long ago (database time).
	// Zero means all time.
	Since time.Duration
	// Actions keeps these event types, such as JobResolved.
	Actions []string
	// Actor keeps the actions of one actor.
	Actor string
	// Limit keeps the most recent Limit entries. Defaults to
	// DefaultAuditLimit.
	Limit int
}

// AuditEntry is one operator action.
type AuditEntry struct {
	// At is when the action was recorded (database time).
	At time.Time `json:"at"`
	// Action is the event type, such as JobRetried or JobCanceled.
	Action string `json:"action"`
	Actor  string `json:"actor"`
	// Reason is the event's reason, notes or note: why the actor did it.
	Reason string `json:"reason,omitempty"`
	// ExecutionID and Seq locate the event in its history.
	ExecutionID string `json:"execution_id"`
	Seq         int64  `json:"seq"`
	// Kind, Type and Queue describe what was acted on; empty when its
	// projection row is gone.
	Kind  string `json:"kind,omitempty"`
	Type  string `json:"type,omitempty"`
	Queue string `json:"queue,omitempty"`
	// Data is the event's full data.
	Data json.RawMessage `json:"data"`
}

// Audit lists operator actions matching f, oldest first.
func (c *Client) Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	if f.Since < 0 {
		return nil, &engine.InputError{Field: "since", Reason: fmt.Sprintf("%s is negative; want how far back to look, such as 24h", f.Since)}
	}
	if f.Limit < 0 {
		return nil, &engine.InputError{Field: "limit", Reason: fmt.Sprintf("%d is negative", f.Limit)}
	}
	if f.Limit == 0 {
		f.Limit = DefaultAuditLimit
	}
	rows, err := c.eng.Store().AuditEvents(ctx, eventlog.AuditParams{Within: f.Since, Types: f.Actions, Actor: f.Actor, Limit: f.Limit})
	if err != nil {
		return nil, err
	}
	out := make([]AuditEntry, len(rows))
	for i, r := range rows {
		var d struct {
			Actor  string `json:"actor"`
			Reason string `json:"reason"`
			Notes  string `json:"notes"`
			Note   string `json:"note"`
		}
		// Events of other kinds may spell a field differently: what does not
		// decode is left empty, and Data still carries it all.
		_ = json.Unmarshal(r.Event.Data, &d)
		out[i] = AuditEntry{At: r.Event.RecordedAt, Action: r.Event.Type, Actor: d.Actor, Reason: firstOf(d.Reason, d.Notes, d.Note),
			ExecutionID: r.Event.ExecutionID.String(), Seq: r.Event.Seq, Kind: r.Kind, Type: r.ExecutionType, Queue: r.Queue, Data: r.Event.Data}
	}
	return out, nil
}
