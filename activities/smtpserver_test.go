package activities

import (
	"testing"

	"github.com/chronicle-engine/chronicle/internal/smtptest"
)

// newSMTPServer starts an in-process SMTP server for one test.
func newSMTPServer(t *testing.T, opts smtptest.Options) *smtptest.Server {
	t.Helper()
	s, err := smtptest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testEmailConfig points email.send at s without TLS.
func testEmailConfig(s *smtptest.Server) EmailConfig {
	return EmailConfig{Host: s.Host, Port: s.Port, TLS: TLSNone, From: "Chronicle <noreply@example.com>", HelloName: "test.local", Logger: quiet}
}
