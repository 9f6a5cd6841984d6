package server_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
	"github.com/chronicle-engine/chronicle/server"
)

// TestAPIAuthentication: every API and admin route refuses requests
// without valid credentials; a bearer token, basic auth, and the token as
// a basic-auth password are accepted, each naming its actor; /api/healthz
// and (by default) /metrics stay open.
func TestAPIAuthentication(t *testing.T) {
	t.Parallel()
	e := newWebEnv(t)
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	for _, auth := range []string{"none", "Bearer wrong-token-0123456789", basic(testUser, "wrong"), basic("mallory", testPassword), "Token " + testToken} {
		for _, q := range []req{getReq("/api/v1/jobs"), postReq("/api/v1/jobs", `{"type":"web.ok"}`), getReq("/api/v1/workers"), getReq("/api/v1/schedules")} {
			q.auth = auth
			r := e.expect(q, http.StatusUnauthorized, "unauthorized")
			if r.hdr.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with %q: 401 without WWW-Authenticate", q.method, q.path, auth)
			}
		}
		q := getReq("/admin/jobs")
		q.auth = auth
		r := e.do(q)
		if r.code != http.StatusUnauthorized || !strings.HasPrefix(r.hdr.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("GET /admin/jobs with %q: %d %q, want 401 with a basic-auth challenge", auth, r.code, r.hdr.Get("WWW-Authenticate"))
		}
	}
	// Nothing was enqueued by the refused requests.
	if jobs, err := e.c.SearchJobs(context.Background(), sdk.SearchQuery{}); err != nil || len(jobs) != 0 {
		t.Fatalf("after refused requests: %d jobs (%v), want none", len(jobs), err)
	}
	for _, tc := range []struct{ auth, actorHeader, actor string }{
		{"bearer", "", "token"},
		{"bearer", "deploy-bot", "token:deploy-bot"},
		{"basic", "", testUser},
		{basic("bob", testToken), "", "token:bob"},
	} {
		ids := e.startAndCancel(tc.auth, tc.actorHeader)
		if got := e.events(ids, "JobCanceled"); len(got) != 1 || got[0]["actor"] != tc.actor || got[0]["reason"] != "auth test" {
			t.Errorf("cancel with %s (%s): JobCanceled %v, want actor %q", tc.auth, tc.actorHeader, got, tc.actor)
		}
	}
	for _, path := range []string{"/api/healthz", "/api/healthz?detailed=true", "/metrics"} {
		q := getReq(path)
		q.auth = "none"
		if r := e.do(q); r.code != http.StatusOK {
			t.Errorf("GET %s without credentials: %d, want 200", path, r.code)
		}
	}
	locked := newWebEnv(t, func(c *server.Config) { c.MetricsAuth = true })
	q := getReq("/metrics")
	q.auth = "none"
	locked.expect(q, http.StatusUnauthorized, "unauthorized")
	q.auth = "bearer"
	locked.expect(q, http.StatusOK, "")
}

// startAndCancel enqueues a job with a delay and cancels it through the
// API with the given credentials.
func (e *webEnv) startAndCancel(auth, actorHeader string) eventlog.ID {
	e.t.Helper()
	q := postReq("/api/v1/jobs", `{"type":"web.ok","delay":"1h"}`)
	q.auth = auth
	r := e.expect(q, http.StatusCreated, "")
	id, err := eventlog.ParseID(r.str("id"))
	if err != nil {
		e.t.Fatal(err)
	}
	q = postReq("/api/v1/jobs/"+id.String()+"/cancel", `{"reason":"auth test"}`)
	q.auth = auth
	if actorHeader != "" {
		q.header = map[string]string{server.ActorHeader: actorHeader}
	}
	e.expect(q, http.StatusOK, "")
	return id
}

