package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/chronicle-engine/chronicle/internal/testdb"
	"github.com/chronicle-engine/chronicle/sdk"
)

func TestApprovalExample(t *testing.T) {
	t.Parallel()
	pool, schema := testdb.Schema(t)
	var out bytes.Buffer
	if err := run(context.Background(), sdk.Config{Pool: pool, WakeSubjectPrefix: "test." + schema}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		`query "status": awaiting approval`,
		"[activity] paying 120 to ada@example.com",
		"result: paid (receipt-A-", "approved by grace",
		"SignalReceived", "TimerCanceled", "ActivityCompleted",
		"result: expired", "TimerFired",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}
