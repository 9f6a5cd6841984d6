package workflow_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/internal/testdb"
	"github.com/chronicle-engine/chronicle/sdk"
)

type harness struct {
	t      *testing.T
	client *sdk.Client
	schema string
}

func quietLogger() *slog.Logger {
	if os.Getenv("CHRONICLE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newHarness returns a client on a fresh schema with private wakeups.
// maxConns, when given, sizes a pool of the client's own.
func newHarness(t *testing.T, maxConns ...int32) *harness {
	t.Helper()
	pool, schema := testdb.Schema(t)
	if len(maxConns) > 0 {
		cfg, err := pgxpool.ParseConfig(testdb.SchemaURL(schema))
		if err != nil {
			t.Fatal(err)
		}
		cfg.MaxConns = maxConns[0]
		if pool, err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
	}
	c, err := sdk.NewClient(context.Background(), sdk.Config{Pool: pool, WakeSubjectPrefix: "test." + schema, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &harness{t: t, client: c, schema: schema}
}

// worker returns a worker with quick polling and leases, started, and
// stopped when the test ends. register adds its workflows and activities.
func (h *harness) worker(id string, register func(w *sdk.Worker) error, mutate ...func(*sdk.WorkerConfig)) *sdk.Worker {
	h.t.Helper()
	cfg := sdk.WorkerConfig{ID: id, LeaseDuration: 2 * time.Second, PollInterval: 100 * time.Millisecond, MaintenanceInterval: 100 * time.Millisecond,
		Queues: map[string]int{sdk.DefaultQueue: 20}}
	for _, m := range mutate {
		m(&cfg)
	}
	w, err := h.client.NewWorker(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := register(w); err != nil {
		h.t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { stopWorker(w) })
	return w
}

func stopWorker(w *sdk.Worker) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = w.Stop(ctx)
}

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

func (h *harness) history(runID string) []eventlog.Event {
	h.t.Helper()
	id, err := eventlog.ParseID(runID)
	if err != nil {
		h.t.Fatal(err)
	}
	events, err := h.client.History(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return events
}

func eventTypes(events []eventlog.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Type
	}
	return out
}

func count(events []eventlog.Event, typ string) int {
	n := 0
	for _, e := range events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// verifyOK fails the test when chronicle verify would report a problem.
func (h *harness) verifyOK() {
	h.t.Helper()
	r, err := h.client.Engine().Verify(context.Background(), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, p := range r.Problems {
		h.t.Errorf("verify: %s", p)
	}
}

func (h *harness) exec(sql string, args ...any) {
	h.t.Helper()
	if _, err := h.client.Pool().Exec(context.Background(), sql, args...); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) count(sql string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.client.Pool().QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func eventlogID(s string) (eventlog.ID, error) { return eventlog.ParseID(s) }
