package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/examples/approval/approvalflow"
	"github.com/chronicle-engine/chronicle/sdk"
)

// TestHistoryAndReplay runs the approval workflow, exports its history
// with chronicle history --json, and replays it from the database and from
// the file; a file whose recorded activity differs from the code fails
// with the non-determinism error.
func TestHistoryAndReplay(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := context.Background()
	client, err := sdk.NewClient(ctx, sdk.Config{Pool: c.pool, DisableNATS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	w, err := client.NewWorker(sdk.WorkerConfig{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := registerDemoWorkflows(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = w.Stop(sctx)
	}()
	run, err := client.SignalWithStartWorkflow(ctx, "expense-cli", approvalflow.SignalDecision, approvalflow.Decision{Approved: true, Approver: "grace"},
		sdk.StartWorkflowOptions{}, approvalflow.Approval, approvalflow.Request{ID: "cli", Amount: 5, Requester: "ada"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := run.Get(gctx, nil); err != nil {
		t.Fatal(err)
	}

	out := c.ok("history", "expense-cli")
	for _, want := range []string{"WorkflowStarted", "SignalReceived", "ActivityScheduled", "WorkflowCompleted"} {
		if !strings.Contains(out, want) {
			t.Fatalf("history lacks %s:\n%s", want, out)
		}
	}
	file := filepath.Join(t.TempDir(), "approval.json")
	if err := os.WriteFile(file, []byte(c.ok("history", run.GetRunID(), "--json")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := c.ok("replay", run.GetRunID()); !strings.Contains(out, "replayed workflow Approval") || !strings.Contains(out, ": OK") {
		t.Fatalf("replay: %s", out)
	}
	if out := c.ok("replay", "--file", file); !strings.Contains(out, ": OK") {
		t.Fatalf("replay --file: %s", out)
	}

	// A history recorded by code that called another activity.
	b, _ := os.ReadFile(file)
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(strings.Replace(string(b), `"activity_type": "Pay"`, `"activity_type": "Refund"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	res := c.run("replay", "--file", bad)
	if res.code != 1 || !strings.Contains(res.stdout, "history has ActivityScheduled(Refund, id 2), code issued ActivityScheduled(Pay, id 2)") {
		t.Fatalf("replay of a changed history: %s", res)
	}
	c.fails("neither an execution ID", "replay", "no-such-workflow")
}
