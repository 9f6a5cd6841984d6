package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/sdk"
)

// hostileStrings are inputs that break SQL built by concatenation, or
// that a database may refuse: quotes, statement separators, comments, NUL
// bytes, invalid UTF-8 and a 1 MiB string.
var hostileStrings = map[string]string{
	"quotes":    `it's "quoted" \' \"`,
	"injection": `x'); DROP TABLE events; --`,
	"semicolon": `a;b;`,
	"nul":       "before\x00after",
	"utf8":      "caf\xe9 \xff",
	"huge":      strings.Repeat("ab'; ", 1<<20/5),
}

// TestHostileInputs feeds hostile strings through every SDK entry point
// that stores text (job types, queues, payloads, idempotency keys, cancel
// reasons): each is stored verbatim or refused with an error that names the
// field and the problem, never a raw database error, and the schema is
// intact afterwards. Text inside JSON (payloads, reasons) that is not valid
// UTF-8 is stored as encoding/json writes it: invalid bytes become U+FFFD.
func TestHostileInputs(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *sdk.Config) { c.AllowUnregisteredTypes = true; c.MaxPayloadBytes = 4 << 20 })
	ctx := context.Background()
	refusedClearly := func(t *testing.T, what string, err error) {
		t.Helper()
		// A NUL byte inside JSON text is refused by the event encoder with
		// a message that says so; anything else must be ErrInvalidInput.
		if !errors.Is(err, sdk.ErrInvalidInput) && (err == nil || !strings.Contains(err.Error(), "NUL character")) {
			t.Errorf("%s: error %v; want it stored verbatim or refused with ErrInvalidInput naming the field", what, err)
		}
	}
	for name, s := range hostileStrings {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// Job type and queue: validated names; anything hostile is refused.
			_, err := b.client.Enqueue(ctx, s, nil)
			refusedClearly(t, "job type", err)
			_, err = b.client.Enqueue(ctx, "hostile.job", nil, sdk.WithQueue(s))
			refusedClearly(t, "queue", err)

			// Payload: stored verbatim (as JSON) or refused.
			res, err := b.client.Enqueue(ctx, "hostile.job", map[string]string{"v": s}, sdk.WithIdempotencyKey("k:"+name+":"+s[:min(len(s), 400)], time.Hour))
			if err != nil {
				refusedClearly(t, "payload or idempotency key", err)
				res, err = b.client.Enqueue(ctx, "hostile.job", map[string]string{"v": name})
				if err != nil {
					t.Fatal(err)
				}
			} else {
				j := jobOf(t, b, res.ID)
				var p map[string]string
				if err := json.Unmarshal(j.Payload, &p); err != nil || p["v"] != strings.ToValidUTF8(s, "\uFFFD") {
					t.Errorf("payload not stored verbatim: %v", err)
				}
			}

			// Cancel reason and actor: stored verbatim in JobCanceled, or refused.
			j, err := b.client.Cancel(ctx, res.ID, s, s)
			if err != nil {
				refusedClearly(t, "cancel actor and reason", err)
			} else {
				h := historyOf(t, b, res.ID)
				var c struct{ Actor, Reason string }
				if err := h[len(h)-1].Decode(&c); err != nil || c.Reason != strings.ToValidUTF8(s, "\uFFFD") || c.Actor != strings.ToValidUTF8(s, "\uFFFD") || j.Status != sdk.StatusCanceled {
					t.Errorf("cancel reason not stored verbatim: %v", err)
				}
			}
		})
	}
	t.Cleanup(func() {
		if n := countRows(t, b, `SELECT count(*) FROM events`); n == 0 {
			t.Error("the events table is empty after hostile inputs")
		}
		verifyOK(t, b)
	})
}