// TestCheckListen: beyond loopback the server needs authentication, and
// the error names the variables that configure it.
func TestCheckListen(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"127.0.0.1:8080", "localhost:8080", "[::1]:8080", "127.0.0.2:9"} {
		if err := server.CheckListen(addr, server.AuthConfig{}); err != nil {
			t.Errorf("CheckListen(%s) without auth: %v, want nil on loopback", addr, err)
		}
	}
	for _, addr := range []string{"0.0.0.0:8080", ":8080", "10.0.0.5:80", "example.com:80"} {
		err := server.CheckListen(addr, server.AuthConfig{})
		if !errors.Is(err, server.ErrAuthRequired) {
			t.Fatalf("CheckListen(%s) without auth: %v, want ErrAuthRequired", addr, err)
		}
		for _, v := range []string{server.EnvAdminToken, server.EnvAdminUser, server.EnvAdminPassword, addr} {
			if !strings.Contains(err.Error(), v) {
				t.Errorf("CheckListen(%s): %q does not name %s", addr, err, v)
			}
		}
		if err := server.CheckListen(addr, server.AuthConfig{Token: testToken}); err != nil {
			t.Errorf("CheckListen(%s) with a token: %v", addr, err)
		}
	}
	for _, bad := range []server.AuthConfig{{Token: "short"}, {User: "alice"}, {Password: testPassword}, {User: "a:b", Password: testPassword}} {
		if err := server.CheckListen("0.0.0.0:80", bad); err == nil {
			t.Errorf("CheckListen with %+v: nil, want an error", bad)
		}
	}
}

// TestAPIJobs: enqueue (one, with an idempotency key, a batch), get, the
// history with its verified hash chain, and the list with every filter and
// both paging directions.
func TestAPIJobs(t *testing.T) {
	t.Parallel()
	e := newWebEnv(t)
	r := e.expect(postReq("/api/v1/jobs", `{"type":"web.ok","payload":{"user_id":"42"},"queue":"mail","priority":"high","delay":"1h",
		"idempotency_key":"email:welcome:42","retry_policy":{"maximum_attempts":3}}`), http.StatusCreated, "")
	id := r.str("id")
	job, _ := r.json["job"].(map[string]any)
	if r.json["existing"] != false || job["status"] != "pending" || job["queue"] != "mail" || job["priority"] != "high" || job["max_attempts"] != 3.0 {
		t.Fatalf("enqueue answered %s", r.raw)
	}
	again := e.expect(postReq("/api/v1/jobs", `{"type":"web.ok","idempotency_key":"email:welcome:42"}`), http.StatusOK, "")
	if again.str("id") != id || again.json["existing"] != true {
		t.Fatalf("second enqueue with the key: %s, want job %s, existing", again.raw, id)
	}
	got := e.expect(getReq("/api/v1/jobs/"+id), http.StatusOK, "")
	if got.str("id") != id || got.str("type") != "web.ok" || fmt.Sprint(got.json["payload"]) != "map[user_id:42]" {
		t.Fatalf("GET job: %s", got.raw)
	}
	// A lower-case ID is the same ID.
	e.expect(getReq("/api/v1/jobs/"+strings.ToLower(id)), http.StatusOK, "")
	h := e.expect(getReq("/api/v1/jobs/"+id+"/history"), http.StatusOK, "")
	events, _ := h.json["events"].([]any)
	chain, _ := h.json["chain"].(map[string]any)
	if len(events) != 1 || chain["verified"] != true || events[0].(map[string]any)["type"] != "JobEnqueued" {
		t.Fatalf("history: %s", h.raw)
	}

	batch := e.expect(postReq("/api/v1/jobs/batch", `{"jobs":[{"type":"web.list","queue":"q1"},{"type":"web.list","queue":"q2"},{"type":"other.kind","queue":"q1"}]}`), http.StatusCreated, "")
	if jobs, _ := batch.json["jobs"].([]any); len(jobs) != 3 {
		t.Fatalf("batch: %s", batch.raw)
	}
	e.expect(postReq("/api/v1/jobs/batch", `{"jobs":[{"type":"web.list"},{"type":"Bad Type"}]}`), http.StatusBadRequest, "invalid_input")

	count := func(path string) int {
		t.Helper()
		r := e.expect(getReq(path), http.StatusOK, "")
		jobs, _ := r.json["jobs"].([]any)
		return len(jobs)
	}
	e.startWorker("api-jobs")
	dead := e.deadLetters(1)
	for path, want := range map[string]int{
		"/api/v1/jobs":                                                                    5,
		"/api/v1/jobs?type=web.list":                                                      2,
		"/api/v1/jobs?type=web.*":                                                         4,
		"/api/v1/jobs?queue=q1":                                                           2,
		"/api/v1/jobs?queue=q1,q2&type=web.list":                                          2,
		"/api/v1/jobs?status=dead_lettered":                                               1,
		"/api/v1/jobs?status=pending&status=dead_lettered":                                1 + 4,
		"/api/v1/jobs?q=MAILBOX+unavailable":                                              1,
		"/api/v1/jobs?q=" + dead[0].String():                                              1,
		"/api/v1/jobs?q=" + strings.ToLower(dead[0].String()):                             1,
		"/api/v1/jobs?q=email:welcome":                                                    1,
		"/api/v1/jobs?from=2000-01-01T00:00:00Z":                                          5,
		"/api/v1/jobs?to=2000-01-01T00:00:00Z":                                            0,
		"/api/v1/jobs?from=" + time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04"): 0,
	} {
		if got := count(path); got != want {
			t.Errorf("GET %s: %d jobs, want %d", path, got, want)
		}
	}
	// Pages of two, newest first, then back.
	var seen []string
	page := e.expect(getReq("/api/v1/jobs?limit=2"), http.StatusOK, "")
	for {
		for _, j := range page.json["jobs"].([]any) {
			seen = append(seen, j.(map[string]any)["id"].(string))
		}
		if page.str("older") == "" {
			break
		}
		page = e.expect(getReq("/api/v1/jobs?limit=2&before="+page.str("older")), http.StatusOK, "")
	}
	if len(seen) != 5 {
		t.Fatalf("paging saw %d jobs, want 5: %v", len(seen), seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i-1] <= seen[i] {
			t.Fatalf("paging order %v is not newest first", seen)
		}
	}
	if seen[0] != dead[0].String() {
		t.Errorf("newest job %s, want the last enqueued %s", seen[0], dead[0])
	}
	back := e.expect(getReq("/api/v1/jobs?limit=2&after="+seen[4]), http.StatusOK, "")
	if ids := back.json["jobs"].([]any); len(ids) != 2 || ids[0].(map[string]any)["id"] != seen[2] || ids[1].(map[string]any)["id"] != seen[3] || back.str("newer") != seen[2] {
		t.Errorf("page after %s: %s, want %s and %s with a newer cursor", seen[4], back.raw, seen[2], seen[3])
	}
}

