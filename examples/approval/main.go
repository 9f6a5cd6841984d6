// Approval runs the approval workflow twice on a real worker: one expense
// is approved by a signal while it waits (and is paid and notified), the
// other expires after its timeout. It queries the waiting workflow and
// prints each run's history.
//
//	go run ./examples/approval
//
// It uses the local PostgreSQL and NATS, or DATABASE_URL and NATS_URL.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/examples/approval/approvalflow"
	"github.com/chronicle-engine/chronicle/sdk"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, sdk.Config{}, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "approval:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg sdk.Config, out io.Writer) error {
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	client, err := sdk.NewClient(ctx, cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	if err := client.Migrate(ctx); err != nil {
		return err
	}
	approvalflow.Out = out
	worker, err := client.NewWorker(sdk.WorkerConfig{PollInterval: 200 * time.Millisecond})
	if err != nil {
		return err
	}
	for _, reg := range []error{worker.RegisterWorkflow(approvalflow.Approval), worker.RegisterActivity(approvalflow.Pay), worker.RegisterActivity(approvalflow.Notify)} {
		if reg != nil {
			return reg
		}
	}
	if err := worker.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = worker.Stop(sctx)
	}()
	suffix := eventlog.NewID(time.Now()).String()

	fmt.Fprintln(out, "expense A: waits up to 72h for a decision; an approver approves it")
	a := approvalflow.Request{ID: "A-" + suffix, Amount: 120, Requester: "ada@example.com"}
	runA, err := client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "expense-" + a.ID}, approvalflow.Approval, a, 72*time.Hour)
	if err != nil {
		return err
	}
	status, err := waitStatus(ctx, client, runA, "awaiting approval")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  query %q: %s\n", approvalflow.QueryStatus, status)
	if err := client.SignalWorkflow(ctx, runA.GetID(), "", approvalflow.SignalDecision, approvalflow.Decision{Approved: true, Approver: "grace"}); err != nil {
		return err
	}
	if err := report(ctx, client, runA, out); err != nil {
		return err
	}

	fmt.Fprintln(out, "expense B: waits up to 500ms; nobody decides")
	b := approvalflow.Request{ID: "B-" + suffix, Amount: 80, Requester: "linus@example.com"}
	runB, err := client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "expense-" + b.ID}, approvalflow.Approval, b, 500*time.Millisecond)
	if err != nil {
		return err
	}
	if err := report(ctx, client, runB, out); err != nil {
		return err
	}
	fmt.Fprintln(out, "both histories replay with this code: `chronicle replay RUN_ID` checks it from the CLI")
	return nil
}

// waitStatus polls the status query until the workflow has run far
// enough to answer want.
func waitStatus(ctx context.Context, c *sdk.Client, run sdk.WorkflowRun, want string) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := c.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), approvalflow.QueryStatus)
		var s string
		if err == nil && v.Get(&s) == nil && s == want {
			return s, nil
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("workflow %s did not reach %q: %v", run.GetID(), want, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func report(ctx context.Context, c *sdk.Client, run sdk.WorkflowRun, out io.Writer) error {
	gctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var result string
	if err := run.Get(gctx, &result); err != nil {
		return err
	}
	fmt.Fprintf(out, "  result: %s\n  history of run %s:\n", result, run.GetRunID())
	id, _ := eventlog.ParseID(run.GetRunID())
	events, err := c.History(ctx, id)
	if err != nil {
		return err
	}
	for _, e := range events {
		fmt.Fprintf(out, "    %2d %s %s\n", e.Seq, e.Type, e.Data)
	}
	return nil
}
