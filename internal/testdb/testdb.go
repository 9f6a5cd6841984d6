// Package testdb gives each test its own migrated PostgreSQL schema, so that
// tests and packages run in parallel against the one real database.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-engine/chronicle/migrations"
)

// DefaultURL is used when DATABASE_URL is not set: the local PostgreSQL that
// every development and CI machine runs.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// URL returns the database URL tests use.
func URL() string {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Schema creates a fresh schema, migrates it and returns a pool whose
// search_path points at it, plus the schema's name and a URL that selects
// it (for subprocesses). The schema is dropped when the test ends.
func Schema(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "test_" + hex.EncodeToString(b[:])

	admin, err := pgxpool.New(ctx, URL())
	if err != nil {
		t.Fatalf("connect to %s: %v", URL(), err)
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema (is PostgreSQL running at %s? set DATABASE_URL): %v", URL(), err)
	}
	t.Cleanup(func() {
		a, err := pgxpool.New(context.Background(), URL())
		if err != nil {
			return
		}
		defer a.Close()
		_, _ = a.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})

	pool, err := pgxpool.New(ctx, SchemaURL(schema))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(pool.Close)
	if _, err := migrations.Up(ctx, pool); err != nil {
		t.Fatalf("migrate schema %s: %v", schema, err)
	}
	return pool, schema
}

// SchemaURL returns the test database URL with search_path set to schema.
func SchemaURL(schema string) string {
	u := URL()
	sep := "?"
	for _, c := range u {
		if c == '?' {
			sep = "&"
		}
	}
	return fmt.Sprintf("%s%ssearch_path=%s", u, sep, schema)
}
