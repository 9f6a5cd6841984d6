package postgres

import (
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// conflictError turns a unique violation of events_pkey into the conflict
// of the history it hit. One append may carry events of many executions (a
// batch of enqueues or completions); the violation's detail, "Key
// (execution_id, seq)=(<uuid>, <seq>) already exists.", names the one that
// conflicted. When the detail cannot be read, the first event is named.
func conflictError(pgErr *pgconn.PgError, events []eventlog.Event) *eventlog.ConflictError {
	ce := &eventlog.ConflictError{ExecutionID: events[0].ExecutionID, ExpectedSeq: events[0].Seq}
	_, key, ok := strings.Cut(pgErr.Detail, ")=(")
	if !ok {
		return ce
	}
	key, _, ok = strings.Cut(key, ")")
	if !ok {
		return ce
	}
	id, seq, ok := strings.Cut(key, ", ")
	if !ok {
		return ce
	}
	raw, err := hex.DecodeString(strings.ReplaceAll(id, "-", ""))
	if err != nil || len(raw) != 16 {
		return ce
	}
	n, err := strconv.ParseInt(seq, 10, 64)
	if err != nil {
		return ce
	}
	return &eventlog.ConflictError{ExecutionID: eventlog.ID(raw), ExpectedSeq: n}
}
