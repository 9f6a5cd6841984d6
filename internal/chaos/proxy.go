package chaos

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
)

// pgProxy stands between worker processes and the real PostgreSQL, so that
// a scenario can cut "the database" without stopping the server every
// other test shares. It understands just enough of the protocol to find a
// COMMIT and drop the connection right after forwarding it: the
// ambiguous commit.
type pgProxy struct {
	ln       net.Listener
	upstream string

	mu     sync.Mutex
	conns  map[net.Conn]bool
	refuse bool
	rng    *rand.Rand
	// commitDrop is the chance, per COMMIT, of dropping the connection
	// right after forwarding it.
	commitDrop float64

	cuts, commitDrops atomic.Int64
}

func startProxy(upstream string, seed int64) (*pgProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &pgProxy{ln: ln, upstream: upstream, conns: map[net.Conn]bool{}, rng: rand.New(rand.NewPCG(uint64(seed), 7))}
	go p.serve()
	return p, nil
}

// upstreamOf returns the host:port a database URL points at.
func upstreamOf(databaseURL string) (string, error) {
	cfg, err := pgconn.ParseConfig(databaseURL)
	if err != nil {
		return "", fmt.Errorf("parse database URL: %w", err)
	}
	return net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)), nil
}

// via returns databaseURL with its address replaced by the proxy's.
func (p *pgProxy) via(databaseURL string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil || u.Scheme == "" {
		return "", fmt.Errorf("the chaos proxy needs a postgres:// URL, got %q", databaseURL)
	}
	u.Host = p.ln.Addr().String()
	return u.String(), nil
}

func (p *pgProxy) close() {
	p.ln.Close()
	p.cut()
}

// cut drops every open connection at once, as a crashed server does.
func (p *pgProxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for c := range p.conns {
		c.Close()
		n++
	}
	clear(p.conns)
	p.cuts.Add(1)
	return n
}

// setRefuse makes new connections fail (the server is down) or succeed.
func (p *pgProxy) setRefuse(v bool) {
	p.mu.Lock()
	p.refuse = v
	p.mu.Unlock()
}

func (p *pgProxy) setCommitDrop(rate float64) {
	p.mu.Lock()
	p.commitDrop = rate
	p.mu.Unlock()
}

func (p *pgProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		drop := func() {
			c.Close()
			up.Close()
			p.mu.Lock()
			delete(p.conns, c)
			delete(p.conns, up)
			p.mu.Unlock()
		}
		go func() { p.clientToServer(c, up); drop() }()
		go func() { _, _ = io.Copy(c, up); drop() }()
	}
}

// Startup-phase request codes that are followed by another startup message.
const (
	sslRequestCode    = 80877103
	gssencRequestCode = 80877104
)

// clientToServer forwards the client's messages one by one, dropping the
// connection after a COMMIT when the dice say so.
func (p *pgProxy) clientToServer(c, up net.Conn) {
	var hdr [5]byte
	// Startup phase: untyped messages (length, then body).
	for {
		if _, err := io.ReadFull(c, hdr[:4]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		if n < 4 || n > 1<<20 {
			return
		}
		body := make([]byte, n-4)
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		if _, err := up.Write(append(hdr[:4:4], body...)); err != nil {
			return
		}
		if len(body) >= 4 {
			code := binary.BigEndian.Uint32(body[:4])
			if code == sslRequestCode || code == gssencRequestCode {
				continue // sslmode=disable is expected; the server answers N and startup follows
			}
		}
		break
	}
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[1:]))
		if n < 4 {
			return
		}
		body := make([]byte, n-4)
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		if _, err := up.Write(append(hdr[:5:5], body...)); err != nil {
			return
		}
		if hdr[0] == 'Q' && isCommit(body) {
			p.mu.Lock()
			dropNow := p.commitDrop > 0 && p.rng.Float64() < p.commitDrop
			p.mu.Unlock()
			if dropNow {
				p.commitDrops.Add(1)
				return // the server has the COMMIT; the client never hears back
			}
		}
	}
}

func isCommit(q []byte) bool {
	q = bytes.TrimSpace(bytes.TrimRight(q, "\x00"))
	return len(q) >= 6 && bytes.EqualFold(q[:6], []byte("commit"))
}
