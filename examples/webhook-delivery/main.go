// Webhook-delivery delivers a signed webhook to a receiver that is down on
// the first try: it answers 503 with Retry-After, the delivery is retried
// when the receiver asked, and the second attempt is delivered. The
// receiver verifies every request's signature and drops repeats by their
// Idempotency-Key, as a production receiver should.
//
//	go run ./examples/webhook-delivery
//
// It uses the local PostgreSQL and NATS, or DATABASE_URL and NATS_URL.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"time"

	"github.com/chronicle-engine/chronicle/activities"
	"github.com/chronicle-engine/chronicle/sdk"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, sdk.Config{}, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-delivery:", err)
		os.Exit(1)
	}
}

// secret is shared by the sender and the receiver. In production it comes
// from your secret store, one per webhook subscription (SecretFor).
var secret = []byte("whsec_example_do_not_use")

// receiver is the customer's endpoint.
type receiver struct {
	out       io.Writer
	mu        sync.Mutex
	requests  int
	processed map[string]bool // Idempotency-Key → done
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	body, err := activities.VerifyRequest(req, secret, 1<<20)
	if err != nil {
		fmt.Fprintf(r.out, "  [receiver] request %d refused: %v\n", r.requests, err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	key := req.Header.Get(activities.HeaderIdempotencyKey)
	if r.requests == 1 {
		fmt.Fprintf(r.out, "  [receiver] request %d (%s): signature ok, but the database is down: 503, Retry-After 1\n", r.requests, key)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return
	}
	if r.processed[key] {
		fmt.Fprintf(r.out, "  [receiver] request %d (%s): already processed, 200\n", r.requests, key)
		w.WriteHeader(http.StatusOK)
		return
	}
	r.processed[key] = true
	fmt.Fprintf(r.out, "  [receiver] request %d (%s): signature ok, event %s processed: %s\n", r.requests, key, req.Header.Get(activities.HeaderEvent), body)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"received":true}`)
}

func run(ctx context.Context, cfg sdk.Config, out io.Writer) error {
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	out = &lockedWriter{w: out} // handlers print from their own goroutines
	rcv := &receiver{out: out, processed: map[string]bool{}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()

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
	err = activities.RegisterWebhookDeliver(worker, activities.WebhookConfig{
		Secret: secret,
		// The receiver runs on 127.0.0.1 in this process. Production
		// deliveries leave this off: webhook URLs must not reach into your
		// network.
		AllowPrivateNetworks: true,
		Logger:               cfg.Logger,
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

	// Delivery IDs outlive a run in the idempotency keys, so each run of
	// the example makes a new one.
	delivery := "dlv_" + strconv.FormatInt(time.Now().UnixMilli(), 36)
	fmt.Fprintf(out, "delivering order.paid to %s:\n", srv.URL)
	res, err := client.Enqueue(ctx, sdk.JobTypeWebhookDeliver, activities.Webhook{
		WebhookID: "wh_acme", DeliveryID: delivery, URL: srv.URL + "/webhooks/chronicle", Event: "order.paid",
		Payload: json.RawMessage(`{"order_id":"A-1001","amount_cents":4200}`),
	},
		// The runbook's policy retries after 30s; a short first retry keeps
		// the example quick, and the receiver's Retry-After still applies.
		sdk.WithRetryPolicy(sdk.RetryPolicy{MaximumAttempts: 4, InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 2}))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	var j sdk.Job
	for {
		if j, err = client.Job(ctx, res.ID); err != nil {
			return err
		}
		if j.Status == sdk.StatusSucceeded || j.Status == sdk.StatusDeadLettered {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("delivery %s still %s after 30s", res.ID, j.Status)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	fmt.Fprintf(out, "\nwebhook.deliver %s: %s after %d attempt(s)\n", res.ID, j.Status, j.Attempt)
	history, err := client.History(ctx, res.ID)
	if err != nil {
		return err
	}
	for _, e := range history {
		fmt.Fprintf(out, "  %2d  %-16s %s\n", e.Seq, e.Type, e.Data)
	}
	if j.Status != sdk.StatusSucceeded {
		return fmt.Errorf("delivery %s: %s", j.Status, j.LastError)
	}
	rcv.mu.Lock()
	requests := rcv.requests
	rcv.mu.Unlock()
	fmt.Fprintf(out, "\nthe receiver got %d requests and processed the event once.\n", requests)
	return nil
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
