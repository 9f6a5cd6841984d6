package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/internal/chaos"
)

func init() { commands = append(commands, (*app).chaosCmd) }

func (a *app) chaosCmd() *cobra.Command {
	var (
		scenarios []string
		duration  time.Duration
		settle    time.Duration
		seed      int64
		long      bool
		keep      bool
		updateDoc string
	)
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Run the reliability scenarios (kill -9, stale workers, database cuts, NATS loss, SQL faults, poison) and check every promise",
		Long: `chaos runs named fault scenarios against the database and NATS, each in a
schema of its own that it drops afterwards, with worker processes that are
this binary re-executed (chronicle chaos worker). It prints, per scenario,
the operations, faults injected, jobs lost, duplicate successes, duplicate
effects and the verify result, and exits with status 1 when any promise of
docs/guarantees.md is broken, naming the seed that reproduces the run.

Scenarios: ` + strings.Join(chaos.Names(), ", ") + `.`,
		Example: `  chronicle chaos                               # every scenario, short form
  chronicle chaos --scenario kill9 --duration 10m
  chronicle chaos --scenario all --duration 2m --update-doc docs/guarantees.md
  chronicle chaos --scenario pgcut --seed 1795914170976891587`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find this binary to start worker processes: %w", err)
			}
			if seed == 0 {
				seed = time.Now().UnixNano() // one seed for the whole run, printed with the results
			}
			list, err := chaos.Lookup(scenarios, long)
			if err != nil {
				return err
			}
			cfg := chaos.Config{DatabaseURL: a.databaseURL, NATSURL: a.natsURL, Duration: duration, Settle: settle, Seed: seed, KeepSchema: keep,
				Command: func() *exec.Cmd { return exec.Command(exe, "chaos", "worker") }}
			var results []*chaos.Result
			failed := false
			for _, s := range list {
				fmt.Fprintf(a.stderr, "running %s: %s\n", s.Name, s.Promise)
				r, err := chaos.Run(cmd.Context(), cfg, s)
				if r == nil {
					return err
				}
				results = append(results, r)
				if err != nil {
					failed = true
					if !errors.Is(err, chaos.ErrViolation) {
						fmt.Fprintln(a.stderr, "Error:", err)
					}
				}
			}
			chaos.Print(a.stdout, results)
			if updateDoc != "" {
				line := "chronicle chaos --scenario " + strings.Join(scenarios, ",") + " --duration " + durationOrDefault(duration).String()
				if err := chaos.UpdateDoc(updateDoc, chaos.MarkdownTable(results, time.Now(), line)); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "updated the results table of %s\n", updateDoc)
			}
			if failed {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&scenarios, "scenario", []string{"all"}, "scenarios to run, comma-separated, or all: "+strings.Join(chaos.Names(), ", "))
	f.DurationVar(&duration, "duration", chaos.DefaultDuration, "how long each scenario injects faults")
	f.DurationVar(&settle, "settle", chaos.DefaultSettle, "how long to wait, after the faults, for every job to finish before counting it lost")
	f.Int64Var(&seed, "seed", 0, "seed of the random choices; 0 picks one (printed with the results)")
	f.BoolVar(&long, "long", false, "include the scenarios that only run in the long form")
	f.BoolVar(&keep, "keep-schema", false, "keep each scenario's schema for inspection instead of dropping it")
	f.StringVar(&updateDoc, "update-doc", "", "write the results table into this Markdown file between its chaos-results markers (docs/guarantees.md)")
	cmd.AddCommand(&cobra.Command{
		Use:    "worker",
		Short:  "Run one worker process of the chaos harness (started by chronicle chaos, configured by its environment)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if !chaos.IsWorker() {
				return errors.New("chronicle chaos worker is started by chronicle chaos, which sets CHRONICLE_CHAOS_WORKER=1 and the rest of its environment")
			}
			return chaos.RunWorkerFromEnv()
		},
	})
	return cmd
}

func durationOrDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return chaos.DefaultDuration
	}
	return d
}
