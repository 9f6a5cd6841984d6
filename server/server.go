// Package server serves Chronicle over HTTP: Prometheus metrics at
// /metrics and health checks at /api/healthz, for load balancers,
// container orchestrators and the runbook's monitoring; the JSON API at
// /api/v1 and the admin UI at /admin/jobs, for services and operators
// (docs/server.md). Routes are registered on a net/http ServeMux; more
// are added with Handle.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chronicle-engine/chronicle/sdk"
)

// Defaults.
const (
	// DefaultListen is the address `chronicle server` listens on.
	DefaultListen = "127.0.0.1:8080"
	// DefaultHealthTimeout bounds each health check, so that a database
	// that hangs makes /api/healthz fail instead of hang.
	DefaultHealthTimeout = time.Second
	// DefaultQueueDepthWarn is the pending-job count over which the queue
	// check warns: the runbook's alert threshold.
	DefaultQueueDepthWarn = 1000
	// shutdownTimeout is how long Serve lets requests in flight finish.
	shutdownTimeout = 5 * time.Second
)

// Config configures a Server.
type Config struct {
	// Client is the Chronicle client whose database, NATS connection,
	// workers and metrics the server reports. Required.
	Client *sdk.Client
	// HealthTimeout bounds each health check. Defaults to
	// DefaultHealthTimeout (1s).
	HealthTimeout time.Duration
	// QueueDepthWarn is how many pending jobs one queue may hold before
	// the queue check warns. Defaults to DefaultQueueDepthWarn (1000).
	QueueDepthWarn int64
	// MetricsRefreshInterval is how often Serve reads the queue and worker
	// gauges from the database. Defaults to sdk.DefaultMetricsRefreshInterval
	// (10s); negative turns the refresh off (another process does it).
	MetricsRefreshInterval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Auth says who may use the HTTP API (/api/v1/...) and the admin UI
	// (/admin/...); see AuthConfig. The zero value lets everyone in as
	// "anonymous": listen on loopback only (CheckListen).
	Auth AuthConfig
	// MetricsAuth puts /metrics behind Auth too. Defaults to false:
	// /metrics shows only counts by queue and type, and scrapers usually
	// reach it on a private network.
	MetricsAuth bool
	// MaxBodyBytes caps a request body of the API and the admin UI.
	// Defaults to DefaultMaxBodyBytes (2 MiB).
	MaxBodyBytes int64
}

// Server is Chronicle's HTTP handler and the loop that keeps its gauges
// fresh.
type Server struct {
	cfg Config
	mux *http.ServeMux
	web web // the API and the admin UI; see api.go and admin.go
}

// New returns a server with its routes:
//
//	GET /metrics      Prometheus metrics of cfg.Client
//	GET /api/healthz  200 when the database answers, 503 when not;
//	                  ?detailed=true adds every check as JSON (see Health)
//	/api/v1/...       the JSON API (docs/openapi.yaml), behind cfg.Auth
//	/admin/jobs       the admin UI, behind cfg.Auth
//
// It panics when cfg.Client is nil: that is a programming error.
func New(cfg Config) *Server {
	if cfg.Client == nil {
		panic("server.New: Config.Client is required")
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = DefaultHealthTimeout
	}
	if cfg.QueueDepthWarn <= 0 {
		cfg.QueueDepthWarn = DefaultQueueDepthWarn
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	var metrics http.Handler = promhttp.HandlerFor(cfg.Client.MetricsRegistry(), promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelError), Timeout: 10 * time.Second})
	if cfg.MetricsAuth {
		metrics = s.requireAuth(true, metrics)
	}
	s.mux.Handle("GET /metrics", metrics)
	s.mux.HandleFunc("GET /api/healthz", s.healthz)
	s.routes()
	return s
}

// Handle registers a route on the server's ServeMux; pattern is a
// net/http pattern such as "GET /admin/jobs". It must be called before
// Serve.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// HandleFunc registers a handler function; see Handle.
func (s *Server) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	s.mux.HandleFunc(pattern, h)
}

// Handler returns the server's routes, to serve or to mount elsewhere.
func (s *Server) Handler() http.Handler { return s.mux }

// Serve serves on ln and refreshes the metric gauges until ctx ends, then
// shuts down, letting requests in flight finish for a few seconds.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	refreshed := make(chan struct{})
	if s.cfg.MetricsRefreshInterval >= 0 {
		go func() {
			defer close(refreshed)
			s.cfg.Client.RunMetricsRefresh(ctx, s.cfg.MetricsRefreshInterval)
		}()
	} else {
		close(refreshed)
	}
	hs := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	var err error
	select {
	case err = <-served:
	case <-ctx.Done():
		sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
		err = hs.Shutdown(sctx)
		scancel()
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	}
	cancel()
	<-refreshed
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Listen opens addr (DefaultListen when empty) for Serve, with an error
// that names the address.
func Listen(addr string) (net.Listener, error) {
	if addr == "" {
		addr = DefaultListen
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}
