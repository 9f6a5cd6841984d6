package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/sdk"
)

func (a *app) workerCmd() *cobra.Command {
	var (
		queues []string
		cfg    sdk.WorkerConfig
		obs    workerObservability
		act    activityFlags
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a worker with the built-in job handlers until SIGINT or SIGTERM",
		Long: `worker migrates the schema, then claims and runs jobs of its queues until it
receives SIGINT or SIGTERM, when it stops claiming and gives running jobs
--shutdown-timeout to finish. A second signal kills it at once.

Built-in handlers, so that it does real work out of the box:
  email.send        sends through --smtp-host (SMTP_HOST; password in
                    SMTP_PASSWORD); without it, logs the payload and succeeds
  webhook.deliver   posts signed webhooks once WEBHOOK_SECRET is set;
                    without it, logs the payload and succeeds
  data.export       logs the payload: exports need your application's data
                    providers (activities.RegisterDataExport in your worker)
  cleanup.*         dead letters, histories, idempotency keys, workers
  demo.sleep   {"ms": N}                     sleep N milliseconds
  demo.fail    {"message": "..", "permanent": bool}
               fail with message; a permanent failure is not retried`,
		Example: `  chronicle worker --queues default=10,emails=5 --lease 30s`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Queues, err = parseQueues(queues); err != nil {
				return err
			}
			for name, d := range map[string]time.Duration{"lease": cfg.LeaseDuration, "poll": cfg.PollInterval, "shutdown-timeout": cfg.ShutdownTimeout} {
				if d < 0 {
					return fmt.Errorf("--%s is %s; want a positive duration", name, d)
				}
			}
			ctx := cmd.Context()
			c, err := a.client(ctx, true)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Migrate(ctx); err != nil {
				return err
			}
			w, err := c.NewWorker(cfg)
			if err != nil {
				return err
			}
			if err := registerDemoHandlers(w); err != nil {
				return err
			}
			if err := registerDemoWorkflows(w); err != nil {
				return err
			}
			if err := act.register(cmd, a, w); err != nil {
				return err
			}
			stopObs, err := obs.start(ctx, a, c)
			if err != nil {
				return err
			}
			defer stopObs()
			a.log.Info("worker started", "worker_id", w.ID(), "queues", formatQueues(cfg.Queues))
			go func() {
				<-ctx.Done()
				a.stopSignals()
				a.log.Info("worker stopping: no new claims; waiting for running jobs", "worker_id", w.ID(), "shutdown_timeout", cfg.ShutdownTimeout)
			}()
			if err := w.Run(ctx); err != nil {
				return err
			}
			a.log.Info("worker stopped", "worker_id", w.ID())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&queues, "queues", []string{sdk.DefaultQueue + "=" + strconv.Itoa(sdk.DefaultConcurrency)},
		"queues to work and how many of each run at once, as name=N (N defaults to 10)")
	f.StringVar(&cfg.ID, "id", "", "worker ID in leases and events (default host-pid-random)")
	f.DurationVar(&cfg.LeaseDuration, "lease", 30*time.Second, "how long a claim lasts without a heartbeat")
	f.DurationVar(&cfg.PollInterval, "poll", time.Second, "how often idle queues are checked when no wakeup arrives")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", sdk.DefaultShutdownTimeout, "how long running jobs may finish after a stop signal")
	obs.addFlags(f, &cfg)
	act.addFlags(cmd)
	cmd.AddCommand(a.workerHealthcheckCmd())
	return cmd
}

// parseQueues reads "name=N" items; a bare name runs DefaultConcurrency.
func parseQueues(items []string) (map[string]int, error) {
	out := map[string]int{}
	for _, item := range items {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, n, hasN := strings.Cut(item, "=")
		conc := sdk.DefaultConcurrency
		if hasN {
			var err error
			if conc, err = strconv.Atoi(n); err != nil || conc < 1 {
				return nil, fmt.Errorf("--queues %q: concurrency %q is not a positive whole number; write name=N such as default=10", item, n)
			}
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("--queues names %q twice", name)
		}
		out[name] = conc
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--queues is empty; name at least one queue, such as default=10")
	}
	return out, nil
}

func formatQueues(q map[string]int) string {
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		names[i] = fmt.Sprintf("%s=%d", name, q[name])
	}
	return strings.Join(names, ",")
}
