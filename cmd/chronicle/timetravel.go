package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

func init() {
	commands = append(commands, (*app).queuesCmd)
}

// atFormats are the absolute forms --at accepts besides RFC 3339; times
// without a zone are UTC.
var atFormats = []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02 15:04", "2006-01-02"}

// parseAtFlag reads a moment: an RFC 3339 time (2025-06-01T12:00:00Z), a
// time without zone read as UTC (2025-06-01 12:00:00), or an age before
// now such as "90m ago" or "2d ago".
func parseAtFlag(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if age, ok := strings.CutSuffix(s, " ago"); ok {
		d, err := parseAgeFlag("at", strings.TrimSpace(age))
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, f := range atFormats {
		if t, err := time.ParseInLocation(f, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--at %q: want a time such as 2025-06-01T12:00:00Z, 2025-06-01 12:00:00 (UTC) or an age such as \"90m ago\" or \"2d ago\"", s)
}

// jobAt returns the job now, or as it was at the moment at names when at
// is not empty; asOf is that moment.
func jobAt(ctx context.Context, c *sdk.Client, id eventlog.ID, at string) (j sdk.Job, asOf *time.Time, err error) {
	if at == "" {
		j, err = c.Job(ctx, id)
		return j, nil, err
	}
	t, err := parseAtFlag(at, time.Now())
	if err != nil {
		return j, nil, err
	}
	j, err = c.JobAt(ctx, id, t)
	return j, &t, err
}

// printAsOf heads a job shown as of a past moment.
func (a *app) printAsOf(asOf *time.Time) {
	if asOf != nil {
		fmt.Fprintf(a.stdout, "As of %s (folded from the events recorded by then)\n", formatTime(*asOf))
	}
}

func (a *app) queuesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queues",
		Short: "Inspect queues: how many jobs wait, run, retry and are dead-lettered",
		Args:  cobra.NoArgs,
		RunE:  showHelp,
	}
	cmd.AddCommand(a.queuesStatsCmd())
	return cmd
}

func (a *app) queuesStatsCmd() *cobra.Command {
	var (
		at     string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "stats [--at TIME]",
		Short: "Count pending, running, retrying and dead-lettered jobs per queue and type, now or at a past moment",
		Long: `stats counts the jobs that are pending, running, retrying and dead-lettered,
per queue and job type. Without --at it reads the current projection; with
--at it computes the counts from the events, as they stood at that moment:
each job counts in the status its last status-changing event recorded at
or before TIME left it in.`,
		Example: `  chronicle queues stats
  chronicle queues stats --at 2025-06-01T03:00:00Z
  chronicle queues stats --at "2h ago" --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var t time.Time
			if at != "" {
				var err error
				if t, err = parseAtFlag(at, time.Now()); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			c, err := a.client(ctx, false)
			if err != nil {
				return err
			}
			defer c.Close()
			var stats []sdk.QueueStats
			if at == "" {
				stats, err = c.QueueStats(ctx)
			} else {
				stats, err = c.QueueStatsAt(ctx, t)
			}
			if err != nil {
				return err
			}
			if asJSON {
				if stats == nil {
					stats = []sdk.QueueStats{}
				}
				return writeJSON(a.stdout, stats)
			}
			if at != "" {
				fmt.Fprintf(a.stdout, "As of %s (computed from the events)\n", formatTime(t))
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "QUEUE\tTYPE\tPENDING\tRUNNING\tRETRYING\tDEAD_LETTERED")
			for _, s := range stats {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\n", s.Queue, s.Type, s.Pending, s.Running, s.Retrying, s.DeadLettered)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&at, "at", "", `count as of this moment: RFC 3339, "2025-06-01 12:00:00" (UTC), or "90m ago"`)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
