package engine

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultWakeSubjectPrefix is the NATS subject prefix of wakeups: the
// wakeup for queue q is published on "<prefix>.q".
const DefaultWakeSubjectPrefix = "chronicle.wake"

// ConnectNATS connects to NATS for wakeups. The connection retries in the
// background for ever: NATS being down at start or later only delays
// wakeups, and workers keep polling meanwhile.
func ConnectNATS(natsURL, name string, log *slog.Logger) (*nats.Conn, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	nc, err := nats.Connect(natsURL,
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // closed on purpose, not lost
			}
			log.Warn("NATS disconnected; workers fall back to polling until it is back", "url", redact(natsURL), "err", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("NATS reconnected", "url", redact(natsURL)) }),
	)
	if err != nil {
		return nil, fmt.Errorf("NATS at %s: %w (set NATS_URL or --nats-url)", redact(natsURL), err)
	}
	return nc, nil
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Redacted()
}

// NATSWaker publishes and receives queue wakeups over NATS.
type NATSWaker struct {
	nc     *nats.Conn
	prefix string
}

// NewNATSWaker returns a waker on nc. prefix defaults to DefaultWakeSubjectPrefix.
func NewNATSWaker(nc *nats.Conn, prefix string) *NATSWaker {
	if prefix == "" {
		prefix = DefaultWakeSubjectPrefix
	}
	return &NATSWaker{nc: nc, prefix: prefix}
}

// Subject returns the wakeup subject of a queue.
func (w *NATSWaker) Subject(queue string) string { return w.prefix + "." + queue }

// Wake publishes one wakeup per distinct queue. Publishing is buffered by
// the client and never blocks on the network; while NATS is unreachable the
// wakeups are dropped or buffered, which polling makes harmless.
func (w *NATSWaker) Wake(queues ...string) {
	for i, q := range queues {
		if i > 0 && containsBefore(queues, i, q) {
			continue
		}
		_ = w.nc.Publish(w.Subject(q), nil)
	}
}

func containsBefore(qs []string, i int, q string) bool {
	for _, p := range qs[:i] {
		if p == q {
			return true
		}
	}
	return false
}

// Subscribe delivers wakeups for queue to ch without blocking: wakeups that
// arrive while one is pending coalesce into it.
func (w *NATSWaker) Subscribe(queue string, ch chan struct{}) (func(), error) {
	sub, err := w.nc.Subscribe(w.Subject(queue), func(*nats.Msg) {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to wakeups of queue %s: %w", queue, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// ValidQueueName reports whether q can name a queue: letters, digits, '_'
// and '-', in dot-separated parts, at most 100 characters. The same name is
// a NATS subject token, so it may not hold spaces, '*' or '>'.
func ValidQueueName(q string) error {
	if q == "" || len(q) > 100 {
		return &InputError{Field: "queue", Reason: fmt.Sprintf("%q must be 1 to 100 characters", q)}
	}
	for _, part := range strings.Split(q, ".") {
		if part == "" {
			return &InputError{Field: "queue", Reason: fmt.Sprintf("%q has an empty part between dots", q)}
		}
		for _, r := range part {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				return &InputError{Field: "queue", Reason: fmt.Sprintf("%q contains %q; use letters, digits, '_', '-' and '.'", q, r)}
			}
		}
	}
	return nil
}
