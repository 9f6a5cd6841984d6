package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/chronicle-engine/chronicle/sdk"
)

// app holds what every command shares: the resolved configuration, the
// logger and the standard streams.
type app struct {
	databaseURL string
	natsURL     string
	logFormat   string
	logLevel    string

	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger
	// stopSignals restores default signal handling, so that a second
	// interrupt during a graceful shutdown kills the process.
	stopSignals func()
}

// exitError ends the process with code without printing anything more: the
// command has already said what went wrong.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// run executes the command line args and returns the process's exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, stopSignals: stop}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintln(stderr, "Error:", err)
	return 1
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "chronicle",
		Short: "Operate Chronicle, the durable job engine on an event log in PostgreSQL",
		Long: `chronicle migrates the schema, runs workers, enqueues and inspects jobs,
works the dead-letter queue, rebuilds projections and verifies the event log.

Configuration comes from flags, then environment variables, then defaults:
  --database-url  $DATABASE_URL  ` + sdk.DefaultDatabaseURL + `
  --nats-url      $NATS_URL      ` + sdk.DefaultNATSURL,
		// Errors are printed once by run; usage is printed only for
		// mistakes on the command line, never for runtime failures.
		SilenceErrors:     true,
		PersistentPreRunE: a.setup,
	}
	f := root.PersistentFlags()
	f.StringVar(&a.databaseURL, "database-url", sdk.DefaultDatabaseURL, "PostgreSQL URL (env DATABASE_URL)")
	f.StringVar(&a.natsURL, "nats-url", sdk.DefaultNATSURL, "NATS URL for worker wakeups (env NATS_URL)")
	f.StringVar(&a.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error")

	for _, cmd := range commands {
		root.AddCommand(cmd(a))
	}
	return root
}

// commands are the top-level commands, in the order help lists them. Each
// command's file adds its own in an init function, so that adding a
// command touches only its file.
var commands []func(*app) *cobra.Command

func init() {
	commands = append(commands, (*app).migrateCmd, (*app).workerCmd, (*app).enqueueCmd, (*app).jobsCmd,
		(*app).dlqCmd, (*app).projectionsCmd, (*app).verifyCmd, (*app).benchCmd)
}

// setup runs after the command line parsed: from here on a failure is not
// a usage mistake, so cobra stops printing usage with it.
func (a *app) setup(cmd *cobra.Command, _ []string) error {
	cmd.SilenceUsage = true
	cmd.Root().SilenceUsage = true
	flags := cmd.Flags()
	if !flags.Changed("database-url") {
		if v := os.Getenv("DATABASE_URL"); v != "" {
			a.databaseURL = v
		}
	}
	if !flags.Changed("nats-url") {
		if v := os.Getenv("NATS_URL"); v != "" {
			a.natsURL = v
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", a.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(a.logFormat) {
	case "text":
		a.log = slog.New(slog.NewTextHandler(a.stderr, opts))
	case "json":
		a.log = slog.New(slog.NewJSONHandler(a.stderr, opts))
	default:
		return fmt.Errorf("--log-format %q: want text or json", a.logFormat)
	}
	return nil
}

// client connects to the database, and to NATS when wake is true (commands
// that make work ready wake idle workers). It enqueues any job type: the
// CLI acts for processes whose types it does not know.
func (a *app) client(ctx context.Context, wake bool) (*sdk.Client, error) {
	return sdk.NewClient(ctx, sdk.Config{
		DatabaseURL:            a.databaseURL,
		NATSURL:                a.natsURL,
		DisableNATS:            !wake,
		AllowUnregisteredTypes: true,
		Logger:                 a.log,
	})
}

// defaultActor names the operator in events: $USER@host, else "cli".
func defaultActor() string {
	user := os.Getenv("USER")
	host, _ := os.Hostname()
	switch {
	case user != "" && host != "":
		return user + "@" + host
	case user != "":
		return user
	}
	return "cli"
}

// showHelp is the action of a command group run without a subcommand; an
// unknown subcommand is an error (cobra.NoArgs), not a silent help page.
func showHelp(cmd *cobra.Command, _ []string) error { return cmd.Help() }
