// Package activity is the API of activity code: the functions a workflow
// runs with workflow.ExecuteActivity, which may do anything (I/O, clocks,
// randomness) and are retried per their retry policy.
//
// Activities heartbeat to report progress and liveness:
//
//	for i := start; i < len(items); i++ {
//		process(items[i])
//		activity.RecordHeartbeat(ctx, i) // the next attempt resumes here
//		if ctx.Err() != nil { return ctx.Err() } // canceled, or timed out
//	}
//
// With a HeartbeatTimeout, an attempt that stops heartbeating is timed out
// and retried; a canceled activity learns it at its next heartbeat, when
// its context is canceled.
package activity

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/chronicle-engine/chronicle/sdk/internal/wfrt"
)

// Info describes the activity attempt a context belongs to.
type Info = wfrt.ActivityInfo

// GetInfo returns the info of an activity's context. It panics outside an
// activity.
func GetInfo(ctx context.Context) Info { return env(ctx).Info }

// IsActivity reports whether ctx is an activity's context.
func IsActivity(ctx context.Context) bool { return wfrt.ActivityEnvFrom(ctx) != nil }

func env(ctx context.Context) *wfrt.ActivityEnv {
	e := wfrt.ActivityEnvFrom(ctx)
	if e == nil {
		panic("activity: the context is not an activity's context")
	}
	return e
}

// RecordHeartbeat reports that the activity is alive, with progress
// details that a later attempt can read with GetHeartbeatDetails. Sends
// to the database are throttled (to 80% of the heartbeat timeout, at most
// every second without one); the latest details always win. When the
// attempt has lost its lease (it timed out, or the activity was canceled)
// the activity's context is canceled.
func RecordHeartbeat(ctx context.Context, details ...any) {
	e := env(ctx)
	raw, err := json.Marshal(details)
	if err != nil {
		panic(fmt.Sprintf("activity.RecordHeartbeat: details must encode as JSON: %v", err))
	}
	_ = e.Heartbeat(raw)
}

// HasHeartbeatDetails reports whether an earlier attempt recorded details.
func HasHeartbeatDetails(ctx context.Context) bool { return len(env(ctx).PreviousDetails) > 0 }

// GetHeartbeatDetails decodes the details an earlier attempt last
// recorded into ptrs, in the order they were given to RecordHeartbeat.
func GetHeartbeatDetails(ctx context.Context, ptrs ...any) error {
	e := env(ctx)
	if len(e.PreviousDetails) == 0 {
		return fmt.Errorf("activity %s attempt %d: no heartbeat details from an earlier attempt", e.Info.ActivityType, e.Info.Attempt)
	}
	return wfrt.DecodeDetails(e.PreviousDetails, ptrs...)
}
