// Gdpr-export-workflow answers a GDPR data-access request as a workflow:
// a child workflow per data source collects the user's data, the results
// are written into an archive, and the user is emailed a download link.
// When a source fails for good, the half-built archive is deleted by the
// saga's compensation and the run fails with the source's error.
//
//	go run ./examples/gdpr-export-workflow
//
// It uses the local PostgreSQL and NATS, or DATABASE_URL and NATS_URL.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

// Request is a data-access request.
type Request struct {
	User    string
	Email   string
	Sources []string
	// Dir is where archives are built.
	Dir string
}

var (
	outMu sync.Mutex
	out   io.Writer = os.Stdout
)

func say(format string, args ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Fprintf(out, "  [activity] "+format+"\n", args...)
}

// FetchRecords reads a user's records from one source. The "legacy-crm"
// source is gone: it fails for good.
func FetchRecords(ctx context.Context, source, user string) ([]string, error) {
	if source == "legacy-crm" {
		say("fetch %s from %s: source decommissioned", user, source)
		return nil, sdk.Permanent(errors.New("source legacy-crm is decommissioned"))
	}
	say("fetch %s from %s", user, source)
	return []string{source + ":" + user + ":profile", source + ":" + user + ":history"}, nil
}

// CreateArchive starts an empty archive and returns its path.
func CreateArchive(ctx context.Context, dir, user string) (string, error) {
	path := filepath.Join(dir, "export-"+user+".jsonl")
	say("create archive %s", filepath.Base(path))
	return path, os.WriteFile(path, nil, 0o600)
}

// AppendRecords adds records to the archive.
func AppendRecords(ctx context.Context, path string, records []string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, r := range records {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// DeleteArchive removes a half-built archive: the compensation.
func DeleteArchive(ctx context.Context, path string) error {
	say("delete half-built archive %s", filepath.Base(path))
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// EmailLink sends the download link.
func EmailLink(ctx context.Context, email, path string) error {
	say("email %s a link to %s", email, filepath.Base(path))
	return nil
}

// CollectSource is the child workflow of one data source.
func CollectSource(ctx workflow.Context, source, user string) ([]string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
		RetryPolicy: &workflow.RetryPolicy{InitialInterval: 100 * time.Millisecond, MaximumAttempts: 3}})
	var records []string
	err := workflow.ExecuteActivity(ctx, FetchRecords, source, user).Get(ctx, &records)
	return records, err
}

// Export is the parent workflow.
func Export(ctx workflow.Context, req Request) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	saga := workflow.NewSaga(workflow.SagaOptions{})
	fail := func(err error) (string, error) { return "", errors.Join(err, saga.Compensate(ctx)) }
	var path string
	if err := workflow.ExecuteActivity(ctx, CreateArchive, req.Dir, req.User).Get(ctx, &path); err != nil {
		return "", err
	}
	saga.AddCompensation(ctx, DeleteArchive, path)
	// Start a child per source at once, then take their results in order.
	info := workflow.GetInfo(ctx)
	futures := make([]workflow.ChildWorkflowFuture, len(req.Sources))
	for i, src := range req.Sources {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: info.WorkflowExecution.ID + "/" + src})
		futures[i] = workflow.ExecuteChildWorkflow(cctx, CollectSource, src, req.User)
	}
	for i, f := range futures {
		var records []string
		if err := f.Get(ctx, &records); err != nil {
			return fail(fmt.Errorf("collect from %s: %w", req.Sources[i], err))
		}
		if err := workflow.ExecuteActivity(ctx, AppendRecords, path, records).Get(ctx, nil); err != nil {
			return fail(err)
		}
	}
	if err := workflow.ExecuteActivity(ctx, EmailLink, req.Email, path).Get(ctx, nil); err != nil {
		return fail(err)
	}
	return path, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	dir, err := os.MkdirTemp("", "gdpr-export")
	if err == nil {
		err = run(ctx, sdk.Config{}, os.Stdout, dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gdpr-export-workflow:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg sdk.Config, w io.Writer, dir string) error {
	out = w
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	client, err := sdk.NewClient(ctx, cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	if err := client.Migrate(ctx); err != nil {
		return err
	}
	worker, err := client.NewWorker(sdk.WorkerConfig{PollInterval: 200 * time.Millisecond})
	if err != nil {
		return err
	}
	for _, wf := range []any{Export, CollectSource} {
		if err := worker.RegisterWorkflow(wf); err != nil {
			return err
		}
	}
	for _, a := range []any{FetchRecords, CreateArchive, AppendRecords, DeleteArchive, EmailLink} {
		if err := worker.RegisterActivity(a); err != nil {
			return err
		}
	}
	if err := worker.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = worker.Stop(sctx)
	}()
	suffix := eventlog.NewID(time.Now()).String()
	for _, req := range []Request{
		{User: "ada-" + suffix, Email: "ada@example.com", Sources: []string{"billing", "support"}, Dir: dir},
		{User: "bob-" + suffix, Email: "bob@example.com", Sources: []string{"billing", "legacy-crm"}, Dir: dir},
	} {
		fmt.Fprintf(w, "export for %s from %v:\n", req.User, req.Sources)
		r, err := client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "gdpr-" + req.User}, Export, req)
		if err != nil {
			return err
		}
		gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var path string
		err = r.Get(gctx, &path)
		cancel()
		if err != nil {
			fmt.Fprintf(w, "  failed: %v\n", err)
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  archive %s: %d bytes\n", filepath.Base(path), len(b))
	}
	return nil
}
