// Package sdk is Chronicle's Go API: a Client that enqueues and inspects
// jobs, and a Worker that runs them.
//
//	client, err := sdk.NewClient(ctx, sdk.Config{})            // DATABASE_URL, NATS_URL or local defaults
//	worker, err := client.NewWorker(sdk.WorkerConfig{})          // queue "default", 10 at a time
//	sdk.RegisterJobHandler(worker, "email.send", func(ctx context.Context, p Email) error {
//		return sdk.WithIdempotency(ctx, "email:welcome:"+p.UserID, 24*time.Hour, func(ctx context.Context) error { … })
//	})
//	worker.Start(ctx)
//	job, err := client.Enqueue(ctx, "email.send", Email{UserID: "42"})
//
// Every change of a job is an event in its history (Client.History): the
// history is the audit trail, and the job's status, attempt count, next run
// time and dead-letter state are all derived from it. Retries follow the
// job type's RetryPolicy; a job that runs out of attempts, or fails with a
// Permanent error, is dead-lettered until an operator retries or resolves it.
//
// Workflows — deterministic Go functions replayed from their history — are
// written with package sdk/workflow, their activities with sdk/activity,
// registered on a Worker (RegisterWorkflow, RegisterActivity) and started
// with Client.StartWorkflow; sdk/workflowtest runs them in tests. See
// docs/workflows.md.
package sdk
