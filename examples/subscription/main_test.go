package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/chronicle-engine/chronicle/internal/testdb"
	"github.com/chronicle-engine/chronicle/sdk"
)

func TestSubscriptionExample(t *testing.T) {
	pool, schema := testdb.Schema(t)
	var buf bytes.Buffer
	if err := run(context.Background(), sdk.Config{Pool: pool, WakeSubjectPrefix: "test." + schema}, &buf); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	s := buf.String()
	if !strings.Contains(s, "done: 7 cycles, billed 63") {
		t.Fatalf("output:\n%s", s)
	}
	for c := 1; c <= 7; c++ {
		if n := strings.Count(s, "for cycle "+string(rune('0'+c))+":"); n != 1 {
			t.Errorf("cycle %d billed %d times:\n%s", c, n, s)
		}
	}
	if n := strings.Count(s, "ends with WorkflowContinuedAsNew"); n != 2 {
		t.Errorf("%d runs continued as new, want 2:\n%s", n, s)
	}
	if n := strings.Count(s, "ends with WorkflowCompleted"); n != 1 {
		t.Errorf("%d runs completed, want 1:\n%s", n, s)
	}
}
