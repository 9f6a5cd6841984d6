package sdk_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/sdk"
)

// TestWorkerHeartbeat: a running worker keeps its worker_heartbeats row
// and its heartbeat file fresh; a clean stop removes the row; a row that
// stopped being refreshed shows as stale.
func TestWorkerHeartbeat(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *sdk.Config) { c.Observability.WorkerStaleAfter = 500 * time.Millisecond })
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "worker-heartbeat")
	w, err := b.client.NewWorker(sdk.WorkerConfig{ID: "hb-worker", Queues: map[string]int{"emails": 2, "default": 3},
		HeartbeatInterval: 50 * time.Millisecond, HeartbeatFile: file})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	if err := w.Handle("email.send", func(ctx context.Context, _ json.RawMessage) error {
		<-release
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			close(release)
			_ = w.Stop(context.Background())
		}
	})
	if _, err := b.client.Enqueue(ctx, "email.send", nil); err != nil {
		t.Fatal(err)
	}
	var me sdk.WorkerStatus
	waitFor(t, "a heartbeat with the running job", 5*time.Second, func() bool {
		ws, err := b.client.Workers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) == 1 {
			me = ws[0]
		}
		return len(ws) == 1 && ws[0].JobsRunning == 1
	})
	host, _ := os.Hostname()
	if me.WorkerID != "hb-worker" || me.Host != host || me.PID != os.Getpid() || !slices.Equal(me.Queues, []string{"default", "emails"}) ||
		me.Version == "" || me.StartedAt.After(me.LastSeenAt) || me.Stale || me.Age > time.Second {
		t.Fatalf("heartbeat row %+v, want hb-worker on %s, pid %d, queues [default emails], a version, fresh", me, host, os.Getpid())
	}
	// The file is rewritten at every beat.
	st, err := os.Stat(file)
	if err != nil {
		t.Fatalf("heartbeat file: %v", err)
	}
	first := st.ModTime()
	waitFor(t, "the heartbeat file to be rewritten", 5*time.Second, func() bool {
		st, err := os.Stat(file)
		return err == nil && st.ModTime().After(first)
	})
	var content struct {
		WorkerID string `json:"worker_id"`
		PID      int    `json:"pid"`
	}
	raw, err := os.ReadFile(file)
	if err != nil || json.Unmarshal(raw, &content) != nil || content.WorkerID != "hb-worker" || content.PID != os.Getpid() {
		t.Fatalf("heartbeat file holds %q (%v), want the worker's ID and pid", raw, err)
	}
	// And the row's last_seen_at moves on.
	waitFor(t, "last_seen_at to advance", 5*time.Second, func() bool {
		ws, err := b.client.Workers(ctx)
		return err == nil && len(ws) == 1 && ws[0].LastSeenAt.After(me.LastSeenAt) && ws[0].StartedAt.Equal(me.StartedAt)
	})

	// A clean stop removes the row.
	close(release)
	stopped = true
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if ws, err := b.client.Workers(ctx); err != nil || len(ws) != 0 {
		t.Fatalf("after a clean stop: workers %+v (%v), want none", ws, err)
	}

	// A row nobody refreshes is stale once older than WorkerStaleAfter.
	execSQL(t, b, `INSERT INTO worker_heartbeats (worker_id, host, pid, queues, version, started_at, last_seen_at)
		VALUES ('dead-worker', 'h', 1, '{default}', 'v0', now() - interval '1 hour', now() - interval '1 second')`)
	ws, err := b.client.Workers(ctx)
	if err != nil || len(ws) != 1 || !ws[0].Stale || ws[0].Age < time.Second {
		t.Fatalf("workers %+v (%v), want dead-worker stale with an age of at least 1s", ws, err)
	}
}
