package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/examples/approval/approvalflow"
	"github.com/chronicle-engine/chronicle/sdk"
)

// TestWorkflowsResetAndTerminate resets a finished approval to its first
// workflow task from the CLI (the new run completes again), and
// terminates a waiting one with an actor and reason.
func TestWorkflowsResetAndTerminate(t *testing.T) {
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
	gctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	run, err := client.SignalWithStartWorkflow(ctx, "expense-reset", approvalflow.SignalDecision, approvalflow.Decision{Approved: true, Approver: "grace"},
		sdk.StartWorkflowOptions{}, approvalflow.Approval, approvalflow.Request{ID: "r", Amount: 5, Requester: "ada"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(gctx, nil); err != nil {
		t.Fatal(err)
	}
	c.fails("is not a WorkflowTaskCompleted", "workflows", "reset", "expense-reset", "--to-seq", "2")
	out := c.ok("workflows", "reset", "expense-reset", "--to-seq", "3", "--reason", "re-pay")
	if !strings.Contains(out, "new run") {
		t.Fatalf("reset output: %s", out)
	}
	newRun, err := client.GetWorkflow(ctx, "expense-reset", "")
	if err != nil || newRun.GetRunID() == run.GetRunID() {
		t.Fatalf("latest run %v %v", newRun, err)
	}
	if err := newRun.Get(gctx, nil); err != nil {
		t.Fatal(err)
	}

	waiting, err := client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "expense-term"}, approvalflow.Approval, approvalflow.Request{ID: "t", Amount: 5, Requester: "ada"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c.ok("workflows", "terminate", "expense-term", "--actor", "ops@example.com", "--reason", "duplicate")
	d, err := client.DescribeWorkflow(ctx, "expense-term", waiting.GetRunID())
	if err != nil || d.Status != engine.StatusWorkflowTerminated || !strings.Contains(d.LastError, "ops@example.com: duplicate") {
		t.Fatalf("after terminate: %+v %v", d, err)
	}
}
