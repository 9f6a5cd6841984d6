package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// serverProc is a `chronicle server` running in the background.
type serverProc struct {
	addr string
	mu   sync.Mutex
	logs strings.Builder
}

// startServer starts `chronicle server` on a free port and waits for it to
// listen; it is killed when the test ends.
func (c *cli) startServer(args ...string) *serverProc {
	c.t.Helper()
	cmd := c.command(context.Background(), append([]string{"--log-format", "json", "server", "--listen", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	s := &serverProc{}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.logs.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			var l struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "server listening" {
				listening <- l.Addr
			}
		}
	}()
	c.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if c.t.Failed() {
			s.mu.Lock()
			c.t.Logf("server output:\n%s", s.logs.String())
			s.mu.Unlock()
		}
	})
	select {
	case s.addr = <-listening:
	case <-time.After(30 * time.Second):
		c.t.Fatal("chronicle server did not listen within 30s")
	}
	return s
}

// get requests path and returns the status and body.
func (s *serverProc) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get("http://" + s.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// workersCheck returns the workers check of /api/healthz?detailed=true,
// selected as the runbook's jq '.checks[] | select(.name == "workers")'.
func (s *serverProc) workersCheck(t *testing.T) map[string]any {
	t.Helper()
	_, body := s.get(t, "/api/healthz?detailed=true")
	var rep struct{ Checks []map[string]any }
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	for _, c := range rep.Checks {
		if c["name"] == "workers" {
			return c
		}
	}
	t.Fatalf("no workers check in %s", body)
	return nil
}

// TestKilledWorkerGoesStale: a worker killed with SIGKILL leaves its
// heartbeat row, which the server's health check reports stale once the
// threshold passes, and `chronicle worker healthcheck` fails on its stale
// heartbeat file; a worker stopped with SIGTERM removes its row.
func TestKilledWorkerGoesStale(t *testing.T) {
	t.Parallel()
	c := setup(t)
	dir := t.TempDir()
	victimFile := filepath.Join(dir, "victim-heartbeat")
	const staleAfter = time.Second
	victim := c.startWorker("--id", "hb-victim", "--heartbeat-file", victimFile, "--heartbeat-interval", "100ms", "--lease", "3s")
	srv := c.startServer("--worker-stale-after", staleAfter.String(), "--metrics-refresh", "100ms")

	eventually(t, "the server to see the victim alive", 15*time.Second, func() bool {
		w := srv.workersCheck(t)
		return w["alive"] == 1.0 && w["stale"] == 0.0 && w["status"] == "ok"
	})
	if res := c.run("worker", "healthcheck", "--heartbeat-file", victimFile, "--max-age", staleAfter.String()); res.code != 0 || !strings.Contains(res.stdout, "healthy") {
		t.Fatalf("healthcheck of a live worker: %s", res)
	}

	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	killed := time.Now()
	eventually(t, "the health check to report the victim stale", staleAfter+5*time.Second, func() bool {
		w := srv.workersCheck(t)
		return w["alive"] == 0.0 && w["stale"] == 1.0 && w["status"] == "warn"
	})
	if took := time.Since(killed); took < staleAfter-200*time.Millisecond {
		t.Errorf("the victim was reported stale %s after it died, before the %s threshold", took, staleAfter)
	}
	w := srv.workersCheck(t)
	if age, _ := w["oldest_heartbeat_age_seconds"].(float64); age < staleAfter.Seconds() {
		t.Errorf("oldest_heartbeat_age_seconds = %v, want over %v", w["oldest_heartbeat_age_seconds"], staleAfter.Seconds())
	}
	eventually(t, "`chronicle worker healthcheck` to fail", staleAfter+5*time.Second, func() bool {
		res := c.run("worker", "healthcheck", "--heartbeat-file", victimFile, "--max-age", staleAfter.String())
		if res.code != 0 && !strings.Contains(res.stderr, "unhealthy: heartbeat") {
			t.Fatalf("healthcheck failed for another reason: %s", res)
		}
		return res.code == 1
	})
	if res := c.run("worker", "healthcheck", "--heartbeat-file", filepath.Join(dir, "nothing-here")); res.code != 1 || !strings.Contains(res.stderr, "no heartbeat file") {
		t.Errorf("healthcheck without a heartbeat file: %s", res)
	}
	eventually(t, "/metrics to count the stale worker", 5*time.Second, func() bool {
		_, body := srv.get(t, "/metrics")
		return strings.Contains(string(body), "\njob_workers_stale 1\n") && strings.Contains(string(body), `job_worker_heartbeat_age_seconds{worker_id="hb-victim"}`)
	})

	// A clean stop removes the worker's row; the dead one's stays.
	clean := c.startWorker("--id", "hb-clean", "--heartbeat-file", filepath.Join(dir, "clean-heartbeat"), "--heartbeat-interval", "100ms")
	countOf := func(id string) int {
		var n int
		if err := c.pool.QueryRow(context.Background(), `SELECT count(*) FROM worker_heartbeats WHERE worker_id = $1`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	eventually(t, "the clean worker's heartbeat row", 15*time.Second, func() bool { return countOf("hb-clean") == 1 })
	clean.stop(t)
	if countOf("hb-clean") != 0 || countOf("hb-victim") != 1 {
		t.Fatalf("after a clean stop: %d rows of hb-clean (want 0), %d of the killed hb-victim (want 1)", countOf("hb-clean"), countOf("hb-victim"))
	}
}

// TestWorkerMetricsListen: `chronicle worker --metrics-listen` serves
// /metrics and /api/healthz, and nothing else of the server: the API and
// the admin UI stay with `chronicle server`, behind its authentication.
func TestWorkerMetricsListen(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	w := c.startWorker("--metrics-listen", addr, "--heartbeat-file", "", "--heartbeat-interval", "100ms")
	srv := &serverProc{addr: addr}
	c.enqueue("email.send", "--payload", `{"user_id":"42"}`)
	eventually(t, "the worker's /metrics to count the job", 15*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(body), `job_processed_total{status="success",type="email.send"} 1`)
	})
	if check := srv.workersCheck(t); check["alive"] != 1.0 {
		t.Errorf("the worker's own health check: %v, want itself alive", check)
	}
	if code, _ := srv.get(t, "/admin/jobs"); code != http.StatusNotFound {
		t.Errorf("GET /admin/jobs on a worker: %d, want 404", code)
	}
	w.stop(t)
}
