package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

// workflowJSON is a workflow run as the API shows it.
type workflowJSON struct {
	WorkflowID      string     `json:"workflow_id"`
	RunID           string     `json:"run_id"`
	Type            string     `json:"type"`
	TaskQueue       string     `json:"task_queue"`
	Status          string     `json:"status"`
	LastError       string     `json:"last_error,omitempty"`
	CancelRequested bool       `json:"cancel_requested,omitempty"`
	Events          int64      `json:"events"`
	StartedAt       time.Time  `json:"started_at"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
	// Only in a run's description.
	Input      json.RawMessage       `json:"input,omitempty"`
	Result     json.RawMessage       `json:"result,omitempty"`
	Failure    string                `json:"failure,omitempty"`
	Activities []sdk.PendingActivity `json:"pending_activities,omitempty"`
	Timers     []sdk.PendingTimer    `json:"pending_timers,omitempty"`
	Signals    []sdk.ReceivedSignal  `json:"signals,omitempty"`
	Running    []runningTaskJSON     `json:"running,omitempty"`
}

func (s *Server) apiListWorkflows(r *http.Request) (int, any, error) {
	sq, err := searchQuery(r.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	runs, older, newer, err := s.searchWorkflows(r, sq)
	if err != nil {
		return 0, nil, err
	}
	out := struct {
		Workflows []workflowJSON `json:"workflows"`
		Older     string         `json:"older,omitempty"`
		Newer     string         `json:"newer,omitempty"`
	}{Workflows: make([]workflowJSON, len(runs)), Older: older, Newer: newer}
	for i, w := range runs {
		out.Workflows[i] = workflowJSON{WorkflowID: w.WorkflowID, RunID: w.RunID.String(), Type: w.Type, TaskQueue: w.TaskQueue,
			Status: string(w.Status), LastError: w.LastError, Events: w.Events, StartedAt: w.StartedAt, FinishedAt: w.FinishedAt}
	}
	return http.StatusOK, out, nil
}

func (s *Server) searchWorkflows(r *http.Request, sq sdk.SearchQuery) (runs []sdk.WorkflowRunSummary, older, newer string, err error) {
	limit := sq.Limit
	if limit == 0 {
		limit = sdk.DefaultSearchLimit
	}
	sq.Limit = min(limit+1, sdk.MaxSearchLimit)
	found, err := s.cfg.Client.SearchWorkflows(r.Context(), sq)
	if err != nil {
		return nil, "", "", err
	}
	runs, older, newer = pageOf(found, sq, limit, func(w sdk.WorkflowRunSummary) eventlog.ID { return w.RunID })
	return runs, older, newer, nil
}

// startWorkflowRequest starts a workflow run by its registered type name.
type startWorkflowRequest struct {
	WorkflowID string `json:"workflow_id"`
	Type       string `json:"type"`
	TaskQueue  string `json:"task_queue"`
	// Input is the workflow function's arguments after its context.
	Input            []json.RawMessage `json:"input"`
	ExecutionTimeout string            `json:"execution_timeout"`
	Priority         string            `json:"priority"`
	// IDConflictPolicy is "fail" (the default) or "use_existing".
	IDConflictPolicy string `json:"id_conflict_policy"`
}

func (s *Server) apiStartWorkflow(r *http.Request) (int, any, error) {
	var req startWorkflowRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if strings.TrimSpace(req.Type) == "" {
		return 0, nil, badRequest("field \"type\" is required: the registered workflow type")
	}
	o := sdk.StartWorkflowOptions{ID: req.WorkflowID, TaskQueue: req.TaskQueue, Priority: sdk.Priority(req.Priority)}
	var err error
	if o.WorkflowExecutionTimeout, err = parseDuration("execution_timeout", req.ExecutionTimeout); err != nil {
		return 0, nil, err
	}
	switch req.IDConflictPolicy {
	case "", "fail":
	case "use_existing":
		o.WorkflowIDConflictPolicy = sdk.WorkflowIDConflictPolicyUseExisting
	default:
		return 0, nil, badRequest("id_conflict_policy %q is not fail or use_existing", req.IDConflictPolicy)
	}
	args := make([]any, len(req.Input))
	for i, a := range req.Input {
		args[i] = a
	}
	run, err := s.cfg.Client.StartWorkflow(r.Context(), o, req.Type, args...)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, map[string]string{"workflow_id": run.GetID(), "run_id": run.GetRunID()}, nil
}

func (s *Server) apiDescribeWorkflow(r *http.Request) (int, any, error) {
	in, err := s.cfg.Client.InspectWorkflow(r.Context(), r.PathValue("workflowID"), r.URL.Query().Get("run_id"))
	if err != nil {
		return 0, nil, err
	}
	out := workflowJSON{WorkflowID: in.WorkflowID, RunID: in.RunID, Type: in.Type, TaskQueue: in.TaskQueue, Status: string(in.Status),
		LastError: in.LastError, CancelRequested: in.CancelRequested, Events: in.Events, StartedAt: in.StartedAt, FinishedAt: in.FinishedAt,
		Input: in.Input, Result: in.Result, Failure: in.Failure, Activities: in.Activities, Timers: in.Timers, Signals: in.Signals}
	id, _ := eventlog.ParseID(in.RunID)
	running, err := s.cfg.Client.RunningTasksOf(r.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	for _, t := range running {
		out.Running = append(out.Running, toRunningJSON(t))
	}
	return http.StatusOK, out, nil
}

func (s *Server) apiWorkflowHistory(r *http.Request) (int, any, error) {
	in, err := s.cfg.Client.InspectWorkflow(r.Context(), r.PathValue("workflowID"), r.URL.Query().Get("run_id"))
	if err != nil {
		return 0, nil, err
	}
	id, _ := eventlog.ParseID(in.RunID)
	return http.StatusOK, toHistoryJSON(id, in.History), nil
}

func (s *Server) apiSignalWorkflow(r *http.Request) (int, any, error) {
	var req struct {
		RunID string          `json:"run_id"`
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if strings.TrimSpace(req.Name) == "" {
		return 0, nil, badRequest("field \"name\" is required: the signal's name")
	}
	if err := s.cfg.Client.SignalWorkflowBy(r.Context(), r.PathValue("workflowID"), req.RunID, req.Name, req.Input, Actor(r.Context())); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]string{"status": "signaled"}, nil
}

func (s *Server) apiQueryWorkflow(r *http.Request) (int, any, error) {
	var req struct {
		RunID string            `json:"run_id"`
		Name  string            `json:"name"`
		Args  []json.RawMessage `json:"args"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if strings.TrimSpace(req.Name) == "" {
		return 0, nil, badRequest("field \"name\" is required: the query's name, as the workflow's SetQueryHandler registered it")
	}
	var args json.RawMessage
	if len(req.Args) > 0 {
		args, _ = json.Marshal(req.Args)
	}
	result, err := s.cfg.Client.QueryWorkflowJSON(r.Context(), r.PathValue("workflowID"), req.RunID, req.Name, args)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]json.RawMessage{"result": result}, nil
}

