package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// modulePath is Chronicle's module, whose version heartbeats report.
const modulePath = "github.com/chronicle-engine/chronicle"

// Version returns the version of Chronicle built into this binary, such as
// "v1.2.0", or "(devel)" for a build from a source tree.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(devel)"
	}
	if bi.Main.Path == modulePath && bi.Main.Version != "" {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == modulePath {
			return d.Version
		}
	}
	return "(devel)"
}

// presence keeps a worker's heartbeat row, and its heartbeat file when it
// has one, fresh: the runbook's WorkerHeartbeat. It beats at once when
// started and then every HeartbeatInterval; a clean stop removes the row.
type presence struct {
	stop chan struct{}
	done chan struct{}
}

func (w *Worker) startPresence() {
	p := &presence{stop: make(chan struct{}), done: make(chan struct{})}
	w.presence = p
	host, _ := os.Hostname()
	queues := make([]string, 0, len(w.cfg.Queues))
	for q := range w.cfg.Queues {
		queues = append(queues, q)
	}
	slices.Sort(queues)
	hb := eventlog.WorkerHeartbeat{WorkerID: w.cfg.ID, Host: host, PID: os.Getpid(), Queues: queues, Version: Version()}
	go func() {
		defer close(p.done)
		t := time.NewTicker(w.cfg.HeartbeatInterval)
		defer t.Stop()
		failing := false
		for {
			hb.JobsRunning = w.runningCount()
			ctx, cancel := context.WithTimeout(context.Background(), w.cfg.HeartbeatInterval)
			err := w.eng.store.BeatWorker(ctx, hb)
			cancel()
			if err == nil && w.cfg.HeartbeatFile != "" {
				err = writeHeartbeatFile(w.cfg.HeartbeatFile, hb)
			}
			switch {
			case err != nil && !failing:
				w.log.Warn("worker heartbeat failed; retrying every heartbeat interval", "err", err)
			case err == nil && failing:
				w.log.Info("worker heartbeat recovered")
			}
			failing = err != nil
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
}

// stopPresence stops the heartbeat and removes the worker's row, so that
// only workers that died are left to show as stale.
func (w *Worker) stopPresence() {
	p := w.presence
	if p == nil {
		return
	}
	close(p.stop)
	<-p.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.eng.store.RemoveWorker(ctx, w.cfg.ID); err != nil {
		w.log.Warn("removing the worker heartbeat row failed; it will show as stale", "err", err)
	}
}

// heartbeatFile is what the heartbeat file holds; health checks read only
// its modification time, the content is for people.
type heartbeatFile struct {
	WorkerID    string    `json:"worker_id"`
	PID         int       `json:"pid"`
	JobsRunning int       `json:"jobs_running"`
	At          time.Time `json:"at"`
}

// writeHeartbeatFile replaces path atomically, so that a health check never
// reads a half-written file.
func writeHeartbeatFile(path string, hb eventlog.WorkerHeartbeat) error {
	data, _ := json.Marshal(heartbeatFile{WorkerID: hb.WorkerID, PID: hb.PID, JobsRunning: hb.JobsRunning, At: time.Now().UTC()})
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write heartbeat file: %w", err)
	}
	_, werr := tmp.Write(append(data, '\n'))
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write heartbeat file %s: %w", path, werr)
	}
	return nil
}

// RunningCount returns how many attempts the worker is running.
func (w *Worker) RunningCount() int { return w.runningCount() }
