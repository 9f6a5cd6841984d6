package eventlog

import (
	"context"
	"encoding/json"
	"time"
)

// Idempotency key states.
const (
	// KeyRunning: an attempt of the owner job claimed the key and is running
	// the step. The claim lives as long as that attempt's lease.
	KeyRunning = "running"
	// KeyCompleted: the step ran to success; Result is remembered until the
	// key expires.
	KeyCompleted = "completed"
)

// IdempotencyKey is one row of the keys table: who holds a step's key and,
// once the step completed, its result.
type IdempotencyKey struct {
	Key string
	// OwnerID and OwnerAttempt name the job attempt that claimed the key
	// (and, once completed, ran the step).
	OwnerID      ID
	OwnerAttempt int
	State        string
	// Result is the step's result as JSON; nil while running.
	Result      json.RawMessage
	CreatedAt   time.Time
	CompletedAt *time.Time
	ExpiresAt   time.Time
}

// ClaimKeyParams asks for an idempotency key on behalf of one attempt.
type ClaimKeyParams struct {
	Key          string
	OwnerID      ID
	OwnerAttempt int
	// TTL is how long a claim that is never completed blocks the key at
	// most; a claim also dies with its owner's lease.
	TTL time.Duration
}

// KeyClaim is the outcome of ClaimIdempotencyKey.
type KeyClaim struct {
	// Claimed is true when the caller now holds the key (state running).
	Claimed bool
	// Key is the row as it stands after the claim: the caller's own claim,
	// or the live row of whoever holds the key.
	Key IdempotencyKey
}

// IdempotencyKeys are the store's operations on the keys table outside a
// transaction.
type IdempotencyKeys interface {
	// ClaimIdempotencyKey takes the key for p's owner when it is free: no
	// row, an expired row, or a running claim whose owner no longer holds
	// the lease of that attempt (a crashed or superseded attempt). Otherwise
	// it returns the live row unchanged.
	ClaimIdempotencyKey(ctx context.Context, p ClaimKeyParams) (KeyClaim, error)
	// ReleaseIdempotencyKey deletes a running claim of owner's attempt, so
	// that the next caller runs the step. It reports whether a claim was
	// released.
	ReleaseIdempotencyKey(ctx context.Context, key string, owner ID, attempt int) (bool, error)
	// DeleteExpiredIdempotencyKeys deletes up to limit keys whose expiry
	// passed (database time) and returns how many it deleted.
	DeleteExpiredIdempotencyKeys(ctx context.Context, limit int) (int64, error)
	// DeleteExpiredEnqueueKeys deletes up to limit enqueue de-duplication
	// keys whose expiry passed and returns how many it deleted.
	DeleteExpiredEnqueueKeys(ctx context.Context, limit int) (int64, error)
}

// IdempotencyTx is the keys table inside a transaction.
type IdempotencyTx interface {
	// CompleteIdempotencyKey marks owner's running claim of key completed
	// with result, remembered for ttl from now. It reports false, changing
	// nothing, when owner's attempt no longer holds the claim.
	CompleteIdempotencyKey(ctx context.Context, key string, owner ID, attempt int, result json.RawMessage, ttl time.Duration) (bool, error)
}
