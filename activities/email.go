package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"log/slog"
	"maps"
	"mime"
	"net/textproto"
	"path/filepath"
	"slices"
	"strings"
	texttemplate "text/template"
	"time"

	mail "github.com/wneessen/go-mail"

	"github.com/chronicle-engine/chronicle/sdk"
)

// email.send defaults.
const (
	// DefaultSMTPPort is the submission port, used with STARTTLS.
	DefaultSMTPPort = 587
	// DefaultSMTPSPort is the port of implicit TLS (TLSImplicit).
	DefaultSMTPSPort = 465
	// DefaultEmailTimeout bounds one attempt: connecting, the TLS handshake,
	// authenticating and sending.
	DefaultEmailTimeout = 30 * time.Second
	// DefaultEmailIdempotencyTTL is how long a sent email's key keeps
	// another job with the same key from sending it again: 24 hours, as the
	// runbook's welcome email.
	DefaultEmailIdempotencyTTL = 24 * time.Hour
)

// TLSMode says how email.send protects its SMTP connection.
type TLSMode string

// TLS modes.
const (
	// TLSStartTLS upgrades the connection with STARTTLS and refuses to send
	// when the server does not offer it. The default.
	TLSStartTLS TLSMode = "starttls"
	// TLSOpportunistic uses STARTTLS when the server offers it and sends in
	// plain text otherwise.
	TLSOpportunistic TLSMode = "opportunistic"
	// TLSImplicit speaks TLS from the first byte (SMTPS, port 465).
	TLSImplicit TLSMode = "implicit"
	// TLSNone never encrypts: only for a relay on the same host or network.
	TLSNone TLSMode = "none"
)

// SMTPAuth names an SMTP authentication mechanism.
type SMTPAuth string

// SMTP authentication mechanisms.
const (
	// SMTPAuthAuto picks the strongest mechanism the server offers. The
	// default when EmailConfig.Username is set.
	SMTPAuthAuto SMTPAuth = "auto"
	// SMTPAuthPlain and SMTPAuthLogin send the password as it is, so they
	// are used only over TLS (or to localhost).
	SMTPAuthPlain SMTPAuth = "plain"
	SMTPAuthLogin SMTPAuth = "login"
	// SMTPAuthCRAMMD5 and SMTPAuthSCRAMSHA256 never send the password.
	SMTPAuthCRAMMD5     SMTPAuth = "cram-md5"
	SMTPAuthSCRAMSHA256 SMTPAuth = "scram-sha-256"
)

