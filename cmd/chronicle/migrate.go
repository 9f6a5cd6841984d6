package main

import (
	"context"
	"fmt"
	"path"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/migrations"
)

func (a *app) migrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the embedded schema migrations and create the built-in cleanup schedules (safe to repeat)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withPool(cmd.Context(), func(pool *pgxpool.Pool) error {
				res, err := migrations.Up(cmd.Context(), pool)
				for _, r := range res {
					if r.Error == nil {
						fmt.Fprintf(a.stdout, "applied %s (%s)\n", path.Base(r.Source.Path), r.Duration.Round(time.Millisecond))
					}
				}
				if err != nil {
					return err
				}
				if len(res) == 0 {
					fmt.Fprintln(a.stdout, "already up to date")
				}
				return a.createDefaultSchedules(cmd.Context()) // built-in cleanup schedules: schedules.go
			})
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "List each migration and whether it is applied",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withPool(cmd.Context(), func(pool *pgxpool.Pool) error {
				st, err := migrations.Status(cmd.Context(), pool)
				if err != nil {
					return fmt.Errorf("migration status: %w", err)
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "MIGRATION\tSTATE\tAPPLIED_AT")
				for _, s := range st {
					at := ""
					if !s.AppliedAt.IsZero() {
						at = formatTime(s.AppliedAt)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", path.Base(s.Source.Path), s.State, at)
				}
				return tw.Flush()
			})
		},
	})
	return cmd
}

// withPool runs fn with the connection pool of a client: migrations work
// on the database directly, below the event log.
func (a *app) withPool(ctx context.Context, fn func(*pgxpool.Pool) error) error {
	c, err := a.client(ctx, false)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c.Pool())
}
