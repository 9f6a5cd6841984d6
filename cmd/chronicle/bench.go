package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/internal/bench"
)

func (a *app) benchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure Chronicle on this machine",
		Long: `bench runs a scenario in a schema of its own (created and dropped by the run),
prints progress to stderr and, last, one JSON line with its figures to stdout.`,
		Args: cobra.NoArgs,
		RunE: showHelp,
	}
	env := func() bench.Env {
		return bench.Env{DatabaseURL: a.databaseURL, NATSURL: a.natsURL, Progress: a.stderr}
	}
	var bd bench.BurndownConfig
	burndown := &cobra.Command{
		Use:   "burndown",
		Short: "Enqueue N no-op jobs in bulk, then work them off; reports jobs/s, events and WAL bytes per job",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := bench.Burndown(cmd.Context(), env(), bd)
			if err != nil {
				return err
			}
			return a.printJSONLine(res)
		},
	}
	burndown.Flags().IntVar(&bd.Jobs, "jobs", 20000, "jobs to enqueue and work")
	burndown.Flags().IntVar(&bd.Concurrency, "concurrency", 100, "jobs the worker runs at once")
	burndown.Flags().IntVar(&bd.ClaimBatch, "claim-batch", 100, "jobs leased per claim")

	var lc bench.LatencyConfig
	latency := &cobra.Command{
		Use:   "latency",
		Short: "Enqueue jobs one at a time at a steady rate to an idle worker; reports enqueue-to-start percentiles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := bench.Latency(cmd.Context(), env(), lc)
			if err != nil {
				return err
			}
			return a.printJSONLine(res)
		},
	}
	latency.Flags().IntVar(&lc.Jobs, "jobs", 1000, "jobs to enqueue")
	latency.Flags().Float64Var(&lc.Rate, "rate", 100, "jobs enqueued per second")
	latency.Flags().DurationVar(&lc.PollInterval, "poll", 0, "worker poll interval (default: 30s, so that wakeups are what is measured)")
	cmd.AddCommand(burndown, latency, a.benchInflightCmd())
	cmd.AddCommand(a.benchWorkflowCmds(env)...)
	return cmd
}

func (a *app) benchInflightCmd() *cobra.Command {
	var cfg bench.InflightConfig
	cmd := &cobra.Command{
		Use:   "inflight",
		Short: "Hold N running jobs in one worker through lease heartbeats; reports resident memory and goroutines",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := bench.Inflight(cmd.Context(), bench.Env{DatabaseURL: a.databaseURL, NATSURL: a.natsURL, Progress: a.stderr}, cfg)
			if err != nil {
				return err
			}
			return a.printJSONLine(res)
		},
	}
	cmd.Flags().IntVar(&cfg.Jobs, "jobs", 10000, "jobs running at once")
	return cmd
}

func (a *app) printJSONLine(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(a.stdout, string(b))
	return err
}
