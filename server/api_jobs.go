package server

import (
	"encoding/hex"
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

// apiRoutes registers every route of the JSON API. docs/openapi.yaml
// describes each one; openapi_test.go checks that it does.
func (s *Server) apiRoutes() {
	s.handleAPI("POST /api/v1/jobs", s.apiEnqueue)
	s.handleAPI("POST /api/v1/jobs/batch", s.apiEnqueueBatch)
	s.handleAPI("GET /api/v1/jobs", s.apiListJobs)
	s.handleAPI("GET /api/v1/jobs/{id}", s.apiGetJob)
	s.handleAPI("GET /api/v1/jobs/{id}/history", s.apiJobHistory)
	s.handleAPI("POST /api/v1/jobs/{id}/cancel", s.apiCancelJob)
	s.handleAPI("POST /api/v1/jobs/{id}/retry", s.apiRetryJob)
	s.handleAPI("POST /api/v1/jobs/{id}/resolve", s.apiResolveJob)
	s.handleAPI("GET /api/v1/dead-letters", s.apiListDeadLetters)
	s.handleAPI("POST /api/v1/dead-letters/retry", s.apiBulkRetry)
	s.handleAPI("POST /api/v1/dead-letters/resolve", s.apiBulkResolve)
	s.handleAPI("GET /api/v1/workflows", s.apiListWorkflows)
	s.handleAPI("POST /api/v1/workflows", s.apiStartWorkflow)
	s.handleAPI("GET /api/v1/workflows/{workflowID}", s.apiDescribeWorkflow)
	s.handleAPI("GET /api/v1/workflows/{workflowID}/history", s.apiWorkflowHistory)
	s.handleAPI("POST /api/v1/workflows/{workflowID}/signal", s.apiSignalWorkflow)
	s.handleAPI("POST /api/v1/workflows/{workflowID}/query", s.apiQueryWorkflow)
	s.handleAPI("POST /api/v1/workflows/{workflowID}/cancel", s.apiCancelWorkflow)
	s.handleAPI("POST /api/v1/workflows/{workflowID}/terminate", s.apiTerminateWorkflow)
	s.handleAPI("GET /api/v1/workers", s.apiWorkers)
	s.handleAPI("GET /api/v1/schedules", s.apiListSchedules)
	s.handleAPI("GET /api/v1/schedules/{name}", s.apiGetSchedule)
	s.handleAPI("POST /api/v1/schedules/{name}/pause", s.apiPauseSchedule)
	s.handleAPI("POST /api/v1/schedules/{name}/resume", s.apiResumeSchedule)
	s.handleAPI("POST /api/v1/schedules/{name}/trigger", s.apiTriggerSchedule)
	s.handleAPI("GET /api/v1/queues", s.apiQueues)
	s.handleAPI("GET /api/v1/throughput", s.apiThroughput)
	s.handleAPI("GET /api/v1/audit", s.apiAudit)
}

// jobJSON is a job as the API shows it.
type jobJSON struct {
	ID               string          `json:"id"`
	Type             string          `json:"type"`
	Queue            string          `json:"queue"`
	Priority         string          `json:"priority"`
	Status           string          `json:"status"`
	Payload          json.RawMessage `json:"payload"`
	Attempt          int             `json:"attempt"`
	AttemptsInBudget int             `json:"attempts_in_budget"`
	MaxAttempts      int             `json:"max_attempts"`
	RetryPolicy      sdk.RetryPolicy `json:"retry_policy"`
	RunAt            time.Time       `json:"run_at"`
	LastError        string          `json:"last_error,omitempty"`
	IdempotencyKey   string          `json:"idempotency_key,omitempty"`
	WorkerID         string          `json:"worker_id,omitempty"`
	LeaseExpiresAt   *time.Time      `json:"lease_expires_at,omitempty"`
	CreatedAt        time.Time       `json:"created_at"`
	UpdatedAt        time.Time       `json:"updated_at"`
	FinishedAt       *time.Time      `json:"finished_at,omitempty"`
	Events           int64           `json:"events"`
}

func toJobJSON(j sdk.Job) jobJSON {
	return jobJSON{ID: j.ID.String(), Type: j.Type, Queue: j.Queue, Priority: string(j.Priority), Status: string(j.Status),
		Payload: j.Payload, Attempt: j.Attempt, AttemptsInBudget: j.AttemptsInBudget(), MaxAttempts: j.RetryPolicy.WithDefaults().MaximumAttempts,
		RetryPolicy: j.RetryPolicy, RunAt: j.RunAt, LastError: j.LastError, IdempotencyKey: j.IdempotencyKey, WorkerID: j.WorkerID,
		LeaseExpiresAt: j.LeaseExpiresAt, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt, FinishedAt: j.FinishedAt, Events: j.Seq}
}

// eventJSON is one event of a history.
type eventJSON struct {
	Seq        int64           `json:"seq"`
	Type       string          `json:"type"`
	RecordedAt time.Time       `json:"recorded_at"`
	Data       json.RawMessage `json:"data"`
	PrevHash   string          `json:"prev_hash"`
	Hash       string          `json:"hash"`
}

// chainJSON says whether a history's hash chain verified.
type chainJSON struct {
	Verified bool   `json:"verified"`
	Error    string `json:"error,omitempty"`
}

type historyJSON struct {
	ID     string      `json:"id"`
	Chain  chainJSON   `json:"chain"`
	Events []eventJSON `json:"events"`
}

func toHistoryJSON(id eventlog.ID, h []eventlog.Event) historyJSON {
	out := historyJSON{ID: id.String(), Chain: checkChain(h), Events: make([]eventJSON, len(h))}
	for i, e := range h {
		out.Events[i] = eventJSON{Seq: e.Seq, Type: e.Type, RecordedAt: e.RecordedAt, Data: e.Data,
			PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash)}
	}
	return out
}