// runCommand reads a run_id and a reason from the body.
func runCommand(r *http.Request) (runID, reason string, err error) {
	var req struct {
		RunID  string `json:"run_id"`
		Reason string `json:"reason"`
	}
	if err := decode(r, &req); err != nil {
		return "", "", err
	}
	return req.RunID, strings.TrimSpace(req.Reason), nil
}

func (s *Server) apiCancelWorkflow(r *http.Request) (int, any, error) {
	runID, reason, err := runCommand(r)
	if err != nil {
		return 0, nil, err
	}
	if err := s.cfg.Client.CancelWorkflowBy(r.Context(), r.PathValue("workflowID"), runID, Actor(r.Context()), reason); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]string{"status": "cancel_requested"}, nil
}

func (s *Server) apiTerminateWorkflow(r *http.Request) (int, any, error) {
	runID, reason, err := runCommand(r)
	if err != nil {
		return 0, nil, err
	}
	if reason == "" {
		return 0, nil, badRequest("field \"reason\" is required: say why the run ends without running its code")
	}
	if err := s.cfg.Client.TerminateWorkflowBy(r.Context(), r.PathValue("workflowID"), runID, Actor(r.Context()), reason); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]string{"status": "terminated"}, nil
}

// runningTaskJSON is a leased task.
type runningTaskJSON struct {
	WorkerID       string    `json:"worker_id"`
	ExecutionID    string    `json:"execution_id"`
	Kind           string    `json:"kind"`
	Type           string    `json:"type"`
	WorkflowID     string    `json:"workflow_id,omitempty"`
	Key            string    `json:"key,omitempty"`
	Queue          string    `json:"queue"`
	Attempt        int       `json:"attempt"`
	LeaseExpiresAt time.Time `json:"lease_expires_at"`
	Expired        bool      `json:"lease_expired,omitempty"`
}

func toRunningJSON(t sdk.RunningTask) runningTaskJSON {
	return runningTaskJSON{WorkerID: t.WorkerID, ExecutionID: t.ExecutionID.String(), Kind: t.Kind, Type: t.Type, WorkflowID: t.WorkflowID,
		Key: t.Key, Queue: t.Queue, Attempt: t.Attempt, LeaseExpiresAt: t.LeaseExpiresAt, Expired: t.Expired}
}

