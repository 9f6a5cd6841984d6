package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/sdk"
)

func init() { commands = append(commands, (*app).auditCmd) }

func (a *app) auditCmd() *cobra.Command {
	var (
		since, actor string
		actions      []string
		limit        int
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List operator actions (retry, resolve, cancel, schedule changes) with who and why",
		Long: `audit lists the operator actions recorded in the event log: every event whose
data names an actor, such as JobRetried, JobResolved, JobCanceled and the
schedule commands, with the actor and the reason, note or notes they gave.
It reads the events table directly; nothing is kept twice.`,
		Example: `  chronicle audit --since 24h
  chronicle audit --since 7d --actor alice@ops --json
  chronicle audit --action JobResolved,JobRetried`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			window, err := parseAgeFlag("since", since)
			if err != nil {
				return err
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
			entries, err := c.Audit(ctx, sdk.AuditFilter{Since: window, Actions: actions, Actor: actor, Limit: limit})
			if err != nil {
				return err
			}
			if asJSON {
				if entries == nil {
					entries = []sdk.AuditEntry{}
				}
				return writeJSON(a.stdout, entries)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "AT\tACTION\tACTOR\tEXECUTION\tTYPE\tREASON")
			for _, e := range entries {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", formatTime(e.At), e.Action, e.Actor, e.ExecutionID, e.Type, oneLine(e.Reason, 80))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(entries) == limit {
				fmt.Fprintf(a.stderr, "showing the %d most recent actions; raise --limit or narrow --since for more\n", limit)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "24h", "how far back to look, such as 90m, 24h or 7d")
	f.StringVar(&actor, "actor", "", "only actions of this actor")
	f.StringSliceVar(&actions, "action", nil, "only these event types, such as JobResolved")
	f.IntVar(&limit, "limit", sdk.DefaultAuditLimit, "at most this many actions, the most recent")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