// TestAPIBadInput: malformed and oversized bodies, unknown fields, wrong
// types and unknown IDs get their status and code, and change nothing.
func TestAPIBadInput(t *testing.T) {
	t.Parallel()
	e := newWebEnv(t, func(c *server.Config) { c.MaxBodyBytes = 64 << 10 })
	missing := eventlog.NewID(time.Now()).String()
	cases := []struct {
		q      req
		status int
		code   string
	}{
		{postReq("/api/v1/jobs", `{"type": "web.ok",`), 400, "malformed_json"},
		{postReq("/api/v1/jobs", `{"type": 'web.ok'}`), 400, "malformed_json"},
		{postReq("/api/v1/jobs", `[1, 2]`), 400, "malformed_json"},
		{postReq("/api/v1/jobs", `{"type":"web.ok"} {"type":"web.ok"}`), 400, "malformed_json"},
		{postReq("/api/v1/jobs", `{"typ":"web.ok"}`), 400, "invalid_input"},
		{postReq("/api/v1/jobs", `{"type": 42}`), 400, "invalid_input"},
		{postReq("/api/v1/jobs", `{}`), 400, "invalid_input"},
		{postReq("/api/v1/jobs", `{"type":"Email Send"}`), 400, "invalid_input"},
		{postReq("/api/v1/jobs", `{"type":"web.ok","priority":"urgent"}`), 400, "invalid_input"},
		{postReq("/api/v1/jobs", `{"type":"web.ok","queue":""}`), 201, ""},
		{postReq("/api/v1/jobs", `{"type":"web.ok","delay":"soon"}`), 400, "invalid_input"},
		{postReq("/api/v1/jobs", `{"type":"web.ok","payload":{"big":"`+strings.Repeat("x", 70<<10)+`"}}`), 413, "body_too_large"},
		{req{method: "POST", path: "/api/v1/jobs", body: `{"type":"web.ok"}`, contentType: "text/plain"}, 415, "unsupported_media_type"},
		{req{method: "POST", path: "/api/v1/jobs", body: `{"type":"web.ok"}`, contentType: "-"}, 415, "unsupported_media_type"},
		{getReq("/api/v1/jobs/" + missing), 404, "not_found"},
		{getReq("/api/v1/jobs/" + missing + "/history"), 404, "not_found"},
		{getReq("/api/v1/jobs/not-an-id"), 404, "not_found"},
		{postReq("/api/v1/jobs/"+missing+"/retry", `{}`), 404, "not_found"},
		{postReq("/api/v1/jobs/"+missing+"/resolve", `{"notes":"x"}`), 404, "not_found"},
		{postReq("/api/v1/jobs/"+missing+"/cancel", `{}`), 404, "not_found"},
		{postReq("/api/v1/jobs/"+missing+"/cancel", `{"reason":"x","extra":1}`), 400, "malformed_json"},
		{getReq("/api/v1/jobs?status=broken"), 400, "invalid_input"},
		{getReq("/api/v1/jobs?limit=0"), 400, "invalid_input"},
		{getReq("/api/v1/jobs?limit=5000"), 400, "invalid_input"},
		{getReq("/api/v1/jobs?before=xyz"), 400, "invalid_input"},
		{getReq("/api/v1/jobs?from=yesterday"), 400, "invalid_input"},
		{getReq("/api/v1/jobs?from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z"), 400, "invalid_input"},
		{getReq("/api/v1/dead-letters?older_than=-1h"), 400, "invalid_input"},
		{getReq("/api/v1/workflows/nope"), 404, "not_found"},
		{getReq("/api/v1/schedules/nope"), 404, "not_found"},
		{postReq("/api/v1/schedules/nope/pause", `{}`), 404, "not_found"},
		{postReq("/api/v1/workflows", `{"type":"NoSuchWorkflow","input":[1]}`), 201, ""},
		{getReq("/api/v1/throughput?window=1h&bucket=2h"), 400, "invalid_input"},
		{getReq("/api/v1/audit?since=ever"), 400, "invalid_input"},
	}
	for _, tc := range cases {
		r := e.do(tc.q)
		if r.code != tc.status || (tc.code != "" && (r.str("code") != tc.code || r.str("message") == "")) {
			t.Errorf("%s %s %.60s: %d %.300s; want %d %s", tc.q.method, tc.q.path, tc.q.body, r.code, r.raw, tc.status, tc.code)
		}
	}
	// The job-ID error says what an ID looks like.
	if r := e.do(getReq("/api/v1/jobs/not-an-id")); !strings.Contains(r.str("message"), "ULID") {
		t.Errorf("bad ID message %q does not say what an ID is", r.str("message"))
	}
	jobs, err := e.c.SearchJobs(context.Background(), sdk.SearchQuery{})
	if err != nil || len(jobs) != 1 {
		t.Errorf("after bad requests: %d jobs (%v), want only the one valid enqueue", len(jobs), err)
	}
	// A workflow run ID is not a job.
	runs, err := e.c.SearchWorkflows(context.Background(), sdk.SearchQuery{})
	if err != nil || len(runs) != 1 {
		t.Fatalf("workflow runs %v (%v)", runs, err)
	}
	e.expect(getReq("/api/v1/jobs/"+runs[0].RunID.String()), http.StatusNotFound, "not_found")
}