// EmailConfig configures email.send.
type EmailConfig struct {
	// Host is the SMTP server's host name. Required.
	Host string
	// Port defaults to DefaultSMTPPort (587), or DefaultSMTPSPort (465)
	// with TLSImplicit.
	Port int
	// TLS defaults to TLSStartTLS: no email leaves unencrypted.
	TLS TLSMode
	// TLSConfig defaults to the system's roots, checking the certificate
	// against Host, TLS 1.2 or later.
	TLSConfig *tls.Config
	// Username and Password authenticate when Username is set.
	Username string
	Password string
	// Auth defaults to SMTPAuthAuto when Username is set.
	Auth SMTPAuth
	// From is the sender of emails whose payload names none.
	From string
	// HelloName is the name sent in EHLO. Defaults to the host's name.
	HelloName string
	// Templates are the emails a payload can name in Email.Template: a
	// subject and a text and/or HTML body, executed with Email.Data. They
	// are parsed by RegisterEmailSend, so a broken template fails at start.
	Templates map[string]EmailTemplate
	// Timeout bounds one attempt. Defaults to DefaultEmailTimeout (30s).
	Timeout time.Duration
	// IdempotencyTTL is how long a sent email's idempotency key is kept.
	// Defaults to DefaultEmailIdempotencyTTL (24h).
	IdempotencyTTL time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// EmailTemplate is one kind of email. Subject and Text are text/template
// text, HTML is html/template text (so data is escaped); a template that
// uses a key missing from Email.Data fails the job for good.
type EmailTemplate struct {
	Subject string
	Text    string
	HTML    string
}

// Email is the payload of an email.send job.
type Email struct {
	// Type names the kind of email, such as "welcome": the {type} of the
	// idempotency key. Required.
	Type string `json:"type"`
	// RecipientID is the recipient's ID in your system: the {recipientId}
	// of the idempotency key. Required.
	RecipientID string `json:"recipient_id"`
	// UniqueID tells apart emails of one type to one recipient, such as an
	// order number: the {uniqueId} of the idempotency key. Defaults to the
	// job's ID, so that retries never send twice but a second job does; set
	// it to make a second job with the same IDs send nothing.
	UniqueID string `json:"unique_id,omitempty"`
	// From defaults to EmailConfig.From.
	From    string   `json:"from,omitempty"`
	To      []string `json:"to"`
	Cc      []string `json:"cc,omitempty"`
	Bcc     []string `json:"bcc,omitempty"`
	ReplyTo string   `json:"reply_to,omitempty"`
	// Template names one of EmailConfig.Templates, executed with Data.
	Template string         `json:"template,omitempty"`
	Data     map[string]any `json:"data,omitempty"`
	// Subject, Text and HTML are sent as they are when Template is empty.
	Subject     string       `json:"subject,omitempty"`
	Text        string       `json:"text,omitempty"`
	HTML        string       `json:"html,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
	// Headers are extra header fields, such as List-Unsubscribe.
	Headers map[string]string `json:"headers,omitempty"`
}

// Attachment is a file attached to an Email. Its content travels in the
// job's payload (base64 in JSON), so keep it small: the payload limit is
// sdk.Config.MaxPayloadBytes (1 MiB by default).
type Attachment struct {
	Filename string `json:"filename"`
	// ContentType defaults to the type of the file name's extension, else
	// application/octet-stream.
	ContentType string `json:"content_type,omitempty"`
	Content     []byte `json:"content"`
}

// ErrInvalidEmail: an Email payload cannot be sent as it is; the message
// says which field. Jobs fail with it for good.
var ErrInvalidEmail = errors.New("invalid email")

// EmailKey is the idempotency key of an email:
// email:{type}:{recipientId}:{uniqueId}.
func EmailKey(emailType, recipientID, uniqueID string) string {
	return "email:" + emailType + ":" + recipientID + ":" + uniqueID
}

// SMTPError is a failure the SMTP server reported with a reply code. A 5xx
// is permanent (the job is dead-lettered at once); a 4xx is retried.
type SMTPError struct {
	Code int
	// EnhancedCode is the RFC 3463 status, such as 5.1.1, when the server
	// sends one.
	EnhancedCode string
	Err          error
}

func (e *SMTPError) Error() string {
	if e.EnhancedCode != "" {
		return fmt.Sprintf("smtp %d (%s): %v", e.Code, e.EnhancedCode, e.Err)
	}
	return fmt.Sprintf("smtp %d: %v", e.Code, e.Err)
}

// Unwrap returns the library's error.
func (e *SMTPError) Unwrap() error { return e.Err }

// ErrorType names the failure for RetryPolicy.NonRetryableErrorTypes and
// the history.
func (e *SMTPError) ErrorType() string { return "SMTPError" }

// Permanent reports whether the server refused for good (a 5xx reply).
func (e *SMTPError) Permanent() bool { return e.Code >= 500 && e.Code < 600 }

// Mailer sends Emails through one SMTP server. RegisterEmailSend makes one
// for the email.send handler; use one directly to send from your own
// handlers with the same idempotency.
type Mailer struct {
	cfg       EmailConfig
	templates map[string]parsedTemplate
	log       *slog.Logger
}

type parsedTemplate struct {
	subject *texttemplate.Template
	text    *texttemplate.Template
	html    *htmltemplate.Template
}

// NewMailer checks cfg, fills in its defaults and parses its templates.
func NewMailer(cfg EmailConfig) (*Mailer, error) {
	if cfg.Host == "" {
		return nil, errors.New("email.send: EmailConfig.Host is empty; set the SMTP server's host name")
	}
	switch cfg.TLS {
	case "":
		cfg.TLS = TLSStartTLS
	case TLSStartTLS, TLSOpportunistic, TLSImplicit, TLSNone:
	default:
		return nil, fmt.Errorf("email.send: EmailConfig.TLS %q: want %s, %s, %s or %s", cfg.TLS, TLSStartTLS, TLSOpportunistic, TLSImplicit, TLSNone)
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultSMTPPort
		if cfg.TLS == TLSImplicit {
			cfg.Port = DefaultSMTPSPort
		}
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("email.send: EmailConfig.Port %d is not a TCP port", cfg.Port)
	}
	if cfg.Username != "" && cfg.Auth == "" {
		cfg.Auth = SMTPAuthAuto
	}
	if _, err := authType(cfg.Auth); err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultEmailTimeout
	}
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = DefaultEmailIdempotencyTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Mailer{cfg: cfg, templates: map[string]parsedTemplate{}, log: cfg.Logger}
	for name, t := range cfg.Templates {
		p, err := parseTemplate(name, t)
		if err != nil {
			return nil, err
		}
		m.templates[name] = p
	}
	return m, nil
}

func parseTemplate(name string, t EmailTemplate) (parsedTemplate, error) {
	var p parsedTemplate
	var err error
	if t.Subject == "" || t.Text == "" && t.HTML == "" {
		return p, fmt.Errorf("email.send: template %q needs a Subject and a Text or HTML body", name)
	}
	if p.subject, err = texttemplate.New(name + ".subject").Option("missingkey=error").Parse(t.Subject); err != nil {
		return p, fmt.Errorf("email.send: template %q subject: %w", name, err)
	}
	if t.Text != "" {
		if p.text, err = texttemplate.New(name + ".text").Option("missingkey=error").Parse(t.Text); err != nil {
			return p, fmt.Errorf("email.send: template %q text body: %w", name, err)
		}
	}
	if t.HTML != "" {
		if p.html, err = htmltemplate.New(name + ".html").Option("missingkey=error").Parse(t.HTML); err != nil {
			return p, fmt.Errorf("email.send: template %q HTML body: %w", name, err)
		}
	}
	return p, nil
}

func authType(a SMTPAuth) (mail.SMTPAuthType, error) {
	switch a {
	case "":
		return mail.SMTPAuthNoAuth, nil
	case SMTPAuthAuto:
		return mail.SMTPAuthAutoDiscover, nil
	case SMTPAuthPlain:
		return mail.SMTPAuthPlain, nil
	case SMTPAuthLogin:
		return mail.SMTPAuthLogin, nil
	case SMTPAuthCRAMMD5:
		return mail.SMTPAuthCramMD5, nil
	case SMTPAuthSCRAMSHA256:
		return mail.SMTPAuthSCRAMSHA256, nil
	}
	return "", fmt.Errorf("email.send: EmailConfig.Auth %q: want %s, %s, %s, %s or %s", a, SMTPAuthAuto, SMTPAuthPlain, SMTPAuthLogin, SMTPAuthCRAMMD5, SMTPAuthSCRAMSHA256)
}

// RegisterEmailSend registers the email.send handler on w: it sends the
// job's Email through the SMTP server of cfg, once per idempotency key.
func RegisterEmailSend(w *sdk.Worker, cfg EmailConfig) error {
	m, err := NewMailer(cfg)
	if err != nil {
		return err
	}
	return sdk.RegisterJobHandler(w, sdk.JobTypeEmailSend, m.Send)
}

// Send sends e unless an email with its idempotency key was already sent
// within EmailConfig.IdempotencyTTL, by this job's earlier attempts or by
// another job. It must run inside a job handler. A payload that cannot be
// sent as it is and an SMTP 5xx fail the job for good (sdk.Permanent);
// other failures are retried by the job's policy.
func (m *Mailer) Send(ctx context.Context, e Email) error {
	if e.UniqueID == "" {
		if info, ok := sdk.JobFromContext(ctx); ok {
			e.UniqueID = info.ID.String()
		}
	}
	if err := m.validate(e); err != nil {
		return sdk.Permanent(err)
	}
	key := EmailKey(e.Type, e.RecipientID, e.UniqueID)
	msg, err := m.message(e, key)
	if err != nil {
		return sdk.Permanent(err)
	}
	sent := false
	rec, err := sdk.WithIdempotencyResult(ctx, key, m.cfg.IdempotencyTTL, func(ctx context.Context) (SentEmail, error) {
		if err := m.deliver(ctx, msg); err != nil {
			return SentEmail{}, err
		}
		sent = true
		return SentEmail{MessageID: msg.GetMessageID(), Server: fmt.Sprintf("%s:%d", m.cfg.Host, m.cfg.Port), Recipients: len(e.To) + len(e.Cc) + len(e.Bcc)}, nil
	})
	if err != nil {
		return fmt.Errorf("email %s to %s: %w", key, strings.Join(e.To, ", "), err)
	}
	if sent {
		m.log.InfoContext(ctx, "email sent", "key", key, "to", strings.Join(e.To, ", "), "message_id", rec.MessageID)
	} else {
		m.log.InfoContext(ctx, "email already sent; not sending again", "key", key, "message_id", rec.MessageID)
	}
	return nil
}

// SentEmail is what the history records of a sent email, in the
// StepCompleted event of its idempotency key.
type SentEmail struct {
	MessageID  string `json:"message_id"`
	Server     string `json:"server"`
	Recipients int    `json:"recipients"`
}

func (m *Mailer) validate(e Email) error {
	var missing []string
	if e.Type == "" {
		missing = append(missing, "type")
	}
	if e.RecipientID == "" {
		missing = append(missing, "recipient_id")
	}
	if e.UniqueID == "" {
		missing = append(missing, "unique_id (required outside a job)")
	}
	if len(e.To) == 0 {
		missing = append(missing, "to")
	}
	if e.From == "" && m.cfg.From == "" {
		missing = append(missing, "from (or EmailConfig.From)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s missing", ErrInvalidEmail, strings.Join(missing, ", "))
	}
	for _, part := range []string{e.Type, e.RecipientID, e.UniqueID} {
		if strings.Contains(part, ":") {
			return fmt.Errorf("%w: %q contains ':', which separates the parts of the idempotency key email:{type}:{recipientId}:{uniqueId}", ErrInvalidEmail, part)
		}
	}
	if e.Template != "" {
		if _, ok := m.templates[e.Template]; !ok {
			return fmt.Errorf("%w: template %q is not in EmailConfig.Templates (%s)", ErrInvalidEmail, e.Template, strings.Join(m.templateNames(), ", "))
		}
	} else if e.Subject == "" || e.Text == "" && e.HTML == "" {
		return fmt.Errorf("%w: name a template, or give a subject and a text or html body", ErrInvalidEmail)
	}
	return nil
}

func (m *Mailer) templateNames() []string {
	return slices.Sorted(maps.Keys(m.templates))
}

// message builds the MIME message. Its Message-ID derives from the
// idempotency key, so that in the rare case that one email is sent twice
// (a worker that died between the server's acceptance and recording it)
// mail clients can still tell it is one message.
func (m *Mailer) message(e Email, key string) (*mail.Msg, error) {
	msg := mail.NewMsg()
	from := e.From
	if from == "" {
		from = m.cfg.From
	}
	if err := msg.From(from); err != nil {
		return nil, fmt.Errorf("%w: from %q: %v", ErrInvalidEmail, from, err)
	}
	for _, h := range []struct {
		name  string
		addrs []string
		set   func(...string) error
	}{{"to", e.To, msg.To}, {"cc", e.Cc, msg.Cc}, {"bcc", e.Bcc, msg.Bcc}} {
		if len(h.addrs) == 0 {
			continue
		}
		if err := h.set(h.addrs...); err != nil {
			return nil, fmt.Errorf("%w: %s %q: %v", ErrInvalidEmail, h.name, h.addrs, err)
		}
	}
	if e.ReplyTo != "" {
		if err := msg.ReplyTo(e.ReplyTo); err != nil {
			return nil, fmt.Errorf("%w: reply_to %q: %v", ErrInvalidEmail, e.ReplyTo, err)
		}
	}
	subject, text, html := e.Subject, e.Text, e.HTML
	if e.Template != "" {
		var err error
		if subject, text, html, err = m.render(e.Template, e.Data); err != nil {
			return nil, err
		}
	}
	msg.Subject(subject)
	switch {
	case text != "" && html != "":
		msg.SetBodyString(mail.TypeTextPlain, text)
		msg.AddAlternativeString(mail.TypeTextHTML, html)
	case html != "":
		msg.SetBodyString(mail.TypeTextHTML, html)
	default:
		msg.SetBodyString(mail.TypeTextPlain, text)
	}
	for i, a := range e.Attachments {
		if a.Filename == "" {
			return nil, fmt.Errorf("%w: attachment %d has no filename", ErrInvalidEmail, i+1)
		}
		ct := a.ContentType
		if ct == "" {
			if ct = mime.TypeByExtension(filepath.Ext(a.Filename)); ct == "" {
				ct = "application/octet-stream"
			}
		}
		msg.AttachReadSeeker(a.Filename, bytes.NewReader(a.Content), mail.WithFileContentType(mail.ContentType(ct)))
	}
	for name, value := range e.Headers {
		msg.SetGenHeader(mail.Header(textproto.CanonicalMIMEHeaderKey(name)), value)
	}
	sum := sha256.Sum256([]byte(key))
	domain := "chronicle.invalid"
	if at := strings.LastIndexByte(from, '@'); at >= 0 {
		domain = strings.TrimRight(from[at+1:], ">")
	}
	msg.SetMessageIDWithValue(hex.EncodeToString(sum[:16]) + "@" + domain)
	msg.SetDate()
	return msg, nil
}

func (m *Mailer) render(name string, data map[string]any) (subject, text, html string, err error) {
	t := m.templates[name]
	var b strings.Builder
	if err := t.subject.Execute(&b, data); err != nil {
		return "", "", "", fmt.Errorf("%w: template %q subject: %v", ErrInvalidEmail, name, err)
	}
	subject = strings.TrimSpace(b.String())
	if t.text != nil {
		b.Reset()
		if err := t.text.Execute(&b, data); err != nil {
			return "", "", "", fmt.Errorf("%w: template %q text body: %v", ErrInvalidEmail, name, err)
		}
		text = b.String()
	}
	if t.html != nil {
		b.Reset()
		if err := t.html.Execute(&b, data); err != nil {
			return "", "", "", fmt.Errorf("%w: template %q HTML body: %v", ErrInvalidEmail, name, err)
		}
		html = b.String()
	}
	return subject, text, html, nil
}

// deliver opens one SMTP connection and sends msg over it.
func (m *Mailer) deliver(ctx context.Context, msg *mail.Msg) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	opts := []mail.Option{mail.WithPort(m.cfg.Port), mail.WithTimeout(m.cfg.Timeout)}
	switch m.cfg.TLS {
	case TLSStartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case TLSOpportunistic:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	case TLSImplicit:
		opts = append(opts, mail.WithSSL())
	case TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	}
	if m.cfg.TLSConfig != nil {
		opts = append(opts, mail.WithTLSConfig(m.cfg.TLSConfig))
	}
	if m.cfg.HelloName != "" {
		opts = append(opts, mail.WithHELO(m.cfg.HelloName))
	}
	if m.cfg.Username != "" {
		at, _ := authType(m.cfg.Auth) // checked by NewMailer
		opts = append(opts, mail.WithSMTPAuth(at), mail.WithUsername(m.cfg.Username), mail.WithPassword(m.cfg.Password))
	}
	c, err := mail.NewClient(m.cfg.Host, opts...)
	if err != nil {
		return sdk.Permanent(fmt.Errorf("configure SMTP client for %s:%d: %w", m.cfg.Host, m.cfg.Port, err))
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return classifySMTP(fmt.Errorf("via %s:%d: %w", m.cfg.Host, m.cfg.Port, err))
	}
	return nil
}

// classifySMTP turns a server's reply into an SMTPError, permanent for a
// 5xx. Anything else (a network error, a timeout) is retried.
func classifySMTP(err error) error {
	code, enhanced := 0, ""
	var se *mail.SendError
	var te *textproto.Error
	switch {
	case errors.As(err, &se) && se.ErrorCode() != 0:
		code, enhanced = se.ErrorCode(), se.EnhancedStatusCode()
	case errors.As(err, &te):
		code = te.Code
	}
	if code == 0 {
		return err
	}
	smtpErr := &SMTPError{Code: code, EnhancedCode: enhanced, Err: err}
	if smtpErr.Permanent() {
		return sdk.Permanent(smtpErr)
	}
	return smtpErr
}
