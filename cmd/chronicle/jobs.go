package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

var allStatuses = []sdk.Status{sdk.StatusPending, sdk.StatusRunning, sdk.StatusRetrying, sdk.StatusSucceeded,
	sdk.StatusDeadLettered, sdk.StatusResolved, sdk.StatusCanceled}

func (a *app) jobsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List, show, trace and cancel jobs",
		Args:  cobra.NoArgs,
		RunE:  showHelp,
	}
	cmd.AddCommand(a.jobsListCmd(), a.jobsShowCmd(), a.jobsHistoryCmd(), a.jobsCancelCmd())
	return cmd
}

func (a *app) jobsListCmd() *cobra.Command {
	var (
		statuses, types []string
		queue           string
		limit           int
		asJSON          bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, oldest first",
		Example: `  chronicle jobs list --status pending,retrying --queue emails
  chronicle jobs list --type webhook.deliver --limit 20 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := sdk.JobFilter{Types: types, Queue: queue, Limit: limit}
			for _, s := range statuses {
				st := sdk.Status(strings.TrimSpace(s))
				if !slices.Contains(allStatuses, st) {
					return fmt.Errorf("--status %q: want one of %s", s, joinStatuses())
				}
				f.Statuses = append(f.Statuses, st)
			}
			if limit < 1 {
				return fmt.Errorf("--limit is %d; want 1 or more", limit)
			}
			ctx := cmd.Context()
			c, err := a.client(ctx, false)
			if err != nil {
				return err
			}
			defer c.Close()
			jobs, err := c.ListJobs(ctx, f)
			if err != nil {
				return err
			}
			if asJSON {
				return a.writeJobsJSON(jobs)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTYPE\tQUEUE\tSTATUS\tATTEMPT\tRUN_AT\tLAST_ERROR")
			for _, j := range jobs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", j.ID, j.Type, j.Queue, j.Status,
					j.AttemptsInBudget(), j.RetryPolicy.WithDefaults().MaximumAttempts, formatTime(j.RunAt), oneLine(j.LastError, 60))
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&statuses, "status", nil, "only jobs in these statuses: "+joinStatuses())
	fl.StringSliceVar(&types, "type", nil, "only jobs of these types")
	fl.StringVar(&queue, "queue", "", "only jobs of this queue")
	fl.IntVar(&limit, "limit", 100, "at most this many jobs")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func joinStatuses() string {
	s := make([]string, len(allStatuses))
	for i, st := range allStatuses {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

func (a *app) writeJobsJSON(jobs []sdk.Job) error {
	out := make([]jobJSON, len(jobs))
	for i, j := range jobs {
		out[i] = toJSON(j)
	}
	return writeJSON(a.stdout, out)
}

// parseID reads a job ID argument.
func parseID(s string) (eventlog.ID, error) { return eventlog.ParseID(s) }

// notFound rewrites the store's not-found error to name the job as the
// user gave it, keeping errors.Is(err, sdk.ErrNotFound).
func notFound(id eventlog.ID, err error) error {
	if errors.Is(err, sdk.ErrNotFound) {
		return fmt.Errorf("job %s %w", id, sdk.ErrNotFound)
	}
	return err
}

func (a *app) jobsShowCmd() *cobra.Command {
	var asJSON bool
	var at string
	cmd := &cobra.Command{
		Use:   "show ID [--at TIME]",
		Short: "Show a job's current state, or its state at a past moment",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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
			j, asOf, err := jobAt(ctx, c, id, at) // time travel: timetravel.go
			if err != nil {
				return notFound(id, err)
			}
			if asJSON {
				return writeJSON(a.stdout, toJSON(j))
			}
			a.printAsOf(asOf)
			return a.printJob(j)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&at, "at", "", `show the job as it was at this moment: RFC 3339, "2025-06-01 12:00:00" (UTC), or "90m ago"`)
	return cmd
}

func (a *app) printJob(j sdk.Job) error {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	p := j.RetryPolicy.WithDefaults()
	row("ID", j.ID.String())
	row("Type", j.Type)
	row("Queue", j.Queue)
	row("Priority", string(j.Priority))
	row("Status", string(j.Status))
	row("Attempt", fmt.Sprintf("%d of %d in the current budget (%d in all)", j.AttemptsInBudget(), p.MaximumAttempts, j.Attempt))
	row("Retry policy", describePolicy(j.RetryPolicy))
	row("Run at", formatTime(j.RunAt))
	row("Worker", j.WorkerID)
	row("Lease expires", formatTimePtr(j.LeaseExpiresAt))
	row("Created", formatTime(j.CreatedAt))
	row("Updated", formatTime(j.UpdatedAt))
	row("Finished", formatTimePtr(j.FinishedAt))
	row("Idempotency key", j.IdempotencyKey)
	row("Events", fmt.Sprint(j.Seq))
	row("Payload", string(j.Payload))
	if err := tw.Flush(); err != nil {
		return err
	}
	// The last error may span lines (a panic's stack): print it whole, last.
	if j.LastError != "" {
		fmt.Fprintf(a.stdout, "Last error:\n  %s\n", strings.ReplaceAll(j.LastError, "\n", "\n  "))
	}
	return nil
}

func (a *app) jobsHistoryCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history ID",
		Short: "Print every event of a job, oldest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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
			events, err := c.History(ctx, id)
			if err != nil {
				return notFound(id, err)
			}
			return a.printHistory(events, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) jobsCancelCmd() *cobra.Command {
	var reason, actor string
	cmd := &cobra.Command{
		Use:   "cancel ID --reason REASON",
		Short: "Cancel a job that has not finished",
		Long: `cancel stops a job that has not finished. A running attempt loses its lease:
its handler's context is canceled at the worker's next heartbeat and its
result is not recorded.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			if strings.TrimSpace(reason) == "" {
				return errors.New("--reason is required: say why the job is canceled")
			}
			ctx := cmd.Context()
			c, err := a.client(ctx, true)
			if err != nil {
				return err
			}
			defer c.Close()
			j, err := c.Cancel(ctx, id, actor, reason)
			if err != nil {
				return notFound(id, err)
			}
			fmt.Fprintf(a.stdout, "canceled job %s\n", j.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the job is canceled (required)")
	cmd.Flags().StringVar(&actor, "actor", defaultActor(), "who cancels it, recorded in the event")
	return cmd
}