func checkChain(h []eventlog.Event) chainJSON {
	if err := eventlog.CheckChain(h); err != nil {
		return chainJSON{Error: err.Error()}
	}
	return chainJSON{Verified: true}
}

// enqueueRequest is one job to enqueue.
type enqueueRequest struct {
	Type     string          `json:"type"`
	Payload  json.RawMessage `json:"payload"`
	Queue    string          `json:"queue"`
	Priority string          `json:"priority"`
	RunAt    *time.Time      `json:"run_at"`
	Delay    string          `json:"delay"`
	// IdempotencyTTL defaults to 24h when IdempotencyKey is set.
	IdempotencyKey string           `json:"idempotency_key"`
	IdempotencyTTL string           `json:"idempotency_ttl"`
	RetryPolicy    *sdk.RetryPolicy `json:"retry_policy"`
	CorrelationID  string           `json:"correlation_id"`
}

// DefaultIdempotencyTTL is how long an enqueue idempotency key given to
// the API without a TTL holds.
const DefaultIdempotencyTTL = 24 * time.Hour

func (req enqueueRequest) jobRequest() (sdk.JobRequest, error) {
	if req.Type == "" {
		return sdk.JobRequest{}, badRequest("field \"type\" is required: the job type, such as email.send")
	}
	var opts []sdk.EnqueueOption
	if req.Queue != "" {
		opts = append(opts, sdk.WithQueue(req.Queue))
	}
	if req.Priority != "" {
		opts = append(opts, sdk.WithPriority(sdk.Priority(req.Priority)))
	}
	if req.RunAt != nil {
		opts = append(opts, sdk.WithRunAt(*req.RunAt))
	}
	if req.Delay != "" {
		d, err := parseDuration("delay", req.Delay)
		if err != nil {
			return sdk.JobRequest{}, err
		}
		opts = append(opts, sdk.WithDelay(d))
	}
	if req.IdempotencyKey != "" {
		ttl := DefaultIdempotencyTTL
		if req.IdempotencyTTL != "" {
			var err error
			if ttl, err = parseDuration("idempotency_ttl", req.IdempotencyTTL); err != nil {
				return sdk.JobRequest{}, err
			}
		}
		opts = append(opts, sdk.WithIdempotencyKey(req.IdempotencyKey, ttl))
	} else if req.IdempotencyTTL != "" {
		return sdk.JobRequest{}, badRequest("idempotency_ttl is set without idempotency_key")
	}
	if req.RetryPolicy != nil {
		opts = append(opts, sdk.WithRetryPolicy(*req.RetryPolicy))
	}
	if req.CorrelationID != "" {
		opts = append(opts, sdk.WithCorrelationID(req.CorrelationID))
	}
	payload := req.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("{}")
	}
	return sdk.JobRequest{Type: req.Type, Payload: payload, Options: opts}, nil
}

