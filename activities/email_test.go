package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/internal/smtptest"
	"github.com/chronicle-engine/chronicle/sdk"
)

var welcomeTemplate = EmailTemplate{
	Subject: "Welcome, {{.name}}!",
	Text:    "Hello {{.name}}, your account {{.account}} is ready.",
	HTML:    "<p>Hello <b>{{.name}}</b>, your account {{.account}} is ready.</p>",
}

// The message arrives once, with the headers and parts the payload asked
// for, rendered from the template.
func TestEmailSendDelivers(t *testing.T) {
	t.Parallel()
	srv := newSMTPServer(t, smtptest.Options{})
	cfg := testEmailConfig(srv)
	cfg.Templates = map[string]EmailTemplate{"welcome": welcomeTemplate}
	b := setup(t, func(c *sdk.Client, w *sdk.Worker) error { return RegisterEmailSend(w, cfg) })

	id := b.enqueue(t, sdk.JobTypeEmailSend, Email{
		Type: "welcome", RecipientID: "42", UniqueID: "signup",
		To: []string{"Ada Lovelace <ada@example.com>"}, Cc: []string{"team@example.com"}, ReplyTo: "support@example.com",
		Template: "welcome", Data: map[string]any{"name": "Ada <3", "account": "A-42"},
		Attachments: []Attachment{{Filename: "terms.txt", Content: []byte("be nice")}},
		Headers:     map[string]string{"List-Unsubscribe": "<https://example.com/unsubscribe/42>"},
	})
	if j := b.waitSettled(t, id); j.Status != sdk.StatusSucceeded || j.Attempt != 1 {
		t.Fatalf("job %s after %d attempt(s), last error %q; want succeeded after 1", j.Status, j.Attempt, j.LastError)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("server received %d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if got.From != "noreply@example.com" || strings.Join(got.To, ",") != "ada@example.com,team@example.com" {
		t.Errorf("envelope from %q to %v", got.From, got.To)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(got.Data))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, got.Data)
	}
	sum := sha256.Sum256([]byte("email:welcome:42:signup"))
	wantID := "<" + hex.EncodeToString(sum[:16]) + "@example.com>"
	for header, want := range map[string]string{
		"From":             `"Chronicle" <noreply@example.com>`,
		"To":               `"Ada Lovelace" <ada@example.com>`,
		"Cc":               "<team@example.com>",
		"Reply-To":         "<support@example.com>",
		"Subject":          "Welcome, Ada <3!",
		"Message-Id":       wantID,
		"List-Unsubscribe": "<https://example.com/unsubscribe/42>",
	} {
		v := msg.Header.Get(header)
		if header == "Subject" {
			v, _ = new(mime.WordDecoder).DecodeHeader(v)
		}
		if v != want {
			t.Errorf("header %s = %q, want %q", header, v, want)
		}
	}
	if msg.Header.Get("Date") == "" {
		t.Error("no Date header")
	}
	parts := mimeParts(t, msg.Header, msg.Body)
	if !strings.Contains(parts["text/plain"], "Hello Ada <3, your account A-42 is ready.") {
		t.Errorf("text part = %q", parts["text/plain"])
	}
	if !strings.Contains(parts["text/html"], "<b>Ada &lt;3</b>") {
		t.Errorf("HTML part = %q, want the name escaped", parts["text/html"])
	}
	if parts["attachment terms.txt"] != "be nice" {
		t.Errorf("attachment terms.txt = %q; parts %v", parts["attachment terms.txt"], keysOf(parts))
	}
	// The history records the send under the idempotency key.
	steps := b.steps(t, id)
	var sent SentEmail
	if len(steps) != 1 || steps[0].Key != "email:welcome:42:signup" || json.Unmarshal(steps[0].Result, &sent) != nil || sent.MessageID != wantID || sent.Recipients != 2 {
		t.Errorf("StepCompleted events = %+v, want one for the key with the message ID %s", steps, wantID)
	}
}

