package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/sdk"
)

var testSecret = []byte("whsec_test_secret")

// receiver is an httptest server that verifies every request's signature
// and answers with the statuses a test queues (200 once they run out).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	answers  []answer
	requests []receivedRequest
}

type answer struct {
	status int
	body   string
	header map[string]string
}

type receivedRequest struct {
	header   http.Header
	body     []byte
	verified error
}

func newReceiver(t *testing.T, answers ...answer) *receiver {
	t.Helper()
	r := &receiver{answers: answers}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, verr := VerifyRequest(req, testSecret, 0)
		r.mu.Lock()
		r.requests = append(r.requests, receivedRequest{header: req.Header.Clone(), body: body, verified: verr})
		a := answer{status: http.StatusOK, body: `{"ok":true}`}
		if len(r.answers) > 0 {
			a, r.answers = r.answers[0], r.answers[1:]
		}
		r.mu.Unlock()
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) received() []receivedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedRequest(nil), r.requests...)
}

// localWebhookConfig signs with testSecret and may reach the loopback
// receivers of the tests.
func localWebhookConfig() WebhookConfig {
	return WebhookConfig{Secret: testSecret, AllowPrivateNetworks: true, Logger: quiet}
}

// A delivery is signed, verifiable by the receiver with Verify, carries
// the idempotency key, and its answer is recorded in the job's history.
func TestWebhookDeliverSignedAndRecorded(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, answer{status: http.StatusAccepted, body: `{"received":"evt_1"}`})
	b := setup(t, func(c *sdk.Client, w *sdk.Worker) error { return RegisterWebhookDeliver(w, localWebhookConfig()) })

	payload := json.RawMessage(`{"amount":4200,"order":"A-1001"}`)
	id := b.enqueue(t, sdk.JobTypeWebhookDeliver, Webhook{WebhookID: "wh_1", DeliveryID: "del_1", URL: rcv.URL + "/hooks?token=abc",
		Event: "order.paid", Payload: payload, Headers: map[string]string{"X-Tenant": "acme"}})
	if j := b.waitSettled(t, id); j.Status != sdk.StatusSucceeded || j.Attempt != 1 {
		t.Fatalf("job %s after %d attempts: %s", j.Status, j.Attempt, j.LastError)
	}
	reqs := rcv.received()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.verified != nil {
		t.Fatalf("signature does not verify: %v", r.verified)
	}
	for h, want := range map[string]string{
		HeaderIdempotencyKey: "webhook:wh_1:del_1", HeaderWebhookID: "wh_1", HeaderDeliveryID: "del_1",
		HeaderEvent: "order.paid", "Content-Type": "application/json", "User-Agent": DefaultWebhookUserAgent, "X-Tenant": "acme",
	} {
		if got := r.header.Get(h); got != want {
			t.Errorf("header %s = %q, want %q", h, got, want)
		}
	}
	var sent map[string]any
	if err := json.Unmarshal(r.body, &sent); err != nil || sent["order"] != "A-1001" || sent["amount"] != 4200.0 || strings.Contains(string(r.body), " ") {
		t.Errorf("body = %s, want the payload %s as compact JSON", r.body, payload)
	}
	// A wrong secret, or a body changed on the way, does not verify.
	if err := Verify([]byte("other"), r.header, r.body, 0, time.Now()); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("Verify with another secret = %v, want ErrSignatureMismatch", err)
	}
	steps := b.steps(t, id)
	var d Delivery
	if len(steps) != 1 || steps[0].Key != "webhook:wh_1:del_1" || json.Unmarshal(steps[0].Result, &d) != nil ||
		d.StatusCode != http.StatusAccepted || d.Body != `{"received":"evt_1"}` {
		t.Fatalf("StepCompleted = %+v, want the key with status 202 and the body", steps)
	}
}

