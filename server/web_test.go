package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/server"
)

// Credentials of the test servers.
const (
	testToken    = "test-token-0123456789abcdef"
	testUser     = "alice"
	testPassword = "alice-password-0123"
)

// webEnv is a client on a fresh schema, a server with authentication on a
// test listener, and the worker the test runs.
type webEnv struct {
	t      *testing.T
	c      *sdk.Client
	srv    *httptest.Server
	url    string
	worker *sdk.Worker
	// fixed makes the doomed handler succeed from then on: the fix that
	// an operator's Retry then proves.
	fixed atomic.Bool
}

// doomedType fails every attempt until fixed; one attempt per budget, so
// each failure dead-letters the job at once.
const doomedType = "web.doomed"

func newWebEnv(t *testing.T, mutate ...func(*server.Config)) *webEnv {
	t.Helper()
	c := setup(t, func(cfg *sdk.Config) { cfg.AllowUnregisteredTypes = true })
	cfg := server.Config{Client: c, Auth: server.AuthConfig{Token: testToken, User: testUser, Password: testPassword},
		MetricsRefreshInterval: -1, Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))}
	for _, m := range mutate {
		m(&cfg)
	}
	srv := httptest.NewServer(server.New(cfg).Handler())
	t.Cleanup(srv.Close)
	e := &webEnv{t: t, c: c, srv: srv, url: srv.URL}
	if err := c.RegisterJobType(doomedType, sdk.JobType{RetryPolicy: sdk.RetryPolicy{MaximumAttempts: 1}}); err != nil {
		t.Fatal(err)
	}
	return e
}

// startWorker runs a worker with the doomed handler and a handler that
// succeeds ("web.ok") until the test ends.
func (e *webEnv) startWorker(id string) *sdk.Worker {
	e.t.Helper()
	w, err := e.c.NewWorker(sdk.WorkerConfig{ID: id, PollInterval: 20 * time.Millisecond, Queues: map[string]int{"default": 10, "other": 5}})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := w.Handle(doomedType, func(ctx context.Context, _ json.RawMessage) error {
		if e.fixed.Load() {
			return nil
		}
		return errors.New("smtp: 554 mailbox unavailable <ops@example.com>")
	}); err != nil {
		e.t.Fatal(err)
	}
	if err := w.Handle("web.ok", func(context.Context, json.RawMessage) error { return nil }); err != nil {
		e.t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = w.Stop(context.Background()) })
	e.worker = w
	return w
}

// deadLetters enqueues n doomed jobs and waits until each is dead-lettered.
// A worker must be running.
func (e *webEnv) deadLetters(n int, opts ...sdk.EnqueueOption) []eventlog.ID {
	e.t.Helper()
	ctx := context.Background()
	ids := make([]eventlog.ID, n)
	for i := range ids {
		res, err := e.c.Enqueue(ctx, doomedType, map[string]any{"to": "ops@example.com", "n": i}, opts...)
		if err != nil {
			e.t.Fatal(err)
		}
		ids[i] = res.ID
	}
	e.waitStatus(ids, sdk.StatusDeadLettered)
	return ids
}

// waitStatus waits until every job has status.
func (e *webEnv) waitStatus(ids []eventlog.ID, status sdk.Status) {
	e.t.Helper()
	waitFor(e.t, "jobs to be "+string(status), 15*time.Second, func() bool {
		for _, id := range ids {
			j, err := e.c.Job(context.Background(), id)
			if err != nil || j.Status != status {
				return false
			}
		}
		return true
	})
}

// history returns a job's events of one type.
func (e *webEnv) events(id eventlog.ID, typ string) []map[string]any {
	e.t.Helper()
	h, err := e.c.History(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []map[string]any
	for _, ev := range h {
		if ev.Type == typ {
			m := map[string]any{}
			if err := json.Unmarshal(ev.Data, &m); err != nil {
				e.t.Fatal(err)
			}
			out = append(out, m)
		}
	}
	return out
}

// req is one API request.
type req struct {
	method, path string
	body         string
	// auth is "bearer" (the default), "basic", "none", or a full
	// Authorization header value.
	auth        string
	contentType string
	header      map[string]string
}

// resp is an answer, its body decoded when it is JSON.
type resp struct {
	code int
	raw  []byte
	json map[string]any
	hdr  http.Header
}

func (r resp) str(key string) string { s, _ := r.json[key].(string); return s }

func (e *webEnv) do(q req) resp {
	e.t.Helper()
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	hr, err := http.NewRequest(q.method, e.url+q.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	switch q.auth {
	case "", "bearer":
		hr.Header.Set("Authorization", "Bearer "+testToken)
	case "basic":
		hr.SetBasicAuth(testUser, testPassword)
	case "none":
	default:
		hr.Header.Set("Authorization", q.auth)
	}
	if q.method == http.MethodPost {
		ct := q.contentType
		if ct == "" {
			ct = "application/json"
		}
		if ct != "-" {
			hr.Header.Set("Content-Type", ct)
		}
	}
	for k, v := range q.header {
		hr.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	out := resp{code: res.StatusCode, raw: raw, hdr: res.Header}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out.json); err != nil {
			e.t.Fatalf("%s %s: answer is not a JSON object: %v\n%s", q.method, q.path, err, raw)
		}
	}
	return out
}

// expect checks an answer's status and, for errors, its code.
func (e *webEnv) expect(q req, status int, code string) resp {
	e.t.Helper()
	r := e.do(q)
	if r.code != status {
		e.t.Fatalf("%s %s: status %d, want %d\n%s", q.method, q.path, r.code, status, r.raw)
	}
	if code != "" {
		if r.str("code") != code || r.str("message") == "" {
			e.t.Fatalf("%s %s: error %s, want code %q and a message", q.method, q.path, r.raw, code)
		}
	}
	return r
}

func getReq(path string) req { return req{method: http.MethodGet, path: path} }

func postReq(path, body string) req { return req{method: http.MethodPost, path: path, body: body} }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(b))
}