// mimeParts walks a MIME tree and returns each leaf's decoded content by
// media type, attachments as "attachment NAME".
func mimeParts(t *testing.T, header map[string][]string, body io.Reader) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(ct string, header map[string][]string, r io.Reader)
	walk = func(ct string, header map[string][]string, r io.Reader) {
		media, params, err := mime.ParseMediaType(ct)
		if err != nil {
			t.Fatalf("content type %q: %v", ct, err)
		}
		if strings.HasPrefix(media, "multipart/") {
			mr := multipart.NewReader(r, params["boundary"])
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				walk(p.Header.Get("Content-Type"), p.Header, p)
			}
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		switch enc := first(header["Content-Transfer-Encoding"]); {
		case strings.EqualFold(enc, "base64"):
			if b, err = io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(bytes.ReplaceAll(b, []byte("\r\n"), nil)))); err != nil {
				t.Fatal(err)
			}
		case strings.EqualFold(enc, "quoted-printable"):
			if b, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b))); err != nil {
				t.Fatal(err)
			}
		}
		if _, params, err := mime.ParseMediaType(first(header["Content-Disposition"])); err == nil && params["filename"] != "" {
			out["attachment "+params["filename"]] = string(b)
			return
		}
		out[media] = string(b)
	}
	walk(first(header["Content-Type"]), header, body)
	return out
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A job that sent its email and then failed is retried without sending it
// again, and a second job with the same idempotency key sends nothing: the
// runbook's withIdempotency around sendWelcomeEmail.
func TestEmailSendNotSentTwice(t *testing.T) {
	t.Parallel()
	srv := newSMTPServer(t, smtptest.Options{})
	mailer, err := NewMailer(testEmailConfig(srv))
	if err != nil {
		t.Fatal(err)
	}
	welcome := Email{Type: "welcome", RecipientID: "7", UniqueID: "signup", To: []string{"bob@example.com"}, Subject: "Welcome", Text: "Hi Bob"}
	var runs atomic.Int32
	b := setup(t, func(c *sdk.Client, w *sdk.Worker) error {
		if err := c.RegisterJobType("user.onboard", sdk.JobType{RetryPolicy: fastRetries}); err != nil {
			return err
		}
		if err := sdk.RegisterJobHandler(w, "user.onboard", func(ctx context.Context, _ struct{}) error {
			if err := mailer.Send(ctx, welcome); err != nil {
				return err
			}
			if runs.Add(1) == 1 {
				return errors.New("CRM unavailable after the email went out")
			}
			return nil
		}); err != nil {
			return err
		}
		return sdk.RegisterJobHandler(w, sdk.JobTypeEmailSend, mailer.Send)
	})

	id := b.enqueue(t, "user.onboard", nil)
	if j := b.waitSettled(t, id); j.Status != sdk.StatusSucceeded || j.Attempt != 2 {
		t.Fatalf("job %s after %d attempt(s), last error %q; want succeeded after 2", j.Status, j.Attempt, j.LastError)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("after a retried job the server received %d messages, want 1", n)
	}

	// Another job, same key: nothing is sent, the job succeeds.
	other := b.enqueue(t, sdk.JobTypeEmailSend, welcome)
	if j := b.waitSettled(t, other); j.Status != sdk.StatusSucceeded {
		t.Fatalf("second job %s, last error %q", j.Status, j.LastError)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("after a second job with the same key the server received %d messages, want 1", n)
	}
	if steps := b.steps(t, other); len(steps) != 1 || steps[0].OwnerID != id.String() {
		t.Fatalf("second job's StepCompleted = %+v, want one naming job %s as the owner", steps, id)
	}

	// A different unique ID is a different email.
	third := welcome
	third.UniqueID = "reminder"
	if j := b.waitSettled(t, b.enqueue(t, sdk.JobTypeEmailSend, third)); j.Status != sdk.StatusSucceeded {
		t.Fatalf("third job %s: %s", j.Status, j.LastError)
	}
	if n := len(srv.Messages()); n != 2 {
		t.Fatalf("server received %d messages, want 2", n)
	}
}

