package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/sdk"
)

func (a *app) dlqCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Work the dead-letter queue: list, retry and resolve dead-lettered jobs",
		Args:  cobra.NoArgs,
		RunE:  showHelp,
	}
	cmd.AddCommand(a.dlqListCmd(), a.dlqRetryCmd(), a.dlqResolveCmd())
	return cmd
}

func (a *app) dlqListCmd() *cobra.Command {
	var (
		types  []string
		queue  string
		limit  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead-lettered jobs with their last error, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return fmt.Errorf("--limit is %d; want 1 or more", limit)
			}
			ctx := cmd.Context()
			c, err := a.client(ctx, false)
			if err != nil {
				return err
			}
			defer c.Close()
			jobs, err := c.ListJobs(ctx, sdk.JobFilter{Statuses: []sdk.Status{sdk.StatusDeadLettered}, Types: types, Queue: queue, Limit: limit})
			if err != nil {
				return err
			}
			if asJSON {
				return a.writeJobsJSON(jobs)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTYPE\tQUEUE\tATTEMPTS\tDEAD_SINCE\tLAST_ERROR")
			for _, j := range jobs {
				// The dead-lettering is the job's last event.
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", j.ID, j.Type, j.Queue, j.AttemptsInBudget(), formatTime(j.UpdatedAt), oneLine(j.LastError, 80))
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&types, "type", nil, "only dead letters of these types")
	f.StringVar(&queue, "queue", "", "only dead letters of this queue")
	f.IntVar(&limit, "limit", 100, "at most this many jobs")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) dlqRetryCmd() *cobra.Command {
	var note, actor string
	cmd := &cobra.Command{
		Use:   "retry ID",
		Short: "Re-queue a dead-lettered job with a fresh attempt budget",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := a.client(ctx, true)
			if err != nil {
				return err
			}
			defer c.Close()
			j, err := c.RetryDeadLetter(ctx, id, actor, note)
			if err != nil {
				return notFound(id, err)
			}
			fmt.Fprintf(a.stdout, "re-queued job %s on queue %s\n", j.ID, j.Queue)
			return nil
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "why it is retried, recorded in the event")
	cmd.Flags().StringVar(&actor, "actor", defaultActor(), "who retries it, recorded in the event")
	return cmd
}

func (a *app) dlqResolveCmd() *cobra.Command {
	var notes, actor string
	cmd := &cobra.Command{
		Use:   "resolve ID --notes NOTES",
		Short: "Close a dead-lettered job without retrying it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			if strings.TrimSpace(notes) == "" {
				return errors.New("--notes is required: say why the dead letter is closed without a retry")
			}
			ctx := cmd.Context()
			c, err := a.client(ctx, false)
			if err != nil {
				return err
			}
			defer c.Close()
			j, err := c.ResolveDeadLetter(ctx, id, actor, notes)
			if err != nil {
				return notFound(id, err)
			}
			fmt.Fprintf(a.stdout, "resolved job %s\n", j.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&notes, "notes", "", "why the job is closed without a retry (required)")
	cmd.Flags().StringVar(&actor, "actor", defaultActor(), "who resolves it, recorded in the event")
	return cmd
}
