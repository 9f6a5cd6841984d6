// Package smtptest runs a real SMTP server (github.com/emersion/go-smtp) in
// the process, on a loopback port, that keeps every message it accepts:
// the examples send their emails to it so that they run anywhere, and the
// tests of email.send check what arrived. It can offer STARTTLS with a
// self-signed certificate, require AUTH PLAIN, and refuse recipients with
// the SMTP replies a test chooses.
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one message the server accepted.
type Message struct {
	// From and To are the envelope (MAIL FROM, RCPT TO).
	From string
	To   []string
	// Data is the message as sent: header and body.
	Data []byte
	// User is the authenticated user, if any.
	User string
}

// Options configure a Server. The zero value is a plain server without
// authentication.
type Options struct {
	// TLS offers STARTTLS with a self-signed certificate for 127.0.0.1;
	// Server.CertPool trusts it.
	TLS bool
	// Users maps user names to passwords. When set, AUTH PLAIN is required
	// before MAIL FROM.
	Users map[string]string
	// OnMessage, when set, is called with every accepted message, from the
	// server's goroutine, before Messages returns it.
	OnMessage func(Message)
}

// Server is a running SMTP server.
type Server struct {
	// Host and Port are where it listens (127.0.0.1 and a free port).
	Host string
	Port int
	// CertPool trusts the server's certificate when Options.TLS is set.
	CertPool *x509.CertPool

	srv  *smtp.Server
	opts Options

	mu          sync.Mutex
	messages    []Message
	rcptTries   map[string]int
	reject      map[string]*smtp.SMTPError
	rejectTimes map[string]int
}

// Start starts a server on a free loopback port. Close stops it.
func Start(opts Options) (*Server, error) {
	s := &Server{opts: opts, rcptTries: map[string]int{}, reject: map[string]*smtp.SMTPError{}, rejectTimes: map[string]int{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.ErrorLog = discard{}
	if opts.TLS {
		cert, pool, err := selfSignedCert()
		if err != nil {
			return nil, err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.CertPool = pool
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("smtptest: listen: %w", err)
	}
	s.srv, s.Host, s.Port = srv, "127.0.0.1", l.Addr().(*net.TCPAddr).Port
	go func() { _ = srv.Serve(l) }()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// Reject makes RCPT TO addr fail with an SMTP reply, such as 550 5.1.1
// "mailbox unavailable", for the first times tries (0: always).
func (s *Server) Reject(addr string, code int, enhanced [3]int, message string, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject[addr] = &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode(enhanced), Message: message}
	s.rejectTimes[addr] = times
}

// Messages returns the messages accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// RcptTries returns how often RCPT TO named addr, refused or not.
func (s *Server) RcptTries(addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcptTries[addr]
}

type session struct {
	s    *Server
	user string
	from string
	to   []string
}

func (ss *session) AuthMechanisms() []string {
	if len(ss.s.opts.Users) == 0 {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		if pw, ok := ss.s.opts.Users[username]; !ok || pw != password {
			return errors.New("invalid username or password")
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if len(ss.s.opts.Users) > 0 && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s := ss.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcptTries[to]++
	if e, ok := s.reject[to]; ok && (s.rejectTimes[to] == 0 || s.rcptTries[to] <= s.rejectTimes[to]) {
		return e
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Message{From: ss.from, To: ss.to, Data: b, User: ss.user}
	// OnMessage runs first, so that whoever sees the message in Messages
	// also sees what OnMessage did.
	if ss.s.opts.OnMessage != nil {
		ss.s.opts.OnMessage(m)
	}
	ss.s.mu.Lock()
	ss.s.messages = append(ss.s.messages, m)
	ss.s.mu.Unlock()
	return nil
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

type discard struct{}

func (discard) Printf(string, ...any) {}
func (discard) Println(...any)        {}

// selfSignedCert makes a certificate for 127.0.0.1 and localhost, and a
// pool that trusts it.
func selfSignedCert() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}