// TestAPIDeadLetters: retry and resolve one by one (notes required) and in
// bulk by filter with a dry-run count and a confirmed count; each action
// records the authenticated actor.
func TestAPIDeadLetters(t *testing.T) {
	t.Parallel()
	e := newWebEnv(t)
	e.startWorker("api-dead")
	ids := e.deadLetters(5)
	extra := e.deadLetters(1, sdk.WithQueue("other"))

	list := e.expect(getReq("/api/v1/dead-letters?error=mailbox"), http.StatusOK, "")
	if list.json["count"] != 6.0 || len(list.json["jobs"].([]any)) != 6 {
		t.Fatalf("dead letters: %s", list.raw)
	}
	if r := e.expect(getReq("/api/v1/dead-letters?queue=other"), http.StatusOK, ""); r.json["count"] != 1.0 {
		t.Fatalf("dead letters of queue other: %s", r.raw)
	}

	// Resolve needs notes.
	e.expect(postReq("/api/v1/jobs/"+ids[0].String()+"/resolve", `{}`), http.StatusBadRequest, "invalid_input")
	e.expect(postReq("/api/v1/jobs/"+ids[0].String()+"/resolve", `{"notes":"   "}`), http.StatusBadRequest, "invalid_input")
	q := postReq("/api/v1/jobs/"+ids[0].String()+"/resolve", `{"notes":"user deleted their account"}`)
	q.auth = "basic"
	if r := e.expect(q, http.StatusOK, ""); r.str("status") != "resolved" {
		t.Fatalf("resolve: %s", r.raw)
	}
	if ev := e.events(ids[0], "JobResolved"); len(ev) != 1 || ev[0]["actor"] != testUser || ev[0]["notes"] != "user deleted their account" {
		t.Fatalf("JobResolved %v", ev)
	}
	// Resolved is final: neither retry nor resolve applies.
	e.expect(postReq("/api/v1/jobs/"+ids[0].String()+"/retry", `{}`), http.StatusConflict, "invalid_state")
	e.expect(postReq("/api/v1/jobs/"+ids[0].String()+"/resolve", `{"notes":"again"}`), http.StatusConflict, "invalid_state")

	e.fixed.Store(true)
	q = postReq("/api/v1/jobs/"+ids[1].String()+"/retry", `{"note":"SMTP is back"}`)
	q.header = map[string]string{server.ActorHeader: "oncall"}
	e.expect(q, http.StatusOK, "")
	e.waitStatus(ids[1:2], sdk.StatusSucceeded)
	if ev := e.events(ids[1], "JobRetried"); len(ev) != 1 || ev[0]["actor"] != "token:oncall" || ev[0]["note"] != "SMTP is back" {
		t.Fatalf("JobRetried %v", ev)
	}
	e.fixed.Store(false)

	// Bulk: an empty filter needs "all".
	e.expect(postReq("/api/v1/dead-letters/retry", `{}`), http.StatusBadRequest, "invalid_input")
	e.expect(postReq("/api/v1/dead-letters/resolve", `{"filter":{"queue":["default"]},"notes":""}`), http.StatusBadRequest, "invalid_input")
	dry := e.expect(postReq("/api/v1/dead-letters/resolve", `{"filter":{"queue":["default"],"error":"mailbox"},"notes":"x","dry_run":true}`), http.StatusOK, "")
	if dry.json["matched"] != 3.0 || dry.json["changed"] != 0.0 {
		t.Fatalf("dry run: %s", dry.raw)
	}
	// A confirmation of another count changes nothing.
	e.expect(postReq("/api/v1/dead-letters/resolve", `{"filter":{"queue":["default"]},"notes":"bounced","expected_count":4}`), http.StatusConflict, "count_changed")
	if n, _ := e.c.CountDeadLetters(context.Background(), sdk.DeadLetterFilter{}); n != 4 {
		t.Fatalf("after a refused bulk resolve: %d dead letters, want 4", n)
	}
	done := e.expect(postReq("/api/v1/dead-letters/resolve", `{"filter":{"queue":["default"]},"notes":"bounced","expected_count":3}`), http.StatusOK, "")
	if done.json["matched"] != 3.0 || done.json["changed"] != 3.0 {
		t.Fatalf("bulk resolve: %s", done.raw)
	}
	for _, id := range ids[2:] {
		if ev := e.events(id, "JobResolved"); len(ev) != 1 || ev[0]["actor"] != "token" || ev[0]["notes"] != "bounced" {
			t.Errorf("job %s: JobResolved %v", id, ev)
		}
	}
	e.fixed.Store(true)
	all := e.expect(postReq("/api/v1/dead-letters/retry", `{"all":true,"note":"fixed","expected_count":1}`), http.StatusOK, "")
	if all.json["changed"] != 1.0 || all.json["ids"].([]any)[0] != extra[0].String() {
		t.Fatalf("bulk retry of all: %s", all.raw)
	}
	e.waitStatus(extra, sdk.StatusSucceeded)
}