// workerJSON is a worker's heartbeat row, its staleness and what it runs.
type workerJSON struct {
	WorkerID            string            `json:"worker_id"`
	Host                string            `json:"host"`
	PID                 int               `json:"pid"`
	Queues              []string          `json:"queues"`
	Version             string            `json:"version"`
	StartedAt           time.Time         `json:"started_at"`
	LastSeenAt          time.Time         `json:"last_seen_at"`
	HeartbeatAgeSeconds float64           `json:"heartbeat_age_seconds"`
	Stale               bool              `json:"stale"`
	JobsRunning         int               `json:"jobs_running"`
	Running             []runningTaskJSON `json:"running"`
}

// workerView joins the heartbeat rows with the leases.
type workerView struct {
	Workers    []workerJSON
	StaleAfter time.Duration
	// Orphans are leases held by workers without a heartbeat row.
	Orphans []runningTaskJSON
}

func (s *Server) workers(r *http.Request) (workerView, error) {
	ws, err := s.cfg.Client.Workers(r.Context())
	if err != nil {
		return workerView{}, err
	}
	tasks, err := s.cfg.Client.RunningTasks(r.Context())
	if err != nil {
		return workerView{}, err
	}
	v := workerView{StaleAfter: s.cfg.Client.WorkerStaleAfter(), Workers: make([]workerJSON, len(ws))}
	byWorker := map[string]int{}
	for i, w := range ws {
		v.Workers[i] = workerJSON{WorkerID: w.WorkerID, Host: w.Host, PID: w.PID, Queues: w.Queues, Version: w.Version, StartedAt: w.StartedAt,
			LastSeenAt: w.LastSeenAt, HeartbeatAgeSeconds: w.Age.Seconds(), Stale: w.Stale, JobsRunning: w.JobsRunning, Running: []runningTaskJSON{}}
		byWorker[w.WorkerID] = i
	}
	for _, t := range tasks {
		if i, ok := byWorker[t.WorkerID]; ok {
			v.Workers[i].Running = append(v.Workers[i].Running, toRunningJSON(t))
		} else {
			v.Orphans = append(v.Orphans, toRunningJSON(t))
		}
	}
	return v, nil
}

