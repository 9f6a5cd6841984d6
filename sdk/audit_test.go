package sdk_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

// appendOldHistory writes a job's history as if it had been recorded at
// at: enqueued, then canceled by actor a minute later. The events are
// sealed as the engine seals them, so the history verifies.
func appendOldHistory(t *testing.T, b *bundle, at time.Time, actor string) eventlog.ID {
	t.Helper()
	at = at.UTC().Truncate(time.Microsecond)
	j, enq, err := engine.Record(engine.Job{ID: eventlog.NewID(at)}, []engine.Decision{{Type: engine.EventJobEnqueued,
		Data: engine.JobEnqueued{Type: "report.build", Queue: "default", Priority: engine.PriorityNormal, Payload: json.RawMessage(`{}`), RunAt: at}}}, at)
	if err != nil {
		t.Fatal(err)
	}
	j, cancel, err := engine.Record(j, []engine.Decision{{Type: engine.EventJobCanceled, Data: engine.JobCanceled{Actor: actor, Reason: "quarterly purge"}}}, at.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	err = b.client.Engine().Store().InTx(context.Background(), func(tx eventlog.Tx) error {
		return tx.Apply(context.Background(), eventlog.Changes{Events: append(enq, cancel...), NewExecutions: []eventlog.Execution{j.Row()}})
	})
	if err != nil {
		t.Fatal(err)
	}
	return j.ID
}

// TestAudit: retry, resolve and cancel each leave an entry with actor and
// reason; the time window, actor, action and limit select exactly the
// entries they say.
func TestAudit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	registerReport(t, b)
	oldID := appendOldHistory(t, b, time.Now().Add(-48*time.Hour), "dave@ops")

	dead := deadLetter(t, b, "report.build", "default", "boom")
	if _, err := b.client.RetryDeadLetter(ctx, dead, "alice@ops", "smtp credentials rotated"); err != nil {
		t.Fatal(err)
	}
	c := claimOne(t, b, "default", "w", time.Minute)
	if err := complete(t, b, engine.Outcome{Lease: c.Lease, Err: errTest("boom again")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.ResolveDeadLetter(ctx, dead, "bob@ops", "customer left"); err != nil {
		t.Fatal(err)
	}
	res, err := b.client.Enqueue(ctx, "report.build", struct{}{}, sdk.WithDelay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Cancel(ctx, res.ID, "carol@ops", "duplicate request"); err != nil {
		t.Fatal(err)
	}

	type row struct{ action, actor, reason string }
	check := func(name string, f sdk.AuditFilter, want ...row) {
		t.Helper()
		got, err := b.client.Audit(ctx, f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d entries %+v, want %d", name, len(got), got, len(want))
		}
		for i, w := range want {
			g := got[i]
			if g.Action != w.action || g.Actor != w.actor || g.Reason != w.reason {
				t.Fatalf("%s: entry %d = %s by %s (%q), want %s by %s (%q)", name, i, g.Action, g.Actor, g.Reason, w.action, w.actor, w.reason)
			}
			if g.Type != "report.build" || g.Kind != "job" || g.Queue != "default" || g.Seq < 2 {
				t.Fatalf("%s: entry %d describes %+v", name, i, g)
			}
			if i > 0 && g.At.Before(got[i-1].At) {
				t.Fatalf("%s: entries out of order", name)
			}
		}
	}
	retried := row{"JobRetried", "alice@ops", "smtp credentials rotated"}
	resolvedRow := row{"JobResolved", "bob@ops", "customer left"}
	canceledRow := row{"JobCanceled", "carol@ops", "duplicate request"}
	old := row{"JobCanceled", "dave@ops", "quarterly purge"}
	check("last 24h", sdk.AuditFilter{Since: 24 * time.Hour}, retried, resolvedRow, canceledRow)
	check("last 3 days", sdk.AuditFilter{Since: 72 * time.Hour}, old, retried, resolvedRow, canceledRow)
	check("all time", sdk.AuditFilter{}, old, retried, resolvedRow, canceledRow)
	check("by actor", sdk.AuditFilter{Actor: "bob@ops"}, resolvedRow)
	check("by action", sdk.AuditFilter{Actions: []string{"JobCanceled"}}, old, canceledRow)
	check("most recent", sdk.AuditFilter{Limit: 2}, resolvedRow, canceledRow)

	got, err := b.client.Audit(ctx, sdk.AuditFilter{Actor: "dave@ops"})
	if err != nil || len(got) != 1 || got[0].ExecutionID != oldID.String() || got[0].Seq != 2 {
		t.Fatalf("dave's entry = %+v, %v", got, err)
	}
	for _, bad := range []sdk.AuditFilter{{Since: -time.Hour}, {Limit: -1}} {
		_, err := b.client.Audit(ctx, bad)
		wantErrIs(t, err, sdk.ErrInvalidInput)
	}
	verifyOK(t, b)
}

type errTest string

func (e errTest) Error() string { return string(e) }
