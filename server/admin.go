package server

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chronicle-engine/chronicle/sdk"
)

// The admin UI: server-rendered pages (html/template, which escapes all
// output) with their stylesheet and one small script embedded in the
// binary. Nothing is loaded from elsewhere; the Content-Security-Policy
// says so to the browser. Every page works without the script, which only
// adds auto-refresh and confirmations.

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Pages of the admin UI, each a template in templates/ with the layout.
var pageNames = []string{"overview", "jobs", "job", "deadletters", "confirm", "workers", "workflows", "workflow", "schedules", "audit", "error"}

// contentSecurityPolicy lets pages load only this server's own assets.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// adminRoutes registers the admin UI's pages, actions and assets.
func (s *Server) adminRoutes() {
	s.web.pages = make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		s.web.pages[name] = template.Must(template.New("layout.html").Funcs(templateFuncs).
			ParseFS(templateFS, "templates/layout.html", "templates/partials.html", "templates/"+name+".html"))
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	s.mux.Handle("GET /admin/static/", http.StripPrefix("/admin/static/", staticHandler(http.FileServerFS(static))))
	s.mux.Handle("GET /admin", http.RedirectHandler("/admin/jobs", http.StatusFound))
	s.mux.Handle("GET /admin/{$}", http.RedirectHandler("/admin/jobs", http.StatusFound))

	page := func(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
		s.mux.Handle(pattern, s.web.cop.Handler(s.requireAuth(false, s.adminHandler(h))))
	}
	page("GET /admin/jobs", s.pageOverview)
	page("GET /admin/jobs/list", s.pageJobs)
	page("GET /admin/jobs/{id}", s.pageJob)
	page("POST /admin/jobs/{id}/retry", s.actionRetry)
	page("POST /admin/jobs/{id}/resolve", s.actionResolve)
	page("POST /admin/jobs/{id}/cancel", s.actionCancel)
	page("GET /admin/dead-letters", s.pageDeadLetters)
	page("POST /admin/dead-letters/bulk", s.actionBulk)
	page("GET /admin/workers", s.pageWorkers)
	page("GET /admin/workflows", s.pageWorkflows)
	page("GET /admin/workflows/{workflowID}", s.pageWorkflow)
	page("POST /admin/workflows/{workflowID}/signal", s.actionSignal)
	page("POST /admin/workflows/{workflowID}/cancel", s.actionCancelWorkflow)
	page("POST /admin/workflows/{workflowID}/terminate", s.actionTerminateWorkflow)
	page("GET /admin/schedules", s.pageSchedules)
	page("POST /admin/schedules/{name}/{action}", s.actionSchedule)
	page("GET /admin/audit", s.pageAudit)
}

func staticHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// uiError is an error page's status and message, for failures the
// operator can act on.
type uiError struct {
	status int
	msg    string
}

func (e *uiError) Error() string { return e.msg }

// adminHandler sets the security headers, checks the form token of a POST
// and renders the error page when h fails.
func (s *Server) adminHandler(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
			if err := r.ParseForm(); err != nil {
				s.renderError(w, r, &uiError{http.StatusBadRequest, "the form could not be read: " + err.Error()})
				return
			}
			if !s.web.forms.check(Actor(r.Context()), r.PostForm.Get("csrf")) {
				s.renderError(w, r, &uiError{http.StatusForbidden, "the form's token is missing or stale: reload the page and submit again"})
				return
			}
		}
		if err := h(w, r); err != nil {
			s.renderError(w, r, err)
		}
	})
}

