package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/chronicle-engine/chronicle/internal/testdb"
	"github.com/chronicle-engine/chronicle/sdk"
)

func TestNewJobType(t *testing.T) {
	t.Parallel()
	pool, schema := testdb.Schema(t)
	var out bytes.Buffer
	if err := run(context.Background(), sdk.Config{Pool: pool, WakeSubjectPrefix: "test." + schema}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"enqueueing two my.new_job jobs", `"maximum_attempts": 3`, `"owner_id": "`,
		"my.new_job", "succeeded after 1 attempt(s)", "StepCompleted", `"key": "my-job:123-`,
		"2 jobs ran; the idempotent work ran 1 time(s).",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if n := strings.Count(s, "idempotent work for"); n != 1 {
		t.Errorf("the idempotent work printed %d times, want 1:\n%s", n, s)
	}
}
