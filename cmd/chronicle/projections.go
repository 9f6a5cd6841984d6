package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) projectionsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "projections",
		Short: "Manage the tables derived from the event log",
		Args:  cobra.NoArgs,
		RunE:  showHelp,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "rebuild",
		Short: "Recreate the executions and tasks tables from the events",
		Long: `rebuild replaces every projection row with what folding its history gives, in
one transaction. Leases extended by heartbeats fall back to the expiry
recorded at the claim, so stop workers first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.client(ctx, false)
			if err != nil {
				return err
			}
			defer c.Close()
			n, err := c.Engine().RebuildProjections(ctx)
			if err != nil {
				return fmt.Errorf("rebuild projections: %w", err)
			}
			fmt.Fprintf(a.stdout, "rebuilt projections of %d executions\n", n)
			return nil
		},
	})
	return cmd
}
