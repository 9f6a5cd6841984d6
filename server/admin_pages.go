package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

// Alert levels of the overview.
const (
	alertBad  = "bad"
	alertWarn = "warn"
)

// alert is a runbook threshold that is crossed.
type alert struct {
	Level, Title, Text, Link, LinkText string
}

// overviewData is the overview at /admin/jobs.
type overviewData struct {
	Alerts []alert
	// Totals over every queue.
	Pending, Processing, Retrying, DeadLettered, Scheduled int64
	Alive, Stale                                           int
	Throughput                                             sdk.Throughput
	Chart                                                  chart
	ByType                                                 []sdk.QueueStats
	Queues                                                 []sdk.QueueDepth
	DeadLetters                                            []sdk.Job
	NewDeadLetters                                         int64
	DepthWarn                                              int64
}

// chart is the throughput chart: one stacked bar per bucket, drawn as
// inline SVG by the template.
type chart struct {
	Width, Height int
	Bars          []bar
	Max           int64
	// Labels are the times under the first, middle and last bar.
	Labels []chartLabel
}

type bar struct {
	X, W                               int
	OKY, OKH, BadY, BadH, DeadY, DeadH int
	Title                              string
}

type chartLabel struct {
	X      int
	Anchor string
	Text   string
}

func makeChart(t sdk.Throughput) chart {
	c := chart{Width: 720, Height: 120}
	n := len(t.Buckets)
	if n == 0 {
		return c
	}
	for _, b := range t.Buckets {
		c.Max = max(c.Max, b.Succeeded+b.Failed+b.DeadLettered)
	}
	scale := float64(c.Height-4) / float64(max(c.Max, 1))
	step := float64(c.Width) / float64(n)
	for i, b := range t.Buckets {
		x := int(float64(i) * step)
		w := max(int(step)-2, 1)
		ok, bad, dead := int(float64(b.Succeeded)*scale), int(float64(b.Failed)*scale), int(float64(b.DeadLettered)*scale)
		if b.Succeeded > 0 {
			ok = max(ok, 1)
		}
		if b.Failed > 0 {
			bad = max(bad, 1)
		}
		if b.DeadLettered > 0 {
			dead = max(dead, 1)
		}
		y := c.Height
		br := bar{X: x, W: w, Title: fmt.Sprintf("%s UTC: %d succeeded, %d failed, %d dead-lettered", b.Start.UTC().Format("15:04"), b.Succeeded, b.Failed, b.DeadLettered)}
		y -= ok
		br.OKY, br.OKH = y, ok
		y -= bad
		br.BadY, br.BadH = y, bad
		y -= dead
		br.DeadY, br.DeadH = y, dead
		c.Bars = append(c.Bars, br)
	}
	c.Labels = []chartLabel{
		{X: 0, Anchor: "start", Text: t.Buckets[0].Start.UTC().Format("15:04")},
		{X: c.Width / 2, Anchor: "middle", Text: t.Buckets[n/2].Start.UTC().Format("15:04")},
		{X: c.Width, Anchor: "end", Text: t.Now.UTC().Format("15:04") + " UTC"},
	}
	return c
}

