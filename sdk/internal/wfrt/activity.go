package wfrt

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime/debug"
	"sync"
	"time"
)

// ActivityInfo describes the activity attempt a context belongs to.
type ActivityInfo struct {
	ActivityID   int64
	ActivityType string
	// Attempt numbers the activity's attempts from 1.
	Attempt      int
	WorkflowID   string
	RunID        string
	WorkflowType string
	TaskQueue    string
	// ScheduledTime, StartedTime and Deadline are database times.
	ScheduledTime    time.Time
	StartedTime      time.Time
	Deadline         time.Time
	HeartbeatTimeout time.Duration
}

// ActivityEnv is what an activity's context carries: its info, the
// previous attempt's heartbeat details and the heartbeat sender.
type ActivityEnv struct {
	Info ActivityInfo
	// PreviousDetails are the last heartbeat details of an earlier attempt.
	PreviousDetails json.RawMessage
	// Send records details in the database and reports whether the attempt
	// still holds its lease. nil in tests that record nothing.
	Send func(details json.RawMessage) (held bool, err error)
	// Throttle is the least time between two sends; details recorded
	// meanwhile are sent with the next one.
	Throttle time.Duration
	// Cancel cancels the activity's context when its lease is lost.
	Cancel context.CancelCauseFunc

	mu       sync.Mutex
	last     json.RawMessage
	lastSent time.Time
}

type activityEnvKey struct{}

// WithActivityEnv returns ctx carrying env.
func WithActivityEnv(ctx context.Context, env *ActivityEnv) context.Context {
	return context.WithValue(ctx, activityEnvKey{}, env)
}

// ActivityEnvFrom returns the env of an activity context, or nil.
func ActivityEnvFrom(ctx context.Context) *ActivityEnv {
	env, _ := ctx.Value(activityEnvKey{}).(*ActivityEnv)
	return env
}

// LastDetails returns the details last recorded by this attempt.
func (env *ActivityEnv) LastDetails() json.RawMessage {
	env.mu.Lock()
	defer env.mu.Unlock()
	return env.last
}

// ErrActivityLeaseLost is the cause of an activity context canceled because
// its attempt timed out or the activity was canceled.
var ErrActivityLeaseLost = &CanceledError{Reason: "the activity was canceled or its attempt timed out"}

// Heartbeat records details, sending them unless the last send was less
// than Throttle ago.
func (env *ActivityEnv) Heartbeat(details json.RawMessage) error {
	env.mu.Lock()
	env.last = details
	due := time.Since(env.lastSent) >= env.Throttle
	if due {
		env.lastSent = time.Now()
	}
	env.mu.Unlock()
	if !due || env.Send == nil {
		return nil
	}
	held, err := env.Send(details)
	if err != nil {
		return err
	}
	if !held && env.Cancel != nil {
		env.Cancel(ErrActivityLeaseLost)
	}
	return nil
}

// ExecuteActivity runs the registered activity typ with its JSON input and
// returns its JSON result. A panic becomes a *PanicError.
func (r *Registry) ExecuteActivity(ctx context.Context, typ string, input json.RawMessage) (out json.RawMessage, err error) {
	a, err := r.activity(typ)
	if err != nil {
		return nil, err
	}
	args, err := a.decodeArgs(input)
	if err != nil {
		return nil, NewApplicationError(err.Error(), "DecodeError", true, err)
	}
	defer func() {
		if p := recover(); p != nil {
			err = &PanicError{Value: fmt.Sprint(p), Stack: string(debug.Stack())}
		}
	}()
	v, err := a.call(reflect.ValueOf(ctx), args)
	if err != nil {
		return nil, err
	}
	if !a.hasValue {
		return json.RawMessage("null"), nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, NewApplicationError(fmt.Sprintf("encode result of activity %s: %v", typ, err), "EncodeError", true, err)
	}
	return raw, nil
}

// DecodeDetails decodes heartbeat details (a JSON array) into ptrs.
func DecodeDetails(raw json.RawMessage, ptrs ...any) error {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return fmt.Errorf("heartbeat details are not a JSON array: %w", err)
	}
	for i, p := range ptrs {
		if i >= len(items) {
			break
		}
		if err := json.Unmarshal(items[i], p); err != nil {
			return fmt.Errorf("heartbeat detail %d: %w", i+1, err)
		}
	}
	return nil
}
