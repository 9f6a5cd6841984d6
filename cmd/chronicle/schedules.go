package main

import (
	"context"
	"encoding/json"
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
	commands = append(commands, (*app).schedulesCmd)
}

func (a *app) schedulesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedules",
		Short: "Create, list, pause, resume, delete and trigger cron schedules",
		Long: `A schedule enqueues a job at every tick of a cron expression. The
maintenance leader fires due ticks: exactly one job per tick, however many
workers run. Every fire, skip, miss and operator action is an event in the
schedule's own history (chronicle schedules history NAME).`,
		Args: cobra.NoArgs,
		RunE: showHelp,
	}
	cmd.AddCommand(a.schedulesListCmd(), a.schedulesShowCmd(), a.schedulesHistoryCmd(), a.schedulesCreateCmd(),
		a.scheduleActionCmd("pause", "Stop a schedule from firing until it is resumed", true),
		a.scheduleActionCmd("resume", "Let a paused schedule fire again from its next tick", false),
		a.scheduleActionCmd("delete", "Delete a schedule (its history is kept; the name may be used again)", true),
		a.scheduleActionCmd("trigger", "Enqueue a schedule's job now, outside its ticks", false))
	return cmd
}

// scheduleJSON is the --json form of a schedule.
type scheduleJSON struct {
	ID            string                    `json:"id"`
	Name          string                    `json:"name"`
	Status        string                    `json:"status"`
	Definition    engine.ScheduleDefinition `json:"definition"`
	NextFireAt    *time.Time                `json:"next_fire_at,omitempty"`
	LastFiredTick *time.Time                `json:"last_fired_tick,omitempty"`
	BufferedTick  *time.Time                `json:"buffered_tick,omitempty"`
	LastJobID     string                    `json:"last_job_id,omitempty"`
	Runs          int64                     `json:"runs"`
	CreatedAt     time.Time                 `json:"created_at"`
	UpdatedAt     time.Time                 `json:"updated_at"`
	Events        int64                     `json:"events"`
}

func scheduleToJSON(s sdk.Schedule) scheduleJSON {
	out := scheduleJSON{ID: s.ID.String(), Name: s.Name, Status: string(s.Status), Definition: s.Definition,
		NextFireAt: s.NextFireAt, LastFiredTick: s.LastFiredTick, BufferedTick: s.Buffered, Runs: s.Runs,
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, Events: s.Seq}
	if !isZeroID(s.LastJobID) {
		out.LastJobID = s.LastJobID.String()
	}
	return out
}

func isZeroID(id [16]byte) bool { return id == [16]byte{} }

// when says a schedule's expression and zone in a line.
func when(d engine.ScheduleDefinition) string {
	return d.Cron + " " + d.TimeZone
}

