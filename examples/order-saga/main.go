// Order-saga runs an order as a saga: reserve stock, charge the payment,
// ship. When a step fails for good, the steps that succeeded are undone in
// reverse order — the payment refunded, then the stock released — each
// compensation an activity with its own retry policy.
//
//	go run ./examples/order-saga
//
// It uses the local PostgreSQL and NATS, or DATABASE_URL and NATS_URL.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/sdk/workflow"
)

// Order is what the saga processes.
type Order struct {
	ID     string
	Item   string
	Qty    int
	Amount int
	// Address "nowhere" cannot be shipped to: the shipping step fails.
	Address string
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

// ReserveStock reserves the order's items.
func ReserveStock(ctx context.Context, o Order) error {
	say("reserve %d x %s", o.Qty, o.Item)
	return nil
}

// ReleaseStock undoes ReserveStock.
func ReleaseStock(ctx context.Context, o Order) error {
	say("release %d x %s", o.Qty, o.Item)
	return nil
}

// ChargePayment charges the customer and returns the charge ID.
func ChargePayment(ctx context.Context, o Order) (string, error) {
	say("charge %d for order %s", o.Amount, o.ID)
	return "ch-" + o.ID, nil
}

// RefundPayment undoes ChargePayment.
func RefundPayment(ctx context.Context, chargeID string, amount int) error {
	say("refund %d on %s", amount, chargeID)
	return nil
}

// Ship ships the order; an undeliverable address fails for good.
func Ship(ctx context.Context, o Order) error {
	if o.Address == "nowhere" {
		say("ship order %s: address %q is undeliverable", o.ID, o.Address)
		return sdk.Permanent(errors.New("undeliverable address " + o.Address))
	}
	say("ship order %s to %s", o.ID, o.Address)
	return nil
}

// OrderSaga is the workflow.
func OrderSaga(ctx workflow.Context, o Order) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
		RetryPolicy: &workflow.RetryPolicy{InitialInterval: 100 * time.Millisecond, MaximumAttempts: 3}})
	// Compensations retry longer: they must not give up easily.
	undo := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
		RetryPolicy: &workflow.RetryPolicy{InitialInterval: 100 * time.Millisecond, MaximumInterval: 10 * time.Second}})
	saga := workflow.NewSaga(workflow.SagaOptions{})
	fail := func(err error) (string, error) {
		if cerr := saga.Compensate(ctx); cerr != nil {
			return "", errors.Join(err, cerr)
		}
		return "", err
	}
	if err := workflow.ExecuteActivity(ctx, ReserveStock, o).Get(ctx, nil); err != nil {
		return fail(err)
	}
	saga.AddCompensation(undo, ReleaseStock, o)
	var charge string
	if err := workflow.ExecuteActivity(ctx, ChargePayment, o).Get(ctx, &charge); err != nil {
		return fail(err)
	}
	saga.AddCompensation(undo, RefundPayment, charge, o.Amount)
	if err := workflow.ExecuteActivity(ctx, Ship, o).Get(ctx, nil); err != nil {
		return fail(err)
	}
	return "shipped (" + charge + ")", nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, sdk.Config{}, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "order-saga:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg sdk.Config, w io.Writer) error {
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
	if err := worker.RegisterWorkflow(OrderSaga); err != nil {
		return err
	}
	for _, a := range []any{ReserveStock, ReleaseStock, ChargePayment, RefundPayment, Ship} {
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
	for _, o := range []Order{
		{ID: "1-" + suffix, Item: "kettle", Qty: 1, Amount: 40, Address: "1 Main St"},
		{ID: "2-" + suffix, Item: "teapot", Qty: 2, Amount: 90, Address: "nowhere"},
	} {
		fmt.Fprintf(w, "order %s:\n", o.ID)
		r, err := client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "order-" + o.ID}, OrderSaga, o)
		if err != nil {
			return err
		}
		gctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		var res string
		err = r.Get(gctx, &res)
		cancel()
		if err != nil {
			fmt.Fprintf(w, "  failed, compensated: %v\n", err)
		} else {
			fmt.Fprintf(w, "  result: %s\n", res)
		}
	}
	return nil
}