func (s *Server) pageOverview(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	c := s.cfg.Client
	d := overviewData{DepthWarn: s.cfg.QueueDepthWarn}
	var err error
	if d.ByType, err = c.QueueStats(ctx); err != nil {
		return err
	}
	if d.Queues, err = c.QueueDepths(ctx); err != nil {
		return err
	}
	workers, err := c.Workers(ctx)
	if err != nil {
		return err
	}
	if d.Throughput, err = c.Throughput(ctx, time.Hour, time.Minute); err != nil {
		return err
	}
	d.Chart = makeChart(d.Throughput)
	if d.DeadLetters, err = c.SearchJobs(ctx, sdk.SearchQuery{Statuses: []string{string(sdk.StatusDeadLettered)}, Limit: 10}); err != nil {
		return err
	}
	if d.NewDeadLetters, err = c.CountDeadLetters(ctx, sdk.DeadLetterFilter{NewerThan: 24 * time.Hour}); err != nil {
		return err
	}
	for _, q := range d.Queues {
		d.Pending += q.Pending
		d.Scheduled += q.Scheduled
		d.Processing += q.Processing
		d.Retrying += q.Retrying
		d.DeadLettered += q.DeadLettered
		if q.Pending > s.cfg.QueueDepthWarn {
			d.Alerts = append(d.Alerts, alert{Level: alertWarn, Title: fmt.Sprintf("Queue %s has %d pending jobs", q.Queue, q.Pending),
				Text: fmt.Sprintf("Over the runbook's threshold of %d: add workers.", s.cfg.QueueDepthWarn),
				Link: "/admin/jobs/list?status=pending&queue=" + url.QueryEscape(q.Queue), LinkText: "Pending jobs"})
		}
	}
	if d.NewDeadLetters > 0 {
		d.Alerts = append(d.Alerts, alert{Level: alertBad, Title: fmt.Sprintf("%d new dead letters in the last 24 hours", d.NewDeadLetters),
			Text: "Review each within 24 hours: read why it failed, then Retry or Resolve with notes.",
			Link: "/admin/dead-letters?newer_than=24h", LinkText: "Review dead letters"})
	}
	for _, wk := range workers {
		if wk.Stale {
			d.Stale++
			d.Alerts = append(d.Alerts, alert{Level: alertBad, Title: fmt.Sprintf("Worker %s is stale", wk.WorkerID),
				Text: fmt.Sprintf("No heartbeat for %s (over %s): restart it. Its jobs are retried once their leases expire.", humanAge(wk.Age), humanAge(c.WorkerStaleAfter())),
				Link: "/admin/workers", LinkText: "Workers"})
		} else {
			d.Alive++
		}
	}
	if d.Alive == 0 && d.Pending+d.Processing > 0 {
		d.Alerts = append(d.Alerts, alert{Level: alertWarn, Title: "No worker is running",
			Text: fmt.Sprintf("%d jobs wait for a worker.", d.Pending+d.Processing), Link: "/admin/workers", LinkText: "Workers"})
	}
	if d.Throughput.Failed > 0 {
		d.Alerts = append(d.Alerts, alert{Level: alertWarn, Title: fmt.Sprintf("%d attempts failed in the last hour", d.Throughput.Failed),
			Text: fmt.Sprintf("Failure rate %.1f%%: investigate the errors.", d.Throughput.FailureRate()*100),
			Link: "/admin/jobs/list?status=retrying,dead_lettered", LinkText: "Failing jobs"})
	}
	return s.render(w, r, http.StatusOK, "overview", view{Title: "Overview", Nav: "overview", Refresh: true, D: d})
}

// jobsData is the job list.
type jobsData struct {
	Jobs         []sdk.Job
	Statuses     []string
	Filter       url.Values
	Selected     []string
	Older, Newer string
	OlderURL     string
	NewerURL     string
}

// pagerURL is path with q, the cursors replaced by key=id.
func pagerURL(path string, q url.Values, key, id string) string {
	if id == "" {
		return ""
	}
	v := url.Values{}
	for k, vs := range q {
		if k != "before" && k != "after" && k != "done" && k != "n" {
			v[k] = vs
		}
	}
	v.Set(key, id)
	return path + "?" + v.Encode()
}

func (s *Server) pageJobs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	d := jobsData{Filter: q, Selected: list(q, "status")}
	for _, st := range sdk.JobStatuses() {
		d.Statuses = append(d.Statuses, string(st))
	}
	sq, err := searchQuery(q)
	if err == nil {
		d.Jobs, d.Older, d.Newer, err = s.searchJobs(r, sq)
	}
	v := view{Title: "Jobs", Nav: "jobs", Refresh: true, D: &d}
	if err != nil {
		status, _ := classify(err)
		if status >= 500 {
			return err
		}
		v.Error = err.Error()
		return s.render(w, r, status, "jobs", v)
	}
	d.OlderURL = pagerURL("/admin/jobs/list", q, "before", d.Older)
	d.NewerURL = pagerURL("/admin/jobs/list", q, "after", d.Newer)
	return s.render(w, r, http.StatusOK, "jobs", v)
}

// timelineEntry is one event of a history as the timeline shows it.
type timelineEntry struct {
	Seq        int64
	At         time.Time
	Type       string
	Class      string
	Attempt    int
	Worker     string
	Duration   string
	Error      string
	ErrorType  string
	Actor      string
	Notes      string
	Summary    string
	Data       json.RawMessage
	Hash       string
	Operator   bool
	FinalError bool
}

