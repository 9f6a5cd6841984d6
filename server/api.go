package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
)

// DefaultMaxBodyBytes caps a request body of the API and the admin UI: a
// job's payload may be 1 MiB (sdk.DefaultMaxPayloadBytes), and its JSON
// envelope and escaping need room beyond that.
const DefaultMaxBodyBytes = 2 << 20

// Error codes of the API: the "code" of every error answer. docs/server.md
// lists them with their status codes.
const (
	codeUnauthorized     = "unauthorized"
	codeForbidden        = "forbidden"
	codeMalformedJSON    = "malformed_json"
	codeInvalidInput     = "invalid_input"
	codeBodyTooLarge     = "body_too_large"
	codeUnsupportedMedia = "unsupported_media_type"
	codeNotFound         = "not_found"
	codeInvalidState     = "invalid_state"
	codeConflict         = "conflict"
	codeCountChanged     = "count_changed"
	codeUnknownType      = "unknown_type"
	codeWorkflowExists   = "workflow_exists"
	codeNotRunning       = "workflow_not_running"
	codeScheduleExists   = "schedule_exists"
	codeUnavailable      = "unavailable"
	codeInternal         = "internal"
)

// apiError is the body of every error answer: {"code": ..., "message": ...}.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// web is the state of the API and the admin UI.
type web struct {
	cop   *http.CrossOriginProtection
	forms formTokens
	pages map[string]*template.Template
	// apiPatterns are the API's routes, "METHOD /path", in the order
	// registered: docs/openapi.yaml must describe each (openapi_test.go).
	apiPatterns []string
}

// routes registers the API and the admin UI.
func (s *Server) routes() {
	if s.cfg.MaxBodyBytes <= 0 {
		s.cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	s.web.cop = http.NewCrossOriginProtection()
	s.web.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		msg := "cross-origin request refused: state-changing requests must come from this server's own pages or from a client that is not a browser"
		if strings.HasPrefix(r.URL.Path, "/api/") {
			writeError(w, http.StatusForbidden, codeForbidden, msg)
			return
		}
		http.Error(w, msg, http.StatusForbidden)
	}))
	s.web.forms = newFormTokens(s.cfg.Auth)
	s.apiRoutes()
	s.adminRoutes()
}

// apiHandler is an API handler: it returns the status and value to write
// as JSON, or an error that writeAPIError turns into its status and code.
type apiHandler func(r *http.Request) (int, any, error)

// handleAPI registers an API route behind authentication and
// cross-origin protection.
func (s *Server) handleAPI(pattern string, h apiHandler) {
	s.web.apiPatterns = append(s.web.apiPatterns, pattern)
	s.mux.Handle(pattern, s.web.cop.Handler(s.requireAuth(true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.Method == http.MethodPost {
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
				writeError(w, http.StatusUnsupportedMediaType, codeUnsupportedMedia,
					fmt.Sprintf("send the body as JSON with \"Content-Type: application/json\" (got %q)", r.Header.Get("Content-Type")))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		}
		code, v, err := h(r)
		if err != nil {
			s.writeAPIError(w, r, err)
			return
		}
		writeJSON(w, code, v)
	}))))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, errCode, msg string) {
	writeJSON(w, code, apiError{Code: errCode, Message: msg})
}

// requestError is a request the API refuses before it reaches the SDK.
type requestError struct {
	status int
	code   string
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{status: http.StatusBadRequest, code: codeInvalidInput, msg: fmt.Sprintf(format, args...)}
}

