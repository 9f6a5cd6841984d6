package activities

import (
	"errors"

	"github.com/chronicle-engine/chronicle/sdk"
)

// Config configures RegisterAll: each of email.send, webhook.deliver and
// data.export whose configuration is set is registered, a nil one is left
// out; the cleanup.* jobs are always registered.
type Config struct {
	Email   *EmailConfig
	Webhook *WebhookConfig
	Export  *ExportConfig
	// Cleanup configures the retention of the cleanup.* jobs. The zero
	// value keeps the runbook's defaults (resolved dead letters 90 days).
	Cleanup sdk.CleanupConfig
}

// RegisterAll registers on w the handlers of every built-in job type that
// cfg configures: email.send, webhook.deliver, data.export with
// cleanup.data_exports, and the SDK's cleanup jobs (cleanup.dead_letters,
// cleanup.idempotency_keys, cleanup.histories, cleanup.workers; see
// sdk.RegisterCleanupJobs). A worker that runs them all is the runbook's
// worker service.
func RegisterAll(w *sdk.Worker, cfg Config) error {
	var errs []error
	if cfg.Email != nil {
		errs = append(errs, RegisterEmailSend(w, *cfg.Email))
	}
	if cfg.Webhook != nil {
		errs = append(errs, RegisterWebhookDeliver(w, *cfg.Webhook))
	}
	if cfg.Export != nil {
		errs = append(errs, RegisterDataExport(w, *cfg.Export))
	}
	errs = append(errs, sdk.RegisterCleanupJobs(w, cfg.Cleanup))
	return errors.Join(errs...)
}
