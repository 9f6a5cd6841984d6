// Data-export runs a GDPR data.export job for one user: two providers, the
// application's profile table and its (large) order history, stream the
// user's records into a ZIP of JSON files with a SHA-256 checksum and an
// expiry, and the user is notified by an email.send job. The archive's
// manifest is printed, read back from the job's history.
//
//	go run ./examples/data-export            # writes to $TMPDIR/chronicle-exports
//	go run ./examples/data-export -dir ./exports
//
// It uses the local PostgreSQL and NATS, or DATABASE_URL and NATS_URL.
// Emails go to an SMTP server that runs in this process.
package main

import (
	"archive/zip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/chronicle-engine/chronicle/activities"
	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/internal/smtptest"
	"github.com/chronicle-engine/chronicle/sdk"
)

func main() {
	dir := flag.String("dir", filepath.Join(os.TempDir(), "chronicle-exports"), "directory the exports are written to")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, sdk.Config{}, os.Stdout, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "data-export:", err)
		os.Exit(1)
	}
}

// Order is one record of the order history.
type Order struct {
	ID          string    `json:"id"`
	PlacedAt    time.Time `json:"placed_at"`
	AmountCents int       `json:"amount_cents"`
	Items       []string  `json:"items"`
}

// profiles is the application's profile store.
var profiles = map[string]map[string]any{
	"u-1001": {"id": "u-1001", "name": "Ada Lovelace", "email": "ada@example.com", "created_at": "2024-03-01T09:00:00Z"},
}

// providers are what the application registers: one per kind of data. The
// orders provider streams 5,000 records one at a time, as a database
// cursor would; none is held after it is written.
func providers() []activities.ExportProvider {
	return []activities.ExportProvider{
		activities.NewExportProvider("profile", func(ctx context.Context, userID string, emit func(any) error) error {
			p, ok := profiles[userID]
			if !ok {
				return sdk.Permanent(fmt.Errorf("no user %s", userID))
			}
			return emit(p)
		}),
		activities.NewExportProvider("orders", func(ctx context.Context, userID string, emit func(any) error) error {
			start := time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)
			for i := range 5000 {
				o := Order{ID: fmt.Sprintf("A-%05d", i+1), PlacedAt: start.Add(time.Duration(i) * 3 * time.Hour),
					AmountCents: 500 + i%97*25, Items: []string{"tea", "scones"}}
				if err := emit(o); err != nil {
					return err
				}
			}
			return nil
		}),
	}
}

func run(ctx context.Context, cfg sdk.Config, out io.Writer, dir string) error {
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	out = &lockedWriter{w: out} // handlers print from their own goroutines
	smtp, err := smtptest.Start(smtptest.Options{OnMessage: func(m smtptest.Message) {
		fmt.Fprintf(out, "  [smtp] notification to %v (%d bytes)\n", m.To, len(m.Data))
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
	worker, err := client.NewWorker(sdk.WorkerConfig{})
	if err != nil {
		return err
	}
	err = activities.RegisterAll(worker, activities.Config{
		Email: &activities.EmailConfig{Host: smtp.Host, Port: smtp.Port, TLS: activities.TLSNone, From: "privacy@example.com", Logger: cfg.Logger},
		Export: &activities.ExportConfig{
			Dir: dir, Providers: providers(), Expiry: 7 * 24 * time.Hour, Client: client,
			DownloadURL: func(m activities.Manifest) string { return "https://example.com/account/exports/" + m.ExportID },
			Logger:      cfg.Logger,
		},
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

	exportID := "exp-u-1001-" + strconv.FormatInt(time.Now().UnixMilli(), 36)
	fmt.Fprintf(out, "exporting the data of user u-1001 as %s:\n", exportID)
	res, err := client.Enqueue(ctx, sdk.JobTypeDataExport, activities.ExportRequest{UserID: "u-1001", ExportID: exportID, NotifyEmail: "ada@example.com"})
	if err != nil {
		return err
	}
	if err := wait(ctx, client, res.ID); err != nil {
		return err
	}
	// Where the export is, read from the job's history: the manifest is the
	// result of its idempotent step.
	history, err := client.History(ctx, res.ID)
	if err != nil {
		return err
	}
	var m activities.Manifest
	for _, e := range history {
		if e.Type == engine.EventStepCompleted {
			var step engine.StepCompleted
			if err := e.Decode(&step); err != nil {
				return err
			}
			if err := json.Unmarshal(step.Result, &m); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(out, "\ndata.export %s succeeded; its history records the manifest:\n", res.ID)
	fmt.Fprintf(out, "  path        %s\n  sha256      %s\n  size        %d bytes\n  expires_at  %s\n", m.Path, m.SHA256, m.Size, m.ExpiresAt.Format(time.RFC3339))
	for _, f := range m.Files {
		fmt.Fprintf(out, "  file        %-14s %d records\n", f.Name, f.Records)
	}
	zr, err := zip.OpenReader(m.Path)
	if err != nil {
		return err
	}
	defer zr.Close()
	fmt.Fprintf(out, "the archive opens; it holds %d files; its manifest is %s\n", len(zr.File), filepath.Join(dir, exportID+".manifest.json"))

	// The notification is an email.send job of its own, enqueued by the
	// export; the worker sends it.
	deadline := time.Now().Add(30 * time.Second)
	for len(smtp.Messages()) == 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("no notification email after 30s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	fmt.Fprintf(out, "the user was notified: %d email(s) received.\n", len(smtp.Messages()))
	return nil
}

// wait polls until the job succeeded, or fails when it was dead-lettered.
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
