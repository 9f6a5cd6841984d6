// Package activities holds Chronicle's built-in job types, the four of the
// background-jobs runbook, each ready for production and registered on a
// worker with one call:
//
//	email.send       RegisterEmailSend(w, EmailConfig{Host: "smtp.example.com", From: "hi@example.com"})
//	webhook.deliver  RegisterWebhookDeliver(w, WebhookConfig{Secret: secret})
//	data.export      RegisterDataExport(w, ExportConfig{Dir: "/var/exports", Providers: providers})
//	cleanup.*        RegisterAll(w, Config{...}) registers every configured one at once
//
// Each keeps the runbook's retry policy that sdk.RunbookJobTypes registers on
// every client (email.send: 3 retries at 1m/5m/15m; webhook.deliver: 3
// retries, exponential; data.export: 2 retries; cleanup.*: 1 retry), and
// each reports failures that cannot succeed on a retry (an SMTP 5xx, an
// HTTP 4xx, a refused address) with sdk.Permanent, so that they go to the
// dead-letter queue at once instead of wasting the retry budget.
//
// Side effects run once: email.send sends under the idempotency key
// email:{type}:{recipientId}:{uniqueId} and webhook.deliver under
// webhook:{webhookId}:{deliveryId} (sent to the receiver as the
// Idempotency-Key header), through sdk.WithIdempotency, so that a retried
// or duplicated job does not send twice.
//
// The parts are usable on their own inside your own handlers: a Mailer
// sends an Email, a Deliverer delivers a Webhook, an Exporter writes an
// export; each needs the job context that a handler receives.
package activities
