package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/server"
)

func init() { commands = append(commands, (*app).serverCmd) }

func (a *app) serverCmd() *cobra.Command {
	var (
		listen      string
		staleAfter  time.Duration
		cfg         server.Config
		maintenance bool
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve /metrics and /api/healthz over HTTP until SIGINT or SIGTERM",
		Long: `server migrates the schema, then serves Chronicle over HTTP:

  GET /metrics                    Prometheus metrics (docs/observability.md lists them)
  GET /api/healthz                200 while PostgreSQL answers, 503 when not
  GET /api/healthz?detailed=true  every check as JSON: database, workers, nats, queue

It refreshes the queue and worker gauges every --metrics-refresh and takes
part in the maintenance leader election, like every worker, so that dead
workers' jobs are retried even while no worker runs.`,
		Example: `  chronicle server --listen 0.0.0.0:8080
  curl -s 'http://127.0.0.1:8080/api/healthz?detailed=true' | jq '.checks[] | select(.name == "workers")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for name, d := range map[string]time.Duration{"worker-stale-after": staleAfter, "health-timeout": cfg.HealthTimeout} {
				if d < 0 {
					return fmt.Errorf("--%s is %s; want a positive duration", name, d)
				}
			}
			ctx := cmd.Context()
			c, err := sdk.NewClient(ctx, sdk.Config{
				DatabaseURL:            a.databaseURL,
				NATSURL:                a.natsURL,
				AllowUnregisteredTypes: true,
				Logger:                 a.log,
				Observability:          sdk.ObservabilityConfig{WorkerStaleAfter: staleAfter},
			})
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Migrate(ctx); err != nil {
				return err
			}
			stopTracing, err := a.setupTracing(ctx)
			if err != nil {
				return err
			}
			defer stopTracing()
			ln, err := server.Listen(listen)
			if err != nil {
				return err
			}
			mctx, stopMaintenance := context.WithCancel(context.WithoutCancel(ctx))
			maintained := make(chan struct{})
			if maintenance {
				m := c.Engine().NewMaintenance("server-"+engine.DefaultWorkerID(), 0, 0)
				go func() { defer close(maintained); m.Run(mctx) }()
			} else {
				close(maintained)
			}
			cfg.Client, cfg.Logger = c, a.log
			a.log.Info("server listening", "addr", ln.Addr().String())
			go func() {
				<-ctx.Done()
				a.stopSignals()
				a.log.Info("server stopping")
			}()
			err = server.New(cfg).Serve(ctx, ln)
			stopMaintenance()
			<-maintained
			if err != nil {
				return err
			}
			a.log.Info("server stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", server.DefaultListen, "address to listen on")
	f.DurationVar(&staleAfter, "worker-stale-after", sdk.DefaultWorkerStaleAfter, "heartbeat age past which a worker is reported stale")
	f.DurationVar(&cfg.MetricsRefreshInterval, "metrics-refresh", sdk.DefaultMetricsRefreshInterval, "how often the queue and worker gauges are read from the database")
	f.DurationVar(&cfg.HealthTimeout, "health-timeout", server.DefaultHealthTimeout, "how long each health check may take before it fails")
	f.Int64Var(&cfg.QueueDepthWarn, "queue-depth-warn", server.DefaultQueueDepthWarn, "pending jobs in one queue over which the queue check warns")
	f.BoolVar(&maintenance, "maintenance", true, "take part in the maintenance leader election (expire dead workers' leases, wake due queues)")
	return cmd
}