// TestAPIConcurrentRetries: many operators retry the same dead letter at
// once; exactly one retry takes effect, the others are told it is no
// longer dead-lettered.
func TestAPIConcurrentRetries(t *testing.T) {
	t.Parallel()
	e := newWebEnv(t)
	w := e.startWorker("api-race")
	id := e.deadLetters(1)[0]
	// No worker may run the retried job during the race, so that a late
	// retry cannot find it dead-lettered again.
	if err := w.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	const n = 12
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			q := postReq("/api/v1/jobs/"+id.String()+"/retry", fmt.Sprintf(`{"note":"operator %d"}`, i))
			codes[i] = e.do(q).code
		})
	}
	close(start)
	wg.Wait()
	ok, conflict := 0, 0
	for _, c := range codes {
		switch c {
		case http.StatusOK:
			ok++
		case http.StatusConflict:
			conflict++
		}
	}
	if ok != 1 || conflict != n-1 {
		t.Fatalf("%d concurrent retries: %d succeeded and %d conflicted (%v), want 1 and %d", n, ok, conflict, codes, n-1)
	}
	if ev := e.events(id, "JobRetried"); len(ev) != 1 {
		t.Fatalf("history has %d JobRetried events, want 1", len(ev))
	}
	j, err := e.c.Job(context.Background(), id)
	if err != nil || j.Status != sdk.StatusPending {
		t.Fatalf("job after the race: %s (%v), want pending", j.Status, err)
	}
}