// A 550 is permanent: the job is dead-lettered after one attempt; a 451 is
// retried and the email goes out on the next attempt.
func TestEmailSendSMTPReplies(t *testing.T) {
	t.Parallel()
	srv := newSMTPServer(t, smtptest.Options{})
	srv.Reject("gone@example.com", 550, [3]int{5, 1, 1}, "mailbox unavailable", 0)
	srv.Reject("busy@example.com", 451, [3]int{4, 3, 0}, "try again later", 1)
	b := setup(t, func(c *sdk.Client, w *sdk.Worker) error { return RegisterEmailSend(w, testEmailConfig(srv)) })

	gone := b.enqueue(t, sdk.JobTypeEmailSend, Email{Type: "receipt", RecipientID: "1", To: []string{"gone@example.com"}, Subject: "Receipt", Text: "Thanks"},
		sdk.WithRetryPolicy(fastRetries))
	busy := b.enqueue(t, sdk.JobTypeEmailSend, Email{Type: "receipt", RecipientID: "2", To: []string{"busy@example.com"}, Subject: "Receipt", Text: "Thanks"},
		sdk.WithRetryPolicy(fastRetries))

	j := b.waitSettled(t, gone)
	if j.Status != sdk.StatusDeadLettered || j.Attempt != 1 {
		t.Fatalf("550: job %s after %d attempts; want dead-lettered after 1", j.Status, j.Attempt)
	}
	f := b.failures(t, gone)
	if len(f) != 1 || !f[0].Permanent || f[0].ErrorType != "SMTPError" || !strings.Contains(f[0].Error, "smtp 550 (5.1.1)") || !strings.Contains(f[0].Error, "mailbox unavailable") {
		t.Fatalf("550: failures = %+v", f)
	}
	if n := srv.RcptTries("gone@example.com"); n != 1 {
		t.Fatalf("550: server saw %d RCPT TO, want 1", n)
	}

	j = b.waitSettled(t, busy)
	if j.Status != sdk.StatusSucceeded || j.Attempt != 2 {
		t.Fatalf("451: job %s after %d attempts (%s); want succeeded after 2", j.Status, j.Attempt, j.LastError)
	}
	if f := b.failures(t, busy); len(f) != 1 || f[0].Permanent || !strings.Contains(f[0].Error, "smtp 451") {
		t.Fatalf("451: failures = %+v", f)
	}
	if msgs := srv.Messages(); len(msgs) != 1 || msgs[0].To[0] != "busy@example.com" {
		t.Fatalf("server received %+v, want one message to busy@example.com", msgs)
	}
}

// STARTTLS with a verified certificate and AUTH PLAIN; a server without
// STARTTLS is refused under the default mode.
func TestEmailSendSTARTTLSAndAuth(t *testing.T) {
	t.Parallel()
	srv := newSMTPServer(t, smtptest.Options{TLS: true, Users: map[string]string{"app": "s3cret"}})
	cfg := testEmailConfig(srv)
	cfg.TLS, cfg.TLSConfig = "", &tls.Config{RootCAs: srv.CertPool, ServerName: "127.0.0.1"}
	cfg.Username, cfg.Password, cfg.Auth = "app", "s3cret", SMTPAuthPlain
	plain := newSMTPServer(t, smtptest.Options{})
	plainCfg := testEmailConfig(plain)
	plainCfg.TLS = ""
	b := setup(t, func(c *sdk.Client, w *sdk.Worker) error {
		if err := RegisterEmailSend(w, cfg); err != nil {
			return err
		}
		m, err := NewMailer(plainCfg)
		if err != nil {
			return err
		}
		return sdk.RegisterJobHandler(w, "email.plain", m.Send)
	})

	id := b.enqueue(t, sdk.JobTypeEmailSend, Email{Type: "welcome", RecipientID: "9", To: []string{"eve@example.com"}, Subject: "Hi", HTML: "<p>Hi</p>"})
	if j := b.waitSettled(t, id); j.Status != sdk.StatusSucceeded {
		t.Fatalf("job %s: %s", j.Status, j.LastError)
	}
	if msgs := srv.Messages(); len(msgs) != 1 || msgs[0].User != "app" {
		t.Fatalf("received %+v, want one message from user app", msgs)
	}

	id = b.enqueue(t, "email.plain", Email{Type: "welcome", RecipientID: "9", To: []string{"eve@example.com"}, Subject: "Hi", Text: "Hi"},
		sdk.WithRetryPolicy(sdk.RetryPolicy{MaximumAttempts: 1}))
	j := b.waitSettled(t, id)
	if j.Status != sdk.StatusDeadLettered || !strings.Contains(j.LastError, "STARTTLS") {
		t.Fatalf("without STARTTLS: job %s, last error %q; want a failure naming STARTTLS", j.Status, j.LastError)
	}
	if n := len(plain.Messages()); n != 0 {
		t.Fatalf("a server without STARTTLS received %d messages in the clear", n)
	}
}

