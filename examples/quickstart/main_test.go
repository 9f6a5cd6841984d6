package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/chronicle-engine/chronicle/internal/testdb"
	"github.com/chronicle-engine/chronicle/sdk"
)

func TestQuickstart(t *testing.T) {
	t.Parallel()
	pool, schema := testdb.Schema(t)
	var out bytes.Buffer
	if err := run(context.Background(), sdk.Config{Pool: pool, WakeSubjectPrefix: "test." + schema}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"email.send", "succeeded after 1 attempt(s)",
		"report.generate", "succeeded after 3 attempt(s)",
		"payment.capture", "resolved after 2 attempt(s)",
		"JobDeadLettered", "JobResolved", "customer paid by bank transfer",
		"every history above is hash-chained and verified",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}