// A 500 and then a 200 make two attempts and one delivery; the history
// records the 500 with its body; another job with the same key posts
// nothing.
func TestWebhookDeliverRetriesServerErrors(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, answer{status: http.StatusInternalServerError, body: "database unavailable"})
	b := setup(t, func(c *sdk.Client, w *sdk.Worker) error { return RegisterWebhookDeliver(w, localWebhookConfig()) })

	wh := Webhook{WebhookID: "wh_2", DeliveryID: "del_9", URL: rcv.URL, Payload: json.RawMessage(`{"n":1}`)}
	id := b.enqueue(t, sdk.JobTypeWebhookDeliver, wh, sdk.WithRetryPolicy(fastRetries))
	if j := b.waitSettled(t, id); j.Status != sdk.StatusSucceeded || j.Attempt != 2 {
		t.Fatalf("job %s after %d attempts: %s; want succeeded after 2", j.Status, j.Attempt, j.LastError)
	}
	f := b.failures(t, id)
	if len(f) != 1 || f[0].Permanent || f[0].ErrorType != "WebhookHTTPError" || !strings.Contains(f[0].Error, "500 Internal Server Error") || !strings.Contains(f[0].Error, `body "database unavailable"`) {
		t.Fatalf("failures = %+v; want one retried 500 with its body", f)
	}
	if n := len(rcv.received()); n != 2 {
		t.Fatalf("receiver got %d requests, want 2", n)
	}
	keys := map[string]bool{}
	for _, r := range rcv.received() {
		keys[r.header.Get(HeaderIdempotencyKey)] = true
		if r.verified != nil {
			t.Errorf("attempt not verifiable: %v", r.verified)
		}
	}
	if len(keys) != 1 || !keys["webhook:wh_2:del_9"] {
		t.Fatalf("idempotency keys sent = %v, want the same one on both attempts", keys)
	}

	again := b.enqueue(t, sdk.JobTypeWebhookDeliver, wh)
	if j := b.waitSettled(t, again); j.Status != sdk.StatusSucceeded {
		t.Fatalf("second job %s: %s", j.Status, j.LastError)
	}
	if n := len(rcv.received()); n != 2 {
		t.Fatalf("a second job with the same key posted again: %d requests", n)
	}
}

// 400 is permanent; 429 and 503 are retried after the receiver's
// Retry-After, which the next retry time in the history honours; a 410 is
// permanent too.
func TestWebhookDeliverStatusClasses(t *testing.T) {
	t.Parallel()
	bad := newReceiver(t, answer{status: http.StatusBadRequest, body: `{"error":"unknown event"}`})
	gone := newReceiver(t, answer{status: http.StatusGone})
	limited := newReceiver(t, answer{status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "120"}})
	unavailable := newReceiver(t, answer{status: http.StatusServiceUnavailable,
		header: map[string]string{"Retry-After": time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)}})
	b := setup(t, func(c *sdk.Client, w *sdk.Worker) error { return RegisterWebhookDeliver(w, localWebhookConfig()) })

	for _, tt := range []struct {
		name string
		rcv  *receiver
		want string
	}{{"400", bad, `400 Bad Request, body "{\"error\":\"unknown event\"}"`}, {"410", gone, "410 Gone"}} {
		id := b.enqueue(t, sdk.JobTypeWebhookDeliver, Webhook{WebhookID: "wh", URL: tt.rcv.URL}, sdk.WithRetryPolicy(fastRetries))
		j := b.waitSettled(t, id)
		f := b.failures(t, id)
		if j.Status != sdk.StatusDeadLettered || j.Attempt != 1 || len(f) != 1 || !f[0].Permanent || !strings.Contains(f[0].Error, tt.want) {
			t.Errorf("%s: job %s after %d attempts, failures %+v; want dead-lettered at once with %q", tt.name, j.Status, j.Attempt, f, tt.want)
		}
		if n := len(tt.rcv.received()); n != 1 {
			t.Errorf("%s: receiver got %d requests, want 1", tt.name, n)
		}
	}

	// The policy would retry after 10ms; the receivers asked for 120s and
	// 90s. Only the recorded decision is checked: the retries are not
	// waited for.
	for _, tt := range []struct {
		name string
		rcv  *receiver
		min  time.Duration
	}{{"429 Retry-After seconds", limited, 119 * time.Second}, {"503 Retry-After date", unavailable, 85 * time.Second}} {
		id := b.enqueue(t, sdk.JobTypeWebhookDeliver, Webhook{WebhookID: "wh", URL: tt.rcv.URL}, sdk.WithRetryPolicy(fastRetries))
		var failed []engine.AttemptFailed
		waitFor(t, tt.name+" failure", 10*time.Second, func() bool { failed = b.failures(t, id); return len(failed) == 1 })
		events := b.events(t, id, engine.EventAttemptFailed)
		f := failed[0]
		if f.Permanent || f.RetryAt == nil {
			t.Fatalf("%s: failure %+v, want a retry", tt.name, f)
		}
		if wait := f.RetryAt.Sub(events[0].RecordedAt); wait < tt.min || wait > tt.min+time.Minute {
			t.Errorf("%s: retry_at is %s after the failure, want about %s (the receiver's Retry-After)", tt.name, wait, tt.min)
		}
		if !strings.Contains(f.Error, "Retry-After") {
			t.Errorf("%s: error %q does not mention Retry-After", tt.name, f.Error)
		}
		if j, _ := b.client.Job(context.Background(), id); j.Status != sdk.StatusRetrying {
			t.Errorf("%s: job %s, want retrying", tt.name, j.Status)
		}
	}
}

