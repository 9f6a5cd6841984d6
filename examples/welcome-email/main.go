// Welcome-email sends the runbook's welcome email exactly once although the
// job that sends it is retried, then shows the built-in email.send doing
// the same for a duplicated job. Emails go to an SMTP server that runs in
// this process, so the example runs anywhere.
//
//	go run ./examples/welcome-email
//
// It uses the local PostgreSQL and NATS, or DATABASE_URL and NATS_URL.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/chronicle-engine/chronicle/activities"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/internal/smtptest"
	"github.com/chronicle-engine/chronicle/sdk"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, sdk.Config{}, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "welcome-email:", err)
		os.Exit(1)
	}
}

// Signup is the payload of user.signup.
type Signup struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
	Name   string `json:"name"`
}

func run(ctx context.Context, cfg sdk.Config, out io.Writer) error {
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	out = &lockedWriter{w: out} // handlers print from their own goroutines

	// The mail server: every message it accepts is printed.
	smtp, err := smtptest.Start(smtptest.Options{OnMessage: func(m smtptest.Message) {
		subject := ""
		if msg, err := mail.ReadMessage(bytes.NewReader(m.Data)); err == nil {
			subject = msg.Header.Get("Subject")
		}
		fmt.Fprintf(out, "  [smtp] message to %v: %q\n", m.To, subject)
	}})
	if err != nil {
		return err
	}
	defer smtp.Close()

	client, err := sdk.NewClient(ctx, cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	if err := client.Migrate(ctx); err != nil {
		return err
	}
	// user.signup retries quickly so that the example finishes at once.
	if err := client.RegisterJobType("user.signup", sdk.JobType{RetryPolicy: sdk.RetryPolicy{
		MaximumAttempts: 3, Schedule: []time.Duration{100 * time.Millisecond}}}); err != nil {
		return err
	}
	worker, err := client.NewWorker(sdk.WorkerConfig{})
	if err != nil {
		return err
	}

	// 1. The runbook's pattern: a job with a side effect wraps it in
	// WithIdempotency. The CRM call after the email fails once, so the job
	// is retried, and the retry skips the email.
	var crmCalls atomic.Int32
	err = sdk.RegisterJobHandler(worker, "user.signup", func(ctx context.Context, s Signup) error {
		info, _ := sdk.JobFromContext(ctx)
		fmt.Fprintf(out, "  user.signup attempt %d for user %s\n", info.Attempt, s.UserID)
		err := sdk.WithIdempotency(ctx, "email:welcome:"+s.UserID+":signup", 24*time.Hour, func(ctx context.Context) error {
			return sendWelcomeEmail(ctx, smtp, s)
		})
		if err != nil {
			return err
		}
		if crmCalls.Add(1) == 1 {
			fmt.Fprintln(out, "  CRM sync failed: the job will be retried")
			return errors.New("CRM timeout")
		}
		return nil
	})
	if err != nil {
		return err
	}

	// 2. The built-in email.send does the same by itself, under the key
	// email:{type}:{recipientId}:{uniqueId}.
	err = activities.RegisterEmailSend(worker, activities.EmailConfig{
		Host: smtp.Host, Port: smtp.Port,
		TLS:  activities.TLSNone, // the local test server; production mail servers use the default, STARTTLS
		From: "Chronicle <hello@example.com>",
		Templates: map[string]activities.EmailTemplate{"welcome": {
			Subject: "Welcome, {{.name}}!",
			Text:    "Hi {{.name}}, thanks for signing up.",
			HTML:    "<p>Hi <b>{{.name}}</b>, thanks for signing up.</p>",
		}},
		Logger: cfg.Logger,
	})
	if err != nil {
		return err
	}
	if err := worker.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = worker.Stop(sctx)
	}()

	// Idempotency keys outlive a run (24 hours here), so each run of the
	// example signs up new users.
	run := strconv.FormatInt(time.Now().UnixMilli(), 36)

	fmt.Fprintln(out, "1. user.signup sends the welcome email inside WithIdempotency:")
	signup, err := client.Enqueue(ctx, "user.signup", Signup{UserID: "ada-" + run, Email: "ada@example.com", Name: "Ada"})
	if err != nil {
		return err
	}
	if err := wait(ctx, client, signup.ID); err != nil {
		return err
	}
	if err := show(ctx, out, client, signup.ID); err != nil {
		return err
	}

	fmt.Fprintln(out, "\n2. email.send enqueued twice with the same key (a double-clicked button):")
	welcome := activities.Email{Type: "welcome", RecipientID: "grace-" + run, UniqueID: "signup", To: []string{"grace@example.com"},
		Template: "welcome", Data: map[string]any{"name": "Grace"}}
	var ids []eventlog.ID
	for range 2 {
		res, err := client.Enqueue(ctx, sdk.JobTypeEmailSend, welcome)
		if err != nil {
			return err
		}
		if err := wait(ctx, client, res.ID); err != nil {
			return err
		}
		ids = append(ids, res.ID)
	}
	for _, id := range ids {
		if err := show(ctx, out, client, id); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "\nthe mail server received %d messages for 3 sends: each email went out once.\n", len(smtp.Messages()))
	return nil
}

// sendWelcomeEmail is the side effect: an email through go-mail.
func sendWelcomeEmail(ctx context.Context, smtp *smtptest.Server, s Signup) error {
	msg := gomail.NewMsg()
	if err := msg.From("hello@example.com"); err != nil {
		return err
	}
	if err := msg.To(s.Email); err != nil {
		return sdk.Permanent(err)
	}
	msg.Subject("Welcome, " + s.Name + "!")
	msg.SetBodyString(gomail.TypeTextPlain, "Hi "+s.Name+", thanks for signing up.")
	c, err := gomail.NewClient(smtp.Host, gomail.WithPort(smtp.Port), gomail.WithTLSPolicy(gomail.NoTLS))
	if err != nil {
		return err
	}
	return c.DialAndSendWithContext(ctx, msg)
}

// wait polls until the job succeeded or was dead-lettered.
func wait(ctx context.Context, client *sdk.Client, id eventlog.ID) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := client.Job(ctx, id)
		if err != nil {
			return err
		}
		switch j.Status {
		case sdk.StatusSucceeded:
			return nil
		case sdk.StatusDeadLettered:
			return fmt.Errorf("job %s (%s) was dead-lettered: %s", id, j.Type, j.LastError)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("job %s (%s) still %s after 30s", id, j.Type, j.Status)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// show prints a job's status and its history.
func show(ctx context.Context, out io.Writer, client *sdk.Client, id eventlog.ID) error {
	j, err := client.Job(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  %s %s: %s after %d attempt(s)\n", j.Type, id, j.Status, j.Attempt)
	h, err := client.History(ctx, id)
	if err != nil {
		return err
	}
	for _, e := range h {
		fmt.Fprintf(out, "    %2d  %-16s %s\n", e.Seq, e.Type, e.Data)
	}
	return nil
}

// lockedWriter serializes writes from many goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
