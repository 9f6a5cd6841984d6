package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// ErrNotYet: the execution asked about did not exist yet at the moment
// asked about.
var ErrNotYet = errors.New("did not exist yet")

// FoldAt replays the part of a job's history recorded at or before at: the
// job as it was at that moment, as far as the log knew. A history that
// begins after at fails with ErrNotYet.
func FoldAt(history []eventlog.Event, at time.Time) (Job, error) {
	n := 0
	for n < len(history) && !history[n].RecordedAt.After(at) {
		n++
	}
	if n == 0 {
		if len(history) == 0 {
			return Job{}, fmt.Errorf("empty history: %w", eventlog.ErrNotFound)
		}
		return Job{}, fmt.Errorf("job %s %w at %s: it was enqueued at %s", history[0].ExecutionID, ErrNotYet,
			at.UTC().Format(time.RFC3339Nano), history[0].RecordedAt.UTC().Format(time.RFC3339Nano))
	}
	return Fold(history[:n])
}

// JobAt returns a job as it was at the moment at, folded from its events
// recorded at or before it.
func (e *Engine) JobAt(ctx context.Context, id eventlog.ID, at time.Time) (Job, error) {
	history, err := e.store.History(ctx, id)
	if err != nil {
		return Job{}, err
	}
	if history[0].Type != EventJobEnqueued {
		return Job{}, &InputError{Field: "id", Reason: fmt.Sprintf("%s is not a job: its history begins with %s", id, history[0].Type)}
	}
	return FoldAt(history, at)
}

// QueueStats counts the unfinished jobs of one queue and type by status.
type QueueStats struct {
	Queue        string `json:"queue"`
	Type         string `json:"type"`
	Pending      int64  `json:"pending"`
	Running      int64  `json:"running"`
	Retrying     int64  `json:"retrying"`
	DeadLettered int64  `json:"dead_lettered"`
}

// statusEvents are the job events that change a job's status, with the
// status each leaves the job in. StepCompleted and other events inside an
// attempt do not count. An AttemptFailed or AttemptTimedOut with no retry
// is always followed, in the same transaction, by JobDeadLettered, so as
// the last such event at a moment it always means retrying.
var statusEvents = map[string]Status{
	EventJobEnqueued:      StatusPending,
	EventAttemptStarted:   StatusRunning,
	EventAttemptSucceeded: StatusSucceeded,
	EventAttemptFailed:    StatusRetrying,
	EventAttemptTimedOut:  StatusRetrying,
	EventJobDeadLettered:  StatusDeadLettered,
	EventJobRetried:       StatusPending,
	EventJobResolved:      StatusResolved,
	EventJobCanceled:      StatusCanceled,
}

// QueueStatsNow counts the jobs that are pending, running, retrying and
// dead-lettered, by queue and type, from the projection.
func (e *Engine) QueueStatsNow(ctx context.Context) ([]QueueStats, error) {
	counts, err := e.store.CountStatuses(ctx, "job", []string{string(StatusPending), string(StatusRunning), string(StatusRetrying), string(StatusDeadLettered)})
	if err != nil {
		return nil, err
	}
	acc := statsAccumulator{}
	for _, c := range counts {
		acc.add(c.Queue, c.Type, Status(c.Status), c.Count)
	}
	return acc.list(), nil
}

// QueueStatsAt counts the jobs that were pending, running, retrying and
// dead-lettered at the moment at, by queue and type, computed from the
// events: each job's status is the one its last status-changing event
// recorded at or before at left it in.
func (e *Engine) QueueStatsAt(ctx context.Context, at time.Time) ([]QueueStats, error) {
	types := make([]string, 0, len(statusEvents))
	for t := range statusEvents {
		types = append(types, t)
	}
	sort.Strings(types)
	counts, err := e.store.CountLastEvents(ctx, eventlog.LastEventParams{At: at, Kind: "job", Types: types})
	if err != nil {
		return nil, err
	}
	acc := statsAccumulator{}
	for _, c := range counts {
		st, ok := statusEvents[c.EventType]
		if !ok {
			return nil, errors.New("queue stats: the store counted event type " + c.EventType + " that was not asked for")
		}
		acc.add(c.Queue, c.Type, st, c.Count)
	}
	return acc.list(), nil
}

type statsAccumulator map[[2]string]*QueueStats

func (a statsAccumulator) add(queue, typ string, st Status, n int64) {
	var field *int64
	s := a[[2]string{queue, typ}]
	if s == nil {
		s = &QueueStats{Queue: queue, Type: typ}
	}
	switch st {
	case StatusPending:
		field = &s.Pending
	case StatusRunning:
		field = &s.Running
	case StatusRetrying:
		field = &s.Retrying
	case StatusDeadLettered:
		field = &s.DeadLettered
	default:
		return // finished: not counted
	}
	*field += n
	a[[2]string{queue, typ}] = s
}

func (a statsAccumulator) list() []QueueStats {
	out := make([]QueueStats, 0, len(a))
	for _, s := range a {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Queue != out[j].Queue {
			return out[i].Queue < out[j].Queue
		}
		return out[i].Type < out[j].Type
	})
	return out
}
