package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/eventlog/postgres"
	"github.com/chronicle-engine/chronicle/internal/testdb"
)

func TestFoldAt(t *testing.T) {
	t.Parallel()
	h := newJob(t, engine.RetryPolicy{MaximumAttempts: 3, Schedule: []time.Duration{time.Minute}})
	h.claim()           // start+1s
	h.fail("smtp down") // start+2s, retry at start+62s
	h.claim()           // start+3s
	h.complete()        // start+4s
	for _, tc := range []struct {
		at      time.Duration
		status  engine.Status
		attempt int
		err     string
	}{
		{at: 500 * time.Millisecond, status: engine.StatusPending},
		{at: time.Second, status: engine.StatusRunning, attempt: 1}, // at an event's own time, the event counts
		{at: 2500 * time.Millisecond, status: engine.StatusRetrying, attempt: 1, err: "smtp down"},
		{at: 3500 * time.Millisecond, status: engine.StatusRunning, attempt: 2, err: "smtp down"},
		{at: time.Hour, status: engine.StatusSucceeded, attempt: 2, err: "smtp down"},
	} {
		j, err := engine.FoldAt(h.history, start.Add(tc.at))
		if err != nil {
			t.Fatalf("FoldAt(+%s): %v", tc.at, err)
		}
		if j.Status != tc.status || j.Attempt != tc.attempt || j.LastError != tc.err {
			t.Fatalf("FoldAt(+%s) = %s attempt %d error %q; want %s attempt %d error %q", tc.at, j.Status, j.Attempt, j.LastError, tc.status, tc.attempt, tc.err)
		}
	}
	j, _ := engine.FoldAt(h.history, start.Add(2500*time.Millisecond))
	if !j.RunAt.Equal(start.Add(62*time.Second)) || j.Seq != 3 {
		t.Fatalf("retrying state: run at %s, seq %d", j.RunAt, j.Seq)
	}
	if _, err := engine.FoldAt(h.history, start.Add(-time.Millisecond)); !errors.Is(err, engine.ErrNotYet) {
		t.Fatalf("before the job existed: %v", err)
	}
}

// timeline drives real jobs through the engine against the database and
// keeps the moments between their events.
type timeline struct {
	t   *testing.T
	eng *engine.Engine
	ctx context.Context
}

func (tl *timeline) enqueue(typ, queue string, policy engine.RetryPolicy) eventlog.ID {
	tl.t.Helper()
	out, err := tl.eng.Enqueue(tl.ctx, nil, []engine.NewJob{{Type: typ, Queue: queue, Payload: json.RawMessage(`{}`), RetryPolicy: policy}})
	if err != nil {
		tl.t.Fatal(err)
	}
	return out[0].ID
}

func (tl *timeline) claim(queue string) engine.Claimed {
	tl.t.Helper()
	got, err := tl.eng.Claim(tl.ctx, engine.ClaimParams{Queues: []string{queue}, Limit: 1, WorkerID: "w1", LeaseDuration: time.Minute})
	if err != nil || len(got) != 1 {
		tl.t.Fatalf("claim from %s: %d jobs, %v", queue, len(got), err)
	}
	return got[0]
}

func (tl *timeline) finish(c engine.Claimed, failure error) {
	tl.t.Helper()
	res, err := tl.eng.Complete(tl.ctx, []engine.Outcome{{Lease: c.Lease, Err: failure, Duration: time.Millisecond}})
	if err != nil || res[0] != nil {
		tl.t.Fatalf("complete: %v %v", err, res)
	}
}

