package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/engine"
)

// verifyProgressEvery is how many executions pass between progress lines.
const verifyProgressEvery = 1000

func (a *app) verifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check every history's hash chain and that the projections agree with it",
		Long: `verify folds every execution's history, checks its hash chain and compares
the result with the projection rows. It prints each problem on its own line
and exits with status 1 when there is any.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.client(ctx, false)
			if err != nil {
				return err
			}
			defer c.Close()
			printed := 0
			report := func(r *engine.VerifyReport) {
				for _, p := range r.Problems[printed:] {
					fmt.Fprintln(a.stdout, p)
				}
				printed = len(r.Problems)
			}
			r, err := c.Engine().Verify(ctx, func(r *engine.VerifyReport) {
				report(r)
				if r.Executions%verifyProgressEvery == 0 {
					fmt.Fprintf(a.stderr, "verified %d executions, %d events, %d problems so far\n", r.Executions, r.Events, len(r.Problems))
				}
			})
			if err != nil {
				return fmt.Errorf("verify (after %d executions): %w", r.Executions, err)
			}
			report(r)
			if r.OK() {
				fmt.Fprintf(a.stdout, "verified %d executions, %d events: OK\n", r.Executions, r.Events)
				return nil
			}
			fmt.Fprintf(a.stdout, "verified %d executions, %d events: %s\n", r.Executions, r.Events, plural(len(r.Problems), "problem"))
			return &exitError{code: 1}
		},
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
