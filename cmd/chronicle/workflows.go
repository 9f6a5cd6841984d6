package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/examples/approval/approvalflow"
	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

func init() {
	commands = append(commands, (*app).historyCmd, (*app).replayCmd)
}

// cliWorkflows are the workflows this binary knows: `chronicle worker`
// runs them and `chronicle replay` replays their histories. A program of
// your own registers its workflows with workflow.NewReplayer the same way.
var cliWorkflows = []any{approvalflow.Approval}

// cliActivities are the activities of cliWorkflows.
var cliActivities = []any{approvalflow.Pay, approvalflow.Notify}

// registerDemoWorkflows gives the CLI's worker the workflows of cliWorkflows.
func registerDemoWorkflows(w *sdk.Worker) error {
	for _, wf := range cliWorkflows {
		if err := w.RegisterWorkflow(wf); err != nil {
			return err
		}
	}
	for _, a := range cliActivities {
		if err := w.RegisterActivity(a); err != nil {
			return err
		}
	}
	return nil
}

// loadHistory reads the history of an execution named by its ID, or of the
// latest run of a workflow ID.
func (a *app) loadHistory(ctx context.Context, ref string) ([]eventlog.Event, error) {
	c, err := a.client(ctx, false)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	store := c.Engine().Store()
	id, perr := eventlog.ParseID(ref)
	if perr != nil {
		row, err := store.LatestRun(ctx, ref)
		if errors.Is(err, eventlog.ErrNotFound) {
			return nil, fmt.Errorf("%q is neither an execution ID (a 26-character ULID) nor a workflow ID with a run", ref)
		}
		if err != nil {
			return nil, err
		}
		id = row.ID
	}
	events, err := store.History(ctx, id)
	if errors.Is(err, eventlog.ErrNotFound) {
		return nil, fmt.Errorf("execution %s %w", id, sdk.ErrNotFound)
	}
	return events, err
}

func (a *app) historyCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history ID",
		Short: "Print or export the event history of a workflow run or job",
		Long: `history prints every event of an execution, oldest first. ID is an execution
ID (a workflow's run ID or a job's ID) or a workflow ID, which names its
latest run. With --json it writes the history file that chronicle replay
--file and workflow.Replayer read.`,
		Example: `  chronicle history 01JDQ3Z6V5N8G1Y1Y6Q9W4T2XH --json > order.json
  chronicle history expense-A-17`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			events, err := a.loadHistory(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				b, err := eventlog.MarshalHistory(events)
				if err != nil {
					return err
				}
				_, err = a.stdout.Write(b)
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tRECORDED_AT\tTYPE\tDATA")
			for _, e := range events {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", e.Seq, formatTime(e.RecordedAt), e.Type, e.Data)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "write the history file (JSON) instead of a table")
	return cmd
}

func (a *app) replayCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "replay [ID] [--file FILE]",
		Short: "Replay a workflow history against the workflow code in this binary",
		Long: `replay re-runs a workflow's recorded history through the workflow code
registered in this binary (the example workflows; a program of your own
does the same with workflow.Replayer) and checks that the code issues the
recorded commands. It exits with status 1 and names the first event where
the code departs from the history when it does not.

ID is a run ID or a workflow ID (its latest run); --file reads a history
written by chronicle history ID --json instead of the database.`,
		Example: `  chronicle replay 01JDQ3Z6V5N8G1Y1Y6Q9W4T2XH
  chronicle replay --file order.json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (file == "") == (len(args) == 0) {
				return errors.New("give either a run ID or --file FILE")
			}
			var events []eventlog.Event
			var err error
			if file != "" {
				var b []byte
				if b, err = os.ReadFile(file); err == nil {
					events, err = eventlog.UnmarshalHistory(b)
				}
			} else {
				events, err = a.loadHistory(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			if len(events) == 0 || events[0].Type != engine.EventWorkflowStarted {
				return errors.New("the history is not a workflow's: its first event is not WorkflowStarted")
			}
			var started engine.WorkflowStarted
			if err := events[0].Decode(&started); err != nil {
				return err
			}
			r := workflow.NewReplayer()
			for _, wf := range cliWorkflows {
				if err := r.RegisterWorkflow(wf); err != nil {
					return err
				}
			}
			if err := r.ReplayWorkflowHistory(events); err != nil {
				fmt.Fprintf(a.stdout, "replay of workflow %s (run %s, %d events) failed: %v\n", started.Type, events[0].ExecutionID, len(events), err)
				return &exitError{code: 1}
			}
			fmt.Fprintf(a.stdout, "replayed workflow %s (run %s, %d events): OK\n", started.Type, events[0].ExecutionID, len(events))
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "history file written by chronicle history ID --json")
	return cmd
}
