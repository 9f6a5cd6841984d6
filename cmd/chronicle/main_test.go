package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/internal/testdb"
)

// binary is the chronicle command built once for every test: the tests run
// it as a user does, so that exit codes and streams are the real ones.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chronicle-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "chronicle")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build chronicle: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli runs the binary against one test's schema.
type cli struct {
	t    *testing.T
	pool *pgxpool.Pool
	url  string
	// env overrides the environment of every run, as KEY=VALUE.
	env []string
}

// setup gives a test its own migrated schema and a cli pointed at it.
func setup(t *testing.T) *cli {
	t.Helper()
	pool, schema := testdb.Schema(t)
	return &cli{t: t, pool: pool, url: testdb.SchemaURL(schema)}
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// command prepares a run of the binary with DATABASE_URL and NATS_URL set
// for this test and nothing else inherited that configures chronicle.
func (c *cli) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, binary, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "NATS_URL=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "DATABASE_URL="+c.url, "NATS_URL=nats://127.0.0.1:4222")
	cmd.Env = append(cmd.Env, c.env...)
	return cmd
}

// run runs chronicle with args and returns what it printed and its exit code.
func (c *cli) run(args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := c.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	default:
		c.t.Fatalf("chronicle %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// ok runs chronicle and fails the test unless it succeeds; it returns stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	res := c.run(args...)
	if res.code != 0 {
		c.t.Fatalf("chronicle %s: %s", strings.Join(args, " "), res)
	}
	return res.stdout
}

// fails runs chronicle, expects exit code 1 with want in its error output
// and no usage text, and returns the result.
func (c *cli) fails(want string, args ...string) result {
	c.t.Helper()
	res := c.run(args...)
	if res.code != 1 {
		c.t.Fatalf("chronicle %s: want exit 1, got %s", strings.Join(args, " "), res)
	}
	if !strings.Contains(res.stderr, want) {
		c.t.Fatalf("chronicle %s: error output lacks %q: %s", strings.Join(args, " "), want, res)
	}
	if strings.Contains(res.stderr+res.stdout, "Usage:") {
		c.t.Fatalf("chronicle %s: runtime error printed usage: %s", strings.Join(args, " "), res)
	}
	return res
}

// enqueue enqueues a job and returns its ID.
func (c *cli) enqueue(args ...string) eventlog.ID {
	c.t.Helper()
	out := strings.TrimSpace(c.ok(append([]string{"enqueue"}, args...)...))
	id, err := eventlog.ParseID(out)
	if err != nil {
		c.t.Fatalf("enqueue printed %q: %v", out, err)
	}
	return id
}

func (c *cli) show(id eventlog.ID) jobJSON {
	c.t.Helper()
	var j jobJSON
	decodeJSON(c.t, c.ok("jobs", "show", id.String(), "--json"), &j)
	return j
}

func (c *cli) history(id eventlog.ID) []eventJSON {
	c.t.Helper()
	var h []eventJSON
	decodeJSON(c.t, c.ok("jobs", "history", id.String(), "--json"), &h)
	return h
}

func (c *cli) list(args ...string) []jobJSON {
	c.t.Helper()
	var jobs []jobJSON
	decodeJSON(c.t, c.ok(append(args, "--json")...), &jobs)
	if jobs == nil {
		c.t.Fatalf("%v --json printed null, want a list", args)
	}
	return jobs
}

// exec runs SQL in the test's schema, as an operator (or an attacker) would.
func (c *cli) exec(sql string, args ...any) {
	c.t.Helper()
	if _, err := c.pool.Exec(context.Background(), sql, args...); err != nil {
		c.t.Fatalf("%s: %v", sql, err)
	}
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %T from %q: %v", v, s, err)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// worker is a `chronicle worker` running in the background.
type worker struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

// startWorker starts `chronicle worker` with args; it is killed when the
// test ends unless stopped first.
func (c *cli) startWorker(args ...string) *worker {
	c.t.Helper()
	cmd := c.command(context.Background(), append([]string{"worker"}, args...)...)
	w := &worker{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = w.stderr, w.stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() { w.done <- cmd.Wait() }()
	c.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-w.done
		}
	})
	return w
}

// stop sends SIGTERM and waits for a graceful exit with status 0. It
// returns what the worker logged.
func (w *worker) stop(t *testing.T) string {
	t.Helper()
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-w.done:
		if err != nil {
			t.Fatalf("worker exited with %v:\n%s", err, w.stderr)
		}
	case <-time.After(15 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.done
		t.Fatalf("worker did not stop within 15s of SIGTERM:\n%s", w.stderr)
	}
	return w.stderr.String()
}