// Approval waits for an "approve" signal and answers the "state" query.
func Approval(ctx workflow.Context, order string) (string, error) {
	state := "waiting for approval of " + order
	if err := workflow.SetQueryHandler(ctx, "state", func() (string, error) { return state, nil }); err != nil {
		return "", err
	}
	var by string
	workflow.GetSignalChannel(ctx, "approve").Receive(ctx, &by)
	state = "approved by " + by
	return state, nil
}

// TestAPIWorkflows: start, describe, signal (recording the actor), query,
// history, list, cancel and terminate a workflow through the API.
func TestAPIWorkflows(t *testing.T) {
	t.Parallel()
	e := newWebEnv(t)
	if err := e.c.RegisterWorkflow(Approval); err != nil {
		t.Fatal(err)
	}
	wf, err := e.c.NewWorker(sdk.WorkerConfig{ID: "api-wf-2", PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := wf.RegisterWorkflow(Approval); err != nil {
		t.Fatal(err)
	}
	if err := wf.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wf.Stop(context.Background()) })

	r := e.expect(postReq("/api/v1/workflows", `{"workflow_id":"order-7","type":"Approval","input":["order-7"]}`), http.StatusCreated, "")
	if r.str("workflow_id") != "order-7" || r.str("run_id") == "" {
		t.Fatalf("start: %s", r.raw)
	}
	e.expect(postReq("/api/v1/workflows", `{"workflow_id":"order-7","type":"Approval","input":["order-7"]}`), http.StatusConflict, "workflow_exists")
	e.expect(postReq("/api/v1/workflows", `{"workflow_id":"order-8","type":"Approval","input":[1, 2]}`), http.StatusBadRequest, "invalid_input")
	waitFor(t, "the query to answer", 10*time.Second, func() bool {
		q := e.do(postReq("/api/v1/workflows/order-7/query", `{"name":"state"}`))
		return q.code == http.StatusOK && q.json["result"] == "waiting for approval of order-7"
	})
	d := e.expect(getReq("/api/v1/workflows/order-7"), http.StatusOK, "")
	if d.str("status") != "running" || d.str("type") != "Approval" || d.str("run_id") != r.str("run_id") {
		t.Fatalf("describe: %s", d.raw)
	}
	e.expect(postReq("/api/v1/workflows/order-7/signal", `{"input":"x"}`), http.StatusBadRequest, "invalid_input")
	e.expect(postReq("/api/v1/workflows/order-7/query", `{"name":"nope"}`), http.StatusBadRequest, "invalid_input")
	q := postReq("/api/v1/workflows/order-7/signal", `{"name":"approve","input":"carol"}`)
	q.auth = "basic"
	e.expect(q, http.StatusOK, "")
	waitFor(t, "the run to complete", 10*time.Second, func() bool {
		return e.do(getReq("/api/v1/workflows/order-7")).str("status") == "completed"
	})
	d = e.expect(getReq("/api/v1/workflows/order-7"), http.StatusOK, "")
	sigs, _ := d.json["signals"].([]any)
	if len(sigs) != 1 || sigs[0].(map[string]any)["actor"] != testUser || sigs[0].(map[string]any)["name"] != "approve" || string(mustJSON(t, d.json["result"])) != `"approved by carol"` {
		t.Fatalf("completed run: %s", d.raw)
	}
	h := e.expect(getReq("/api/v1/workflows/order-7/history"), http.StatusOK, "")
	if h.json["chain"].(map[string]any)["verified"] != true || len(h.json["events"].([]any)) < 4 {
		t.Fatalf("history: %s", h.raw)
	}
	e.expect(postReq("/api/v1/workflows/order-7/signal", `{"name":"approve","input":"late"}`), http.StatusConflict, "workflow_not_running")

	// Cancel one run, terminate another.
	e.expect(postReq("/api/v1/workflows", `{"workflow_id":"order-9","type":"Approval","input":["order-9"]}`), http.StatusCreated, "")
	e.expect(postReq("/api/v1/workflows/order-9/cancel", `{"reason":"customer withdrew"}`), http.StatusOK, "")
	e.expect(postReq("/api/v1/workflows", `{"workflow_id":"order-10","type":"Approval","input":["order-10"]}`), http.StatusCreated, "")
	e.expect(postReq("/api/v1/workflows/order-10/terminate", `{}`), http.StatusBadRequest, "invalid_input")
	e.expect(postReq("/api/v1/workflows/order-10/terminate", `{"reason":"duplicate order"}`), http.StatusOK, "")
	d = e.expect(getReq("/api/v1/workflows/order-10"), http.StatusOK, "")
	if d.str("status") != "terminated" {
		t.Fatalf("terminated run: %s", d.raw)
	}
	th := e.expect(getReq("/api/v1/workflows/order-10/history"), http.StatusOK, "")
	last := th.json["events"].([]any)
	data := last[len(last)-1].(map[string]any)["data"].(map[string]any)
	if data["actor"] != "token" || data["reason"] != "duplicate order" {
		t.Errorf("WorkflowTerminated %v, want actor token", data)
	}
	ch := e.expect(getReq("/api/v1/workflows/order-9/history"), http.StatusOK, "")
	found := false
	for _, ev := range ch.json["events"].([]any) {
		m := ev.(map[string]any)
		if m["type"] == "WorkflowCancelRequested" && m["data"].(map[string]any)["actor"] == "token" {
			found = true
		}
	}
	if !found {
		t.Errorf("order-9's history lacks WorkflowCancelRequested by token: %s", ch.raw)
	}
	l := e.expect(getReq("/api/v1/workflows?type=Approval"), http.StatusOK, "")
	if n := len(l.json["workflows"].([]any)); n != 3 {
		t.Errorf("workflow list: %d runs, want 3: %s", n, l.raw)
	}
	l = e.expect(getReq("/api/v1/workflows?status=terminated"), http.StatusOK, "")
	if runs := l.json["workflows"].([]any); len(runs) != 1 || runs[0].(map[string]any)["workflow_id"] != "order-10" {
		t.Errorf("terminated runs: %s", l.raw)
	}
	l = e.expect(getReq("/api/v1/workflows?q=order-9"), http.StatusOK, "")
	if runs := l.json["workflows"].([]any); len(runs) != 1 {
		t.Errorf("runs matching order-9: %s", l.raw)
	}
}