// By default webhooks may not reach internal addresses: not by a literal
// address, not by a name that resolves to one, and not by a redirect.
func TestWebhookDeliverRefusesInternalAddresses(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t)
	port := rcv.Listener.Addr().(*net.TCPAddr).Port
	b := setup(t, func(c *sdk.Client, w *sdk.Worker) error {
		cfg := localWebhookConfig()
		cfg.AllowPrivateNetworks = false
		return RegisterWebhookDeliver(w, cfg)
	})
	refused := func(name, url, want string) {
		t.Helper()
		id := b.enqueue(t, sdk.JobTypeWebhookDeliver, Webhook{WebhookID: "wh", URL: url}, sdk.WithRetryPolicy(fastRetries))
		j := b.waitSettled(t, id)
		f := b.failures(t, id)
		if j.Status != sdk.StatusDeadLettered || j.Attempt != 1 || len(f) != 1 || !f[0].Permanent ||
			!strings.Contains(f[0].Error, ErrAddressNotAllowed.Error()) || !strings.Contains(f[0].Error, want) {
			t.Fatalf("%s: job %s after %d attempts, failures %+v; want refused for good naming %q", name, j.Status, j.Attempt, f, want)
		}
	}
	// Loopback first: it proves the dial check is in place before any
	// test points a delivery at a non-loopback address.
	refused("127.0.0.1", fmt.Sprintf("http://127.0.0.1:%d/hook", port), "127.0.0.1 is a loopback address")
	refused("localhost resolves to 127.0.0.1", fmt.Sprintf("http://localhost:%d/hook", port), "is a loopback address")
	if len(rcv.received()) != 0 {
		t.Fatalf("the receiver on loopback was reached: %d requests", len(rcv.received()))
	}
	refused("metadata service", "http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address")
	refused("IPv4-mapped loopback", fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/", port), "127.0.0.1 is a loopback address")
}

