package engine

// These tests live inside the package to stop a leader in the middle of a
// tick (fireHookKey).

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/eventlog/postgres"
	"github.com/chronicle-engine/chronicle/internal/testdb"
)

// leaderSetup is one schema with a schedule that fires every second, and
// a way to open more engines ("servers") on it.
type leaderSetup struct {
	t        *testing.T
	schema   string
	eng      *Engine
	schedule Schedule
}

func newLeaderSetup(t *testing.T, overlap OverlapPolicy) *leaderSetup {
	t.Helper()
	pool, schema := testdb.Schema(t)
	ls := &leaderSetup{t: t, schema: schema, eng: New(postgres.New(pool), nil, nil)}
	def := ScheduleDefinition{Cron: "@every 1s", Overlap: overlap,
		Job: ScheduledJob{Type: "tick.job", Queue: "default", Payload: json.RawMessage(`{}`)}}
	s, err := ls.eng.CreateSchedule(context.Background(), "every-second", def, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	ls.schedule = s
	return ls
}

// server opens another engine on the schema, with its own connection pool
// named application_name in pg_stat_activity.
func (ls *leaderSetup) server(name string) *Engine {
	ls.t.Helper()
	pool, err := pgxpool.New(context.Background(), testdb.SchemaURL(ls.schema)+"&application_name="+name)
	if err != nil {
		ls.t.Fatal(err)
	}
	ls.t.Cleanup(pool.Close)
	return New(postgres.New(pool), nil, nil)
}

// run runs a maintenance loop until the returned stop is called.
func run(ctx context.Context, eng *Engine, holder string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	m := eng.NewMaintenance(holder, 50*time.Millisecond, time.Second)
	go func() { defer close(done); m.Run(ctx) }()
	return func() { cancel(); <-done }
}

func (ls *leaderSetup) waitForRuns(n int64, timeout time.Duration) {
	ls.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, err := ls.eng.GetSchedule(context.Background(), "every-second")
		if err != nil {
			ls.t.Fatal(err)
		}
		if s.Runs >= n {
			return
		}
		if time.Now().After(deadline) {
			ls.t.Fatalf("after %s the schedule has fired %d times, want %d", timeout, s.Runs, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkEachTickOnce checks that the schedule fired every second from its
// creation to its last fire, each tick once, each with its own job, and
// nothing else; that no other job exists; and that verify agrees.
func (ls *leaderSetup) checkEachTickOnce() {
	t := ls.t
	t.Helper()
	ctx := context.Background()
	history, err := ls.eng.ScheduleHistory(ctx, "every-second")
	if err != nil {
		t.Fatal(err)
	}
	var ticks []time.Time
	jobs := map[eventlog.ID]time.Time{}
	for _, e := range history[1:] {
		if e.Type != EventScheduleFired {
			t.Fatalf("event %d is %s %s; want only ScheduleFired", e.Seq, e.Type, e.Data)
		}
		var d ScheduleFired
		if err := e.Decode(&d); err != nil {
			t.Fatal(err)
		}
		ticks = append(ticks, d.Tick)
		jobs[d.JobID] = d.Tick
	}
	want := ls.schedule.next(ls.schedule.CreatedAt)
	for i, tick := range ticks {
		if !tick.Equal(want) {
			t.Fatalf("fire %d is of tick %s, want %s (ticks %v)", i+1, tick, want, ticks)
		}
		want = want.Add(time.Second)
	}
	rows, err := ls.eng.store.ListExecutions(ctx, eventlog.ListParams{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(ticks) {
		t.Fatalf("%d jobs for %d fired ticks", len(rows), len(ticks))
	}
	for _, r := range rows {
		tick, ok := jobs[r.ID]
		if !ok {
			t.Fatalf("job %s was enqueued but no ScheduleFired names it", r.ID)
		}
		if key := ScheduleTickKey(ls.schedule.ID, tick); r.IdempotencyKey != key {
			t.Fatalf("job %s has key %q, want %q", r.ID, r.IdempotencyKey, key)
		}
	}
	rep, err := ls.eng.Verify(ctx, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v %v", err, rep.Problems)
	}
}

// TestSchedulesTwoServersFireEachTickOnce runs two maintenance loops on
// one schema, hands leadership from one to the other mid-run, and has a
// third party fire schedules in a tight loop as a leader that lost its
// lease but does not know it yet: every tick still fires exactly once.
func TestSchedulesTwoServersFireEachTickOnce(t *testing.T) {
	t.Parallel()
	ls := newLeaderSetup(t, OverlapAllowAll)
	ctx := context.Background()
	a, b, stale := ls.server("leader-a"), ls.server("leader-b"), ls.server("leader-stale")
	stopA := run(ctx, a, "a")
	stopB := run(ctx, b, "b")
	staleCtx, stopStale := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for staleCtx.Err() == nil {
			if _, err := stale.FireSchedules(staleCtx, fireBatch); err != nil && staleCtx.Err() == nil {
				t.Errorf("stale leader: %v", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	ls.waitForRuns(2, 10*time.Second)
	stopA() // the leader (whichever it was) may go; the other takes over
	stopA = run(ctx, a, "a")
	stopB()
	ls.waitForRuns(4, 10*time.Second)
	stopStale()
	wg.Wait()
	stopA()
	ls.checkEachTickOnce()
}

// TestScheduleLeaderKilledMidTick: the leader dies after writing a tick's
// event and job but before committing; its connection drops, as when its
// process is killed. The next leader fires that tick: nothing doubled,
// nothing skipped.
func TestScheduleLeaderKilledMidTick(t *testing.T) {
	t.Parallel()
	ls := newLeaderSetup(t, OverlapAllowAll)
	ctx := context.Background()
	appA := "leader-a-" + ls.schema
	a, b := ls.server(appA), ls.server("leader-b")
	stuck := make(chan struct{})
	var once sync.Once
	hook := func(ctx context.Context, _ eventlog.Tx) error {
		first := false
		once.Do(func() { first = true })
		if !first {
			return nil
		}
		close(stuck)
		<-ctx.Done() // hangs, holding its transaction, until the test ends it
		return ctx.Err()
	}
	stopA := run(context.WithValue(ctx, fireHookKey{}, hook), a, "a")
	select {
	case <-stuck:
	case <-time.After(10 * time.Second):
		t.Fatal("leader a never fired")
	}
	stopB := run(ctx, b, "b")
	// Kill a's connection, as the death of its process would.
	admin, err := pgxpool.New(ctx, testdb.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var killed int
		if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1 AND state = 'idle in transaction'`, appA).Scan(&killed); err != nil {
			t.Fatal(err)
		}
		if killed == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("found %d backends of leader a in a transaction, want 1", killed)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ls.waitForRuns(3, 10*time.Second)
	stopB()
	stopA()
	ls.checkEachTickOnce()
}

// TestScheduleCatchUpAfterDowntime: nobody fired an every-second schedule
// with a one-second catch-up window for four seconds. Under skip, the
// ticks older than the window are recorded as missed and only one on
// time runs; under latest, with a tick every two seconds and the leader
// back between ticks, the most recent missed tick runs once, late.
func TestScheduleCatchUpAfterDowntime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		catchUp CatchUpPolicy
		cron    string
	}{{CatchUpSkip, "@every 1s"}, {CatchUpLatest, "*/2 * * * * *"}} {
		t.Run(string(tc.catchUp), func(t *testing.T) {
			t.Parallel()
			pool, _ := testdb.Schema(t)
			eng := New(postgres.New(pool), nil, nil)
			ctx := context.Background()
			def := ScheduleDefinition{Cron: tc.cron, CatchUp: tc.catchUp, CatchUpWindow: time.Second,
				Job: ScheduledJob{Type: "tick.job", Queue: "default", Payload: json.RawMessage(`{}`)}}
			s, err := eng.CreateSchedule(ctx, "down", def, "test", "")
			if err != nil {
				t.Fatal(err)
			}
			// The downtime: wait in database time until at least four
			// seconds passed, and, for the two-second schedule, until the
			// moment lies between ticks, outside the window.
			for {
				var now time.Time
				if err := pool.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
					t.Fatal(err)
				}
				frac := now.Sub(now.Truncate(2 * time.Second))
				if now.Sub(s.CreatedAt) > 4*time.Second && (tc.catchUp == CatchUpSkip || frac > 1200*time.Millisecond && frac < 1800*time.Millisecond) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if _, err := eng.FireSchedules(ctx, fireBatch); err != nil {
				t.Fatal(err)
			}
			history, err := eng.ScheduleHistory(ctx, "down")
			if err != nil {
				t.Fatal(err)
			}
			now := history[len(history)-1].RecordedAt // the pass's database time
			var got []string
			for _, e := range history[1:] {
				switch e.Type {
				case EventScheduleMissed:
					var d ScheduleMissed
					_ = e.Decode(&d)
					if now.Sub(d.LastTick) <= time.Second || d.Count < 1 {
						t.Fatalf("missed %+v at %s: a tick within the window counted as missed", d, now)
					}
					got = append(got, "missed")
				case EventScheduleFired:
					var d ScheduleFired
					_ = e.Decode(&d)
					if d.Late != (now.Sub(d.Tick) > time.Second) {
						t.Fatalf("fired %+v at %s: late is %v, but the tick is %s old", d, now, d.Late, now.Sub(d.Tick))
					}
					got = append(got, fmt.Sprintf("fired late=%v", d.Late))
				default:
					t.Fatalf("unexpected %s", e.Type)
				}
			}
			want := map[CatchUpPolicy]string{CatchUpSkip: "[missed fired late=false]", CatchUpLatest: "[missed fired late=true]"}[tc.catchUp]
			if fmt.Sprint(got) != want {
				t.Fatalf("after the downtime: %v, want %s", got, want)
			}
			rep, err := eng.Verify(ctx, nil)
			if err != nil || !rep.OK() {
				t.Fatalf("verify: %v %v", err, rep.Problems)
			}
		})
	}
}