// enqueueResult answers an enqueue: the job as it is now.
type enqueueResult struct {
	ID string `json:"id"`
	// Existing is true when the idempotency key named a job enqueued
	// earlier: that job is returned and no other is created.
	Existing bool    `json:"existing"`
	Job      jobJSON `json:"job"`
}

func (s *Server) apiEnqueue(r *http.Request) (int, any, error) {
	var req enqueueRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	jr, err := req.jobRequest()
	if err != nil {
		return 0, nil, err
	}
	res, err := s.cfg.Client.Enqueue(r.Context(), jr.Type, jr.Payload, jr.Options...)
	if err != nil {
		return 0, nil, err
	}
	j, err := s.cfg.Client.Job(r.Context(), res.ID)
	if err != nil {
		return 0, nil, err
	}
	code := http.StatusCreated
	if res.Existing {
		code = http.StatusOK
	}
	return code, enqueueResult{ID: res.ID.String(), Existing: res.Existing, Job: toJobJSON(j)}, nil
}

// MaxBatch is the most jobs one POST /api/v1/jobs/batch enqueues.
const MaxBatch = 1000

func (s *Server) apiEnqueueBatch(r *http.Request) (int, any, error) {
	var req struct {
		Jobs []enqueueRequest `json:"jobs"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if len(req.Jobs) == 0 || len(req.Jobs) > MaxBatch {
		return 0, nil, badRequest("field \"jobs\" holds %d jobs; send 1 to %d", len(req.Jobs), MaxBatch)
	}
	reqs := make([]sdk.JobRequest, len(req.Jobs))
	for i, jr := range req.Jobs {
		var err error
		if reqs[i], err = jr.jobRequest(); err != nil {
			return 0, nil, fmt.Errorf("job %d of %d: %w", i+1, len(req.Jobs), err)
		}
	}
	res, err := s.cfg.Client.EnqueueMany(r.Context(), reqs)
	if err != nil {
		return 0, nil, err
	}
	type one struct {
		ID       string `json:"id"`
		Existing bool   `json:"existing"`
	}
	out := make([]one, len(res))
	for i, e := range res {
		out[i] = one{ID: e.ID.String(), Existing: e.Existing}
	}
	return http.StatusCreated, map[string]any{"jobs": out}, nil
}

// searchQuery reads the filters of a job or workflow list from the query
// string: status, type, queue (each repeated or comma-separated), q (text
// in the error or the ID), from and to (creation time), before and after
// (paging cursors) and limit.
func searchQuery(q url.Values) (sdk.SearchQuery, error) {
	sq := sdk.SearchQuery{Statuses: list(q, "status"), Types: list(q, "type"), Queues: list(q, "queue"), Text: q.Get("q")}
	var err error
	if sq.CreatedFrom, err = parseTime("from", q.Get("from")); err != nil {
		return sq, err
	}
	if sq.CreatedTo, err = parseTime("to", q.Get("to")); err != nil {
		return sq, err
	}
	for key, dst := range map[string]*eventlog.ID{"before": &sq.Before, "after": &sq.After} {
		if v := q.Get(key); v != "" {
			id, err := eventlog.ParseID(strings.ToUpper(v))
			if err != nil {
				return sq, badRequest("%s %q is not an ID from a previous page", key, v)
			}
			*dst = id
		}
	}
	if sq.Before != (eventlog.ID{}) && sq.After != (eventlog.ID{}) {
		return sq, badRequest("give before or after, not both")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > sdk.MaxSearchLimit {
			return sq, badRequest("limit %q is not a number from 1 to %d", v, sdk.MaxSearchLimit)
		}
		sq.Limit = n
	}
	return sq, nil
}

// pageOf trims a search made with Limit+1 to Limit and finds the cursors:
// older is the "before" of the next older page, newer the "after" of the
// next newer one; empty when there is none.
func pageOf[T any](items []T, sq sdk.SearchQuery, limit int, id func(T) eventlog.ID) (page []T, older, newer string) {
	var zero eventlog.ID
	if sq.After != zero {
		if len(items) > limit {
			items = items[len(items)-limit:]
			newer = id(items[0]).String()
		}
		if len(items) > 0 {
			older = id(items[len(items)-1]).String()
		}
		return items, older, newer
	}
	if len(items) > limit {
		items = items[:limit]
		older = id(items[len(items)-1]).String()
	}
	if sq.Before != zero && len(items) > 0 {
		newer = id(items[0]).String()
	}
	return items, older, newer
}

// searchJobs runs a job search and pages it.
func (s *Server) searchJobs(r *http.Request, sq sdk.SearchQuery) (jobs []sdk.Job, older, newer string, err error) {
	limit := sq.Limit
	if limit == 0 {
		limit = sdk.DefaultSearchLimit
	}
	sq.Limit = limit + 1
	if sq.Limit > sdk.MaxSearchLimit {
		sq.Limit = sdk.MaxSearchLimit
	}
	found, err := s.cfg.Client.SearchJobs(r.Context(), sq)
	if err != nil {
		return nil, "", "", err
	}
	jobs, older, newer = pageOf(found, sq, limit, func(j sdk.Job) eventlog.ID { return j.ID })
	return jobs, older, newer, nil
}

// jobList is a page of jobs, newest first.
type jobList struct {
	Jobs []jobJSON `json:"jobs"`
	// Older is the "before" cursor of the next older page; Newer the
	// "after" cursor of the next newer one. Empty when there is none.
	Older string `json:"older,omitempty"`
	Newer string `json:"newer,omitempty"`
}

func (s *Server) apiListJobs(r *http.Request) (int, any, error) {
	sq, err := searchQuery(r.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	jobs, older, newer, err := s.searchJobs(r, sq)
	if err != nil {
		return 0, nil, err
	}
	out := jobList{Jobs: make([]jobJSON, len(jobs)), Older: older, Newer: newer}
	for i, j := range jobs {
		out.Jobs[i] = toJobJSON(j)
	}
	return http.StatusOK, out, nil
}

func (s *Server) apiGetJob(r *http.Request) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, err
	}
	j, err := s.cfg.Client.GetJob(r.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	out := toJobJSON(j)
	if j.Status == sdk.StatusRunning {
		running, err := s.cfg.Client.RunningTasksOf(r.Context(), id)
		if err != nil {
			return 0, nil, err
		}
		for _, t := range running {
			out.WorkerID, out.LeaseExpiresAt = t.WorkerID, &t.LeaseExpiresAt
		}
	}
	return http.StatusOK, out, nil
}

func (s *Server) apiJobHistory(r *http.Request) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, err
	}
	if _, err := s.cfg.Client.GetJob(r.Context(), id); err != nil {
		return 0, nil, err
	}
	h, err := s.cfg.Client.History(r.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toHistoryJSON(id, h), nil
}

// jobCommand runs a command on one job, named by the path, with the
// body's reason, note or notes, as the request's actor.
func (s *Server) jobCommand(r *http.Request, field string, required bool, run func(id eventlog.ID, actor, text string) (sdk.Job, error)) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, err
	}
	body := map[string]string{}
	if err := decode(r, &body); err != nil {
		return 0, nil, err
	}
	for k := range body {
		if k != field {
			return 0, nil, badRequest("unknown field %q; this request takes only %q", k, field)
		}
	}
	text := strings.TrimSpace(body[field])
	if required && text == "" {
		return 0, nil, badRequest("field %q is required: say why", field)
	}
	if len(text) > 10000 {
		return 0, nil, badRequest("field %q is %d characters; at most 10000", field, len(text))
	}
	if _, err := s.cfg.Client.GetJob(r.Context(), id); err != nil {
		return 0, nil, err
	}
	j, err := run(id, Actor(r.Context()), text)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toJobJSON(j), nil
}

func (s *Server) apiCancelJob(r *http.Request) (int, any, error) {
	return s.jobCommand(r, "reason", false, func(id eventlog.ID, actor, text string) (sdk.Job, error) {
		return s.cfg.Client.Cancel(r.Context(), id, actor, text)
	})
}

func (s *Server) apiRetryJob(r *http.Request) (int, any, error) {
	return s.jobCommand(r, "note", false, func(id eventlog.ID, actor, text string) (sdk.Job, error) {
		return s.cfg.Client.RetryDeadLetter(r.Context(), id, actor, text)
	})
}

func (s *Server) apiResolveJob(r *http.Request) (int, any, error) {
	return s.jobCommand(r, "notes", true, func(id eventlog.ID, actor, text string) (sdk.Job, error) {
		return s.cfg.Client.ResolveDeadLetter(r.Context(), id, actor, text)
	})
}

// deadLetterFilter is the filter of dead-letter lists and bulk operations,
// as query parameters or as a JSON object.
type deadLetterFilter struct {
	Types     []string `json:"type"`
	Queues    []string `json:"queue"`
	Error     string   `json:"error"`
	OlderThan string   `json:"older_than"`
	NewerThan string   `json:"newer_than"`
}

func (f deadLetterFilter) sdk() (sdk.DeadLetterFilter, error) {
	out := sdk.DeadLetterFilter{Types: f.Types, Queues: f.Queues, ErrorContains: strings.TrimSpace(f.Error)}
	var err error
	if out.OlderThan, err = parseDuration("older_than", f.OlderThan); err != nil {
		return out, err
	}
	if out.NewerThan, err = parseDuration("newer_than", f.NewerThan); err != nil {
		return out, err
	}
	return out, nil
}

func (f deadLetterFilter) empty() bool {
	return len(f.Types) == 0 && len(f.Queues) == 0 && f.Error == "" && f.OlderThan == "" && f.NewerThan == ""
}

func deadLetterFilterOf(q url.Values) deadLetterFilter {
	return deadLetterFilter{Types: list(q, "type"), Queues: list(q, "queue"), Error: q.Get("error"),
		OlderThan: q.Get("older_than"), NewerThan: q.Get("newer_than")}
}

func (s *Server) apiListDeadLetters(r *http.Request) (int, any, error) {
	q := r.URL.Query()
	f, err := deadLetterFilterOf(q).sdk()
	if err != nil {
		return 0, nil, err
	}
	count, err := s.cfg.Client.CountDeadLetters(r.Context(), f)
	if err != nil {
		return 0, nil, err
	}
	if v := q.Get("after"); v != "" {
		if f.After, err = eventlog.ParseID(strings.ToUpper(v)); err != nil {
			return 0, nil, badRequest("after %q is not an ID from a previous page", v)
		}
	}
	f.Limit = 100
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > sdk.MaxSearchLimit {
			return 0, nil, badRequest("limit %q is not a number from 1 to %d", v, sdk.MaxSearchLimit)
		}
	}
	jobs, err := s.cfg.Client.ListDeadLetters(r.Context(), f)
	if err != nil {
		return 0, nil, err
	}
	out := struct {
		Count int64     `json:"count"`
		Jobs  []jobJSON `json:"jobs"`
		Next  string    `json:"next,omitempty"`
	}{Count: count, Jobs: make([]jobJSON, len(jobs))}
	for i, j := range jobs {
		out.Jobs[i] = toJobJSON(j)
	}
	if len(jobs) == f.Limit {
		out.Next = jobs[len(jobs)-1].ID.String()
	}
	return http.StatusOK, out, nil
}

// bulkRequest is a bulk retry or resolve.
type bulkRequest struct {
	Filter deadLetterFilter `json:"filter"`
	// All must be true to act on every dead letter with an empty filter.
	All   bool   `json:"all"`
	Note  string `json:"note"`
	Notes string `json:"notes"`
	// DryRun counts the matching dead letters and changes nothing.
	DryRun bool `json:"dry_run"`
	// ExpectedCount, when set, is the count the operator confirmed: when
	// another number matches now, nothing changes (409 count_changed).
	ExpectedCount *int `json:"expected_count"`
}

type bulkResult struct {
	Matched int      `json:"matched"`
	Changed int      `json:"changed"`
	DryRun  bool     `json:"dry_run,omitempty"`
	IDs     []string `json:"ids"`
	Skipped []string `json:"skipped,omitempty"`
}

func (s *Server) bulk(r *http.Request, resolve bool) (int, any, error) {
	var req bulkRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if req.Filter.empty() && !req.All {
		return 0, nil, badRequest("the filter is empty, which selects every dead letter; narrow it, or set \"all\": true")
	}
	f, err := req.Filter.sdk()
	if err != nil {
		return 0, nil, err
	}
	opts := sdk.BulkOptions{DryRun: req.DryRun}
	if req.ExpectedCount != nil {
		opts.Confirm = func(n int) bool { return n == *req.ExpectedCount }
	}
	actor := Actor(r.Context())
	var res sdk.BulkResult
	if resolve {
		if req.Note != "" {
			return 0, nil, badRequest("a resolve takes \"notes\", not \"note\"")
		}
		res, err = s.cfg.Client.ResolveDeadLetters(r.Context(), f, actor, strings.TrimSpace(req.Notes), opts)
	} else {
		if req.Notes != "" {
			return 0, nil, badRequest("a retry takes \"note\", not \"notes\"")
		}
		res, err = s.cfg.Client.RetryDeadLetters(r.Context(), f, actor, strings.TrimSpace(req.Note), opts)
	}
	if err != nil {
		return 0, nil, err
	}
	if res.Declined {
		return 0, nil, &requestError{status: http.StatusConflict, code: codeCountChanged,
			msg: fmt.Sprintf("%d dead letters match now, not the %d confirmed; nothing changed: count again (dry_run) and confirm the new number", len(res.Matched), *req.ExpectedCount)}
	}
	if req.ExpectedCount != nil && len(res.Matched) != *req.ExpectedCount {
		// Confirm is not called when nothing matches.
		return 0, nil, &requestError{status: http.StatusConflict, code: codeCountChanged,
			msg: fmt.Sprintf("%d dead letters match now, not the %d confirmed; nothing changed", len(res.Matched), *req.ExpectedCount)}
	}
	out := bulkResult{Matched: len(res.Matched), Changed: res.Changed, DryRun: req.DryRun, IDs: make([]string, len(res.Matched))}
	for i, id := range res.Matched {
		out.IDs[i] = id.String()
	}
	for _, e := range res.Skipped {
		out.Skipped = append(out.Skipped, e.Error())
	}
	return http.StatusOK, out, nil
}

func (s *Server) apiBulkRetry(r *http.Request) (int, any, error)   { return s.bulk(r, false) }
func (s *Server) apiBulkResolve(r *http.Request) (int, any, error) { return s.bulk(r, true) }
