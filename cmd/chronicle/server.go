package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/server"
)

func init() { commands = append(commands, (*app).serverCmd) }

// envListen sets --listen of chronicle server.
const envListen = "CHRONICLE_LISTEN"

func (a *app) serverCmd() *cobra.Command {
	var (
		listen      string
		staleAfter  time.Duration
		cfg         server.Config
		maintenance bool
		adminUser   string
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve the HTTP API, the admin UI, /metrics and /api/healthz until SIGINT or SIGTERM",
		Long: `server migrates the schema, then serves Chronicle over HTTP:

  /admin/jobs                     the admin UI (docs/server.md)
  /api/v1/...                     the JSON API (docs/openapi.yaml)
  GET /metrics                    Prometheus metrics (docs/observability.md lists them)
  GET /api/healthz                200 while PostgreSQL answers, 503 when not
  GET /api/healthz?detailed=true  every check as JSON: database, workers, nats, queue

The API and the admin UI require authentication: a bearer token from
CHRONICLE_ADMIN_TOKEN, or basic auth from CHRONICLE_ADMIN_USER and
CHRONICLE_ADMIN_PASSWORD. Without either the server listens on loopback
only. /api/healthz never needs it; /metrics only with --metrics-auth.

It refreshes the queue and worker gauges every --metrics-refresh and takes
part in the maintenance leader election, like every worker, so that dead
workers' jobs are retried even while no worker runs.`,
		Example: `  CHRONICLE_ADMIN_TOKEN=$(openssl rand -hex 24) chronicle server --listen 0.0.0.0:8080
  curl -s 'http://127.0.0.1:8080/api/healthz?detailed=true' | jq '.checks[] | select(.name == "workers")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for name, d := range map[string]time.Duration{"worker-stale-after": staleAfter, "health-timeout": cfg.HealthTimeout} {
				if d < 0 {
					return fmt.Errorf("--%s is %s; want a positive duration", name, d)
				}
			}
			if !cmd.Flags().Changed("listen") && os.Getenv(envListen) != "" {
				listen = os.Getenv(envListen)
			}
			cfg.Auth = server.AuthFromEnv()
			if adminUser != "" {
				cfg.Auth.User = adminUser
			}
			if err := server.CheckListen(listen, cfg.Auth); err != nil {
				return err
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
				return fmt.Errorf("%w; choose another address with --listen", err)
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
			a.log.Info("server listening", "addr", ln.Addr().String(), "admin", "http://"+ln.Addr().String()+"/admin/jobs", "auth", cfg.Auth.Enabled())
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
	f.StringVar(&listen, "listen", server.DefaultListen, "address to listen on (env "+envListen+"); beyond loopback only with authentication")
	f.StringVar(&adminUser, "admin-user", "", "basic-auth user of the API and admin UI (env "+server.EnvAdminUser+"); its password comes from "+server.EnvAdminPassword+" only")
	f.BoolVar(&cfg.MetricsAuth, "metrics-auth", false, "require the API's authentication for /metrics too")
	f.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", server.DefaultMaxBodyBytes, "largest request body the API and admin UI accept")
	f.DurationVar(&staleAfter, "worker-stale-after", sdk.DefaultWorkerStaleAfter, "heartbeat age past which a worker is reported stale")
	f.DurationVar(&cfg.MetricsRefreshInterval, "metrics-refresh", sdk.DefaultMetricsRefreshInterval, "how often the queue and worker gauges are read from the database")
	f.DurationVar(&cfg.HealthTimeout, "health-timeout", server.DefaultHealthTimeout, "how long each health check may take before it fails")
	f.Int64Var(&cfg.QueueDepthWarn, "queue-depth-warn", server.DefaultQueueDepthWarn, "pending jobs in one queue over which the queue check warns")
	f.BoolVar(&maintenance, "maintenance", true, "take part in the maintenance leader election (expire dead workers' leases, wake due queues)")
	return cmd
}
