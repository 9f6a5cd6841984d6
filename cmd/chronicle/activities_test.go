package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/activities"
	"github.com/chronicle-engine/chronicle/internal/smtptest"
)

// `chronicle worker` with SMTP_HOST and WEBHOOK_SECRET runs the real
// email.send and webhook.deliver: the email reaches the SMTP server and
// the webhook arrives signed (the receiver is on loopback, which
// --webhook-allow-private-networks allows).
func TestWorkerRunsBuiltInActivities(t *testing.T) {
	t.Parallel()
	smtp, err := smtptest.Start(smtptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = smtp.Close() })
	secret := "whsec_cli_test"
	var verified atomic.Int32
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := activities.VerifyRequest(r, []byte(secret), 0); err == nil {
			verified.Add(1)
		}
	}))
	t.Cleanup(rcv.Close)

	c := setup(t)
	c.env = append(c.env, "SMTP_HOST="+smtp.Host, fmt.Sprintf("SMTP_PORT=%d", smtp.Port), "SMTP_TLS=none",
		"SMTP_FROM=ops@example.com", "WEBHOOK_SECRET="+secret)
	c.startWorker("--poll", "50ms", "--heartbeat-file", "", "--webhook-allow-private-networks")

	email := c.enqueue(emailJobArgs(t))
	hook := c.enqueue("webhook.deliver", "--payload", fmt.Sprintf(`{"webhook_id":"wh_1","url":%q,"payload":{"n":1}}`, rcv.URL))
	for _, id := range []string{email.String(), hook.String()} {
		eventually(t, "job "+id+" to succeed", 15*time.Second, func() bool {
			var j jobJSON
			decodeJSON(t, c.ok("jobs", "show", id, "--json"), &j)
			return j.Status == "succeeded"
		})
	}
	if msgs := smtp.Messages(); len(msgs) != 1 || msgs[0].To[0] != "ada@example.com" || !strings.Contains(string(msgs[0].Data), "ops@example.com") {
		t.Fatalf("SMTP server received %+v, want one email from ops@example.com to ada@example.com", msgs)
	}
	if verified.Load() != 1 {
		t.Fatalf("receiver verified %d webhooks, want 1", verified.Load())
	}
}

func emailJobArgs(t *testing.T) (string, string, string) {
	t.Helper()
	b, err := json.Marshal(activities.Email{Type: "welcome", RecipientID: "42", To: []string{"ada@example.com"}, Subject: "Hi", Text: "Welcome"})
	if err != nil {
		t.Fatal(err)
	}
	return "email.send", "--payload", string(b)
}
