package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chronicle-engine/chronicle/internal/testdb"
	"github.com/chronicle-engine/chronicle/sdk"
)

func TestGDPRExportExample(t *testing.T) {
	pool, schema := testdb.Schema(t)
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := run(context.Background(), sdk.Config{Pool: pool, WakeSubjectPrefix: "test." + schema}, &buf, dir); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	s := buf.String()
	for _, want := range []string{"fetch ada-", "from support", "email ada@example.com a link", "source decommissioned",
		"delete half-built archive export-bob-", "failed: ", "collect from legacy-crm", "source legacy-crm is decommissioned"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 1 || !strings.Contains(files[0], "export-ada-") {
		t.Fatalf("archives left: %v, want only ada's", files)
	}
	if b, _ := os.ReadFile(files[0]); strings.Count(string(b), "\n") != 4 {
		t.Errorf("ada's archive has %q", b)
	}
	if strings.Contains(s, "email bob@") {
		t.Errorf("bob was emailed a link to a deleted archive:\n%s", s)
	}
}