// view is what every page's template gets.
type view struct {
	Title string
	// Nav is the menu entry to highlight.
	Nav   string
	Actor string
	// CSRF is the hidden token of the page's forms.
	CSRF  string
	Flash string
	Error string
	Now   time.Time
	// Refresh offers auto-refresh on the page.
	Refresh bool
	D       any
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) error {
	v.Actor = Actor(r.Context())
	v.CSRF = s.web.forms.make(v.Actor)
	v.Now = time.Now().UTC()
	if v.Flash == "" && name != "error" {
		v.Flash = flashMessage(r.URL.Query())
	}
	var buf bytes.Buffer
	if err := s.web.pages[name].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		return fmt.Errorf("render page %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, err := buf.WriteTo(w)
	if err != nil {
		s.cfg.Logger.Debug("write admin page", "page", name, "error", err)
	}
	return nil
}

func (s *Server) renderError(w http.ResponseWriter, r *http.Request, err error) {
	var ue *uiError
	status, msg := 0, ""
	if errors.As(err, &ue) {
		status, msg = ue.status, ue.msg
	} else {
		status, _ = classify(err)
		msg = err.Error()
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			msg = fmt.Sprintf("the form is over the %d-byte limit", s.cfg.MaxBodyBytes)
		}
	}
	if status >= 500 {
		s.cfg.Logger.LogAttrs(r.Context(), slog.LevelError, "admin request failed", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		if status == http.StatusInternalServerError {
			msg = "internal error; the server's log has the details"
		}
	}
	if rerr := s.render(w, r, status, "error", view{Title: http.StatusText(status), Error: msg, D: status}); rerr != nil {
		http.Error(w, msg, status)
	}
}

// flashes are the confirmations an action redirects to, by code: the
// redirect carries the code, never text, so a link cannot make the page
// say anything else.
var flashes = map[string]string{
	"retried":          "Retried: the job is queued again with a fresh attempt budget.",
	"resolved":         "Resolved: the job is closed with your notes.",
	"canceled":         "Canceled.",
	"bulk_retried":     "Dead letters retried: %d.",
	"bulk_resolved":    "Dead letters resolved: %d.",
	"paused":           "Schedule paused.",
	"resumed":          "Schedule resumed.",
	"triggered":        "Schedule triggered: its job is enqueued.",
	"signaled":         "Signal sent.",
	"cancel_requested": "Cancellation requested: the workflow's code decides how it ends.",
	"terminated":       "Workflow terminated.",
}

func flashMessage(q url.Values) string {
	msg, ok := flashes[q.Get("done")]
	if !ok {
		return ""
	}
	if strings.Contains(msg, "%d") {
		n, _ := strconv.Atoi(q.Get("n"))
		return fmt.Sprintf(msg, n)
	}
	return msg
}

// done redirects after an action (POST, redirect, GET) to target with a
// flash code.
func done(w http.ResponseWriter, r *http.Request, target, code string, n int) error {
	u := target + "?done=" + code
	if n >= 0 {
		u += "&n=" + strconv.Itoa(n)
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
	return nil
}

// templateFuncs are the helpers the templates use. Each returns text that
// html/template escapes, or a value it renders safely.
var templateFuncs = template.FuncMap{
	"ts": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04:05")
		case *time.Time:
			if v == nil || v.IsZero() {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04:05")
		}
		return ""
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"ago": func(t time.Time, now time.Time) string {
		if t.IsZero() {
			return ""
		}
		return humanAge(now.Sub(t))
	},
	"age":       func(seconds float64) string { return humanAge(time.Duration(seconds * float64(time.Second))) },
	"dur":       func(d time.Duration) string { return humanAge(d) },
	"badge":     func(status any) string { return badgeClass(fmt.Sprint(status)) },
	"pageSizes": func() []string { return []string{"50", "25", "100", "200"} },
	"pretty": func(raw json.RawMessage) string {
		if len(raw) == 0 {
			return ""
		}
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			return string(raw)
		}
		return buf.String()
	},
	"trunc": func(n int, s string) string {
		s = firstLine(s)
		if len([]rune(s)) <= n {
			return s
		}
		return string([]rune(s)[:n]) + "…"
	},
	"firstLine": firstLine,
	"multiline": func(s string) bool { return strings.Contains(strings.TrimSpace(s), "\n") },
	"join":      strings.Join,
	"pct":       func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" },
	"add":       func(a, b int) int { return a + b },
	"contains": func(list []string, s string) bool {
		for _, v := range list {
			if v == s {
				return true
			}
		}
		return false
	},
	"pathEscape": url.PathEscape,
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// humanAge writes a duration as an operator reads it: 45s, 3m 20s, 2h 5m, 3d 4h.
func humanAge(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm %ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
}

// badgeClass is the CSS class of a status badge.
func badgeClass(status string) string {
	switch status {
	case string(sdk.StatusSucceeded), "completed", "active", "alive", "ok", "verified":
		return "badge ok"
	case string(sdk.StatusRunning), "processing":
		return "badge info"
	case string(sdk.StatusPending), "scheduled":
		return "badge muted"
	case string(sdk.StatusRetrying), "paused", "blocked", "warn", "stale":
		return "badge warn"
	case string(sdk.StatusDeadLettered), "failed", "timed_out", "terminated", "broken", "fail":
		return "badge bad"
	case string(sdk.StatusResolved), string(sdk.StatusCanceled), "deleted":
		return "badge neutral"
	}
	return "badge"
}