// eventFields are the fields of event data the timeline shows.
type eventFields struct {
	Attempt    int             `json:"attempt"`
	WorkerID   string          `json:"worker_id"`
	DurationMS *float64        `json:"duration_ms"`
	Error      string          `json:"error"`
	ErrorType  string          `json:"error_type"`
	LastError  string          `json:"last_error"`
	Permanent  bool            `json:"permanent"`
	RetryAt    *time.Time      `json:"retry_at"`
	Actor      string          `json:"actor"`
	Notes      string          `json:"notes"`
	Note       string          `json:"note"`
	Reason     string          `json:"reason"`
	Queue      string          `json:"queue"`
	Priority   string          `json:"priority"`
	Key        string          `json:"key"`
	Name       string          `json:"name"`
	Type       string          `json:"activity_type"`
	TimeoutTy  string          `json:"timeout_type"`
	FireAt     *time.Time      `json:"fire_at"`
	Attempts   int             `json:"attempts"`
	JobID      string          `json:"job_id"`
	Tick       *time.Time      `json:"tick"`
	RunAt      *time.Time      `json:"run_at"`
	Input      json.RawMessage `json:"input"`
}

// timeline turns a history into timeline entries: each attempt's outcome
// gets the worker of its AttemptStarted and, when the event does not say,
// the time since it.
func timeline(h []eventlog.Event) []timelineEntry {
	started := map[int]eventlog.Event{}
	workers := map[int]string{}
	out := make([]timelineEntry, 0, len(h))
	for _, e := range h {
		var f eventFields
		_ = json.Unmarshal(e.Data, &f)
		te := timelineEntry{Seq: e.Seq, At: e.RecordedAt, Type: e.Type, Attempt: f.Attempt, Worker: f.WorkerID, Actor: f.Actor,
			Data: e.Data, Hash: fmt.Sprintf("%x", e.Hash)}
		if len(te.Hash) > 16 {
			te.Hash = te.Hash[:16]
		}
		te.Error = f.Error
		if te.Error == "" {
			te.Error = f.LastError
		}
		te.ErrorType = f.ErrorType
		if f.Actor != "" {
			te.Operator = true
			te.Notes = firstNonEmpty(f.Notes, f.Note, f.Reason)
		}
		if e.Type == "AttemptStarted" {
			started[f.Attempt] = e
			workers[f.Attempt] = f.WorkerID
		}
		if te.Worker == "" && f.Attempt > 0 {
			te.Worker = workers[f.Attempt]
		}
		switch {
		case f.DurationMS != nil:
			te.Duration = humanAge(time.Duration(*f.DurationMS * float64(time.Millisecond)))
		case e.Type == "AttemptTimedOut":
			if st, ok := started[f.Attempt]; ok {
				te.Duration = humanAge(e.RecordedAt.Sub(st.RecordedAt))
			}
		}
		var parts []string
		switch e.Type {
		case "JobEnqueued":
			parts = append(parts, "queue "+f.Queue, "priority "+f.Priority)
			if f.RunAt != nil {
				parts = append(parts, "due "+f.RunAt.UTC().Format("2006-01-02 15:04:05"))
			}
		case "AttemptFailed", "AttemptTimedOut", "ActivityFailed", "ActivityTimedOut":
			switch {
			case f.RetryAt != nil:
				parts = append(parts, "retry at "+f.RetryAt.UTC().Format("2006-01-02 15:04:05"))
			default:
				parts = append(parts, "no retry")
				te.FinalError = true
			}
			if f.Permanent {
				parts = append(parts, "permanent")
			}
			if f.TimeoutTy != "" {
				parts = append(parts, f.TimeoutTy+" timeout")
			}
		case "JobDeadLettered":
			parts = append(parts, f.Reason, fmt.Sprintf("after %d attempts", f.Attempts))
			te.FinalError = true
		case "StepCompleted":
			parts = append(parts, "step "+f.Key)
		case "SignalReceived":
			parts = append(parts, "signal "+f.Name)
		case "ActivityScheduled":
			parts = append(parts, "activity "+f.Type)
		case "TimerStarted":
			if f.FireAt != nil {
				parts = append(parts, "fires at "+f.FireAt.UTC().Format("2006-01-02 15:04:05"))
			}
		case "ScheduleFired", "ScheduleTriggered":
			parts = append(parts, "job "+f.JobID)
		}
		if !te.Operator && f.Reason != "" && e.Type != "JobDeadLettered" {
			parts = append(parts, f.Reason)
		}
		te.Summary = strings.Join(parts, " · ")
		te.Class = eventClass(e.Type)
		out = append(out, te)
	}
	return out
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// eventClass colors an event in the timeline.
func eventClass(t string) string {
	switch {
	case strings.HasSuffix(t, "Succeeded"), strings.HasSuffix(t, "Completed") && t != "WorkflowTaskCompleted" && t != "StepCompleted", t == "TimerFired":
		return "ev ok"
	case strings.HasSuffix(t, "Failed"), strings.HasSuffix(t, "TimedOut"), t == "JobDeadLettered", t == "WorkflowTerminated":
		return "ev bad"
	case t == "JobRetried", t == "JobResolved", t == "JobCanceled", strings.HasPrefix(t, "Schedule") && t != "ScheduleFired", t == "WorkflowCancelRequested", t == "SignalReceived":
		return "ev op"
	case strings.HasSuffix(t, "Started"), strings.HasSuffix(t, "Enqueued"), strings.HasSuffix(t, "Scheduled"):
		return "ev info"
	}
	return "ev"
}

// jobData is the job page.
type jobData struct {
	Job      sdk.Job
	Running  []sdk.RunningTask
	Chain    chainJSON
	Timeline []timelineEntry
	// Notes keeps what the operator typed when an action was refused.
	Notes  string
	Dead   bool
	Final  bool
	MaxAtt int
	// InBudget counts the attempts since the last manual retry.
	InBudget int
}

func (s *Server) loadJob(r *http.Request) (jobData, error) {
	id, err := pathID(r)
	if err != nil {
		return jobData{}, err
	}
	j, err := s.cfg.Client.GetJob(r.Context(), id)
	if err != nil {
		return jobData{}, err
	}
	h, err := s.cfg.Client.History(r.Context(), id)
	if err != nil {
		return jobData{}, err
	}
	d := jobData{Job: j, Chain: checkChain(h), Timeline: timeline(h), Dead: j.Status == sdk.StatusDeadLettered, Final: j.Status.Final(),
		MaxAtt: j.RetryPolicy.WithDefaults().MaximumAttempts, InBudget: j.AttemptsInBudget()}
	if j.Status == sdk.StatusRunning {
		if d.Running, err = s.cfg.Client.RunningTasksOf(r.Context(), id); err != nil {
			return d, err
		}
	}
	return d, nil
}

func (s *Server) pageJob(w http.ResponseWriter, r *http.Request) error {
	d, err := s.loadJob(r)
	if err != nil {
		return err
	}
	return s.render(w, r, http.StatusOK, "job", view{Title: "Job " + d.Job.ID.String(), Nav: "jobs", Refresh: !d.Final, D: d})
}

// jobAction runs an action on the job of the path and redirects to its
// page, or renders the page with the error.
func (s *Server) jobAction(w http.ResponseWriter, r *http.Request, code string, run func(id eventlog.ID, actor string) error) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Client.GetJob(r.Context(), id); err != nil {
		return err
	}
	if err := run(id, Actor(r.Context())); err != nil {
		status, _ := classify(err)
		if status >= 500 {
			return err
		}
		d, lerr := s.loadJob(r)
		if lerr != nil {
			return lerr
		}
		d.Notes = r.PostForm.Get("notes")
		return s.render(w, r, status, "job", view{Title: "Job " + id.String(), Nav: "jobs", Error: err.Error(), D: d})
	}
	return done(w, r, "/admin/jobs/"+id.String(), code, -1)
}

