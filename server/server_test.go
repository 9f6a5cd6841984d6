package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/internal/testdb"
	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/server"
)

// setup returns a client on a fresh schema with private NATS wakeups.
func setup(t *testing.T, mutate ...func(*sdk.Config)) *sdk.Client {
	t.Helper()
	pool, schema := testdb.Schema(t)
	cfg := sdk.Config{Pool: pool, WakeSubjectPrefix: "test." + schema, Logger: slog.New(slog.DiscardHandler)}
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := sdk.NewClient(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// get requests path from h and returns the status, the body and how long
// the answer took.
func get(t *testing.T, h http.Handler, path string) (int, []byte, time.Duration) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	began := time.Now()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body, time.Since(began)
}

// scrape reads /metrics as Prometheus does.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	code, body, _ := get(t, h, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return families
}

// series finds the series of family name whose labels include labels.
func series(families map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	f, ok := families[name]
	if !ok {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range labels {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

// value returns a counter's or gauge's value, failing when it is absent.
func value(t *testing.T, families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	m := series(families, name, labels)
	if m == nil {
		t.Fatalf("no series %s%v in /metrics", name, labels)
	}
	if m.Counter != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// sum adds the values of every series of a counter family, or the sample
// counts and sums of a histogram family.
func sum(families map[string]*dto.MetricFamily, name string) (count, total float64) {
	for _, m := range families[name].GetMetric() {
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Histogram != nil:
			count += float64(m.GetHistogram().GetSampleCount())
			total += m.GetHistogram().GetSampleSum()
		}
	}
	return count, total
}

// TestMetricsAfterKnownMix runs a known mix of successes, failures and
// dead letters, scrapes /metrics and checks every counter exactly, that
// the duration histogram counted every attempt, and the row gauges.
func TestMetricsAfterKnownMix(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := context.Background()
	immediate := []time.Duration{0}
	for name, p := range map[string]sdk.RetryPolicy{
		"metrics.flaky":  {MaximumAttempts: 3, Schedule: immediate},
		"metrics.doomed": {MaximumAttempts: 2, Schedule: immediate},
		"metrics.perm":   {MaximumAttempts: 5, Schedule: immediate},
	} {
		if err := c.RegisterJobType(name, sdk.JobType{RetryPolicy: p}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.NewWorker(sdk.WorkerConfig{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	handlers := map[string]sdk.HandlerFunc{
		"metrics.ok": func(context.Context, json.RawMessage) error { return nil },
		"metrics.flaky": func(ctx context.Context, _ json.RawMessage) error {
			if info, _ := sdk.JobFromContext(ctx); info.Attempt == 1 {
				return errors.New("flaky: first attempt fails")
			}
			return nil
		},
		"metrics.doomed": func(context.Context, json.RawMessage) error { return errors.New("doomed: always fails") },
		"metrics.perm":   func(context.Context, json.RawMessage) error { return sdk.Permanent(errors.New("bad input")) },
	}
	for name, h := range handlers {
		if err := w.Handle(name, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = w.Stop(context.Background())
		}
	})
	mix := map[string]int{"metrics.ok": 3, "metrics.flaky": 2, "metrics.doomed": 1, "metrics.perm": 1}
	var ids []eventlog.ID
	for name, n := range mix {
		for range n {
			res, err := c.Enqueue(ctx, name, nil)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, res.ID)
		}
	}
	waitFor(t, "every job to finish or be dead-lettered", 15*time.Second, func() bool {
		for _, id := range ids {
			j, err := c.Job(ctx, id)
			if err != nil || (j.Status != sdk.StatusSucceeded && j.Status != sdk.StatusDeadLettered) {
				return false
			}
		}
		return true
	})
	// Stopping waits until every outcome is recorded and reported.
	stopped = true
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.RefreshMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	h := server.New(server.Config{Client: c}).Handler()
	fams := scrape(t, h)

	want := map[[2]string]float64{
		{"metrics.ok", "success"}: 3, {"metrics.ok", "failure"}: 0,
		{"metrics.flaky", "success"}: 2, {"metrics.flaky", "failure"}: 2,
		{"metrics.doomed", "success"}: 0, {"metrics.doomed", "failure"}: 2,
		{"metrics.perm", "success"}: 0, {"metrics.perm", "failure"}: 1,
	}
	for k, v := range want {
		if got := value(t, fams, "job_processed_total", map[string]string{"type": k[0], "status": k[1]}); got != v {
			t.Errorf("job_processed_total{type=%q,status=%q} = %v, want %v", k[0], k[1], got, v)
		}
		if got := value(t, fams, "job_processed_total", map[string]string{"type": k[0], "status": "timeout"}); got != 0 {
			t.Errorf("job_processed_total{type=%q,status=\"timeout\"} = %v, want 0", k[0], got)
		}
	}
	for typ, v := range map[string]float64{"metrics.ok": 0, "metrics.flaky": 0, "metrics.doomed": 1, "metrics.perm": 1} {
		if got := value(t, fams, "job_dead_lettered_total", map[string]string{"type": typ}); got != v {
			t.Errorf("job_dead_lettered_total{type=%q} = %v, want %v", typ, got, v)
		}
	}
	attempts := map[string]uint64{"metrics.ok": 3, "metrics.flaky": 4, "metrics.doomed": 2, "metrics.perm": 1}
	for typ, n := range attempts {
		m := series(fams, "job_duration_seconds", map[string]string{"type": typ})
		if m == nil {
			t.Fatalf("no job_duration_seconds{type=%q}", typ)
		}
		hist := m.GetHistogram()
		if hist.GetSampleCount() != n {
			t.Errorf("job_duration_seconds_count{type=%q} = %d, want %d (one per attempt)", typ, hist.GetSampleCount(), n)
		}
		if b := hist.GetBucket(); len(b) == 0 || b[len(b)-1].GetCumulativeCount() != n {
			t.Errorf("job_duration_seconds{type=%q}: the largest bucket counts %d, want every attempt (%d)", typ, b[len(b)-1].GetCumulativeCount(), n)
		}
	}
	// Every attempt was claimed once and recorded once.
	if _, claimed := sum(fams, "job_claim_batch_size"); claimed != 10 {
		t.Errorf("job_claim_batch_size_sum = %v, want 10 claimed attempts", claimed)
	}
	if _, recorded := sum(fams, "job_completion_batch_size"); recorded != 10 {
		t.Errorf("job_completion_batch_size_sum = %v, want 10 recorded outcomes", recorded)
	}
	batches, _ := sum(fams, "job_claim_batch_size")
	var withWork float64
	for _, m := range fams["job_claims_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "result" && l.GetValue() == "work" {
				withWork += m.GetCounter().GetValue()
			}
		}
	}
	if withWork != batches || batches == 0 {
		t.Errorf("job_claims_total{result=\"work\"} = %v, job_claim_batch_size_count = %v; want them equal and positive", withWork, batches)
	}
	if _, wakeups := sum(fams, "job_wakeups_received_total"); wakeups < 1 {
		t.Errorf("job_wakeups_received_total = %v; enqueues publish wakeups, want at least 1", wakeups)
	}
	// The row gauges, as of the refresh.
	q := map[string]string{"queue": "default"}
	for name, v := range map[string]float64{"job_queue_pending": 0, "job_queue_processing": 0, "job_queue_scheduled": 0,
		"job_queue_failed": 2, "job_retries_scheduled": 0, "job_dead_letters_pending": 2} {
		if got := value(t, fams, name, q); got != v {
			t.Errorf("%s{queue=\"default\"} = %v, want %v", name, got, v)
		}
	}
	if ts := value(t, fams, "job_dead_letters_newest_timestamp_seconds", q); math.Abs(float64(time.Now().Unix())-ts) > 60 {
		t.Errorf("job_dead_letters_newest_timestamp_seconds = %v, want about now (%d)", ts, time.Now().Unix())
	}
	// The worker stopped cleanly and removed its heartbeat row.
	if alive, stale := value(t, fams, "job_workers_alive", nil), value(t, fams, "job_workers_stale", nil); alive != 0 || stale != 0 {
		t.Errorf("after a clean stop: %v alive and %v stale workers, want none", alive, stale)
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Errorf("the client's own registry lacks the Go runtime metrics")
	}
}

// healthReport is /api/healthz?detailed=true as a client sees it.
type healthReport struct {
	Status string           `json:"status"`
	Checks []map[string]any `json:"checks"`
}

// check finds a check by name, as the runbook's
// jq '.checks[] | select(.name == "workers")' does.
func (r healthReport) check(t *testing.T, name string) map[string]any {
	t.Helper()
	for _, c := range r.Checks {
		if c["name"] == name {
			return c
		}
	}
	t.Fatalf("no check named %q in %+v", name, r)
	return nil
}

func detailed(t *testing.T, h http.Handler) (int, healthReport, time.Duration) {
	t.Helper()
	code, body, took := get(t, h, "/api/healthz?detailed=true")
	var rep healthReport
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return code, rep, took
}

// TestHealthzDetailed: with PostgreSQL up and a worker running, the
// detailed health check answers 200 within 200ms with the four checks in
// the runbook's shape.
func TestHealthzDetailed(t *testing.T) {
	t.Parallel()
	c := setup(t)
	w, err := c.NewWorker(sdk.WorkerConfig{ID: "healthz-worker", HeartbeatInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	for range 3 {
		if _, err := c.Enqueue(context.Background(), "email.send", nil, sdk.WithQueue("backlog")); err != nil {
			t.Fatal(err)
		}
	}
	h := server.New(server.Config{Client: c, QueueDepthWarn: 2}).Handler()
	waitFor(t, "the worker's heartbeat row", 5*time.Second, func() bool {
		ws, err := c.Workers(context.Background())
		return err == nil && len(ws) == 1
	})
	detailed(t, h) // the pool's first connections
	code, rep, took := detailed(t, h)
	if code != http.StatusOK {
		t.Fatalf("status %d, want 200: %+v", code, rep)
	}
	if took > 200*time.Millisecond {
		t.Errorf("detailed health check took %s, want under 200ms", took)
	}
	var names []any
	for _, ch := range rep.Checks {
		names = append(names, ch["name"])
	}
	if fmt.Sprint(names) != "[database workers nats queue]" {
		t.Fatalf("checks %v, want [database workers nats queue]", names)
	}
	if db := rep.check(t, "database"); db["status"] != "ok" {
		t.Errorf("database check %v, want ok", db)
	}
	workers := rep.check(t, "workers")
	if workers["status"] != "ok" || workers["alive"] != 1.0 || workers["stale"] != 0.0 {
		t.Errorf("workers check %v, want ok with 1 alive and 0 stale", workers)
	}
	if age, ok := workers["oldest_heartbeat_age_seconds"].(float64); !ok || age < 0 || age > 5 {
		t.Errorf("oldest_heartbeat_age_seconds = %v, want a few tenths of a second", workers["oldest_heartbeat_age_seconds"])
	}
	if list, _ := workers["workers"].([]any); len(list) != 1 || list[0].(map[string]any)["worker_id"] != "healthz-worker" {
		t.Errorf("workers list %v, want healthz-worker", workers["workers"])
	}
	if n := rep.check(t, "nats"); n["status"] != "ok" || n["state"] != "connected" {
		t.Errorf("nats check %v, want ok and connected", n)
	}
	// Three jobs wait in a queue no worker claims, over the warning depth of 2.
	queue := rep.check(t, "queue")
	if queue["status"] != "warn" || queue["pending"] != 3.0 || queue["message"] == nil {
		t.Errorf("queue check %v, want warn with 3 pending and a message", queue)
	}
	if rep.Status != server.StatusDegraded {
		t.Errorf("overall status %q, want %q (a warning does not make the server unhealthy)", rep.Status, server.StatusDegraded)
	}
	// Without detail, only the database counts: what a load balancer needs.
	code, body, _ := get(t, h, "/api/healthz")
	if code != http.StatusOK || string(body) != "{\"status\":\"ok\"}\n" {
		t.Errorf("GET /api/healthz: %d %s, want 200 and {\"status\":\"ok\"}", code, body)
	}
}