// TestQueueStatsAtMatchesFolds runs jobs through every status, then checks
// at every moment their events were recorded, and between them, that the
// counts the store computes equal those of folding every history up to
// that moment.
func TestQueueStatsAtMatchesFolds(t *testing.T) {
	t.Parallel()
	pool, _ := testdb.Schema(t)
	store := postgres.New(pool)
	tl := &timeline{t: t, eng: engine.New(store, nil, nil), ctx: context.Background()}
	later := engine.RetryPolicy{MaximumAttempts: 3, Schedule: []time.Duration{time.Hour}}
	soon := engine.RetryPolicy{MaximumAttempts: 2, Schedule: []time.Duration{0}}
	boom := errors.New("boom")

	var ids []eventlog.ID
	ids = append(ids, tl.enqueue("email.send", "emails", later)) // stays pending
	ids = append(ids, tl.enqueue("email.send", "emails", later)) // runs, fails: retrying
	tl.finish(tl.claim("emails"), boom)
	ids = append(ids, tl.enqueue("webhook.deliver", "hooks", soon)) // fails twice: dead-lettered, then retried, runs
	tl.finish(tl.claim("hooks"), boom)
	tl.finish(tl.claim("hooks"), boom)
	ids = append(ids, tl.enqueue("webhook.deliver", "hooks", soon)) // succeeds
	tl.finish(tl.claim("hooks"), nil)
	dead := ids[2]
	if _, err := tl.eng.Execute(tl.ctx, dead, engine.RetryDeadLetter{Actor: "ada"}); err != nil {
		t.Fatal(err)
	}
	tl.claim("hooks")                                              // the retried dead letter is running
	ids = append(ids, tl.enqueue("report.build", "default", soon)) // canceled
	if _, err := tl.eng.Execute(tl.ctx, ids[4], engine.Cancel{Actor: "ada", Reason: "not needed"}); err != nil {
		t.Fatal(err)
	}

	var histories [][]eventlog.Event
	moments := map[time.Time]bool{}
	for _, id := range ids {
		h, err := store.History(tl.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		histories = append(histories, h)
		for _, e := range h {
			moments[e.RecordedAt] = true
			moments[e.RecordedAt.Add(-time.Microsecond)] = true
		}
	}
	sorted := make([]time.Time, 0, len(moments))
	for m := range moments {
		sorted = append(sorted, m)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Before(sorted[j]) })
	sorted = append(sorted, sorted[len(sorted)-1].Add(time.Hour))
	sawDeadLetter := false
	for _, m := range sorted {
		want := map[[2]string]*engine.QueueStats{}
		for _, h := range histories {
			j, err := engine.FoldAt(h, m)
			if errors.Is(err, engine.ErrNotYet) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			s := want[[2]string{j.Queue, j.Type}]
			if s == nil {
				s = &engine.QueueStats{Queue: j.Queue, Type: j.Type}
			}
			switch j.Status {
			case engine.StatusPending:
				s.Pending++
			case engine.StatusRunning:
				s.Running++
			case engine.StatusRetrying:
				s.Retrying++
			case engine.StatusDeadLettered:
				s.DeadLettered++
				sawDeadLetter = true
			default:
				continue
			}
			want[[2]string{j.Queue, j.Type}] = s
		}
		wantList := []engine.QueueStats{}
		for _, s := range want {
			wantList = append(wantList, *s)
		}
		sort.Slice(wantList, func(i, j int) bool { return wantList[i].Queue+wantList[i].Type < wantList[j].Queue+wantList[j].Type })
		got, err := tl.eng.QueueStatsAt(tl.ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, wantList) {
			t.Fatalf("QueueStatsAt(%s) =\n%+v\nfolding the histories gives\n%+v", m.Format(time.RFC3339Nano), got, wantList)
		}
	}
	if !sawDeadLetter {
		t.Fatal("no moment had a dead letter: the test does not cover them")
	}
	now, err := tl.eng.QueueStatsNow(tl.ctx)
	if err != nil {
		t.Fatal(err)
	}
	last, err := tl.eng.QueueStatsAt(tl.ctx, sorted[len(sorted)-1])
	if err != nil || !reflect.DeepEqual(now, last) {
		t.Fatalf("stats now (projection) %+v; from the events %+v (%v)", now, last, err)
	}
}
