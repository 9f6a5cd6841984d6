package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/chronicle-engine/chronicle/internal/testdb"
	"github.com/chronicle-engine/chronicle/sdk"
)

func TestWebhookDelivery(t *testing.T) {
	t.Parallel()
	pool, schema := testdb.Schema(t)
	var out bytes.Buffer
	if err := run(context.Background(), sdk.Config{Pool: pool, WakeSubjectPrefix: "test." + schema}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"request 1 (webhook:wh_acme:dlv_", "503, Retry-After 1",
		"request 2 (webhook:wh_acme:dlv_", "event order.paid processed", `"amount_cents":4200`,
		"succeeded after 2 attempt(s)",
		"AttemptFailed", "503 Service Unavailable (Retry-After 1s)", "StepCompleted", `"status_code": 200`,
		"the receiver got 2 requests and processed the event once",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}