func (s *Server) apiWorkers(r *http.Request) (int, any, error) {
	v, err := s.workers(r)
	if err != nil {
		return 0, nil, err
	}
	alive, stale := 0, 0
	for _, w := range v.Workers {
		if w.Stale {
			stale++
		} else {
			alive++
		}
	}
	return http.StatusOK, map[string]any{"workers": v.Workers, "alive": alive, "stale": stale,
		"stale_after_seconds": v.StaleAfter.Seconds(), "unowned_leases": nonNilSlice(v.Orphans)}, nil
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// scheduleJSON is a schedule as the API shows it.
type scheduleJSON struct {
	ID            string          `json:"id"`
	Name          string          `json:"name"`
	Status        string          `json:"status"`
	Cron          string          `json:"cron"`
	TimeZone      string          `json:"time_zone"`
	JobType       string          `json:"job_type"`
	Queue         string          `json:"queue"`
	Payload       json.RawMessage `json:"payload"`
	Overlap       string          `json:"overlap"`
	CatchUp       string          `json:"catch_up"`
	NextFireAt    *time.Time      `json:"next_fire_at,omitempty"`
	LastFiredTick *time.Time      `json:"last_fired_tick,omitempty"`
	LastJobID     string          `json:"last_job_id,omitempty"`
	Runs          int64           `json:"runs"`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`
}

func toScheduleJSON(sc sdk.Schedule) scheduleJSON {
	out := scheduleJSON{ID: sc.ID.String(), Name: sc.Name, Status: string(sc.Status), Cron: sc.Definition.Cron, TimeZone: sc.Definition.TimeZone,
		JobType: sc.Definition.Job.Type, Queue: sc.Definition.Job.Queue, Payload: sc.Definition.Job.Payload, Overlap: string(sc.Definition.Overlap),
		CatchUp: string(sc.Definition.CatchUp), NextFireAt: sc.NextFireAt, LastFiredTick: sc.LastFiredTick, Runs: sc.Runs,
		CreatedAt: sc.CreatedAt, UpdatedAt: sc.UpdatedAt}
	if sc.LastJobID != (eventlog.ID{}) {
		out.LastJobID = sc.LastJobID.String()
	}
	return out
}

func (s *Server) apiListSchedules(r *http.Request) (int, any, error) {
	all := r.URL.Query().Get("include_deleted") == "true"
	list, err := s.cfg.Client.ListSchedules(r.Context(), all)
	if err != nil {
		return 0, nil, err
	}
	out := make([]scheduleJSON, len(list))
	for i, sc := range list {
		out[i] = toScheduleJSON(sc)
	}
	return http.StatusOK, map[string]any{"schedules": out}, nil
}

func (s *Server) apiGetSchedule(r *http.Request) (int, any, error) {
	sc, err := s.cfg.Client.GetSchedule(r.Context(), r.PathValue("name"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toScheduleJSON(sc), nil
}

// scheduleCommand runs a schedule command with the body's reason.
func (s *Server) scheduleCommand(r *http.Request, run func(name, actor, reason string) (sdk.Schedule, error)) (int, any, error) {
	var req struct {
		Reason string `json:"reason"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	sc, err := run(r.PathValue("name"), Actor(r.Context()), strings.TrimSpace(req.Reason))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toScheduleJSON(sc), nil
}

func (s *Server) apiPauseSchedule(r *http.Request) (int, any, error) {
	return s.scheduleCommand(r, func(name, actor, reason string) (sdk.Schedule, error) {
		return s.cfg.Client.PauseSchedule(r.Context(), name, actor, reason)
	})
}

func (s *Server) apiResumeSchedule(r *http.Request) (int, any, error) {
	return s.scheduleCommand(r, func(name, actor, reason string) (sdk.Schedule, error) {
		return s.cfg.Client.ResumeSchedule(r.Context(), name, actor, reason)
	})
}

func (s *Server) apiTriggerSchedule(r *http.Request) (int, any, error) {
	var req struct {
		Reason string `json:"reason"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	id, err := s.cfg.Client.TriggerSchedule(r.Context(), r.PathValue("name"), Actor(r.Context()), strings.TrimSpace(req.Reason))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]string{"job_id": id.String()}, nil
}

func (s *Server) apiQueues(r *http.Request) (int, any, error) {
	stats, err := s.cfg.Client.QueueStats(r.Context())
	if err != nil {
		return 0, nil, err
	}
	depths, err := s.cfg.Client.QueueDepths(r.Context())
	if err != nil {
		return 0, nil, err
	}
	type depth struct {
		Queue              string     `json:"queue"`
		Pending            int64      `json:"pending"`
		Scheduled          int64      `json:"scheduled"`
		Processing         int64      `json:"processing"`
		Retrying           int64      `json:"retrying"`
		DeadLettered       int64      `json:"dead_lettered"`
		NewestDeadLetterAt *time.Time `json:"newest_dead_letter_at,omitempty"`
	}
	qs := make([]depth, len(depths))
	for i, d := range depths {
		qs[i] = depth{d.Queue, d.Pending, d.Scheduled, d.Processing, d.Retrying, d.DeadLettered, d.NewestDeadLetterAt}
	}
	return http.StatusOK, map[string]any{"queues": qs, "by_type": nonNilSlice(stats)}, nil
}

func (s *Server) apiThroughput(r *http.Request) (int, any, error) {
	q := r.URL.Query()
	window, bucket := time.Hour, time.Minute
	var err error
	if v := q.Get("window"); v != "" {
		if window, err = parseDuration("window", v); err != nil {
			return 0, nil, err
		}
	}
	if v := q.Get("bucket"); v != "" {
		if bucket, err = parseDuration("bucket", v); err != nil {
			return 0, nil, err
		}
	}
	t, err := s.cfg.Client.Throughput(r.Context(), window, bucket)
	if err != nil {
		return 0, nil, err
	}
	type bucketJSON struct {
		Start        time.Time `json:"start"`
		Succeeded    int64     `json:"succeeded"`
		Failed       int64     `json:"failed"`
		DeadLettered int64     `json:"dead_lettered"`
	}
	bs := make([]bucketJSON, len(t.Buckets))
	for i, b := range t.Buckets {
		bs[i] = bucketJSON{b.Start, b.Succeeded, b.Failed, b.DeadLettered}
	}
	return http.StatusOK, map[string]any{"window_seconds": window.Seconds(), "bucket_seconds": bucket.Seconds(), "now": t.Now,
		"succeeded": t.Succeeded, "failed": t.Failed, "dead_lettered": t.DeadLettered, "failure_rate": t.FailureRate(), "buckets": bs}, nil
}

func (s *Server) apiAudit(r *http.Request) (int, any, error) {
	q := r.URL.Query()
	since, err := parseDuration("since", q.Get("since"))
	if err != nil {
		return 0, nil, err
	}
	f := sdk.AuditFilter{Since: since, Actions: list(q, "action"), Actor: q.Get("actor")}
	entries, err := s.cfg.Client.Audit(r.Context(), f)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"entries": nonNilSlice(entries)}, nil
}
