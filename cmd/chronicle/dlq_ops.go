package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/sdk"
)

// dlqFilterFlags are the flags that select dead letters, shared by list and
// the bulk forms of retry and resolve.
type dlqFilterFlags struct {
	types, queues        []string
	errorText            string
	olderThan, newerThan string
	// all selects every dead letter in a bulk command, which otherwise
	// needs at least one filter.
	all bool
}

func (f *dlqFilterFlags) add(cmd *cobra.Command, bulk bool) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.types, "type", nil, "only dead letters of these types (a type ending in .* covers its family)")
	fl.StringSliceVar(&f.queues, "queue", nil, "only dead letters of these queues")
	fl.StringVar(&f.errorText, "error", "", "only dead letters whose last error contains this text (ignoring case)")
	fl.StringVar(&f.olderThan, "older-than", "", "only dead letters dead-lettered at least this long ago, such as 2h or 7d")
	fl.StringVar(&f.newerThan, "newer-than", "", "only dead letters dead-lettered at most this long ago, such as 24h")
	if bulk {
		fl.BoolVar(&f.all, "all", false, "act on every dead letter (without an ID or a filter, nothing is selected)")
	}
}

// set reports whether any filter flag was given.
func (f *dlqFilterFlags) set() bool {
	return len(f.types) > 0 || len(f.queues) > 0 || f.errorText != "" || f.olderThan != "" || f.newerThan != "" || f.all
}

func (f *dlqFilterFlags) filter() (sdk.DeadLetterFilter, error) {
	out := sdk.DeadLetterFilter{Types: f.types, Queues: f.queues, ErrorContains: f.errorText}
	var err error
	if out.OlderThan, err = parseAgeFlag("older-than", f.olderThan); err != nil {
		return out, err
	}
	if out.NewerThan, err = parseAgeFlag("newer-than", f.newerThan); err != nil {
		return out, err
	}
	return out, nil
}

// parseAgeFlag reads an age such as 90m, 24h, 7d or 1d12h: a Go duration,
// optionally led by a whole number of days. Empty is zero.
func parseAgeFlag(flag, s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	bad := fmt.Errorf("--%s %q: want an age such as 90m, 24h, 7d or 1d12h", flag, s)
	var d time.Duration
	rest := s
	if i := strings.IndexByte(s, 'd'); i > 0 {
		days, err := strconv.Atoi(s[:i])
		if err != nil || days < 0 || days > 100000 {
			return 0, bad
		}
		d, rest = time.Duration(days)*24*time.Hour, s[i+1:]
	}
	if rest != "" {
		more, err := time.ParseDuration(rest)
		if err != nil {
			return 0, bad
		}
		d += more
	}
	if d <= 0 {
		return 0, fmt.Errorf("--%s %q: want a positive age", flag, s)
	}
	return d, nil
}

// bulkResultJSON is the --json form of a bulk retry or resolve.
type bulkResultJSON struct {
	DryRun   bool     `json:"dry_run"`
	Matched  int      `json:"matched"`
	Changed  int      `json:"changed"`
	Declined bool     `json:"declined,omitempty"`
	IDs      []string `json:"ids"`
	Skipped  []string `json:"skipped,omitempty"`
}

// dlqBulk runs a retry or resolve over every dead letter the filter flags
// select: it counts them, asks for confirmation (unless --yes or
// --dry-run), and acts on exactly those it counted.
func (a *app) dlqBulk(ctx context.Context, f *dlqFilterFlags, verb, past string, dryRun, yes, asJSON bool,
	run func(ctx context.Context, c *sdk.Client, filter sdk.DeadLetterFilter, opts sdk.BulkOptions) (sdk.BulkResult, error)) error {
	if !f.set() {
		return fmt.Errorf("name a job ID, or select dead letters with --type, --queue, --error, --older-than or --newer-than (or --all); nothing was %s", past)
	}
	filter, err := f.filter()
	if err != nil {
		return err
	}
	c, err := a.client(ctx, verb == "retry")
	if err != nil {
		return err
	}
	defer c.Close()
	opts := sdk.BulkOptions{DryRun: dryRun}
	if !dryRun && !yes {
		opts.Confirm = func(n int) bool {
			return a.confirm(fmt.Sprintf("%s %d dead letter%s?", titleWord(verb), n, pluralSuffix(n)))
		}
	}
	res, err := run(ctx, c, filter, opts)
	if err != nil {
		return err
	}
	if asJSON {
		out := bulkResultJSON{DryRun: dryRun, Matched: len(res.Matched), Changed: res.Changed, Declined: res.Declined, IDs: make([]string, len(res.Matched))}
		for i, id := range res.Matched {
			out.IDs[i] = id.String()
		}
		for _, s := range res.Skipped {
			out.Skipped = append(out.Skipped, s.Error())
		}
		return writeJSON(a.stdout, out)
	}
	n := len(res.Matched)
	switch {
	case dryRun:
		fmt.Fprintf(a.stdout, "dry run: %d dead letter%s would be %s; nothing changed\n", n, pluralSuffix(n), past)
		for _, id := range res.Matched {
			fmt.Fprintf(a.stdout, "  %s\n", id)
		}
	case n == 0:
		fmt.Fprintf(a.stdout, "no dead letters match; nothing %s\n", past)
	case res.Declined:
		fmt.Fprintf(a.stdout, "not confirmed; nothing %s (pass --yes to skip the question)\n", past)
	default:
		fmt.Fprintf(a.stdout, "%s %d of %d matching dead letter%s\n", past, res.Changed, n, pluralSuffix(n))
		for _, s := range res.Skipped {
			fmt.Fprintf(a.stdout, "  skipped: %v\n", s)
		}
	}
	return nil
}

