package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/chronicle-engine/chronicle/sdk"
)

// Statuses of a check.
const (
	// CheckOK: the check passed.
	CheckOK = "ok"
	// CheckWarn: something needs attention, but the server can serve.
	CheckWarn = "warn"
	// CheckFail: the check failed; for the database, the server cannot serve.
	CheckFail = "fail"
)

// Overall statuses of a Report.
const (
	// StatusOK: every check passed.
	StatusOK = "ok"
	// StatusDegraded: the database answers, but another check warns or
	// fails. /api/healthz still answers 200.
	StatusDegraded = "degraded"
	// StatusUnhealthy: the database check failed; /api/healthz answers 503.
	StatusUnhealthy = "unhealthy"
)

// Names of the checks.
const (
	CheckDatabase = "database"
	CheckWorkers  = "workers"
	CheckNATS     = "nats"
	CheckQueue    = "queue"
)

// Check is the result of one health check. It is written as one flat JSON
// object: name, status, message, duration_ms, then its details.
type Check struct {
	Name   string
	Status string
	// Message says what is wrong, and what to do, when Status is not ok.
	Message  string
	Duration time.Duration
	// Details are the check's figures, such as the workers check's alive
	// and stale counts.
	Details map[string]any
}

// MarshalJSON writes the check as one flat object.
func (c Check) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(c.Details)+4)
	maps.Copy(m, c.Details)
	m["name"], m["status"], m["duration_ms"] = c.Name, c.Status, float64(c.Duration.Microseconds())/1000
	if c.Message != "" {
		m["message"] = c.Message
	}
	return json.Marshal(m)
}

// Report is the answer of /api/healthz?detailed=true.
type Report struct {
	// Status is StatusOK, StatusDegraded or StatusUnhealthy.
	Status string  `json:"status"`
	Checks []Check `json:"checks"`
}

// healthz answers 200 when the database answers and 503 when it does not.
// With ?detailed=true it writes every check as JSON.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	detailed, _ := strconv.ParseBool(r.URL.Query().Get("detailed"))
	rep := s.Health(r.Context(), detailed)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	code := http.StatusOK
	if rep.Status == StatusUnhealthy {
		code = http.StatusServiceUnavailable
	}
	w.WriteHeader(code)
	if !detailed {
		_ = json.NewEncoder(w).Encode(map[string]string{"status": rep.Status})
		return
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
}

// Health runs the checks, each bounded by Config.HealthTimeout, at once:
// only the database check, or with detailed every check, in the order
// database, workers, nats, queue. The report is unhealthy when the
// database check fails, degraded when another check warns or fails.
func (s *Server) Health(ctx context.Context, detailed bool) Report {
	checks := []func(context.Context) Check{s.checkDatabase}
	if detailed {
		checks = append(checks, s.checkWorkers, s.checkNATS, s.checkQueue)
	}
	rep := Report{Status: StatusOK, Checks: make([]Check, len(checks))}
	var wg sync.WaitGroup
	for i, check := range checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, s.cfg.HealthTimeout)
			defer cancel()
			began := time.Now()
			c := check(cctx)
			c.Duration = time.Since(began)
			if c.Details == nil {
				c.Details = map[string]any{}
			}
			rep.Checks[i] = c
		})
	}
	wg.Wait()
	for _, c := range rep.Checks {
		switch {
		case c.Name == CheckDatabase && c.Status == CheckFail:
			rep.Status = StatusUnhealthy
		case c.Status != CheckOK && rep.Status == StatusOK:
			rep.Status = StatusDegraded
		}
	}
	return rep
}