// A receiver that is allowed (127.0.0.2 here) cannot redirect a delivery to
// an address that is not: the redirect is checked like the first request.
func TestWebhookDeliverRefusesRedirectsToInternalAddresses(t *testing.T) {
	t.Parallel()
	target := newReceiver(t) // on 127.0.0.1, not allowed
	targetPort := target.Listener.Addr().(*net.TCPAddr).Port
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	var hits atomic.Int32
	redirector := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/final" {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusTemporaryRedirect)
	}))
	redirector.Listener.Close()
	redirector.Listener = l
	redirector.Start()
	t.Cleanup(redirector.Close)

	b := setup(t, func(c *sdk.Client, w *sdk.Worker) error {
		cfg := localWebhookConfig()
		cfg.AllowPrivateNetworks = false
		cfg.AllowedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
		return RegisterWebhookDeliver(w, cfg)
	})
	deliver := func(to string) (sdk.Job, []engine.AttemptFailed) {
		id := b.enqueue(t, sdk.JobTypeWebhookDeliver, Webhook{WebhookID: "wh", URL: redirector.URL + "/hook?to=" + to}, sdk.WithRetryPolicy(fastRetries))
		return b.waitSettled(t, id), b.failures(t, id)
	}
	// An allowed redirect is followed.
	if j, f := deliver(redirector.URL + "/final"); j.Status != sdk.StatusSucceeded {
		t.Fatalf("redirect within the allowed receiver: job %s, failures %+v", j.Status, f)
	}
	for _, tt := range []struct{ name, to, want string }{
		{"to 127.0.0.1", fmt.Sprintf("http://127.0.0.1:%d/", targetPort), "127.0.0.1 is a loopback address"},
		{"to localhost", fmt.Sprintf("http://localhost:%d/", targetPort), "is a loopback address"},
		{"to the metadata service", "http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"},
	} {
		j, f := deliver(tt.to)
		if j.Status != sdk.StatusDeadLettered || len(f) != 1 || !f[0].Permanent || !strings.Contains(f[0].Error, tt.want) {
			t.Errorf("redirect %s: job %s, failures %+v; want refused for good naming %q", tt.name, j.Status, f, tt.want)
		}
	}
	if n := len(target.received()); n != 0 {
		t.Fatalf("the internal target was reached through a redirect: %d requests", n)
	}
}

// Too many redirects, and redirects when none are allowed, fail for good.
func TestWebhookDeliverRedirectLimit(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	loop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, "/again", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(loop.Close)
	b := setup(t, func(c *sdk.Client, w *sdk.Worker) error {
		if err := RegisterWebhookDeliver(w, localWebhookConfig()); err != nil {
			return err
		}
		cfg := localWebhookConfig()
		cfg.MaxRedirects = -1
		d, err := NewDeliverer(cfg)
		if err != nil {
			return err
		}
		return sdk.RegisterJobHandler(w, "webhook.no_redirects", d.Handle)
	})
	id := b.enqueue(t, sdk.JobTypeWebhookDeliver, Webhook{WebhookID: "wh", URL: loop.URL}, sdk.WithRetryPolicy(fastRetries))
	if j := b.waitSettled(t, id); j.Status != sdk.StatusDeadLettered || j.Attempt != 1 || !strings.Contains(j.LastError, "after 3 redirect(s)") {
		t.Fatalf("redirect loop: job %s after %d attempts: %s", j.Status, j.Attempt, j.LastError)
	}
	if n := hits.Load(); n != 1+DefaultWebhookMaxRedirects {
		t.Fatalf("redirect loop: %d requests, want %d", n, 1+DefaultWebhookMaxRedirects)
	}
	id = b.enqueue(t, "webhook.no_redirects", Webhook{WebhookID: "wh", URL: loop.URL}, sdk.WithRetryPolicy(fastRetries))
	if j := b.waitSettled(t, id); j.Status != sdk.StatusDeadLettered || j.Attempt != 1 || !strings.Contains(j.LastError, "redirect refused") {
		t.Fatalf("no redirects: job %s after %d attempts: %s", j.Status, j.Attempt, j.LastError)
	}
}

