// Package postgres is the PostgreSQL driver of the event log, built on pgx.
//
// Every statement is written for batches: appends are one multi-row insert
// per transaction, projection rows are written with one statement per table
// using unnest, and claims lease many tasks in one statement with
// FOR UPDATE SKIP LOCKED.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-engine/chronicle/eventlog"
)

// Store is the PostgreSQL implementation of eventlog.Store.
type Store struct {
	pool *pgxpool.Pool
}

var _ eventlog.Store = (*Store)(nil)

// New returns a store over an existing pool. The pool's search_path selects
// the schema Chronicle's tables live in.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Pool returns the underlying connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Connect opens a pool to url and checks that the database answers. Its
// errors name the address and how to change it.
func Connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("invalid database URL (set DATABASE_URL or --database-url): %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		addr := net.JoinHostPort(cfg.ConnConfig.Host, fmt.Sprint(cfg.ConnConfig.Port))
		return nil, fmt.Errorf("cannot reach PostgreSQL at %s (database %q): %w; is it running? set DATABASE_URL or --database-url to point elsewhere", addr, cfg.ConnConfig.Database, err)
	}
	return pool, nil
}

// InTx runs fn in a transaction.
func (s *Store) InTx(ctx context.Context, fn func(eventlog.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return fn(&Tx{q: tx})
	})
}

// WrapTx lets the engine write inside a transaction its caller owns: the
// writes commit or roll back with it.
func WrapTx(tx pgx.Tx) eventlog.Tx { return &Tx{q: tx} }

// querier is what both a pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Ping checks the database is reachable.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

func uuids(ids []eventlog.ID) [][16]byte {
	out := make([][16]byte, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

func isUniqueViolation(err error) (*pgconn.PgError, bool) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return pgErr, true
	}
	return nil, false
}
