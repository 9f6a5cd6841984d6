package main

import (
	"context"
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
		Short: "Work the dead-letter queue: list, show, retry, resolve and clean up dead-lettered jobs",
		Args:  cobra.NoArgs,
		RunE:  showHelp,
	}
	cmd.AddCommand(a.dlqListCmd(), a.dlqShowCmd(), a.dlqRetryCmd(), a.dlqResolveCmd(), a.dlqCleanupCmd())
	return cmd
}

func (a *app) dlqListCmd() *cobra.Command {
	var (
		filter dlqFilterFlags
		limit  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead-lettered jobs with their last error, oldest first",
		Example: `  chronicle dlq list --type email.send --error "mailbox unavailable"
  chronicle dlq list --queue webhooks --older-than 7d --json`,
		Args: cobra.NoArgs,
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
			f, err := filter.filter()
			if err != nil {
				return err
			}
			f.Limit = limit
			jobs, err := c.ListDeadLetters(ctx, f)
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
	filter.add(cmd, false)
	f := cmd.Flags()
	f.IntVar(&limit, "limit", 100, "at most this many jobs")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) dlqRetryCmd() *cobra.Command {
	var note, actor string
	var filter dlqFilterFlags
	var dryRun, yes, asJSON bool
	cmd := &cobra.Command{
		Use:   "retry [ID | filter flags]",
		Short: "Re-queue a dead-lettered job, or every one a filter matches, with a fresh attempt budget",
		Example: `  chronicle dlq retry 01JDQ3Z6V5N8G1Y1Y6Q9W4T2XH --note "SMTP credentials rotated"
  chronicle dlq retry --type email.send --error "smtp 421" --dry-run
  chronicle dlq retry --type email.send --error "smtp 421" --note "relay is back" --yes`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return a.dlqBulk(cmd.Context(), &filter, "retry", "retried", dryRun, yes, asJSON,
					func(ctx context.Context, c *sdk.Client, f sdk.DeadLetterFilter, opts sdk.BulkOptions) (sdk.BulkResult, error) {
						return c.RetryDeadLetters(ctx, f, actor, note, opts)
					})
			}
			if filter.set() || dryRun {
				return errBothIDAndFilter
			}
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
	addBulkFlags(cmd, &filter, &dryRun, &yes, &asJSON)
	return cmd
}

func (a *app) dlqResolveCmd() *cobra.Command {
	var notes, actor string
	var filter dlqFilterFlags
	var dryRun, yes, asJSON bool
	cmd := &cobra.Command{
		Use:   "resolve [ID | filter flags] --notes NOTES",
		Short: "Close a dead-lettered job, or every one a filter matches, without retrying it",
		Example: `  chronicle dlq resolve 01JDQ3Z6V5N8G1Y1Y6Q9W4T2XH --notes "customer deleted their account"
  chronicle dlq resolve --queue webhooks --older-than 30d --notes "endpoint retired" --dry-run`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(notes) == "" {
				return errors.New("--notes is required: say why the dead letter is closed without a retry")
			}
			if len(args) == 0 {
				return a.dlqBulk(cmd.Context(), &filter, "resolve", "resolved", dryRun, yes, asJSON,
					func(ctx context.Context, c *sdk.Client, f sdk.DeadLetterFilter, opts sdk.BulkOptions) (sdk.BulkResult, error) {
						return c.ResolveDeadLetters(ctx, f, actor, notes, opts)
					})
			}
			if filter.set() || dryRun {
				return errBothIDAndFilter
			}
			id, err := parseID(args[0])
			if err != nil {
				return err
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
	addBulkFlags(cmd, &filter, &dryRun, &yes, &asJSON)
	return cmd
}
