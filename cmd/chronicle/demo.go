package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chronicle-engine/chronicle/sdk"
)

// Job types of the built-in demo handlers.
const (
	jobTypeDemoSleep = "demo.sleep"
	jobTypeDemoFail  = "demo.fail"
)

type sleepPayload struct {
	MS int `json:"ms"`
}

type failPayload struct {
	Message   string `json:"message"`
	Permanent bool   `json:"permanent"`
}

// registerDemoHandlers gives the CLI's worker handlers for the runbook's job
// types, which log their payload, and for two demo types that sleep and
// fail on request.
func registerDemoHandlers(w *sdk.Worker) error {
	logPayload := func(ctx context.Context, payload json.RawMessage) error {
		// sdk.Logger carries the job's attributes: job_id, type, queue,
		// attempt, worker_id, correlation_id and trace_id.
		sdk.Logger(ctx).Info("handled job", "payload", string(payload))
		return nil
	}
	for _, t := range []string{sdk.JobTypeEmailSend, sdk.JobTypeWebhookDeliver, sdk.JobTypeDataExport} {
		if err := w.Handle(t, logPayload); err != nil {
			return err
		}
	}
	if err := sdk.RegisterJobHandler(w, jobTypeDemoSleep, func(ctx context.Context, p sleepPayload) error {
		if p.MS < 0 {
			return sdk.Permanent(fmt.Errorf("ms is %d; want 0 or more", p.MS))
		}
		t := time.NewTimer(time.Duration(p.MS) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
			sdk.Logger(ctx).Info("slept", "ms", p.MS)
			return nil
		case <-ctx.Done():
			return fmt.Errorf("sleep of %dms interrupted: %w", p.MS, ctx.Err())
		}
	}); err != nil {
		return err
	}
	return sdk.RegisterJobHandler(w, jobTypeDemoFail, func(ctx context.Context, p failPayload) error {
		msg := p.Message
		if msg == "" {
			msg = "demo failure"
		}
		err := errors.New(msg)
		sdk.Logger(ctx).Info("failing as asked", "message", msg, "permanent", p.Permanent)
		if p.Permanent {
			return sdk.Permanent(err)
		}
		return err
	})
}
