package activities

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sign returns the Chronicle-Signature value of a delivery: "v1=" followed
// by the hex HMAC-SHA256, keyed with secret, of
//
//	{idempotency key} "." {Unix seconds} "." {body}
//
// where the idempotency key is the Idempotency-Key header
// (webhook:{webhookId}:{deliveryId}), the seconds are the
// Chronicle-Timestamp header and the body is the raw request body. Signing
// the key and the time with the body means a captured request cannot be
// replayed as another delivery, nor later than the receiver's tolerance.
// Receivers in other languages compute the same and compare in constant
// time.
func Sign(secret []byte, idempotencyKey string, t time.Time, body []byte) string {
	return "v1=" + hex.EncodeToString(mac(secret, idempotencyKey, t.Unix(), body))
}

func mac(secret []byte, key string, unix int64, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	io.WriteString(m, key)
	io.WriteString(m, ".")
	io.WriteString(m, strconv.FormatInt(unix, 10))
	io.WriteString(m, ".")
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks that a webhook request was signed with secret: that one of
// the v1 signatures in its Chronicle-Signature header matches its body,
// Idempotency-Key and Chronicle-Timestamp, and that the timestamp is within
// tolerance of now (zero means DefaultSignatureTolerance). It returns nil,
// or an error wrapping ErrSignatureMissing, ErrSignatureMismatch or
// ErrSignatureExpired. Receivers rotating secrets call it with each.
//
// Verify the raw body before decoding it, and drop a request whose
// Idempotency-Key was already processed: a delivery is retried until the
// receiver answers 2xx, so it can arrive more than once.
func Verify(secret []byte, header http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	if tolerance <= 0 {
		tolerance = DefaultSignatureTolerance
	}
	sig, ts, key := header.Get(HeaderSignature), header.Get(HeaderTimestamp), header.Get(HeaderIdempotencyKey)
	if sig == "" || ts == "" {
		return fmt.Errorf("%w: the request needs %s and %s headers", ErrSignatureMissing, HeaderSignature, HeaderTimestamp)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not Unix seconds", ErrSignatureMismatch, HeaderTimestamp, ts)
	}
	want := mac(secret, key, unix, body)
	matched := false
	for _, field := range strings.FieldsFunc(sig, func(r rune) bool { return r == ' ' || r == ',' }) {
		v, ok := strings.CutPrefix(field, "v1=")
		if !ok {
			continue
		}
		got, err := hex.DecodeString(v)
		if err == nil && hmac.Equal(got, want) {
			matched = true
			break
		}
	}
	if !matched {
		return fmt.Errorf("%w: no v1 signature in %s matches the body with this secret", ErrSignatureMismatch, HeaderSignature)
	}
	// Checked after the signature, so that an unsigned request learns nothing.
	if skew := now.Sub(time.Unix(unix, 0)); skew > tolerance || skew < -tolerance {
		return fmt.Errorf("%w: signed at %s, %s from now; allowed %s", ErrSignatureExpired, time.Unix(unix, 0).UTC().Format(time.RFC3339), skew.Round(time.Second), tolerance)
	}
	return nil
}

// VerifyRequest reads r's body, at most maxBytes of it (zero means 1 MiB),
// and verifies it with Verify at the current time. It returns the body,
// which the caller decodes only when the error is nil.
func VerifyRequest(r *http.Request, secret []byte, maxBytes int64) ([]byte, error) {
	if maxBytes <= 0 {
		maxBytes = 1 << 20
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read webhook body: %w", err)
	}
	if int64(len(body)) > maxBytes {
		return nil, fmt.Errorf("webhook body is over %d bytes", maxBytes)
	}
	return body, Verify(secret, r.Header, body, 0, time.Now())
}
