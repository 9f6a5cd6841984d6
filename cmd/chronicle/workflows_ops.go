package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/eventlog"
)

func init() {
	commands = append(commands, (*app).workflowsCmd)
}

// workflowsCmd groups operator actions on workflow runs.
func (a *app) workflowsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "workflows",
		Short: "Operate on workflow runs: reset, terminate",
	}
	cmd.AddCommand(a.workflowResetCmd(), a.workflowTerminateCmd())
	return cmd
}

// splitRunRef reads ID as a run ID, else as a workflow ID (its latest run).
func splitRunRef(ref string) (workflowID, runID string) {
	if _, err := eventlog.ParseID(ref); err == nil {
		return "", ref
	}
	return ref, ""
}

func (a *app) workflowResetCmd() *cobra.Command {
	var toSeq int64
	var actor, reason string
	cmd := &cobra.Command{
		Use:   "reset ID --to-seq N",
		Short: "Reset a workflow run to an earlier workflow task",
		Long: `reset starts a new run of the workflow whose history is a copy of the run's
events before event N, which must be one of its WorkflowTaskCompleted events
(chronicle history ID lists them), and runs that workflow task again with the
code deployed now: activities completed before N are not run again, those
after it are. The workflow's running run, if any, is terminated. ID is a run
ID, or a workflow ID for its latest run.`,
		Example: `  chronicle history order-17
  chronicle workflows reset order-17 --to-seq 9 --reason "charge step fixed in v1.4"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if toSeq <= 0 {
				return fmt.Errorf("--to-seq is required: the seq of a WorkflowTaskCompleted event (see chronicle history %s)", args[0])
			}
			c, err := a.client(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer c.Close()
			wid, rid := splitRunRef(args[0])
			run, err := c.ResetWorkflow(cmd.Context(), wid, rid, toSeq, actor, reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "reset %s to event %s: new run %s\n", run.GetID(), strconv.FormatInt(toSeq, 10), run.GetRunID())
			return nil
		},
	}
	cmd.Flags().Int64Var(&toSeq, "to-seq", 0, "seq of the WorkflowTaskCompleted event to reset to (required)")
	cmd.Flags().StringVar(&actor, "actor", defaultActor(), "who resets it, recorded in the events")
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded in the events")
	return cmd
}

func (a *app) workflowTerminateCmd() *cobra.Command {
	var actor, reason string
	cmd := &cobra.Command{
		Use:   "terminate ID",
		Short: "End a workflow run at once, without running its code",
		Long: `terminate records WorkflowTerminated with the actor and reason: the run's
activities lose their leases, its timers are dropped and its children are
handled by their parent-close policies. ID is a run ID, or a workflow ID for
its latest run.`,
		Example: `  chronicle workflows terminate order-17 --reason "duplicate order"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer c.Close()
			wid, rid := splitRunRef(args[0])
			if err := c.TerminateWorkflowBy(cmd.Context(), wid, rid, actor, reason); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "terminated %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&actor, "actor", defaultActor(), "who terminates it, recorded in the event")
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded in the event")
	return cmd
}
