package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-engine/chronicle/internal/testdb"
	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/server"
)

// pgProxy stands between a client and the real PostgreSQL, so that a test
// can stop "the database" without stopping the one every test shares.
type pgProxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	conns    []net.Conn
	// hang makes the proxy accept connections and never answer, like a
	// database behind a network partition.
	hang bool
}

func startProxy(t *testing.T, upstream string, hang bool) *pgProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln, upstream: upstream, hang: hang}
	go p.serve()
	t.Cleanup(p.stop)
	return p
}

func (p *pgProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c)
		if p.hang {
			continue // hold the connection, say nothing
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.track(up)
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { _, _ = io.Copy(c, up); c.Close() }()
	}
}

func (p *pgProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

// stop is PostgreSQL stopping: every connection drops and new ones are
// refused.
func (p *pgProxy) stop() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// clientVia returns a client of a fresh schema whose pool reaches
// PostgreSQL through addr.
func clientVia(t *testing.T, schema, addr string) *sdk.Client {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testdb.SchemaURL(schema))
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	cfg.ConnConfig.Host = host
	p, _ := strconv.Atoi(port)
	cfg.ConnConfig.Port = uint16(p)
	cfg.ConnConfig.ConnectTimeout = 0 // the health check's deadline bounds it
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	c, err := sdk.NewClient(context.Background(), sdk.Config{Pool: pool, WakeSubjectPrefix: "test." + schema, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestHealthzDatabaseStopped: when PostgreSQL stops, /api/healthz answers
// 503 at once, with and without detail, naming the database check; when
// PostgreSQL hangs, it answers 503 once the check's deadline passes.
func TestHealthzDatabaseStopped(t *testing.T) {
	t.Parallel()
	_, schema := testdb.Schema(t)
	upstream, err := upstreamAddr()
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 300 * time.Millisecond

	t.Run("stopped", func(t *testing.T) {
		t.Parallel()
		proxy := startProxy(t, upstream, false)
		c := clientVia(t, schema, proxy.ln.Addr().String())
		h := server.New(server.Config{Client: c, HealthTimeout: timeout}).Handler()
		if code, rep, _ := detailed(t, h); code != http.StatusOK {
			t.Fatalf("before the stop: %d %+v, want 200", code, rep)
		}
		proxy.stop()
		for _, path := range []string{"/api/healthz", "/api/healthz?detailed=true", "/api/healthz?detailed=true"} {
			code, body, took := get(t, h, path)
			if code != http.StatusServiceUnavailable {
				t.Fatalf("GET %s with PostgreSQL stopped: %d %s, want 503", path, code, body)
			}
			if took > timeout+time.Second {
				t.Errorf("GET %s took %s with PostgreSQL stopped; want an answer within the %s check timeout", path, took, timeout)
			}
		}
		code, rep, _ := detailed(t, h)
		db := rep.check(t, "database")
		if code != http.StatusServiceUnavailable || rep.Status != server.StatusUnhealthy || db["status"] != "fail" || db["message"] == nil {
			t.Errorf("with PostgreSQL stopped: %d %+v, want 503, unhealthy, and a failing database check that says why", code, rep)
		}
		if w := rep.check(t, "workers"); w["status"] != "fail" {
			t.Errorf("workers check %v, want fail: the heartbeats cannot be read", w)
		}
	})

	t.Run("hung", func(t *testing.T) {
		t.Parallel()
		proxy := startProxy(t, upstream, true)
		c := clientVia(t, schema, proxy.ln.Addr().String())
		h := server.New(server.Config{Client: c, HealthTimeout: timeout}).Handler()
		code, rep, took := detailed(t, h)
		if code != http.StatusServiceUnavailable || rep.check(t, "database")["status"] != "fail" {
			t.Fatalf("with PostgreSQL hung: %d %+v, want 503 and a failing database check", code, rep)
		}
		if took < timeout || took > timeout+time.Second {
			t.Errorf("with PostgreSQL hung the answer took %s; want it right after the %s check timeout", took, timeout)
		}
	})
}

// upstreamAddr is the host:port of the PostgreSQL the tests use.
func upstreamAddr() (string, error) {
	cfg, err := pgxpool.ParseConfig(testdb.URL())
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))), nil
}
