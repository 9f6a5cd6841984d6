package server_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/chronicle-engine/chronicle/sdk"
)

// form posts an admin form as a browser does, with the page's token
// unless token is given.
func (e *webEnv) form(path string, values url.Values, header map[string]string) resp {
	e.t.Helper()
	q := req{method: http.MethodPost, path: path, body: values.Encode(), auth: "basic", contentType: "application/x-www-form-urlencoded", header: header}
	return e.do(q)
}

// csrfToken reads the form token of an admin page.
func (e *webEnv) csrfToken(path string) string {
	e.t.Helper()
	r := e.expect(req{method: http.MethodGet, path: path, auth: "basic"}, http.StatusOK, "")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(r.raw)
	if m == nil {
		e.t.Fatalf("no form token on %s", path)
	}
	return string(m[1])
}

// TestAdminForms: the admin UI's state-changing forms need the page's
// token and a same-origin request, refuse Resolve without notes, and
// escape everything they show.
func TestAdminForms(t *testing.T) {
	t.Parallel()
	e := newWebEnv(t)
	e.startWorker("admin-forms")
	ids := e.deadLetters(2)
	id := ids[0].String()
	page := "/admin/jobs/" + id
	token := e.csrfToken(page)

	// No token, a wrong one, or a cross-site request: refused, nothing changes.
	for _, tc := range []struct {
		values url.Values
		header map[string]string
		status int
	}{
		{url.Values{"notes": {"x"}}, nil, http.StatusForbidden},
		{url.Values{"notes": {"x"}, "csrf": {"forged"}}, nil, http.StatusForbidden},
		{url.Values{"notes": {"x"}, "csrf": {token}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{url.Values{"notes": {"x"}, "csrf": {token}}, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{url.Values{"notes": {"  "}, "csrf": {token}}, nil, http.StatusBadRequest},
	} {
		if r := e.form(page+"/resolve", tc.values, tc.header); r.code != tc.status {
			t.Errorf("resolve with %v %v: %d, want %d\n%.500s", tc.values, tc.header, r.code, tc.status, r.raw)
		}
	}
	// The JSON API refuses cross-site browser requests too.
	q := postReq("/api/v1/jobs/"+id+"/retry", `{}`)
	q.header = map[string]string{"Sec-Fetch-Site": "cross-site"}
	e.expect(q, http.StatusForbidden, "forbidden")
	if j, err := e.c.Job(context.Background(), ids[0]); err != nil || j.Status != sdk.StatusDeadLettered {
		t.Fatalf("after refused forms the job is %s (%v), want still dead-lettered", j.Status, err)
	}
	// A token is bound to its user: another user's page token fails.
	other := e.form(page+"/resolve", url.Values{"notes": {"x"}, "csrf": {token}}, map[string]string{"Authorization": "Basic Ym9iOnRlc3QtdG9rZW4tMDEyMzQ1Njc4OWFiY2RlZg=="})
	if other.code != http.StatusForbidden {
		t.Errorf("alice's token used by token:bob: %d, want 403", other.code)
	}
	// The right token from this origin resolves, and redirects to the page.
	r := e.form(page+"/resolve", url.Values{"notes": {`<script>alert("x")</script> & more`}, "csrf": {token}}, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": e.url})
	if r.code != http.StatusOK || !strings.Contains(string(r.raw), "Resolved: the job is closed") {
		t.Fatalf("resolve: %d\n%.500s", r.code, r.raw)
	}
	// Escaped on the page: the notes show as text, never as markup.
	body := string(e.expect(req{method: http.MethodGet, path: page, auth: "basic"}, http.StatusOK, "").raw)
	if strings.Contains(body, `<script>alert`) || !strings.Contains(body, html.EscapeString(`<script>alert("x")</script> & more`)) {
		t.Errorf("the notes are not escaped on the job page")
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options"} {
		if r := e.do(req{method: http.MethodGet, path: page, auth: "basic"}); r.hdr.Get(h) == "" {
			t.Errorf("admin page without %s", h)
		}
	}
	// Every page renders.
	for _, p := range []string{"/admin/jobs", "/admin/jobs/list?status=dead_lettered&q=mailbox", "/admin/dead-letters?type=web.*", "/admin/workers",
		"/admin/workflows", "/admin/schedules", "/admin/audit", "/admin/static/style.css", "/admin/static/app.js"} {
		e.expect(req{method: http.MethodGet, path: p, auth: "basic"}, http.StatusOK, "")
	}
	for p, status := range map[string]int{"/admin/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV": 404, "/admin/jobs/nope": 404, "/admin/jobs/list?status=bogus": 400, "/admin/workflows/none": 404} {
		if r := e.do(req{method: http.MethodGet, path: p, auth: "basic"}); r.code != status || !strings.Contains(string(r.raw), "<html") {
			t.Errorf("GET %s: %d, want an error page with %d", p, r.code, status)
		}
	}
	// Bulk: the first post asks, naming the count; a stale count changes nothing.
	token = e.csrfToken("/admin/dead-letters")
	ask := e.form("/admin/dead-letters/bulk", url.Values{"action": {"retry"}, "type": {"web.doomed"}, "csrf": {token}}, nil)
	if ask.code != http.StatusOK || !strings.Contains(string(ask.raw), "Retry <strong>1 dead letter</strong>") {
		t.Fatalf("bulk retry without confirm: %d\n%.800s", ask.code, ask.raw)
	}
	stale := e.form("/admin/dead-letters/bulk", url.Values{"action": {"retry"}, "type": {"web.doomed"}, "confirm": {"5"}, "csrf": {token}}, nil)
	if stale.code != http.StatusConflict {
		t.Errorf("bulk retry with a stale count: %d, want 409", stale.code)
	}
	if n, _ := e.c.CountDeadLetters(context.Background(), sdk.DeadLetterFilter{}); n != 1 {
		t.Fatalf("%d dead letters after a refused bulk retry, want 1", n)
	}
	e.fixed.Store(true)
	ok := e.form("/admin/dead-letters/bulk", url.Values{"action": {"retry"}, "type": {"web.doomed"}, "confirm": {"1"}, "csrf": {token}}, nil)
	if ok.code != http.StatusOK || !strings.Contains(string(ok.raw), "Dead letters retried: 1.") {
		t.Errorf("bulk retry: %d\n%.500s", ok.code, ok.raw)
	}
	e.waitStatus(ids[1:], sdk.StatusSucceeded)
}
