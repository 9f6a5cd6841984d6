package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/chronicle-engine/chronicle/internal/testdb"
	"github.com/chronicle-engine/chronicle/sdk"
)

func TestWelcomeEmail(t *testing.T) {
	t.Parallel()
	pool, schema := testdb.Schema(t)
	var out bytes.Buffer
	if err := run(context.Background(), sdk.Config{Pool: pool, WakeSubjectPrefix: "test." + schema}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"user.signup attempt 1", "CRM sync failed", "user.signup attempt 2",
		"user.signup ", "succeeded after 2 attempt(s)", "StepCompleted",
		`message to [ada@example.com]: "Welcome, Ada!"`,
		`message to [grace@example.com]: "Welcome, Grace!"`,
		"the mail server received 2 messages for 3 sends",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if n := strings.Count(s, "[smtp] message"); n != 2 {
		t.Errorf("%d messages printed, want 2:\n%s", n, s)
	}
}
