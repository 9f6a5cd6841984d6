package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/sdk"
)

func (a *app) enqueueCmd() *cobra.Command {
	var (
		payload, queue, priority, runAt, idemKey string
		delay, idemTTL                           time.Duration
		maxAttempts                              int
	)
	cmd := &cobra.Command{
		Use:   "enqueue TYPE",
		Short: "Enqueue a job and print its ID",
		Long: `enqueue adds one job of TYPE and prints its ID, followed by "(existing)"
when an idempotency key returned a job enqueued earlier. Any well-formed
type is accepted; its retry policy is the runbook's for the runbook's types
and the default otherwise.

--payload takes JSON text, @FILE to read it from a file, or - for stdin.`,
		Example: `  chronicle enqueue email.send --payload '{"to":"ada@example.com"}'
  chronicle enqueue demo.sleep --payload '{"ms":500}' --queue default --priority high
  chronicle enqueue data.export --delay 5m --idempotency-key export:42`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			flags := cmd.Flags()
			raw, err := readPayload(payload, a.stdin)
			if err != nil {
				return err
			}
			// Each option is checked on its own first, so that an error
			// names the flag, and before anything touches the database.
			type option struct {
				flag string
				opt  sdk.EnqueueOption
			}
			var opts []option
			if flags.Changed("queue") {
				opts = append(opts, option{"queue", sdk.WithQueue(queue)})
			}
			if flags.Changed("priority") {
				opts = append(opts, option{"priority", sdk.WithPriority(sdk.Priority(priority))})
			}
			if flags.Changed("delay") && flags.Changed("run-at") {
				return errors.New("--delay and --run-at both schedule the first attempt; give one")
			}
			if flags.Changed("delay") {
				opts = append(opts, option{"delay", sdk.WithDelay(delay)})
			}
			if flags.Changed("run-at") {
				t, err := time.Parse(time.RFC3339Nano, runAt)
				if err != nil {
					return fmt.Errorf("--run-at %q: want an RFC 3339 time such as 2030-01-02T15:04:05Z", runAt)
				}
				opts = append(opts, option{"run-at", sdk.WithRunAt(t)})
			}
			if flags.Changed("idempotency-ttl") && !flags.Changed("idempotency-key") {
				return errors.New("--idempotency-ttl needs --idempotency-key")
			}
			if flags.Changed("idempotency-key") {
				opts = append(opts, option{"idempotency-key", sdk.WithIdempotencyKey(idemKey, idemTTL)})
			}
			if flags.Changed("max-attempts") {
				opts = append(opts, option{"max-attempts", withMaxAttempts(maxAttempts)})
			}
			if err := sdk.ValidateJobType(args[0], false); err != nil {
				return err
			}
			sdkOpts := make([]sdk.EnqueueOption, len(opts))
			for i, o := range opts {
				if err := o.opt(&engine.NewJob{}); err != nil {
					return fmt.Errorf("--%s: %w", o.flag, err)
				}
				sdkOpts[i] = o.opt
			}

			ctx := cmd.Context()
			c, err := a.client(ctx, true)
			if err != nil {
				return err
			}
			defer c.Close()
			res, err := c.Enqueue(ctx, args[0], raw, sdkOpts...)
			if err != nil {
				return err
			}
			if res.Existing {
				fmt.Fprintln(a.stdout, res.ID, "(existing)")
			} else {
				fmt.Fprintln(a.stdout, res.ID)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&payload, "payload", "{}", "JSON payload, @FILE, or - for stdin")
	f.StringVar(&queue, "queue", "", "queue (default: the type's, else "+sdk.DefaultQueue+")")
	f.StringVar(&priority, "priority", "", "high, normal or low (default: the type's, else normal)")
	f.DurationVar(&delay, "delay", 0, "run the first attempt this long from now, such as 5m")
	f.StringVar(&runAt, "run-at", "", "run the first attempt at this RFC 3339 time")
	f.StringVar(&idemKey, "idempotency-key", "", "return the existing job holding this key instead of enqueueing another")
	f.DurationVar(&idemTTL, "idempotency-ttl", 24*time.Hour, "how long the idempotency key holds")
	f.IntVar(&maxAttempts, "max-attempts", 0, "total attempts before the job is dead-lettered, the first included (default: the type's)")
	return cmd
}

// withMaxAttempts overrides only the attempt budget of the type's retry
// policy, keeping its schedule.
func withMaxAttempts(n int) sdk.EnqueueOption {
	return func(j *engine.NewJob) error {
		if n < 1 {
			return &engine.InputError{Field: "max attempts", Reason: fmt.Sprintf("%d; want 1 or more (1 means never retry)", n)}
		}
		j.RetryPolicy.MaximumAttempts = n
		return nil
	}
}

// readPayload returns the payload's JSON text: s itself, the contents of
// the file @path, or stdin for "-". The SDK validates it.
func readPayload(s string, stdin io.Reader) (json.RawMessage, error) {
	switch {
	case s == "-":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read payload from stdin: %w", err)
		}
		return b, nil
	case strings.HasPrefix(s, "@"):
		b, err := os.ReadFile(s[1:])
		if err != nil {
			return nil, fmt.Errorf("read payload: %w", err)
		}
		return b, nil
	}
	return json.RawMessage(s), nil
}
