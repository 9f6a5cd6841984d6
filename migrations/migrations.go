// Package migrations holds Chronicle's SQL schema as embedded, numbered
// migrations, applied with goose.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
)

//go:embed *.sql
var files embed.FS

// FS is the set of migration files.
var FS fs.FS = files

// VersionTable is the table goose records applied migrations in.
const VersionTable = "chronicle_migrations"

func provider(ctx context.Context, pool *pgxpool.Pool) (*goose.Provider, *sql.DB, error) {
	var schema string
	if err := pool.QueryRow(ctx, `SELECT coalesce(current_schema(), '')`).Scan(&schema); err != nil {
		return nil, nil, fmt.Errorf("find the schema to migrate: %w", err)
	}
	store, err := database.NewStore(goose.DialectPostgres, VersionTable)
	if err != nil {
		return nil, nil, err
	}
	// A session advisory lock serializes concurrent migrators of one schema.
	// Its ID is derived from the schema so that migrators of different
	// schemas in one database (one per test, or per tenant) do not wait on
	// each other; waiters retry every second rather than goose's default 5s.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID(schema)), lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, nil, err
	}
	db := stdlib.OpenDBFromPool(pool)
	p, err := goose.NewProvider("", db, FS, goose.WithStore(store), goose.WithSessionLocker(locker))
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, db, nil
}

// migrationLockID is the advisory lock ID that serializes migrators of schema.
func migrationLockID(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("chronicle migrations\x00" + schema))
	return int64(h.Sum64())
}

// Up applies every migration not yet applied. It is safe to run repeatedly
// and from several processes at once.
func Up(ctx context.Context, pool *pgxpool.Pool) ([]*goose.MigrationResult, error) {
	p, db, err := provider(ctx, pool)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	res, err := p.Up(ctx)
	if err != nil {
		return res, fmt.Errorf("apply migrations: %w", err)
	}
	return res, nil
}

// Status reports each migration and whether it is applied.
func Status(ctx context.Context, pool *pgxpool.Pool) ([]*goose.MigrationStatus, error) {
	p, db, err := provider(ctx, pool)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return p.Status(ctx)
}
