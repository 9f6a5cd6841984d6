// Package approvalflow is the workflow of the approval example: an expense
// waits for an approver's decision, with a timeout, then is paid and its
// requester notified. The chronicle CLI registers it too, so that
// `chronicle worker` runs it and `chronicle replay` can replay its
// histories.
package approvalflow

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

// SignalDecision is the signal that carries an approver's Decision.
const SignalDecision = "decision"

// QueryStatus is the query that answers where the request stands.
const QueryStatus = "status"

// Request is an expense awaiting approval.
type Request struct {
	ID        string `json:"id"`
	Amount    int    `json:"amount"`
	Requester string `json:"requester"`
}

// Decision is an approver's answer.
type Decision struct {
	Approved bool   `json:"approved"`
	Approver string `json:"approver"`
}

// Approval waits up to timeout for a decision. Approved, it pays the
// expense and notifies the requester (two activities); rejected or
// expired, it only notifies.
func Approval(ctx workflow.Context, req Request, timeout time.Duration) (string, error) {
	status := "awaiting approval"
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (string, error) { return status, nil }); err != nil {
		return "", err
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &workflow.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 5},
	})
	var d Decision
	decided := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(workflow.GetSignalChannel(ctx, SignalDecision), func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, &d)
		decided = true
	})
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	sel.AddFuture(workflow.NewTimer(timerCtx, timeout), func(workflow.Future) {})
	sel.Select(ctx)
	cancelTimer() // a decision came first: the timer is not needed any more
	switch {
	case !decided:
		status = "expired"
	case !d.Approved:
		status = "rejected by " + d.Approver
	default:
		status = "paying"
		var receipt string
		if err := workflow.ExecuteActivity(ctx, Pay, req).Get(ctx, &receipt); err != nil {
			return "", err
		}
		status = fmt.Sprintf("paid (%s), approved by %s", receipt, d.Approver)
	}
	if err := workflow.ExecuteActivity(ctx, Notify, req.Requester, fmt.Sprintf("expense %s: %s", req.ID, status)).Get(ctx, nil); err != nil {
		return "", err
	}
	return status, nil
}

// Out is where the example's activities print; io.Discard by default.
var Out io.Writer = io.Discard

// Pay pays an approved expense and returns the receipt.
func Pay(ctx context.Context, req Request) (string, error) {
	fmt.Fprintf(Out, "  [activity] paying %d to %s for %s\n", req.Amount, req.Requester, req.ID)
	return "receipt-" + req.ID, nil
}

// Notify tells the requester how their expense ended.
func Notify(ctx context.Context, to, message string) error {
	fmt.Fprintf(Out, "  [activity] to %s: %s\n", to, message)
	return nil
}