func (s *Server) actionRetry(w http.ResponseWriter, r *http.Request) error {
	return s.jobAction(w, r, "retried", func(id eventlog.ID, actor string) error {
		_, err := s.cfg.Client.RetryDeadLetter(r.Context(), id, actor, strings.TrimSpace(r.PostForm.Get("note")))
		return err
	})
}

func (s *Server) actionResolve(w http.ResponseWriter, r *http.Request) error {
	return s.jobAction(w, r, "resolved", func(id eventlog.ID, actor string) error {
		notes := strings.TrimSpace(r.PostForm.Get("notes"))
		if notes == "" {
			return badRequest("Resolve needs notes: say why the job is not retried")
		}
		_, err := s.cfg.Client.ResolveDeadLetter(r.Context(), id, actor, notes)
		return err
	})
}

func (s *Server) actionCancel(w http.ResponseWriter, r *http.Request) error {
	return s.jobAction(w, r, "canceled", func(id eventlog.ID, actor string) error {
		_, err := s.cfg.Client.Cancel(r.Context(), id, actor, strings.TrimSpace(r.PostForm.Get("reason")))
		return err
	})
}

// deadLettersData is the dead-letter page.
type deadLettersData struct {
	Filter   deadLetterFilter
	Query    string
	Count    int64
	Jobs     []sdk.Job
	NextURL  string
	Filtered bool
}

