// Subscription bills a customer every period for as long as the
// subscription lasts — years, in production — and keeps each run's
// history short by continuing as new every few cycles: the workflow ID
// stays, the history starts afresh, and the state travels in the input.
//
//	go run ./examples/subscription
//
// Here a "month" is 100ms and the run continues as new every 3 cycles.
// It uses the local PostgreSQL and NATS, or DATABASE_URL and NATS_URL.
package main

import (
	"context"
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

// State is the subscription's state, handed from run to run.
type State struct {
	Customer string
	// Cycle counts the periods billed so far; the subscription ends after
	// Cycles of them (0: never).
	Cycle  int
	Cycles int
	// Period is the billing period; CyclesPerRun how many a run bills
	// before continuing as new.
	Period       time.Duration
	CyclesPerRun int
	// Billed is the total amount billed.
	Billed int
	Price  int
}

var (
	outMu sync.Mutex
	out   io.Writer = os.Stdout
)

// Bill charges one period and returns the invoice ID.
func Bill(ctx context.Context, customer string, cycle, amount int) (string, error) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Fprintf(out, "  [activity] bill %s for cycle %d: %d\n", customer, cycle, amount)
	return fmt.Sprintf("inv-%s-%d", customer, cycle), nil
}

// Subscription is the workflow.
func Subscription(ctx workflow.Context, s State) (State, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	_ = workflow.SetQueryHandler(ctx, "state", func() (State, error) { return s, nil })
	for i := 0; i < s.CyclesPerRun; i++ {
		if err := workflow.Sleep(ctx, s.Period); err != nil {
			return s, err
		}
		if err := workflow.ExecuteActivity(ctx, Bill, s.Customer, s.Cycle+1, s.Price).Get(ctx, nil); err != nil {
			return s, err
		}
		s.Cycle++
		s.Billed += s.Price
		if s.Cycles > 0 && s.Cycle >= s.Cycles {
			return s, nil
		}
	}
	// Keep the history short: continue as new with the state so far.
	return s, workflow.NewContinueAsNewError(ctx, Subscription, s)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, sdk.Config{}, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "subscription:", err)
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
	worker, err := client.NewWorker(sdk.WorkerConfig{PollInterval: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	if err := worker.RegisterWorkflow(Subscription); err != nil {
		return err
	}
	if err := worker.RegisterActivity(Bill); err != nil {
		return err
	}
	if err := worker.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = worker.Stop(sctx)
	}()
	id := "subscription-" + eventlog.NewID(time.Now()).String()
	fmt.Fprintf(w, "%s: 7 monthly cycles of 100ms, continuing as new every 3\n", id)
	r, err := client.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: id}, Subscription,
		State{Customer: "ada", Cycles: 7, Period: 100 * time.Millisecond, CyclesPerRun: 3, Price: 9})
	if err != nil {
		return err
	}
	gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var final State
	if err := r.Get(gctx, &final); err != nil { // follows the chain of runs
		return err
	}
	fmt.Fprintf(w, "done: %d cycles, billed %d\n", final.Cycle, final.Billed)
	// Every run's history stays readable.
	rows, err := client.Pool().Query(ctx, `SELECT id FROM executions WHERE kind = 'workflow' AND idempotency_key = $1 ORDER BY id`, id)
	if err != nil {
		return err
	}
	var runs []eventlog.ID
	for rows.Next() {
		var u [16]byte
		if err := rows.Scan(&u); err != nil {
			return err
		}
		runs = append(runs, u)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, rid := range runs {
		events, err := client.History(ctx, rid)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  run %s: %d events, ends with %s\n", rid, len(events), events[len(events)-1].Type)
	}
	return nil
}
