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

func TestDataExport(t *testing.T) {
	t.Parallel()
	pool, schema := testdb.Schema(t)
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run(context.Background(), sdk.Config{Pool: pool, WakeSubjectPrefix: "test." + schema}, &out, dir); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"data.export", "succeeded; its history records the manifest",
		"path        " + dir, "profile.json   1 records", "orders.json    5000 records",
		"the archive opens; it holds 3 files", "[smtp] notification to [ada@example.com]", "1 email(s) received",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	zips, _ := filepath.Glob(filepath.Join(dir, "*.zip"))
	manifests, _ := filepath.Glob(filepath.Join(dir, "*.manifest.json"))
	if len(zips) != 1 || len(manifests) != 1 {
		entries, _ := os.ReadDir(dir)
		t.Fatalf("export directory holds %v, want one archive and its manifest", entries)
	}
}