// A receiver that cannot be reached is retried; one that is too slow
// times out and is retried.
func TestWebhookDeliverNetworkErrorsRetried(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + l.Addr().String()
	l.Close()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets Close finish
	b := setup(t, func(c *sdk.Client, w *sdk.Worker) error {
		cfg := localWebhookConfig()
		cfg.Timeout = 200 * time.Millisecond
		return RegisterWebhookDeliver(w, cfg)
	})
	for name, url := range map[string]string{"connection refused": closedURL, "timeout": slow.URL} {
		id := b.enqueue(t, sdk.JobTypeWebhookDeliver, Webhook{WebhookID: "wh", URL: url}, sdk.WithRetryPolicy(sdk.RetryPolicy{MaximumAttempts: 2, Schedule: []time.Duration{10 * time.Millisecond}}))
		j := b.waitSettled(t, id)
		f := b.failures(t, id)
		if j.Status != sdk.StatusDeadLettered || j.Attempt != 2 || len(f) != 2 || f[0].Permanent || f[0].RetryAt == nil || f[0].ErrorType != "WebhookNetworkError" {
			t.Errorf("%s: job %s after %d attempts, failures %+v; want retried then dead-lettered", name, j.Status, j.Attempt, f)
		}
	}
}

// Payloads that cannot be delivered fail for good at once.
func TestWebhookDeliverInvalidPayloads(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *sdk.Client, w *sdk.Worker) error { return RegisterWebhookDeliver(w, localWebhookConfig()) })
	for _, tt := range []struct {
		name string
		wh   Webhook
		want string
	}{
		{"no url", Webhook{WebhookID: "wh"}, "url missing"},
		{"no webhook id", Webhook{URL: "https://example.com/"}, "webhook_id missing"},
		{"ftp", Webhook{WebhookID: "wh", URL: "ftp://example.com/"}, "not an absolute http or https URL"},
		{"relative", Webhook{WebhookID: "wh", URL: "/hooks"}, "not an absolute http or https URL"},
		{"credentials", Webhook{WebhookID: "wh", URL: "https://user:pw@example.com/"}, "carries credentials"},
	} {
		id := b.enqueue(t, sdk.JobTypeWebhookDeliver, tt.wh)
		j := b.waitSettled(t, id)
		if j.Status != sdk.StatusDeadLettered || j.Attempt != 1 || !strings.Contains(j.LastError, tt.want) || strings.Contains(j.LastError, "pw@") {
			t.Errorf("%s: job %s after %d attempts: %q; want dead-lettered at once with %q", tt.name, j.Status, j.Attempt, j.LastError, tt.want)
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":1}`)
	key := "webhook:wh_1:del_1"
	signed := func(mutate func(h http.Header)) http.Header {
		h := http.Header{}
		h.Set(HeaderIdempotencyKey, key)
		h.Set(HeaderTimestamp, fmt.Sprint(now.Unix()))
		h.Set(HeaderSignature, Sign(testSecret, key, now, body))
		if mutate != nil {
			mutate(h)
		}
		return h
	}
	for _, tt := range []struct {
		name   string
		header http.Header
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid", signed(nil), body, now, nil},
		{"valid within tolerance", signed(nil), body, now.Add(4 * time.Minute), nil},
		{"rotated: one of two signatures matches", signed(func(h http.Header) {
			h.Set(HeaderSignature, "v1=00ff "+Sign(testSecret, key, now, body))
		}), body, now, nil},
		{"body changed", signed(nil), []byte(`{"id":2}`), now, ErrSignatureMismatch},
		{"key changed", signed(func(h http.Header) { h.Set(HeaderIdempotencyKey, "webhook:wh_1:del_2") }), body, now, ErrSignatureMismatch},
		{"timestamp changed", signed(func(h http.Header) { h.Set(HeaderTimestamp, fmt.Sprint(now.Unix()+1)) }), body, now, ErrSignatureMismatch},
		{"wrong scheme", signed(func(h http.Header) { h.Set(HeaderSignature, strings.Replace(h.Get(HeaderSignature), "v1=", "v0=", 1)) }), body, now, ErrSignatureMismatch},
		{"not hex", signed(func(h http.Header) { h.Set(HeaderSignature, "v1=zz") }), body, now, ErrSignatureMismatch},
		{"no signature", signed(func(h http.Header) { h.Del(HeaderSignature) }), body, now, ErrSignatureMissing},
		{"no timestamp", signed(func(h http.Header) { h.Del(HeaderTimestamp) }), body, now, ErrSignatureMissing},
		{"too old: a replay", signed(nil), body, now.Add(6 * time.Minute), ErrSignatureExpired},
		{"from the future", signed(nil), body, now.Add(-6 * time.Minute), ErrSignatureExpired},
	} {
		err := Verify(testSecret, tt.header, tt.body, 0, tt.now)
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: Verify = %v, want %v", tt.name, err, tt.want)
		}
	}
	// The documented recipe, computed independently:
	// python3 -c "import hmac,hashlib;print(hmac.new(b'k',b'webhook:a:b.1.{}',hashlib.sha256).hexdigest())"
	if got, want := Sign([]byte("k"), "webhook:a:b", time.Unix(1, 0), []byte("{}")), "v1=5d236ef6b91b38ec05c73b18e8dfd295a073bed5f9c460bf310cae1fbd69770d"; got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}

