package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chronicle-engine/chronicle/internal/telemetry"
	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/server"
)

// Heartbeat defaults of `chronicle worker`.
const (
	// defaultHeartbeatFile is the runbook's heartbeat file.
	defaultHeartbeatFile = "/tmp/worker-heartbeat"
	// defaultHeartbeatMaxAge is the runbook's "heartbeat > 2 min stale".
	defaultHeartbeatMaxAge = 2 * time.Minute
)

// workerObservability holds the observability flags of `chronicle worker`.
type workerObservability struct {
	metricsListen string
}

// addFlags adds --metrics-listen, --heartbeat-file and --heartbeat-interval.
func (o *workerObservability) addFlags(f *pflag.FlagSet, cfg *sdk.WorkerConfig) {
	f.StringVar(&o.metricsListen, "metrics-listen", "", "address to serve /metrics and /api/healthz on, such as 127.0.0.1:9090 (empty: off)")
	f.StringVar(&cfg.HeartbeatFile, "heartbeat-file", defaultHeartbeatFile, "file rewritten at every heartbeat, for `chronicle worker healthcheck` (empty: none)")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", 0, "how often leases and the worker's heartbeat row and file are refreshed (default a third of --lease)")
}

// start sets up tracing from the OTEL_* environment and, with
// --metrics-listen, serves /metrics and /api/healthz. The returned
// function stops both; call it after the worker stopped.
func (o *workerObservability) start(ctx context.Context, a *app, c *sdk.Client) (func(), error) {
	stopTracing, err := a.setupTracing(ctx)
	if err != nil {
		return nil, err
	}
	if o.metricsListen == "" {
		return stopTracing, nil
	}
	ln, err := server.Listen(o.metricsListen)
	if err != nil {
		stopTracing()
		return nil, fmt.Errorf("%w; choose another address with --metrics-listen", err)
	}
	a.log.Info("serving metrics and health checks", "addr", ln.Addr().String())
	// A worker serves only these two routes of the server: the API and the
	// admin UI belong to chronicle server, behind its authentication.
	routes := server.New(server.Config{Client: c, Logger: a.log}).Handler()
	only := http.NewServeMux()
	only.Handle("GET /metrics", routes)
	only.Handle("GET /api/healthz", routes)
	hs := &http.Server{Handler: only, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	rctx, stopRefresh := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { c.RunMetricsRefresh(rctx, 0) })
	wg.Go(func() {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("metrics server failed", "err", err)
		}
	})
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = hs.Shutdown(sctx)
		cancel()
		stopRefresh()
		wg.Wait()
		stopTracing()
	}, nil
}

// setupTracing installs the OTLP exporter when the OTEL_* environment asks
// for one. The returned function flushes the spans still buffered.
func (a *app) setupTracing(ctx context.Context) (func(), error) {
	shutdown, enabled, err := telemetry.Setup(ctx)
	if err != nil {
		return nil, err
	}
	if enabled {
		a.log.Info("exporting traces over OTLP, as the OTEL_* environment configures")
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(sctx); err != nil {
			a.log.Warn("flushing traces failed", "err", err)
		}
	}, nil
}

// workerHealthcheckCmd is `chronicle worker healthcheck`, for a container's
// HEALTHCHECK: it fails when the worker's heartbeat file is missing or too
// old.
func (a *app) workerHealthcheckCmd() *cobra.Command {
	var (
		file   string
		maxAge time.Duration
	)
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when the worker's heartbeat file is fresh, 1 when it is missing or stale",
		Long: `healthcheck reads the modification time of the heartbeat file a running
worker rewrites at every heartbeat that reached the database, and fails when
the file is older than --max-age or missing. It needs neither the database
nor NATS, so that it answers about this container only.`,
		Example: `  HEALTHCHECK --interval=30s CMD ["chronicle", "worker", "healthcheck", "--max-age", "2m"]`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if maxAge <= 0 {
				return fmt.Errorf("--max-age is %s; want a positive duration such as 2m", maxAge)
			}
			st, err := os.Stat(file)
			if errors.Is(err, os.ErrNotExist) {
				fmt.Fprintf(a.stderr, "unhealthy: no heartbeat file at %s; is the worker running with --heartbeat-file %s?\n", file, file)
				return &exitError{code: 1}
			}
			if err != nil {
				fmt.Fprintf(a.stderr, "unhealthy: %v\n", err)
				return &exitError{code: 1}
			}
			age := time.Since(st.ModTime()).Truncate(time.Millisecond)
			if age > maxAge {
				fmt.Fprintf(a.stderr, "unhealthy: heartbeat %s is %s old, over --max-age %s; the worker is dead, hung or cut off from the database\n", file, age, maxAge)
				return &exitError{code: 1}
			}
			fmt.Fprintf(a.stdout, "healthy: heartbeat %s is %s old\n", file, age)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "heartbeat-file", defaultHeartbeatFile, "the worker's heartbeat file")
	cmd.Flags().DurationVar(&maxAge, "max-age", defaultHeartbeatMaxAge, "oldest heartbeat that counts as healthy")
	return cmd
}
