package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chronicle-engine/chronicle/sdk"
)

// webhook.deliver defaults.
const (
	// DefaultWebhookTimeout bounds one delivery attempt: connecting, every
	// redirect, and reading the response.
	DefaultWebhookTimeout = 15 * time.Second
	// DefaultWebhookMaxRedirects is how many redirects a delivery follows.
	DefaultWebhookMaxRedirects = 3
	// DefaultWebhookResponseLimit is how many bytes of a response body are
	// kept for the history and logs.
	DefaultWebhookResponseLimit = 1024
	// DefaultWebhookMaxRetryAfter caps how long a receiver's Retry-After
	// may postpone the next attempt.
	DefaultWebhookMaxRetryAfter = time.Hour
	// DefaultWebhookIdempotencyTTL is how long a delivered webhook's key
	// keeps another job with the same key from delivering it again.
	DefaultWebhookIdempotencyTTL = 24 * time.Hour
	// DefaultWebhookUserAgent is sent as User-Agent.
	DefaultWebhookUserAgent = "Chronicle-Webhook/1.0"
	// DefaultSignatureTolerance is how far a delivery's timestamp may be
	// from the receiver's clock before Verify refuses it as a replay.
	DefaultSignatureTolerance = 5 * time.Minute
)

// Headers of a webhook delivery.
const (
	// HeaderSignature carries "v1=" and the hex HMAC-SHA256 of the signed
	// content (see Sign); several space-separated values may appear while a
	// secret is rotated.
	HeaderSignature = "Chronicle-Signature"
	// HeaderTimestamp is the Unix time, in seconds, at which the attempt
	// was signed.
	HeaderTimestamp = "Chronicle-Timestamp"
	// HeaderIdempotencyKey is webhook:{webhookId}:{deliveryId}: the same on
	// every attempt of a delivery, so that receivers can drop repeats.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderWebhookID and HeaderDeliveryID repeat the key's parts.
	HeaderWebhookID  = "Chronicle-Webhook-Id"
	HeaderDeliveryID = "Chronicle-Delivery-Id"
	// HeaderEvent is Webhook.Event, when set.
	HeaderEvent = "Chronicle-Event"
)

// Errors a receiver's Verify returns.
var (
	// ErrSignatureMissing: the request lacks the signature or timestamp header.
	ErrSignatureMissing = errors.New("webhook signature missing")
	// ErrSignatureMismatch: no signature matches the body with the secret.
	ErrSignatureMismatch = errors.New("webhook signature does not match")
	// ErrSignatureExpired: the timestamp is outside the tolerance; the
	// request may be a replay.
	ErrSignatureExpired = errors.New("webhook timestamp outside tolerance")
	// ErrInvalidWebhook: a Webhook payload cannot be delivered as it is;
	// the message says which field. Jobs fail with it for good.
	ErrInvalidWebhook = errors.New("invalid webhook")
)