func (a *app) schedulesListCmd() *cobra.Command {
	var all, asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List schedules with their next tick",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.client(ctx, false)
			if err != nil {
				return err
			}
			defer c.Close()
			list, err := c.ListSchedules(ctx, all)
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]scheduleJSON, len(list))
				for i, s := range list {
					out[i] = scheduleToJSON(s)
				}
				return writeJSON(a.stdout, out)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATUS\tCRON\tJOB\tQUEUE\tNEXT_FIRE\tLAST_FIRE\tRUNS\tOVERLAP\tCATCH_UP")
			for _, s := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Name, s.Status, when(s.Definition), s.Definition.Job.Type,
					s.Definition.Job.Queue, formatTimePtr(s.NextFireAt), formatTimePtr(s.LastFiredTick), s.Runs, s.Definition.Overlap, s.Definition.CatchUp)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "include deleted schedules")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) schedulesShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a schedule (by name, or by ID for a deleted one)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.client(ctx, false)
			if err != nil {
				return err
			}
			defer c.Close()
			s, err := c.GetSchedule(ctx, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, scheduleToJSON(s))
			}
			d := s.Definition
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			row := func(k, v string) {
				if v != "" {
					fmt.Fprintf(tw, "%s:\t%s\n", k, v)
				}
			}
			row("Name", s.Name)
			row("ID", s.ID.String())
			row("Status", string(s.Status))
			row("Cron", when(d))
			row("Job", fmt.Sprintf("%s on queue %s, priority %s", d.Job.Type, d.Job.Queue, d.Job.Priority))
			row("Payload", string(d.Job.Payload))
			row("Retry policy", describePolicy(d.Job.RetryPolicy))
			row("Overlap", string(d.Overlap))
			row("Catch-up", fmt.Sprintf("%s (ticks later than %s are missed)", d.CatchUp, d.CatchUpWindow))
			row("Next fire", formatTimePtr(s.NextFireAt))
			row("Last fire", formatTimePtr(s.LastFiredTick))
			row("Buffered tick", formatTimePtr(s.Buffered))
			if !isZeroID(s.LastJobID) {
				row("Last job", s.LastJobID.String())
			}
			row("Runs", fmt.Sprint(s.Runs))
			row("Created", formatTime(s.CreatedAt))
			row("Updated", formatTime(s.UpdatedAt))
			row("Events", fmt.Sprint(s.Seq))
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) schedulesHistoryCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history NAME",
		Short: "Print every event of a schedule: fires, skips, misses and operator actions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.client(ctx, false)
			if err != nil {
				return err
			}
			defer c.Close()
			events, err := c.ScheduleHistory(ctx, args[0])
			if err != nil {
				return err
			}
			return a.printHistory(events, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) schedulesCreateCmd() *cobra.Command {
	var (
		o                 sdk.ScheduleOptions
		payload, priority string
		overlap, catchUp  string
		retryPolicy       string
		replace, asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME --cron EXPR --type TYPE",
		Short: "Create a schedule (or, with --replace, update the one of that name)",
		Long: `create defines a schedule that enqueues a job of --type at every tick of --cron.

--cron takes a standard 5-field expression (minute hour day-of-month month
day-of-week), a 6-field one with leading seconds, or a descriptor: @yearly,
@monthly, @weekly, @daily, @hourly, @every 10m. It is read in --time-zone
(an IANA name; default UTC), or in the zone of a CRON_TZ=Zone prefix.

--overlap says what a tick does while the previous run's job is still
pending, running or retrying: skip it (default), buffer_one (run it when
the previous finishes; further ticks meanwhile are skipped) or allow_all.

--catch-up says what happens to ticks missed while no leader ran, those
older than --catch-up-window (default 1m) when first seen: skip them all
(default), or latest (run the most recent one once).`,
		Example: `  chronicle schedules create nightly-export --cron "0 2 * * *" --time-zone Europe/Berlin --type data.export --payload '{"all": true}'
  chronicle schedules create heartbeat --cron "@every 5m" --type demo.sleep --overlap allow_all
  chronicle schedules create nightly-export --cron "30 2 * * *" --type data.export --replace`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if strings.TrimSpace(o.Cron) == "" {
				return errors.New(`--cron is required, such as "0 3 * * *" (03:00 daily) or "@every 1h"`)
			}
			if strings.TrimSpace(o.JobType) == "" {
				return errors.New("--type is required: the job type each tick enqueues")
			}
			raw, err := readPayload(payload, a.stdin)
			if err != nil {
				return err
			}
			o.Payload = json.RawMessage(raw)
			o.Priority = sdk.Priority(priority)
			o.Overlap, o.CatchUp = sdk.OverlapPolicy(overlap), sdk.CatchUpPolicy(catchUp)
			if retryPolicy != "" {
				p, err := engine.ParseRetryPolicyJSON([]byte(retryPolicy))
				if err != nil {
					return fmt.Errorf("--retry-policy: %w", err)
				}
				o.RetryPolicy = &p
			}
			ctx := cmd.Context()
			c, err := a.client(ctx, false)
			if err != nil {
				return err
			}
			defer c.Close()
			var s sdk.Schedule
			if replace {
				s, err = c.RegisterSchedule(ctx, o)
			} else {
				s, err = c.CreateSchedule(ctx, o)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, scheduleToJSON(s))
			}
			fmt.Fprintf(a.stdout, "schedule %s (%s) enqueues %s at %s; next fire %s\n", s.Name, s.ID, s.Definition.Job.Type,
				when(s.Definition), formatTimePtr(s.NextFireAt))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Cron, "cron", "", "cron expression or descriptor (required)")
	f.StringVar(&o.TimeZone, "time-zone", "", "IANA time zone the expression is read in (default UTC)")
	f.StringVar(&o.JobType, "type", "", "job type each tick enqueues (required)")
	f.StringVar(&payload, "payload", "{}", "job payload as JSON, @FILE, or - for stdin")
	f.StringVar(&o.Queue, "queue", "", "queue of the jobs (default: the type's)")
	f.StringVar(&priority, "priority", "", "priority of the jobs: high, normal or low (default: the type's)")
	f.StringVar(&retryPolicy, "retry-policy", "", "retry policy of the jobs as JSON (default: the type's)")
	f.StringVar(&overlap, "overlap", string(sdk.OverlapSkip), "while the previous run is unfinished: skip, buffer_one or allow_all")
	f.StringVar(&catchUp, "catch-up", string(sdk.CatchUpSkip), "ticks missed while no leader ran: skip or latest")
	f.DurationVar(&o.CatchUpWindow, "catch-up-window", engine.DefaultCatchUpWindow, "how late a tick may be seen and still run as usual")
	f.BoolVar(&replace, "replace", false, "update the schedule of that name if it exists (recorded as ScheduleUpdated)")
	f.StringVar(&o.Actor, "actor", defaultActor(), "who creates it, recorded in the event")
	f.StringVar(&o.Reason, "reason", "", "why, recorded in the event")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// scheduleActionCmd is pause, resume, delete or trigger.
