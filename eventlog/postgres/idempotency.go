package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-engine/chronicle/eventlog"
)

const keyColumns = `k.key, k.owner_id, k.owner_attempt, k.state, k.result, k.created_at, k.completed_at, k.expires_at`

func scanKey(row pgx.Row) (eventlog.IdempotencyKey, error) {
	var k eventlog.IdempotencyKey
	var owner [16]byte
	var result []byte
	err := row.Scan(&k.Key, &owner, &k.OwnerAttempt, &k.State, &result, &k.CreatedAt, &k.CompletedAt, &k.ExpiresAt)
	k.OwnerID = owner
	if result != nil {
		k.Result = json.RawMessage(result)
	}
	return k, err
}

// keyAlive is true for a running claim whose owner attempt has not ended:
// its task still carries that attempt and is leased. An attempt ends when
// it is recorded (success, failure), timed out by the maintenance leader,
// or its job is canceled; until then its claim stands even if a heartbeat
// is late, so that a slow owner is never run over.
const keyAlive = `EXISTS (SELECT 1 FROM tasks t WHERE t.execution_id = k.owner_id AND t.attempt = k.owner_attempt AND t.leased_by IS NOT NULL)`

const claimKeySQL = `
INSERT INTO idempotency_keys AS k (key, owner_id, owner_attempt, state, result, created_at, completed_at, expires_at)
VALUES ($1, $2, $3, 'running', NULL, now(), NULL, now() + make_interval(secs => $4))
ON CONFLICT (key) DO UPDATE SET owner_id = EXCLUDED.owner_id, owner_attempt = EXCLUDED.owner_attempt,
	state = 'running', result = NULL, created_at = now(), completed_at = NULL, expires_at = EXCLUDED.expires_at
WHERE (k.state = 'completed' AND k.expires_at <= now()) OR (k.state = 'running' AND NOT ` + keyAlive + `)
RETURNING ` + keyColumns

// ClaimIdempotencyKey takes a free key or returns the live row that holds it.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, p eventlog.ClaimKeyParams) (eventlog.KeyClaim, error) {
	// A row seen as taken can be released before it is read back; then the
	// claim is tried again.
	for range 5 {
		k, err := scanKey(s.pool.QueryRow(ctx, claimKeySQL, p.Key, [16]byte(p.OwnerID), p.OwnerAttempt, p.TTL.Seconds()))
		if err == nil {
			return eventlog.KeyClaim{Claimed: true, Key: k}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return eventlog.KeyClaim{}, fmt.Errorf("claim idempotency key %q: %w", p.Key, err)
		}
		k, err = scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM idempotency_keys k WHERE k.key = $1`, p.Key))
		if err == nil {
			return eventlog.KeyClaim{Key: k}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return eventlog.KeyClaim{}, fmt.Errorf("read idempotency key %q: %w", p.Key, err)
		}
	}
	return eventlog.KeyClaim{}, fmt.Errorf("claim idempotency key %q: it was taken and released 5 times in a row; try again", p.Key)
}

// ReleaseIdempotencyKey deletes owner's running claim.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, key string, owner eventlog.ID, attempt int) (bool, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE key = $1 AND owner_id = $2 AND owner_attempt = $3 AND state = 'running'`,
		key, [16]byte(owner), attempt)
	if err != nil {
		return false, fmt.Errorf("release idempotency key %q: %w", key, err)
	}
	return tag.RowsAffected() == 1, nil
}

// DeleteExpiredIdempotencyKeys deletes expired keys: completed ones past
// their expiry and running claims past it whose owner attempt has ended.
// Expired enqueue de-duplication keys go too.
func (s *Store) DeleteExpiredIdempotencyKeys(ctx context.Context, limit int) (int64, error) {
	if limit <= 0 {
		limit = 1000
	}
	tag, err := s.pool.Exec(ctx, `
		DELETE FROM idempotency_keys WHERE key IN (
			SELECT k.key FROM idempotency_keys k
			WHERE k.expires_at <= now() AND (k.state = 'completed' OR NOT `+keyAlive+`)
			ORDER BY k.expires_at LIMIT $1
			FOR UPDATE SKIP LOCKED)`, limit)
	if err != nil {
		return 0, fmt.Errorf("delete expired idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}

// DeleteExpiredEnqueueKeys deletes up to limit enqueue de-duplication keys
// whose expiry passed.
func (s *Store) DeleteExpiredEnqueueKeys(ctx context.Context, limit int) (int64, error) {
	if limit <= 0 {
		limit = 1000
	}
	tag, err := s.pool.Exec(ctx, `
		DELETE FROM enqueue_keys WHERE key IN (
			SELECT key FROM enqueue_keys WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED)`, limit)
	if err != nil {
		return 0, fmt.Errorf("delete expired enqueue keys: %w", err)
	}
	return tag.RowsAffected(), nil
}

// CompleteIdempotencyKey marks owner's running claim completed.
func (tx *Tx) CompleteIdempotencyKey(ctx context.Context, key string, owner eventlog.ID, attempt int, result json.RawMessage, ttl time.Duration) (bool, error) {
	if result == nil {
		result = json.RawMessage("null")
	}
	tag, err := tx.q.Exec(ctx, `
		UPDATE idempotency_keys SET state = 'completed', result = $4, completed_at = now(), expires_at = now() + make_interval(secs => $5)
		WHERE key = $1 AND owner_id = $2 AND owner_attempt = $3 AND state = 'running'`,
		key, [16]byte(owner), attempt, string(result), ttl.Seconds())
	if err != nil {
		return false, fmt.Errorf("complete idempotency key %q: %w", key, err)
	}
	return tag.RowsAffected() == 1, nil
}