// WebhookConfig configures webhook.deliver.
type WebhookConfig struct {
	// Secret signs every delivery. Either Secret or SecretFor is required.
	Secret []byte
	// SecretFor returns the secret of one webhook, for receivers that each
	// have their own; it takes precedence over Secret. An error is retried
	// unless it is sdk.Permanent.
	SecretFor func(ctx context.Context, webhookID string) ([]byte, error)
	// Timeout bounds one attempt. Defaults to DefaultWebhookTimeout (15s).
	Timeout time.Duration
	// MaxRedirects caps the redirects followed. Defaults to
	// DefaultWebhookMaxRedirects (3); -1 follows none, and a redirect then
	// fails the delivery for good.
	MaxRedirects int
	// ResponseLimit is how many bytes of a response body are recorded.
	// Defaults to DefaultWebhookResponseLimit (1 KiB).
	ResponseLimit int
	// MaxRetryAfter caps a receiver's Retry-After. Defaults to
	// DefaultWebhookMaxRetryAfter (1h).
	MaxRetryAfter time.Duration
	// IdempotencyTTL defaults to DefaultWebhookIdempotencyTTL (24h).
	IdempotencyTTL time.Duration
	// AllowPrivateNetworks lets deliveries reach loopback, private,
	// link-local and other internal addresses. Off by default: a webhook
	// URL is chosen by whoever registers the webhook, and must not become
	// a way into your network (server-side request forgery).
	AllowPrivateNetworks bool
	// AllowedNetworks are internal ranges that deliveries may reach while
	// AllowPrivateNetworks is off, such as a trusted internal receiver.
	AllowedNetworks []netip.Prefix
	// UserAgent defaults to DefaultWebhookUserAgent.
	UserAgent string
	// Now is the clock that timestamps signatures. Defaults to time.Now.
	Now func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Webhook is the payload of a webhook.deliver job.
type Webhook struct {
	// WebhookID identifies the receiver's subscription: the {webhookId} of
	// the idempotency key, and what SecretFor looks up. Required.
	WebhookID string `json:"webhook_id"`
	// DeliveryID identifies this delivery: the {deliveryId} of the key.
	// Defaults to the job's ID.
	DeliveryID string `json:"delivery_id,omitempty"`
	// URL is the receiver's http or https URL. Required.
	URL string `json:"url"`
	// Event names what happened, such as "order.paid", sent as
	// Chronicle-Event.
	Event string `json:"event,omitempty"`
	// Payload is the JSON body posted, compacted. Defaults to {}. Jobs'
	// payloads are stored as PostgreSQL jsonb, so the order of its keys
	// may differ from what was enqueued; the signature covers the bytes
	// sent.
	Payload json.RawMessage `json:"payload,omitempty"`
	// Headers are extra request headers. They cannot replace the
	// signature, timestamp or idempotency headers.
	Headers map[string]string `json:"headers,omitempty"`
}

// WebhookKey is the idempotency key of a delivery:
// webhook:{webhookId}:{deliveryId}.
func WebhookKey(webhookID, deliveryID string) string {
	return "webhook:" + webhookID + ":" + deliveryID
}

// Delivery is a receiver's answer to a delivered webhook, as the job's
// history records it.
type Delivery struct {
	StatusCode int    `json:"status_code"`
	Body       string `json:"body,omitempty"`
	// Truncated is true when Body is the first ResponseLimit bytes.
	Truncated bool `json:"truncated,omitempty"`
	// DurationMS is how long the request took, redirects included.
	DurationMS float64 `json:"duration_ms"`
}

// DeliveryError is a failed delivery attempt: the receiver's status and
// the start of its body, or the network error. Its message is what the
// job's history records. 408, 429 and 5xx answers and network errors are
// retried, after the receiver's Retry-After when it sent one; other
// answers fail the delivery for good.
type DeliveryError struct {
	// URL is the receiver's URL without its query.
	URL string
	// StatusCode is 0 when no response arrived.
	StatusCode int
	Body       string
	Truncated  bool
	// RetryAfter is the receiver's Retry-After, capped by MaxRetryAfter.
	RetryAfter time.Duration
	// Err is the network error when no response arrived.
	Err error
}

func (e *DeliveryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s: ", e.URL)
	if e.StatusCode == 0 {
		b.WriteString(e.Err.Error())
		return b.String()
	}
	fmt.Fprintf(&b, "%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (Retry-After %s)", e.RetryAfter)
	}
	if e.Body != "" {
		fmt.Fprintf(&b, ", body %q", e.Body)
		if e.Truncated {
			b.WriteString(" (truncated)")
		}
	}
	return b.String()
}

// Unwrap returns the network error, if any.
func (e *DeliveryError) Unwrap() error { return e.Err }

// ErrorType names the failure for RetryPolicy.NonRetryableErrorTypes and
// the history: WebhookHTTPError when the receiver answered, else
// WebhookNetworkError.
func (e *DeliveryError) ErrorType() string {
	if e.StatusCode == 0 {
		return "WebhookNetworkError"
	}
	return "WebhookHTTPError"
}

// RetryDelay implements sdk.RetryDelayer: the next attempt waits at least
// for the receiver's Retry-After.
func (e *DeliveryError) RetryDelay() time.Duration { return e.RetryAfter }