func TestInternalAddresses(t *testing.T) {
	t.Parallel()
	for addr, internal := range map[string]bool{
		"127.0.0.1": true, "127.1.2.3": true, "::1": true, "10.1.2.3": true, "172.16.0.1": true, "172.31.255.255": true,
		"192.168.1.1": true, "169.254.169.254": true, "fe80::1": true, "fd00:ec2::254": true, "0.0.0.0": true, "::": true,
		"100.64.0.1": true, "100.100.100.200": true, "::ffff:127.0.0.1": true, "::ffff:169.254.169.254": true,
		"64:ff9b::a9fe:a9fe": true, "2002:7f00:1::": true, "2002:a00:1::": true, "224.0.0.1": true, "ff02::1": true,
		"255.255.255.255": true, "198.18.0.1": true, "fec0::1": true,
		"93.184.216.34": false, "8.8.8.8": false, "172.32.0.1": false, "2606:4700:4700::1111": false,
		"64:ff9b::808:808": false, "2002:808:808::": false, "100.128.0.1": false,
	} {
		err := addressGuard{}.check(netip.MustParseAddr(addr))
		if internal != (err != nil) {
			t.Errorf("%s: check = %v, want internal %v", addr, err, internal)
		}
		if err != nil && !errors.Is(err, ErrAddressNotAllowed) {
			t.Errorf("%s: error %v does not wrap ErrAddressNotAllowed", addr, err)
		}
	}
	g := addressGuard{allowed: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}}
	if g.check(netip.MustParseAddr("10.20.3.4")) != nil || g.check(netip.MustParseAddr("10.21.0.1")) == nil {
		t.Error("AllowedNetworks: want 10.20.3.4 allowed and 10.21.0.1 refused")
	}
	if (addressGuard{allowPrivate: true}).check(netip.MustParseAddr("169.254.169.254")) != nil {
		t.Error("AllowPrivateNetworks: want every address allowed")
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "120": 2 * time.Minute, "0": 0, "-5": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}

func TestReadLimited(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in        string
		limit     int
		want      string
		truncated bool
	}{
		{"short", 10, "short", false},
		{"exactly10!", 10, "exactly10!", false},
		{"longer than ten", 10, "longer tha", true},
		{"ab€cd", 3, "ab", true}, // € is 3 bytes: not cut in half
		{"bad \xff byte", 20, "bad \uFFFD byte", false},
	} {
		got, truncated := readLimited(strings.NewReader(tt.in), tt.limit)
		if got != tt.want || truncated != tt.truncated {
			t.Errorf("readLimited(%q, %d) = %q, %v; want %q, %v", tt.in, tt.limit, got, truncated, tt.want, tt.truncated)
		}
	}
}

func TestNewDelivererNeedsSecret(t *testing.T) {
	t.Parallel()
	if _, err := NewDeliverer(WebhookConfig{}); err == nil || !strings.Contains(err.Error(), "Secret") {
		t.Fatalf("NewDeliverer without a secret = %v", err)
	}
}
