package activities_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/chronicle-engine/chronicle/activities"
)

// A webhook receiver verifies each delivery before it trusts the body, and
// drops deliveries whose Idempotency-Key it already processed.
func ExampleVerifyRequest() {
	secret := []byte("whsec_from_your_secret_store")
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := activities.VerifyRequest(r, secret, 1<<20)
		if err != nil {
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		fmt.Printf("verified %s: %s\n", r.Header.Get(activities.HeaderIdempotencyKey), body)
	})

	// What webhook.deliver sends:
	body := []byte(`{"order_id":"A-1001"}`)
	key, now := "webhook:wh_1:dlv_1", time.Now()
	req := httptest.NewRequest(http.MethodPost, "/webhooks", bytes.NewReader(body))
	req.Header.Set(activities.HeaderIdempotencyKey, key)
	req.Header.Set(activities.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(activities.HeaderSignature, activities.Sign(secret, key, now, body))
	handler.ServeHTTP(httptest.NewRecorder(), req)

	// A forged one:
	forged := httptest.NewRequest(http.MethodPost, "/webhooks", bytes.NewReader([]byte(`{"order_id":"A-9999"}`)))
	forged.Header = req.Header.Clone()
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, forged)
	fmt.Println("forged:", rec.Code)
	// Output:
	// verified webhook:wh_1:dlv_1: {"order_id":"A-1001"}
	// forged: 401
}
