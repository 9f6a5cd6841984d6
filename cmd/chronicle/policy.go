package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/sdk"
)

func init() {
	commands = append(commands, (*app).policyCmd)
}

func (a *app) policyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Try out retry policies against real job histories",
		Args:  cobra.NoArgs,
		RunE:  showHelp,
	}
	cmd.AddCommand(a.policySimulateCmd())
	return cmd
}

// simulationJSON is the --json form of a simulation.
type simulationJSON struct {
	Type  string `json:"type"`
	Since string `json:"since"`
	sdk.SimulationReport
}

func (a *app) policySimulateCmd() *cobra.Command {
	var (
		jobType, since, policy string
		asJSON                 bool
	)
	cmd := &cobra.Command{
		Use:   "simulate --type TYPE --policy JSON [--since 7d]",
		Short: "Replay real histories of a job type under a proposed retry policy, changing nothing",
		Long: `simulate replays the histories of the jobs of --type enqueued within --since
under the retry policy --policy, and reports how many would have succeeded
and been dead-lettered, and how the completion delay (from when a job was
first due to its success or dead-lettering) would change at p50 and p95.

The model: each attempt keeps its recorded outcome; attempts beyond the
policy's maximum_attempts do not happen; the delays between attempts follow
the policy (without jitter), while each attempt's wait for a worker and
its run time are as recorded. Attempts an operator started after a dead
letter count as the run's next attempts. A job that would need an attempt
no history records is "undetermined". Nothing is written.

--policy is JSON in the form jobs record it (chronicle jobs show ID --json
prints a job's): maximum_attempts, and either schedule (a list of
durations) or initial_interval, backoff_coefficient, maximum_interval and
jitter; non_retryable_error_types is optional.`,
		Example: `  chronicle policy simulate --type email.send --since 7d --policy '{"maximum_attempts": 6, "schedule": ["30s", "2m", "10m"]}'
  chronicle policy simulate --type webhook.deliver --policy '{"maximum_attempts": 3, "initial_interval": "10s", "backoff_coefficient": 3}' --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(jobType) == "" {
				return errors.New("--type is required: the job type whose histories to replay, such as email.send")
			}
			if strings.TrimSpace(policy) == "" {
				return errors.New(`--policy is required: the proposed retry policy as JSON, such as '{"maximum_attempts": 5, "schedule": ["1m", "5m"]}'`)
			}
			p, err := engine.ParseRetryPolicyJSON([]byte(policy))
			if err != nil {
				return fmt.Errorf("--policy: %w", err)
			}
			within, err := parseAgeFlag("since", since)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := a.client(ctx, false)
			if err != nil {
				return err
			}
			defer c.Close()
			rep, err := c.SimulateRetryPolicy(ctx, jobType, within, p)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, simulationJSON{Type: jobType, Since: since, SimulationReport: rep})
			}
			return a.printSimulation(jobType, since, rep)
		},
	}
	f := cmd.Flags()
	f.StringVar(&jobType, "type", "", "job type whose histories to replay (required)")
	f.StringVar(&since, "since", "7d", "replay jobs enqueued within this age, such as 24h, 7d or 1d12h")
	f.StringVar(&policy, "policy", "", "proposed retry policy as JSON (required)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) printSimulation(jobType, since string, r sdk.SimulationReport) error {
	fmt.Fprintf(a.stdout, "Replayed %s of type %s enqueued in the last %s (%d with failures", plural(r.Jobs, "job"), jobType, since, r.WithFailures)
	if r.Unfinished > 0 || r.Canceled > 0 {
		fmt.Fprintf(a.stdout, "; passed over %d unfinished and %d canceled", r.Unfinished, r.Canceled)
	}
	fmt.Fprintln(a.stdout, ")")
	fmt.Fprintf(a.stdout, "Proposed policy: %s\n\n", describePolicy(r.Policy))
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tACTUAL\tSIMULATED\tCHANGE")
	fmt.Fprintf(tw, "succeeded\t%d\t%d\t%+d\n", r.Actual.Succeeded, r.Simulated.Succeeded, r.Simulated.Succeeded-r.Actual.Succeeded)
	fmt.Fprintf(tw, "dead-lettered\t%d\t%d\t%+d\n", r.Actual.DeadLettered, r.Simulated.DeadLettered, r.Simulated.DeadLettered-r.Actual.DeadLettered)
	fmt.Fprintf(tw, "undetermined\t\t%d\t\n", r.Simulated.Undetermined)
	fmt.Fprintf(tw, "attempts\t%d\t%d\t%+d\n", r.ActualAttempts, r.SimulatedAttempts, r.SimulatedAttempts-r.ActualAttempts)
	fmt.Fprintf(tw, "p50 completion delay\t%s\t%s\t%s\n", roundDelay(r.ActualDelay.P50), roundDelay(r.SimulatedDelay.P50), signedDelay(r.DelayChange.P50))
	fmt.Fprintf(tw, "p95 completion delay\t%s\t%s\t%s\n", roundDelay(r.ActualDelay.P95), roundDelay(r.SimulatedDelay.P95), signedDelay(r.DelayChange.P95))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "\nsucceeded but would be dead-lettered: %d; dead-lettered but would succeed: %d\n", r.SucceededToDeadLettered, r.DeadLetteredToSucceeded)
	if r.Simulated.Undetermined > 0 {
		fmt.Fprintf(a.stdout, "undetermined: %s would need attempts that no history records; delays and attempts leave them out\n", plural(r.Simulated.Undetermined, "job"))
	}
	fmt.Fprintln(a.stdout, "Nothing was changed: the simulation only reads the histories.")
	return nil
}

func roundDelay(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func signedDelay(d time.Duration) string {
	if d < 0 {
		return "-" + roundDelay(-d)
	}
	return "+" + roundDelay(d)
}
