package postgres_test

import (
	"context"
	"testing"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
)

// ListExecutions filters by kind, so that job listings leave out workflow
// runs and schedules that share the executions table.
func TestListExecutionsByKind(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	job := b.enqueue(t, engine.NewJob{})
	other := b.enqueue(t, engine.NewJob{})
	if _, err := b.pool.Exec(ctx, `UPDATE executions SET kind = 'workflow' WHERE id = $1`, [16]byte(other)); err != nil {
		t.Fatal(err)
	}
	for kind, want := range map[string][]eventlog.ID{"job": {job}, "workflow": {other}, "": {job, other}} {
		got, err := b.store.ListExecutions(ctx, eventlog.ListParams{Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("kind %q: got %d executions, want %d", kind, len(got), len(want))
		}
		for i := range want {
			if got[i].ID != want[i] {
				t.Fatalf("kind %q: got %s at %d, want %s", kind, got[i].ID, i, want[i])
			}
		}
	}
}
