// Package workflow is the API of workflow code: deterministic Go functions
// that call activities, sleep on durable timers, wait for signals and
// survive any crash by replaying their history.
//
//	func Approval(ctx workflow.Context, req Request) (string, error) {
//		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
//		var approved bool
//		sel := workflow.NewSelector(ctx)
//		sel.AddReceive(workflow.GetSignalChannel(ctx, "approve"), func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &approved) })
//		sel.AddFuture(workflow.NewTimer(ctx, 72*time.Hour), func(workflow.Future) {})
//		sel.Select(ctx)
//		…
//		err := workflow.ExecuteActivity(ctx, Charge, req).Get(ctx, &receipt)
//	}
//
// Names follow Temporal's Go SDK. Workflow code must be deterministic: it
// may not read the clock (use Now), start goroutines (use Go), use Go
// channels or select (use Channel and Selector), sleep (use Sleep), or do
// I/O (use activities); docs/workflows.md lists the rules. A Replayer
// checks that changed code still replays recorded histories.
package workflow