func (s *Server) pageDeadLetters(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	df := deadLetterFilterOf(q)
	d := deadLettersData{Filter: df, Filtered: !df.empty(), Query: filterQuery(df).Encode()}
	v := view{Title: "Dead letters", Nav: "dead", Refresh: true, D: &d}
	f, err := df.sdk()
	if err == nil {
		d.Count, err = s.cfg.Client.CountDeadLetters(r.Context(), f)
	}
	if err == nil {
		if a := q.Get("after"); a != "" {
			f.After, err = eventlog.ParseID(strings.ToUpper(a))
		}
	}
	if err == nil {
		f.Limit = 100
		d.Jobs, err = s.cfg.Client.ListDeadLetters(r.Context(), f)
	}
	if err != nil {
		status, _ := classify(err)
		if status >= 500 {
			return err
		}
		v.Error = err.Error()
		return s.render(w, r, status, "deadletters", v)
	}
	if len(d.Jobs) == f.Limit {
		d.NextURL = pagerURL("/admin/dead-letters", q, "after", d.Jobs[len(d.Jobs)-1].ID.String())
	}
	return s.render(w, r, http.StatusOK, "deadletters", v)
}

func filterQuery(f deadLetterFilter) url.Values {
	v := url.Values{}
	for _, t := range f.Types {
		v.Add("type", t)
	}
	for _, q := range f.Queues {
		v.Add("queue", q)
	}
	for k, s := range map[string]string{"error": f.Error, "older_than": f.OlderThan, "newer_than": f.NewerThan} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// confirmData is the confirmation of a bulk action.
type confirmData struct {
	Action string
	Filter deadLetterFilter
	Count  int
	Note   string
	Notes  string
	IDs    []string
	More   int
	Back   string
}

// actionBulk retries or resolves every dead letter of a filter in two
// steps: without "confirm" it counts them and asks; with "confirm" set to
// the count the operator saw, it acts, unless another number matches by
// then.
func (s *Server) actionBulk(w http.ResponseWriter, r *http.Request) error {
	form := r.PostForm
	action := form.Get("action")
	if action != "retry" && action != "resolve" {
		return &uiError{http.StatusBadRequest, fmt.Sprintf("unknown bulk action %q: want retry or resolve", action)}
	}
	df := deadLetterFilterOf(form)
	f, err := df.sdk()
	if err != nil {
		return err
	}
	d := confirmData{Action: action, Filter: df, Note: strings.TrimSpace(form.Get("note")), Notes: strings.TrimSpace(form.Get("notes")),
		Back: "/admin/dead-letters?" + filterQuery(df).Encode()}
	v := view{Title: "Confirm", Nav: "dead", D: &d}
	if action == "resolve" && d.Notes == "" {
		v.Error = "Resolve needs notes: say why these jobs are not retried."
	}
	actor := Actor(r.Context())
	confirm := form.Get("confirm")
	var res sdk.BulkResult
	opts := sdk.BulkOptions{DryRun: true}
	expected := -1
	if confirm != "" && v.Error == "" {
		if expected, err = strconv.Atoi(confirm); err != nil || expected < 0 {
			return &uiError{http.StatusBadRequest, fmt.Sprintf("confirm %q is not a count", confirm)}
		}
		opts = sdk.BulkOptions{Confirm: func(n int) bool { return n == expected }}
	}
	if action == "retry" {
		res, err = s.cfg.Client.RetryDeadLetters(r.Context(), f, actor, d.Note, opts)
	} else {
		notes := d.Notes
		if notes == "" {
			notes = "(counting)" // a dry run only: nothing is written
			opts = sdk.BulkOptions{DryRun: true}
		}
		res, err = s.cfg.Client.ResolveDeadLetters(r.Context(), f, actor, notes, opts)
	}
	if err != nil {
		return err
	}
	d.Count = len(res.Matched)
	for i, id := range res.Matched {
		if i == 20 {
			d.More = len(res.Matched) - 20
			break
		}
		d.IDs = append(d.IDs, id.String())
	}
	switch {
	case opts.DryRun:
	case res.Declined || (expected >= 0 && d.Count != expected):
		v.Error = fmt.Sprintf("%d dead letters match now, not the %d you confirmed; nothing changed. Check the list and confirm again.", d.Count, expected)
	default:
		code := "bulk_retried"
		if action == "resolve" {
			code = "bulk_resolved"
		}
		return done(w, r, "/admin/dead-letters", code, res.Changed)
	}
	status := http.StatusOK
	switch {
	case v.Error != "" && opts.DryRun:
		status = http.StatusBadRequest
	case v.Error != "":
		status = http.StatusConflict
	}
	return s.render(w, r, status, "confirm", v)
}

// workersData is the workers page.
type workersData struct {
	workerView
	Alive, Stale int
}

func (s *Server) pageWorkers(w http.ResponseWriter, r *http.Request) error {
	wv, err := s.workers(r)
	if err != nil {
		return err
	}
	d := workersData{workerView: wv}
	for _, wk := range wv.Workers {
		if wk.Stale {
			d.Stale++
		} else {
			d.Alive++
		}
	}
	return s.render(w, r, http.StatusOK, "workers", view{Title: "Workers", Nav: "workers", Refresh: true, D: d})
}

// workflowsData is the workflow list.
type workflowsData struct {
	Runs               []sdk.WorkflowRunSummary
	Statuses, Selected []string
	Filter             url.Values
	OlderURL, NewerURL string
}

func (s *Server) pageWorkflows(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	d := workflowsData{Filter: q, Selected: list(q, "status")}
	for _, st := range sdk.WorkflowStatuses() {
		d.Statuses = append(d.Statuses, string(st))
	}
	v := view{Title: "Workflows", Nav: "workflows", Refresh: true, D: &d}
	sq, err := searchQuery(q)
	var older, newer string
	if err == nil {
		d.Runs, older, newer, err = s.searchWorkflows(r, sq)
	}
	if err != nil {
		status, _ := classify(err)
		if status >= 500 {
			return err
		}
		v.Error = err.Error()
		return s.render(w, r, status, "workflows", v)
	}
	d.OlderURL = pagerURL("/admin/workflows", q, "before", older)
	d.NewerURL = pagerURL("/admin/workflows", q, "after", newer)
	return s.render(w, r, http.StatusOK, "workflows", v)
}

// workflowData is a workflow run's page.
type workflowData struct {
	sdk.WorkflowInspection
	Running  []sdk.RunningTask
	Chain    chainJSON
	Timeline []timelineEntry
	Final    bool
	// RunQuery selects this run in action URLs.
	RunID string
}

func (s *Server) loadWorkflow(r *http.Request) (workflowData, error) {
	in, err := s.cfg.Client.InspectWorkflow(r.Context(), r.PathValue("workflowID"), r.URL.Query().Get("run_id"))
	if err != nil {
		return workflowData{}, err
	}
	d := workflowData{WorkflowInspection: in, Chain: checkChain(in.History), Timeline: timeline(in.History), Final: in.Status.Final(), RunID: in.RunID}
	if id, err := eventlog.ParseID(in.RunID); err == nil {
		if d.Running, err = s.cfg.Client.RunningTasksOf(r.Context(), id); err != nil {
			return d, err
		}
	}
	return d, nil
}

func (s *Server) pageWorkflow(w http.ResponseWriter, r *http.Request) error {
	d, err := s.loadWorkflow(r)
	if err != nil {
		return err
	}
	return s.render(w, r, http.StatusOK, "workflow", view{Title: "Workflow " + d.WorkflowID, Nav: "workflows", Refresh: !d.Final, D: d})
}

// workflowAction runs an action on a run and redirects to its page.
func (s *Server) workflowAction(w http.ResponseWriter, r *http.Request, code string, run func(workflowID, runID, actor string) error) error {
	wfID, runID := r.PathValue("workflowID"), r.PostForm.Get("run_id")
	if err := run(wfID, runID, Actor(r.Context())); err != nil {
		status, _ := classify(err)
		if status >= 500 || status == http.StatusNotFound {
			return err
		}
		d, lerr := s.loadWorkflow(r)
		if lerr != nil {
			return lerr
		}
		return s.render(w, r, status, "workflow", view{Title: "Workflow " + wfID, Nav: "workflows", Error: err.Error(), D: d})
	}
	target := "/admin/workflows/" + url.PathEscape(wfID)
	http.Redirect(w, r, target+"?done="+code+"&run_id="+url.QueryEscape(runID), http.StatusSeeOther)
	return nil
}

func (s *Server) actionSignal(w http.ResponseWriter, r *http.Request) error {
	return s.workflowAction(w, r, "signaled", func(wfID, runID, actor string) error {
		name := strings.TrimSpace(r.PostForm.Get("name"))
		if name == "" {
			return badRequest("a signal needs a name")
		}
		input := strings.TrimSpace(r.PostForm.Get("input"))
		if input == "" {
			input = "null"
		}
		if !json.Valid([]byte(input)) {
			return badRequest("the signal's input is not valid JSON: write a JSON value such as {\"approved\": true}, \"text\" or 42")
		}
		return s.cfg.Client.SignalWorkflowBy(r.Context(), wfID, runID, name, json.RawMessage(input), actor)
	})
}

func (s *Server) actionCancelWorkflow(w http.ResponseWriter, r *http.Request) error {
	return s.workflowAction(w, r, "cancel_requested", func(wfID, runID, actor string) error {
		return s.cfg.Client.CancelWorkflowBy(r.Context(), wfID, runID, actor, strings.TrimSpace(r.PostForm.Get("reason")))
	})
}

func (s *Server) actionTerminateWorkflow(w http.ResponseWriter, r *http.Request) error {
	return s.workflowAction(w, r, "terminated", func(wfID, runID, actor string) error {
		reason := strings.TrimSpace(r.PostForm.Get("reason"))
		if reason == "" {
			return badRequest("Terminate needs a reason: the run ends without running its code")
		}
		return s.cfg.Client.TerminateWorkflowBy(r.Context(), wfID, runID, actor, reason)
	})
}

func (s *Server) pageSchedules(w http.ResponseWriter, r *http.Request) error {
	list, err := s.cfg.Client.ListSchedules(r.Context(), false)
	if err != nil {
		return err
	}
	return s.render(w, r, http.StatusOK, "schedules", view{Title: "Schedules", Nav: "schedules", D: list})
}

func (s *Server) actionSchedule(w http.ResponseWriter, r *http.Request) error {
	name, action := r.PathValue("name"), r.PathValue("action")
	actor, reason := Actor(r.Context()), strings.TrimSpace(r.PostForm.Get("reason"))
	var err error
	code := ""
	switch action {
	case "pause":
		_, err = s.cfg.Client.PauseSchedule(r.Context(), name, actor, reason)
		code = "paused"
	case "resume":
		_, err = s.cfg.Client.ResumeSchedule(r.Context(), name, actor, reason)
		code = "resumed"
	case "trigger":
		_, err = s.cfg.Client.TriggerSchedule(r.Context(), name, actor, reason)
		code = "triggered"
	default:
		return &uiError{http.StatusNotFound, fmt.Sprintf("unknown schedule action %q: want pause, resume or trigger", action)}
	}
	if err != nil {
		return err
	}
	return done(w, r, "/admin/schedules", code, -1)
}

// auditData is the audit page.
type auditData struct {
	Since   string
	Actor   string
	Entries []sdk.AuditEntry
}

func (s *Server) pageAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	d := auditData{Since: q.Get("since"), Actor: q.Get("actor")}
	if d.Since == "" {
		d.Since = "7d"
	}
	since, err := parseDuration("since", d.Since)
	if err != nil {
		return err
	}
	entries, err := s.cfg.Client.Audit(r.Context(), sdk.AuditFilter{Since: since, Actor: d.Actor, Limit: 500})
	if err != nil {
		return err
	}
	// Newest first.
	for i, j := 0, len(entries)-1; i < j; i, j = i+1, j-1 {
		entries[i], entries[j] = entries[j], entries[i]
	}
	d.Entries = entries
	return s.render(w, r, http.StatusOK, "audit", view{Title: "Audit", Nav: "audit", D: d})
}