// confirm asks question on stderr and reads the answer from stdin: only
// y or yes agrees; end of input declines.
func (a *app) confirm(question string) bool {
	fmt.Fprintf(a.stderr, "%s [y/N] ", question)
	line, _ := bufio.NewReader(a.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

func pluralSuffix(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func titleWord(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (a *app) dlqShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a dead letter: its state, why it was dead-lettered, and its full history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := a.client(ctx, false)
			if err != nil {
				return err
			}
			defer c.Close()
			d, err := c.DeadLetter(ctx, id)
			if err != nil {
				return notFound(id, err)
			}
			if asJSON {
				out := struct {
					Job            jobJSON     `json:"job"`
					DeadLetteredAt time.Time   `json:"dead_lettered_at"`
					Reason         string      `json:"reason"`
					History        []eventJSON `json:"history"`
				}{Job: toJSON(d.Job), DeadLetteredAt: d.DeadLetteredAt, Reason: d.Dead.Reason, History: historyJSON(d.History)}
				return writeJSON(a.stdout, out)
			}
			if err := a.printJob(d.Job); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Dead-lettered %s after %d attempt%s: %s\n\nHistory:\n", formatTime(d.DeadLetteredAt), d.Dead.Attempts, pluralSuffix(d.Dead.Attempts), d.Dead.Reason)
			return a.printHistory(d.History, false)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) dlqCleanupCmd() *cobra.Command {
	var days int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "cleanup --older-than-days N",
		Short: "Delete resolved dead letters older than N days, with their histories",
		Long: `cleanup deletes dead letters that were resolved more than --older-than-days
days ago, with every event of their histories: the runbook's
cleanupDeadLetterJobs(90). Dead letters still waiting for an operator are
never deleted. The cleanup.dead_letters job does the same on a schedule.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if days < 1 {
				return fmt.Errorf("--older-than-days is %d; want 1 or more (the runbook keeps resolved dead letters 90 days)", days)
			}
			ctx := cmd.Context()
			c, err := a.client(ctx, false)
			if err != nil {
				return err
			}
			defer c.Close()
			r, err := c.CleanupDeadLetterJobs(ctx, days)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, r)
			}
			fmt.Fprintf(a.stdout, "%s (resolved dead letters older than %d days)\n", r, days)
			return nil
		},
	}
	cmd.Flags().IntVar(&days, "older-than-days", sdk.DefaultDeadLetterRetentionDays, "delete dead letters resolved more than this many days ago")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// errBothIDAndFilter is returned when a command is given a job ID and
// filter flags at once.
var errBothIDAndFilter = errors.New("give either a job ID or filter flags (--type, --queue, --error, --older-than, --newer-than, --all), not both")

// addBulkFlags adds the filter flags and the bulk controls to retry or
// resolve.
func addBulkFlags(cmd *cobra.Command, f *dlqFilterFlags, dryRun, yes, asJSON *bool) {
	f.add(cmd, true)
	fl := cmd.Flags()
	fl.BoolVar(dryRun, "dry-run", false, "with filter flags: count and list the matching dead letters; change nothing")
	fl.BoolVar(yes, "yes", false, "with filter flags: do not ask for confirmation")
	fl.BoolVar(asJSON, "json", false, "with filter flags: print the result as JSON")
}