// Retryable reports whether another attempt may succeed: a network error,
// or a 408, 429 or 5xx answer.
func (e *DeliveryError) Retryable() bool {
	if e.StatusCode == 0 {
		return !errors.Is(e.Err, ErrAddressNotAllowed) && !errors.Is(e.Err, errRedirectRefused)
	}
	return e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// errRedirectRefused marks a redirect that the delivery would not follow.
var errRedirectRefused = errors.New("redirect refused")

// Deliverer delivers Webhooks. RegisterWebhookDeliver makes one for the
// webhook.deliver handler; use one directly to deliver from your own
// handlers.
type Deliverer struct {
	cfg    WebhookConfig
	client *http.Client
	log    *slog.Logger
}

// NewDeliverer checks cfg and fills in its defaults.
func NewDeliverer(cfg WebhookConfig) (*Deliverer, error) {
	if len(cfg.Secret) == 0 && cfg.SecretFor == nil {
		return nil, errors.New("webhook.deliver: WebhookConfig needs Secret or SecretFor to sign deliveries")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultWebhookTimeout
	}
	if cfg.MaxRedirects == 0 {
		cfg.MaxRedirects = DefaultWebhookMaxRedirects
	}
	if cfg.ResponseLimit <= 0 {
		cfg.ResponseLimit = DefaultWebhookResponseLimit
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = DefaultWebhookMaxRetryAfter
	}
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = DefaultWebhookIdempotencyTTL
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultWebhookUserAgent
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	guard := addressGuard{allowPrivate: cfg.AllowPrivateNetworks, allowed: cfg.AllowedNetworks}
	dialer := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second, Control: guard.control}
	transport := &http.Transport{
		// No proxy: the address check must see the receiver's address, not
		// a proxy's. Deliveries ignore HTTP_PROXY and HTTPS_PROXY.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   10,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	d := &Deliverer{cfg: cfg, log: cfg.Logger}
	d.client = &http.Client{Transport: transport, Timeout: cfg.Timeout, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if cfg.MaxRedirects < 0 || len(via) > cfg.MaxRedirects {
			return fmt.Errorf("%w: %s after %d redirect(s); point the webhook at the final URL", errRedirectRefused, redact(req.URL), len(via)-1)
		}
		if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
			return fmt.Errorf("%w: to %s, which is not http or https", errRedirectRefused, redact(req.URL))
		}
		// The dial check refuses internal addresses in any case; checking a
		// literal IP here too names the redirect in the error.
		if ip, err := netip.ParseAddr(strings.Trim(req.URL.Hostname(), "[]")); err == nil {
			if err := guard.check(ip); err != nil {
				return fmt.Errorf("redirect to %s: %w", redact(req.URL), err)
			}
		}
		return nil
	}}
	return d, nil
}

// RegisterWebhookDeliver registers the webhook.deliver handler on w.
func RegisterWebhookDeliver(w *sdk.Worker, cfg WebhookConfig) error {
	d, err := NewDeliverer(cfg)
	if err != nil {
		return err
	}
	return sdk.RegisterJobHandler(w, sdk.JobTypeWebhookDeliver, d.Handle)
}

// Handle is the webhook.deliver handler: Deliver with the answer logged.
func (d *Deliverer) Handle(ctx context.Context, wh Webhook) error {
	_, err := d.Deliver(ctx, wh)
	return err
}

// Deliver posts wh to its URL, signed, unless a delivery with its
// idempotency key already succeeded within IdempotencyTTL; then it returns
// that delivery's answer without posting. It must run inside a job
// handler. The answer is recorded in the job's history (the StepCompleted
// event of the key); a failure's status and body are in its AttemptFailed
// error. A failure is a
// *DeliveryError (wrapped with sdk.Permanent when retrying cannot help), or
// an error wrapping ErrInvalidWebhook for a payload that cannot be sent.
func (d *Deliverer) Deliver(ctx context.Context, wh Webhook) (Delivery, error) {
	if wh.DeliveryID == "" {
		if info, ok := sdk.JobFromContext(ctx); ok {
			wh.DeliveryID = info.ID.String()
		}
	}
	u, err := d.validate(wh)
	if err != nil {
		return Delivery{}, sdk.Permanent(err)
	}
	key := WebhookKey(wh.WebhookID, wh.DeliveryID)
	delivered := false
	got, err := sdk.WithIdempotencyResult(ctx, key, d.cfg.IdempotencyTTL, func(ctx context.Context) (Delivery, error) {
		got, err := d.post(ctx, u, key, wh)
		delivered = err == nil
		return got, err
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("webhook %s: %w", key, err)
	}
	if !delivered {
		d.log.InfoContext(ctx, "webhook already delivered; not sending again", "key", key, "status", got.StatusCode)
		return got, nil
	}
	d.log.InfoContext(ctx, "webhook delivered", "key", key, "url", redact(u), "status", got.StatusCode,
		"body", got.Body, "truncated", got.Truncated, "duration_ms", got.DurationMS)
	return got, nil
}

func (d *Deliverer) validate(wh Webhook) (*url.URL, error) {
	var missing []string
	if wh.WebhookID == "" {
		missing = append(missing, "webhook_id")
	}
	if wh.DeliveryID == "" {
		missing = append(missing, "delivery_id (required outside a job)")
	}
	if wh.URL == "" {
		missing = append(missing, "url")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s missing", ErrInvalidWebhook, strings.Join(missing, ", "))
	}
	if strings.Contains(wh.WebhookID, ":") {
		return nil, fmt.Errorf("%w: webhook_id %q contains ':', which separates the parts of the key webhook:{webhookId}:{deliveryId}", ErrInvalidWebhook, wh.WebhookID)
	}
	u, err := url.Parse(wh.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: url: %v", ErrInvalidWebhook, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%w: url %s is not an absolute http or https URL", ErrInvalidWebhook, redact(u))
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: url %s carries credentials; use Headers for an Authorization header", ErrInvalidWebhook, redact(u))
	}
	if len(wh.Payload) > 0 && !json.Valid(wh.Payload) {
		return nil, fmt.Errorf("%w: payload is not valid JSON", ErrInvalidWebhook)
	}
	return u, nil
}