// Payloads that cannot be sent fail for good at once, naming the problem.
func TestEmailSendInvalidPayloads(t *testing.T) {
	t.Parallel()
	srv := newSMTPServer(t, smtptest.Options{})
	cfg := testEmailConfig(srv)
	cfg.Templates = map[string]EmailTemplate{"welcome": welcomeTemplate}
	b := setup(t, func(c *sdk.Client, w *sdk.Worker) error { return RegisterEmailSend(w, cfg) })
	tests := []struct {
		name  string
		email Email
		want  string
	}{
		{"no recipient", Email{Type: "welcome", RecipientID: "1", Subject: "s", Text: "t"}, "to missing"},
		{"no type", Email{RecipientID: "1", To: []string{"a@example.com"}, Subject: "s", Text: "t"}, "type missing"},
		{"unknown template", Email{Type: "welcome", RecipientID: "1", To: []string{"a@example.com"}, Template: "nope"}, `template "nope" is not in EmailConfig.Templates`},
		{"missing template data", Email{Type: "welcome", RecipientID: "1", To: []string{"a@example.com"}, Template: "welcome", Data: map[string]any{"name": "x"}}, "account"},
		{"bad address", Email{Type: "welcome", RecipientID: "1", To: []string{"not an address"}, Subject: "s", Text: "t"}, "not an address"},
		{"colon in key part", Email{Type: "welcome", RecipientID: "1:2", To: []string{"a@example.com"}, Subject: "s", Text: "t"}, "contains ':'"},
	}
	ids := map[string]eventlog.ID{}
	for _, tt := range tests {
		ids[tt.name] = b.enqueue(t, sdk.JobTypeEmailSend, tt.email)
	}
	for _, tt := range tests {
		j := b.waitSettled(t, ids[tt.name])
		if j.Status != sdk.StatusDeadLettered || j.Attempt != 1 || !strings.Contains(j.LastError, tt.want) || !strings.Contains(j.LastError, "invalid email") {
			t.Errorf("%s: job %s after %d attempts, last error %q; want dead-lettered at once with %q", tt.name, j.Status, j.Attempt, j.LastError, tt.want)
		}
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("server received %d messages", n)
	}
}

func TestNewMailerRefusesBadConfig(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		cfg  EmailConfig
		want string
	}{
		{"no host", EmailConfig{}, "Host is empty"},
		{"bad TLS mode", EmailConfig{Host: "smtp.example.com", TLS: "sometimes"}, `TLS "sometimes"`},
		{"bad port", EmailConfig{Host: "smtp.example.com", Port: 70000}, "Port 70000"},
		{"bad auth", EmailConfig{Host: "smtp.example.com", Username: "u", Auth: "kerberos"}, `Auth "kerberos"`},
		{"broken template", EmailConfig{Host: "smtp.example.com", Templates: map[string]EmailTemplate{"x": {Subject: "{{.a", Text: "t"}}}, `template "x" subject`},
		{"template without body", EmailConfig{Host: "smtp.example.com", Templates: map[string]EmailTemplate{"x": {Subject: "s"}}}, "needs a Subject and a Text or HTML body"},
	} {
		if _, err := NewMailer(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewMailer error = %v, want %q", tt.name, err, tt.want)
		}
	}
	m, err := NewMailer(EmailConfig{Host: "smtp.example.com", TLS: TLSImplicit})
	if err != nil || m.cfg.Port != DefaultSMTPSPort || m.cfg.Timeout != DefaultEmailTimeout || m.cfg.IdempotencyTTL != DefaultEmailIdempotencyTTL {
		t.Fatalf("defaults: %+v, %v", m.cfg, err)
	}
}

// Send outside a job handler is refused: it cannot be made idempotent.
func TestMailerSendOutsideJob(t *testing.T) {
	t.Parallel()
	m, err := NewMailer(EmailConfig{Host: "127.0.0.1", Port: 1, TLS: TLSNone, From: "a@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Send(context.Background(), Email{Type: "t", RecipientID: "1", UniqueID: "u", To: []string{"b@example.com"}, Subject: "s", Text: "t"})
	if !errors.Is(err, sdk.ErrNotInJob) {
		t.Fatalf("Send outside a job = %v, want ErrNotInJob", err)
	}
}