func (a *app) scheduleActionCmd(action, short string, reasonRequired bool) *cobra.Command {
	var reason, actor string
	use := action + " NAME"
	if reasonRequired {
		use += " --reason REASON"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if reasonRequired && strings.TrimSpace(reason) == "" {
				return fmt.Errorf("--reason is required: say why the schedule is %s", pastTense(action))
			}
			ctx := cmd.Context()
			c, err := a.client(ctx, action == "trigger") // a trigger makes work ready: wake workers
			if err != nil {
				return err
			}
			defer c.Close()
			return a.runScheduleAction(ctx, c, action, args[0], actor, reason)
		},
	}
	help := "why, recorded in the event"
	if reasonRequired {
		help += " (required)"
	}
	cmd.Flags().StringVar(&reason, "reason", "", help)
	cmd.Flags().StringVar(&actor, "actor", defaultActor(), "who does it, recorded in the event")
	return cmd
}

func (a *app) runScheduleAction(ctx context.Context, c *sdk.Client, action, ref, actor, reason string) error {
	var s sdk.Schedule
	var err error
	switch action {
	case "pause":
		s, err = c.PauseSchedule(ctx, ref, actor, reason)
	case "resume":
		s, err = c.ResumeSchedule(ctx, ref, actor, reason)
	case "delete":
		s, err = c.DeleteSchedule(ctx, ref, actor, reason)
	case "trigger":
		id, err := c.TriggerSchedule(ctx, ref, actor, reason)
		if err != nil {
			return err
		}
		fmt.Fprintln(a.stdout, id)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "%s schedule %s\n", pastTense(action), s.Name)
	return nil
}

func pastTense(action string) string {
	if strings.HasSuffix(action, "e") {
		return action + "d"
	}
	return action + "ed"
}

// createDefaultSchedules creates the built-in cleanup schedules that never
// existed, for chronicle migrate, and says which it created.
func (a *app) createDefaultSchedules(ctx context.Context) error {
	c, err := a.client(ctx, false)
	if err != nil {
		return err
	}
	defer c.Close()
	created, err := c.CreateDefaultSchedules(ctx)
	for _, s := range created {
		fmt.Fprintf(a.stdout, "created schedule %s (%s, enqueues %s)\n", s.Name, when(s.Definition), s.Definition.Job.Type)
	}
	return err
}
