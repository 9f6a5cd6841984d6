package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-engine/chronicle/internal/testdb"
)

// emptySchema creates a schema without Chronicle's tables and returns a
// cli pointed at it.
func emptySchema(t *testing.T) *cli {
	t.Helper()
	ctx := context.Background()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "test_cli_" + hex.EncodeToString(b[:])
	admin, err := pgxpool.New(ctx, testdb.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema (is PostgreSQL running at %s?): %v", testdb.URL(), err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	return &cli{t: t, pool: admin, url: testdb.SchemaURL(schema)}
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	c := emptySchema(t)

	if out := c.ok("migrate", "status"); !strings.Contains(out, "00001_init.sql") || !strings.Contains(out, "pending") {
		t.Fatalf("status before migrating:\n%s", out)
	}
	if out := c.ok("migrate"); !strings.Contains(out, "applied 00001_init.sql") {
		t.Fatalf("first migrate:\n%s", out)
	}
	if out := c.ok("migrate"); strings.TrimSpace(out) != "already up to date" {
		t.Fatalf("second migrate:\n%s", out)
	}
	out := c.ok("migrate", "status")
	if !strings.Contains(out, "00001_init.sql") || !strings.Contains(out, "applied") || strings.Contains(out, "pending") {
		t.Fatalf("status after migrating:\n%s", out)
	}
	// The schema works: a job can be enqueued and listed.
	id := c.enqueue("email.send")
	if jobs := c.list("jobs", "list"); len(jobs) != 1 || jobs[0].ID != id.String() {
		t.Fatalf("jobs after migrating: %+v", jobs)
	}
}