// TestAPIWorkersSchedulesStats: workers with their staleness and running
// tasks; schedules listed, paused, resumed and triggered with the actor;
// queue stats, throughput from the events, and the audit trail.
func TestAPIWorkersSchedulesStats(t *testing.T) {
	t.Parallel()
	e := newWebEnv(t)
	ctx := context.Background()
	e.startWorker("api-live")
	insertStaleWorker(t, e.c, "api-dead-worker", 5*time.Minute)
	dead := e.deadLetters(2)
	ok, err := e.c.Enqueue(ctx, "web.ok", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.waitStatus([]eventlog.ID{ok.ID}, sdk.StatusSucceeded)
	// Before the schedule is triggered below, whose job then runs too.
	tp := e.expect(getReq("/api/v1/throughput"), http.StatusOK, "")
	if tp.json["succeeded"] != 1.0 || tp.json["failed"] != 2.0 || tp.json["dead_lettered"] != 2.0 || len(tp.json["buckets"].([]any)) < 60 {
		t.Errorf("throughput: %v succeeded, %v failed, %v dead-lettered, %d buckets", tp.json["succeeded"], tp.json["failed"], tp.json["dead_lettered"], len(tp.json["buckets"].([]any)))
	}

	r := e.expect(getReq("/api/v1/workers"), http.StatusOK, "")
	if r.json["alive"] != 1.0 || r.json["stale"] != 1.0 {
		t.Fatalf("workers: %s", r.raw)
	}
	for _, w := range r.json["workers"].([]any) {
		m := w.(map[string]any)
		if want := m["worker_id"] == "api-dead-worker"; m["stale"] != want {
			t.Errorf("worker %v: stale %v, want %v", m["worker_id"], m["stale"], want)
		}
	}

	if _, err := e.c.CreateSchedule(ctx, sdk.ScheduleOptions{Name: "nightly", Cron: "0 3 * * *", JobType: "web.ok"}); err != nil {
		t.Fatal(err)
	}
	l := e.expect(getReq("/api/v1/schedules"), http.StatusOK, "")
	if s := l.json["schedules"].([]any); len(s) != 1 || s[0].(map[string]any)["name"] != "nightly" || s[0].(map[string]any)["status"] != "active" {
		t.Fatalf("schedules: %s", l.raw)
	}
	q := postReq("/api/v1/schedules/nightly/pause", `{"reason":"maintenance window"}`)
	q.auth = "basic"
	if p := e.expect(q, http.StatusOK, ""); p.str("status") != "paused" {
		t.Fatalf("pause: %s", p.raw)
	}
	e.expect(postReq("/api/v1/schedules/nightly/pause", `{}`), http.StatusConflict, "invalid_state")
	if g := e.expect(getReq("/api/v1/schedules/nightly"), http.StatusOK, ""); g.str("status") != "paused" {
		t.Fatalf("get: %s", g.raw)
	}
	e.expect(postReq("/api/v1/schedules/nightly/resume", `{"reason":"done"}`), http.StatusOK, "")
	tr := e.expect(postReq("/api/v1/schedules/nightly/trigger", `{"reason":"backfill"}`), http.StatusOK, "")
	if tr.str("job_id") == "" {
		t.Fatalf("trigger: %s", tr.raw)
	}
	hist, err := e.c.ScheduleHistory(ctx, "nightly")
	if err != nil {
		t.Fatal(err)
	}
	actors := map[string]string{}
	for _, ev := range hist {
		var d struct{ Actor string }
		_ = ev.Decode(&d)
		actors[ev.Type] = d.Actor
	}
	if actors["SchedulePaused"] != testUser || actors["ScheduleResumed"] != "token" || actors["ScheduleTriggered"] != "token" {
		t.Errorf("schedule actors %v", actors)
	}

	qs := e.expect(getReq("/api/v1/queues"), http.StatusOK, "")
	found := false
	for _, s := range qs.json["by_type"].([]any) {
		m := s.(map[string]any)
		if m["type"] == doomedType && m["dead_lettered"] == 2.0 {
			found = true
		}
	}
	if !found {
		t.Errorf("queue stats lack 2 dead letters of %s: %s", doomedType, qs.raw)
	}
	e.expect(postReq("/api/v1/jobs/"+dead[0].String()+"/resolve", `{"notes":"audit me"}`), http.StatusOK, "")
	au := e.expect(getReq("/api/v1/audit?since=1h&action=JobResolved"), http.StatusOK, "")
	if en := au.json["entries"].([]any); len(en) != 1 || en[0].(map[string]any)["actor"] != "token" || en[0].(map[string]any)["reason"] != "audit me" {
		t.Errorf("audit: %s", au.raw)
	}
}

// insertStaleWorker writes a heartbeat row last seen age ago, as a worker
// that was killed leaves it.
func insertStaleWorker(t *testing.T, c *sdk.Client, id string, age time.Duration) {
	t.Helper()
	_, err := c.Pool().Exec(context.Background(), `INSERT INTO worker_heartbeats (worker_id, host, pid, queues, version, started_at, last_seen_at, jobs_running)
		VALUES ($1, 'killed-host', 4242, ARRAY['default'], 'test', now() - make_interval(secs => $2) - interval '1 hour', now() - make_interval(secs => $2), 1)`,
		id, age.Seconds())
	if err != nil {
		t.Fatal(err)
	}
}
