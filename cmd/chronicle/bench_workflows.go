package main

import (
	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/internal/bench"
)

// benchWorkflowCmds are the workflow scenarios of chronicle bench.
func (a *app) benchWorkflowCmds(env func() bench.Env) []*cobra.Command {
	var wc bench.WorkflowsConfig
	workflows := &cobra.Command{
		Use:   "workflows",
		Short: "Start N workflows of 3 sequential no-op activities while a worker runs them; reports workflows/s end to end and events per workflow",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := bench.Workflows(cmd.Context(), env(), wc)
			if err != nil {
				return err
			}
			return a.printJSONLine(res)
		},
	}
	workflows.Flags().IntVar(&wc.Workflows, "workflows", 3000, "workflows to start and run")
	workflows.Flags().IntVar(&wc.Concurrency, "concurrency", 100, "tasks the worker runs at once")
	var rc bench.ReplayConfig
	replay := &cobra.Command{
		Use:   "replay",
		Short: "Replay a long workflow history from scratch, as a cache miss does; reports the median time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := bench.Replay(cmd.Context(), env(), rc)
			if err != nil {
				return err
			}
			return a.printJSONLine(res)
		},
	}
	replay.Flags().IntVar(&rc.Events, "events", 10000, "events in the history")
	replay.Flags().IntVar(&rc.Runs, "runs", 20, "replays to time")
	return []*cobra.Command{workflows, replay}
}