// failed is a check that could not run.
func failed(name string, err error, timeout time.Duration) Check {
	msg := err.Error()
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		msg = fmt.Sprintf("no answer within %s: %v", timeout, err)
	}
	return Check{Name: name, Status: CheckFail, Message: msg}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func (s *Server) checkDatabase(ctx context.Context) Check {
	if err := s.cfg.Client.Ping(ctx); err != nil {
		c := failed(CheckDatabase, err, s.cfg.HealthTimeout)
		c.Message = "PostgreSQL does not answer: " + c.Message
		return c
	}
	return Check{Name: CheckDatabase, Status: CheckOK}
}

func (s *Server) checkWorkers(ctx context.Context) Check {
	workers, err := s.cfg.Client.Workers(ctx)
	if err != nil {
		return failed(CheckWorkers, err, s.cfg.HealthTimeout)
	}
	alive, stale := 0, 0
	var oldest time.Duration
	list := make([]map[string]any, 0, len(workers))
	for _, w := range workers {
		if w.Stale {
			stale++
		} else {
			alive++
		}
		oldest = max(oldest, w.Age)
		list = append(list, map[string]any{
			"worker_id": w.WorkerID, "host": w.Host, "pid": w.PID, "queues": w.Queues, "version": w.Version,
			"started_at": w.StartedAt, "last_seen_at": w.LastSeenAt, "jobs_running": w.JobsRunning,
			"heartbeat_age_seconds": w.Age.Seconds(), "stale": w.Stale,
		})
	}
	staleAfter := s.cfg.Client.WorkerStaleAfter()
	c := Check{Name: CheckWorkers, Status: CheckOK, Details: map[string]any{
		"alive": alive, "stale": stale, "oldest_heartbeat_age_seconds": oldest.Seconds(),
		"stale_after_seconds": staleAfter.Seconds(), "workers": list,
	}}
	switch {
	case stale > 0:
		c.Status = CheckWarn
		c.Message = fmt.Sprintf("%d of %d workers have not sent a heartbeat for over %s; restart them (a dead worker's jobs are retried once their leases expire)", stale, len(workers), staleAfter)
	case alive == 0:
		c.Status = CheckWarn
		c.Message = "no worker is running: jobs wait until one starts"
	}
	return c
}

func (s *Server) checkNATS(context.Context) Check {
	state := s.cfg.Client.NATSState()
	c := Check{Name: CheckNATS, Status: CheckOK, Details: map[string]any{"state": state}}
	if state != sdk.NATSConnected && state != sdk.NATSDisabled {
		c.Status = CheckWarn
		c.Message = "NATS is " + state + ": workers find work by polling until it is back, so jobs start up to a poll interval late"
	}
	return c
}

func (s *Server) checkQueue(ctx context.Context) Check {
	stats, err := s.cfg.Client.QueueDepths(ctx)
	if err != nil {
		return failed(CheckQueue, err, s.cfg.HealthTimeout)
	}
	var pending, scheduled, processing, retrying, dead, deepest int64
	deepestQueue := ""
	queues := make(map[string]any, len(stats))
	for _, q := range stats {
		pending += q.Pending
		scheduled += q.Scheduled
		processing += q.Processing
		retrying += q.Retrying
		dead += q.DeadLettered
		if q.Pending > deepest {
			deepest, deepestQueue = q.Pending, q.Queue
		}
		queues[q.Queue] = map[string]int64{"pending": q.Pending, "scheduled": q.Scheduled, "processing": q.Processing,
			"retrying": q.Retrying, "dead_lettered": q.DeadLettered}
	}
	c := Check{Name: CheckQueue, Status: CheckOK, Details: map[string]any{
		"pending": pending, "scheduled": scheduled, "processing": processing, "failed": retrying + dead,
		"retrying": retrying, "dead_letters": dead, "depth_warn": s.cfg.QueueDepthWarn, "queues": queues,
	}}
	if deepest > s.cfg.QueueDepthWarn {
		c.Status = CheckWarn
		c.Message = fmt.Sprintf("queue %s has %d pending jobs, over %d: add workers", deepestQueue, deepest, s.cfg.QueueDepthWarn)
	}
	return c
}