// classify maps an error to its status and code; the message is the
// error's own unless it is internal.
func classify(err error) (int, string) {
	var re *requestError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &re):
		return re.status, re.code
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, codeBodyTooLarge
	case errors.Is(err, sdk.ErrInvalidInput), errors.Is(err, sdk.ErrQueryFailed):
		return http.StatusBadRequest, codeInvalidInput
	case errors.Is(err, sdk.ErrUnknownJobType), errors.Is(err, sdk.ErrUnknownWorkflowType):
		return http.StatusUnprocessableEntity, codeUnknownType
	case errors.Is(err, sdk.ErrNotFound), errors.Is(err, sdk.ErrNotJob), errors.Is(err, engine.ErrNotWorkflow):
		return http.StatusNotFound, codeNotFound
	case errors.Is(err, sdk.ErrWorkflowExists):
		return http.StatusConflict, codeWorkflowExists
	case errors.Is(err, sdk.ErrWorkflowNotRunning):
		return http.StatusConflict, codeNotRunning
	case errors.Is(err, sdk.ErrScheduleExists):
		return http.StatusConflict, codeScheduleExists
	case errors.Is(err, sdk.ErrInvalidState):
		return http.StatusConflict, codeInvalidState
	case errors.Is(err, eventlog.ErrConflict):
		return http.StatusConflict, codeConflict
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, codeUnavailable
	}
	return http.StatusInternalServerError, codeInternal
}

func (s *Server) writeAPIError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := classify(err)
	msg := err.Error()
	if status == http.StatusRequestEntityTooLarge {
		msg = fmt.Sprintf("the request body is over the %d-byte limit (server.Config.MaxBodyBytes); store large data elsewhere and pass a reference", s.cfg.MaxBodyBytes)
	}
	if status >= 500 {
		s.cfg.Logger.LogAttrs(r.Context(), slog.LevelError, "api request failed", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		if status == http.StatusInternalServerError {
			msg = "internal error; the server's log has the details"
		}
	}
	writeError(w, status, code, msg)
}

// decode reads a JSON body into v: one object, no unknown fields. An empty
// body leaves v as it is.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			var mbe *http.MaxBytesError
			if errors.As(terr, &mbe) {
				return terr
			}
			return &requestError{status: http.StatusBadRequest, code: codeMalformedJSON, msg: "the body holds more than one JSON value; send one object"}
		}
		return nil
	}
	var mbe *http.MaxBytesError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.As(err, &syn):
		return &requestError{status: http.StatusBadRequest, code: codeMalformedJSON, msg: fmt.Sprintf("the body is not valid JSON at byte %d: %v", syn.Offset, syn)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &requestError{status: http.StatusBadRequest, code: codeMalformedJSON, msg: "the body ends in the middle of its JSON"}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return &requestError{status: http.StatusBadRequest, code: codeMalformedJSON, msg: fmt.Sprintf("the body must be a JSON object, not %s", typ.Value)}
		}
		return badRequest("field %q must be %s, not %s", field, jsonKind(typ.Type.String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("%s; docs/openapi.yaml lists the fields", strings.TrimPrefix(err.Error(), "json: "))
	}
	return badRequest("the body cannot be read as the expected JSON object: %v", err)
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case goType == "string" || strings.HasSuffix(goType, "Time") || strings.HasSuffix(goType, "Duration"):
		return "a string"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "bool":
		return "true or false"
	}
	return "an object"
}

// pathID parses the {id} of a path as an execution ID.
func pathID(r *http.Request) (eventlog.ID, error) {
	s := r.PathValue("id")
	id, err := eventlog.ParseID(strings.ToUpper(s))
	if err != nil {
		return id, &requestError{status: http.StatusNotFound, code: codeNotFound, msg: fmt.Sprintf("%q is not a job ID: IDs are 26-character ULIDs such as 01JDQ3Z6V5N8G1Y1Y6Q9W4T2XH", s)}
	}
	return id, nil
}

// parseDuration reads a duration such as "90s", "15m", "2h" or "7d".
func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err == nil && n >= 0 {
			return time.Duration(n * 24 * float64(time.Hour)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, badRequest("%s %q is not a duration; write it like 90s, 15m, 2h or 7d", field, s)
	}
	return d, nil
}

// parseTime reads an RFC 3339 time, or a date and time without a zone
// (as an HTML datetime-local input sends it), taken as UTC.
func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, badRequest("%s %q is not a time; write it like 2025-06-01T03:00:00Z", field, s)
}

// list splits repeated and comma-separated query values.
func list(q map[string][]string, key string) []string {
	var out []string
	for _, v := range q[key] {
		for part := range strings.SplitSeq(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}