// post makes one signed POST and classifies the answer.
func (d *Deliverer) post(ctx context.Context, u *url.URL, key string, wh Webhook) (Delivery, error) {
	secret := d.cfg.Secret
	if d.cfg.SecretFor != nil {
		var err error
		if secret, err = d.cfg.SecretFor(ctx, wh.WebhookID); err != nil {
			return Delivery{}, fmt.Errorf("secret of webhook %s: %w", wh.WebhookID, err)
		}
		if len(secret) == 0 {
			return Delivery{}, sdk.Permanent(fmt.Errorf("secret of webhook %s is empty; deliveries must be signed", wh.WebhookID))
		}
	}
	body := []byte("{}")
	if len(wh.Payload) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, wh.Payload); err != nil {
			return Delivery{}, sdk.Permanent(fmt.Errorf("%w: payload: %v", ErrInvalidWebhook, err))
		}
		body = buf.Bytes()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return Delivery{}, sdk.Permanent(fmt.Errorf("%w: %v", ErrInvalidWebhook, err))
	}
	for name, value := range wh.Headers {
		req.Header.Set(name, value)
	}
	ts := d.cfg.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.cfg.UserAgent)
	req.Header.Set(HeaderIdempotencyKey, key)
	req.Header.Set(HeaderWebhookID, wh.WebhookID)
	req.Header.Set(HeaderDeliveryID, wh.DeliveryID)
	if wh.Event != "" {
		req.Header.Set(HeaderEvent, wh.Event)
	}
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(secret, key, ts, body))

	began := time.Now()
	resp, err := d.client.Do(req)
	if err != nil {
		de := &DeliveryError{URL: redact(u), Err: unwrapURLError(err)}
		if !de.Retryable() {
			return Delivery{}, sdk.Permanent(de)
		}
		return Delivery{}, de
	}
	defer resp.Body.Close()
	got := Delivery{StatusCode: resp.StatusCode, DurationMS: float64(time.Since(began).Microseconds()) / 1000}
	got.Body, got.Truncated = readLimited(resp.Body, d.cfg.ResponseLimit)
	// Drain a little more so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return got, nil
	}
	de := &DeliveryError{URL: redact(u), StatusCode: resp.StatusCode, Body: got.Body, Truncated: got.Truncated}
	if !de.Retryable() {
		return Delivery{}, sdk.Permanent(de)
	}
	de.RetryAfter = min(parseRetryAfter(resp.Header.Get("Retry-After"), d.cfg.Now()), d.cfg.MaxRetryAfter)
	return Delivery{}, de
}

// unwrapURLError drops the *url.Error layer, whose message repeats the URL
// with its query.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// readLimited reads up to limit bytes as valid UTF-8 text and reports
// whether there was more.
func readLimited(r io.Reader, limit int) (string, bool) {
	buf, _ := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	truncated := len(buf) > limit
	if truncated {
		buf = buf[:limit]
		// Do not leave half a character at the cut.
		if r, size := utf8.DecodeLastRune(buf); r == utf8.RuneError && size <= 1 {
			for i := 1; i < utf8.UTFMax && i <= len(buf); i++ {
				if utf8.RuneStart(buf[len(buf)-i]) {
					buf = buf[:len(buf)-i]
					break
				}
			}
		}
	}
	return strings.ToValidUTF8(string(buf), "\uFFFD"), truncated
}

// parseRetryAfter reads a Retry-After header: seconds, or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(365*24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// redact shows a URL without its query and credentials, which may carry
// secrets, for errors and logs.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	if c.RawQuery != "" {
		c.RawQuery = "…"
	}
	c.Fragment = ""
	return c.String()
}
