package main

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/activities"
	"github.com/chronicle-engine/chronicle/sdk"
)

// activityFlags configure the built-in activities that `chronicle worker`
// runs: email.send through an SMTP server once --smtp-host is set,
// webhook.deliver once WEBHOOK_SECRET is set, and always the cleanup.*
// jobs. Until configured, email.send and webhook.deliver keep the demo
// handlers that only log their payload. data.export needs the
// application's data providers, so it runs in the application's own worker
// (activities.RegisterDataExport), never in this one.
type activityFlags struct {
	smtp            activities.EmailConfig
	smtpTLS         string
	webhookPrivate  bool
	webhookNetworks []string
	cleanup         sdk.CleanupConfig
}

// Environment variables of the activities, read when the flag is not given.
// Secrets are read only from the environment, never from flags, which any
// user of the machine can see.
const (
	envSMTPHost      = "SMTP_HOST"
	envSMTPPort      = "SMTP_PORT"
	envSMTPUsername  = "SMTP_USERNAME"
	envSMTPPassword  = "SMTP_PASSWORD"
	envSMTPTLS       = "SMTP_TLS"
	envSMTPFrom      = "SMTP_FROM"
	envWebhookSecret = "WEBHOOK_SECRET"
)

func (f *activityFlags) addFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.smtp.Host, "smtp-host", "", "SMTP server of email.send (env "+envSMTPHost+"); empty: email.send only logs its payload")
	fs.IntVar(&f.smtp.Port, "smtp-port", activities.DefaultSMTPPort, "SMTP port (env "+envSMTPPort+"); 465 with --smtp-tls implicit")
	fs.StringVar(&f.smtp.Username, "smtp-username", "", "SMTP user (env "+envSMTPUsername+"); the password comes from "+envSMTPPassword)
	fs.StringVar(&f.smtpTLS, "smtp-tls", string(activities.TLSStartTLS), "SMTP TLS mode: starttls, opportunistic, implicit or none (env "+envSMTPTLS+")")
	fs.StringVar(&f.smtp.From, "smtp-from", "", "sender of emails whose payload names none (env "+envSMTPFrom+")")
	fs.BoolVar(&f.webhookPrivate, "webhook-allow-private-networks", false, "let webhook.deliver reach loopback, private and link-local addresses")
	fs.StringSliceVar(&f.webhookNetworks, "webhook-allowed-networks", nil, "internal CIDR ranges webhook.deliver may reach, such as 10.1.0.0/16")
	fs.IntVar(&f.cleanup.DeadLetterRetentionDays, "dead-letter-retention-days", sdk.DefaultDeadLetterRetentionDays, "cleanup.dead_letters deletes resolved dead letters older than this")
	fs.DurationVar(&f.cleanup.HistoryRetention, "history-retention", sdk.DefaultHistoryRetention, "cleanup.histories deletes succeeded and canceled jobs older than this")
}

// register replaces the demo handlers of the configured activities with
// the real ones and registers the cleanup jobs.
func (f *activityFlags) register(cmd *cobra.Command, a *app, w *sdk.Worker) error {
	fs := cmd.Flags()
	fromEnv := func(flag, env string, dst *string) {
		if v := os.Getenv(env); v != "" && !fs.Changed(flag) {
			*dst = v
		}
	}
	fromEnv("smtp-host", envSMTPHost, &f.smtp.Host)
	fromEnv("smtp-username", envSMTPUsername, &f.smtp.Username)
	fromEnv("smtp-tls", envSMTPTLS, &f.smtpTLS)
	fromEnv("smtp-from", envSMTPFrom, &f.smtp.From)
	if v := os.Getenv(envSMTPPort); v != "" && !fs.Changed("smtp-port") {
		port, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%s=%q is not a port number", envSMTPPort, v)
		}
		f.smtp.Port = port
	}
	if f.smtpTLS == string(activities.TLSImplicit) && !fs.Changed("smtp-port") && os.Getenv(envSMTPPort) == "" {
		f.smtp.Port = activities.DefaultSMTPSPort
	}
	f.smtp.TLS, f.smtp.Password, f.smtp.Logger = activities.TLSMode(f.smtpTLS), os.Getenv(envSMTPPassword), a.log

	cfg := activities.Config{Cleanup: f.cleanup}
	if f.smtp.Host != "" {
		cfg.Email = &f.smtp
		a.log.Info("email.send delivers through SMTP", "host", f.smtp.Host, "port", f.smtp.Port, "tls", f.smtp.TLS)
	} else {
		a.log.Warn("email.send only logs its payload: set --smtp-host or " + envSMTPHost + " to send email")
	}
	if secret := os.Getenv(envWebhookSecret); secret != "" {
		wc := &activities.WebhookConfig{Secret: []byte(secret), AllowPrivateNetworks: f.webhookPrivate, Logger: a.log}
		for _, n := range f.webhookNetworks {
			p, err := netip.ParsePrefix(n)
			if err != nil {
				return fmt.Errorf("--webhook-allowed-networks %q: %v; write a CIDR range such as 10.1.0.0/16", n, err)
			}
			wc.AllowedNetworks = append(wc.AllowedNetworks, p)
		}
		cfg.Webhook = wc
		a.log.Info("webhook.deliver posts signed webhooks", "allow_private_networks", f.webhookPrivate, "allowed_networks", f.webhookNetworks)
	} else {
		a.log.Warn("webhook.deliver only logs its payload: set " + envWebhookSecret + " to sign and deliver webhooks")
	}
	return activities.RegisterAll(w, cfg)
}
