package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// ErrViolation marks a run in which a promise was broken; the Result says
// which figures are wrong.
var ErrViolation = errors.New("chaos: invariant violated")

// Defaults of Config.
const (
	// DefaultDuration bounds one scenario's fault phase in the short form.
	DefaultDuration = 5 * time.Second
	// DefaultSettle bounds how long a scenario waits, after its faults stop,
	// for every job to finish.
	DefaultSettle = 45 * time.Second
)

// Config says how to run scenarios. Only Command is required.
type Config struct {
	// DatabaseURL is the PostgreSQL every scenario uses; each creates its
	// own schema there and drops it afterwards. Defaults to $DATABASE_URL,
	// then the local development database.
	DatabaseURL string
	// NATSURL defaults to $NATS_URL, then nats://127.0.0.1:4222.
	NATSURL string
	// Duration bounds each scenario's fault phase. Defaults to
	// DefaultDuration (the short form).
	Duration time.Duration
	// Settle bounds the wait for all jobs after the faults. Defaults to
	// DefaultSettle.
	Settle time.Duration
	// Seed makes the random choices (kill times, fault rolls) repeatable.
	// Zero picks one from the clock; the Result reports it.
	Seed int64
	// Command starts one worker process: the returned command, run with
	// the worker environment appended, must call RunWorkerFromEnv. The
	// chronicle binary returns `chronicle chaos worker`; tests re-execute
	// their own binary.
	Command func() *exec.Cmd
	// KeepSchema leaves each scenario's schema in place for inspection.
	KeepSchema bool
	// Log receives progress; defaults to discarding it.
	Log *slog.Logger
}

func (c *Config) defaults() error {
	if c.Command == nil {
		return errors.New("chaos: Config.Command is required: it starts a worker process that calls RunWorkerFromEnv")
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = firstNonEmpty(os.Getenv("DATABASE_URL"), "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	}
	if c.NATSURL == "" {
		c.NATSURL = firstNonEmpty(os.Getenv("NATS_URL"), "nats://127.0.0.1:4222")
	}
	if c.Duration <= 0 {
		c.Duration = DefaultDuration
	}
	if c.Settle <= 0 {
		c.Settle = DefaultSettle
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano()
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// Result is the figures of one scenario run.
type Result struct {
	Scenario string
	Seed     int64
	Elapsed  time.Duration
	// Operations counts what the scenario asked of the system: jobs
	// enqueued (and, where the scenario has them, wakeups published).
	Operations int
	// Faults counts faults injected: kills, stops, cut connections,
	// injected SQL errors.
	Faults int
	// Lost counts committed jobs that did not succeed before the settle
	// deadline.
	Lost int
	// DuplicateSuccesses counts AttemptSucceeded events beyond the first
	// per job.
	DuplicateSuccesses int
	// DuplicateEffects counts ledger rows beyond the first per idempotency
	// key written after the key's step had been recorded: a broken promise.
	DuplicateEffects int
	// WindowEffects counts ledger rows beyond the first per key whose
	// earlier run died after its effect and before its step was recorded:
	// the one window WithIdempotency documents. Reported, not a violation.
	WindowEffects int
	// ExtraExecutions counts handler runs beyond one per job, in scenarios
	// that inject no fault that justifies a retry.
	ExtraExecutions int
	// StaleWrites counts events written by an attempt after it lost its
	// lease (fencing scenario).
	StaleWrites int
	// Verify is "OK" or the problems chronicle verify found.
	Verify string
	// Notes holds scenario-specific figures (recovery time, retried errors).
	Notes []string
	// Violations lists every broken promise, empty when the run passed.
	Violations []string
}

// OK reports whether every promise held.
func (r *Result) OK() bool { return len(r.Violations) == 0 }

func (r *Result) violate(format string, args ...any) {
	r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Scenario is one named fault pattern with its checks.
type Scenario struct {
	// Name is how --scenario selects it.
	Name string
	// Promise is the guarantee it exercises, one line.
	Promise string
	// Long marks scenarios that only run in the long form.
	Long bool
	run  func(ctx context.Context, e *env, r *Result) error
}

// Scenarios lists every scenario, most valuable first.
func Scenarios() []Scenario { return scenarios }

var scenarios = []Scenario{
	{Name: "kill9", Promise: "workers SIGKILLed mid-job: 0 lost, 0 duplicate successes, 1 effect per key", run: runKill9},
	{Name: "fencing", Promise: "a SIGSTOPped worker past its lease writes nothing and its handler is canceled", run: runFencing},
	{Name: "pgcut", Promise: "database connections cut (abruptly) under load: 0 lost, workers recover within 30s", run: runPGCut},
	{Name: "nats", Promise: "NATS down, duplicated and stray wakeups: 0 lost, 0 extra executions", run: runNATS},
	{Name: "sqlfaults", Promise: "transient SQL faults (40001, 57P01, timeouts): all jobs complete, only safe errors retried", run: runSQLFaults},
	{Name: "poison", Promise: "a corrupted stored event isolates its execution; others run; verify names it", run: runPoison},
	{Name: "leader", Promise: "the maintenance leader SIGKILLed repeatedly: every 1s cron tick fires exactly once, takeover within the leader TTL", run: runLeader},
	{Name: "rescue", Promise: "completion racing lease expiry: a completed job never reverts, one terminal event per attempt", run: runRescue},
	{Name: "clock", Promise: "leases expire by database time: a worker heartbeating at 2/3 of its lease is never timed out early", run: runClock},
	{Name: "random", Promise: "seeded random enqueues, workflow starts, signals, cancels, kills, connection cuts and NATS outages: every invariant holds", run: runRandom},
}

// Lookup returns the scenarios named by names ("all" for every one).
func Lookup(names []string, long bool) ([]Scenario, error) {
	var out []Scenario
	for _, n := range names {
		if n == "all" {
			for _, s := range scenarios {
				if long || !s.Long {
					out = append(out, s)
				}
			}
			continue
		}
		found := false
		for _, s := range scenarios {
			if s.Name == n {
				out, found = append(out, s), true
			}
		}
		if !found {
			return nil, fmt.Errorf("chaos: unknown scenario %q; choose from %s or all", n, strings.Join(Names(), ", "))
		}
	}
	return out, nil
}

// Names lists the scenario names.
func Names() []string {
	out := make([]string, len(scenarios))
	for i, s := range scenarios {
		out[i] = s.Name
	}
	return out
}

// Run runs one scenario in a fresh schema and returns its figures. The
// error is ErrViolation (wrapped) when a promise broke, or what stopped
// the scenario from running at all.
func Run(ctx context.Context, cfg Config, s Scenario) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	r := &Result{Scenario: s.Name, Seed: cfg.Seed}
	began := time.Now()
	e, err := newEnv(ctx, cfg, s.Name)
	if err != nil {
		return r, err
	}
	defer e.close()
	runErr := s.run(ctx, e, r)
	r.Elapsed = time.Since(began)
	if runErr != nil {
		r.violate("scenario did not complete: %v", runErr)
	}
	if r.Verify == "" {
		r.Verify = "not run"
	}
	if !r.OK() {
		return r, fmt.Errorf("%w in scenario %s (seed %d): %s", ErrViolation, s.Name, r.Seed, strings.Join(r.Violations, "; "))
	}
	return r, nil
}

// Print writes results as a table, then each result's notes and
// violations, with the seed that reproduces a failure.
func Print(w io.Writer, results []*Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tRESULT\tSEED\tELAPSED\tOPS\tFAULTS\tLOST\tDUP SUCCESS\tDUP EFFECTS\tWINDOW EFFECTS\tEXTRA RUNS\tSTALE WRITES\tVERIFY")
	for _, r := range results {
		res := "PASS"
		if !r.OK() {
			res = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", r.Scenario, res, r.Seed, r.Elapsed.Round(100*time.Millisecond),
			r.Operations, r.Faults, r.Lost, r.DuplicateSuccesses, r.DuplicateEffects, r.WindowEffects, r.ExtraExecutions, r.StaleWrites, firstLine(r.Verify))
	}
	_ = tw.Flush()
	for _, r := range results {
		for _, n := range r.Notes {
			fmt.Fprintf(w, "%s: %s\n", r.Scenario, n)
		}
		for _, v := range r.Violations {
			fmt.Fprintf(w, "%s: VIOLATION: %s (reproduce with --seed %d)\n", r.Scenario, v, r.Seed)
		}
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// MarkdownTable renders results as the table of docs/guarantees.md.
func MarkdownTable(results []*Result, when time.Time, command string) string {
	sorted := append([]*Result(nil), results...)
	sort.SliceStable(sorted, func(i, j int) bool { return order(sorted[i].Scenario) < order(sorted[j].Scenario) })
	var b strings.Builder
	fmt.Fprintf(&b, "Produced by `%s` on %s.\n\n", command, when.UTC().Format("2006-01-02 15:04 MST"))
	b.WriteString("| Scenario | Result | Seed | Elapsed | Operations | Faults | Lost | Duplicate successes | Duplicate effects | Window effects | Extra runs | Stale writes | Verify |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range sorted {
		res := "pass"
		if !r.OK() {
			res = "**FAIL**"
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %d | %d | %d | %d | %d | %d | %d | %d | %s |\n", r.Scenario, res, r.Seed, r.Elapsed.Round(100*time.Millisecond),
			r.Operations, r.Faults, r.Lost, r.DuplicateSuccesses, r.DuplicateEffects, r.WindowEffects, r.ExtraExecutions, r.StaleWrites, firstLine(r.Verify))
	}
	return b.String()
}

func order(name string) int {
	for i, s := range scenarios {
		if s.Name == name {
			return i
		}
	}
	return len(scenarios)
}

// Table markers in docs/guarantees.md: UpdateDoc replaces what lies
// between them.
const (
	tableBegin = "<!-- chaos-results:begin -->"
	tableEnd   = "<!-- chaos-results:end -->"
)

// UpdateDoc replaces the results table between the chaos-results markers
// of the Markdown file at path.
func UpdateDoc(path, table string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s to update its results table: %w", path, err)
	}
	s := string(b)
	i, j := strings.Index(s, tableBegin), strings.Index(s, tableEnd)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %s … %s markers; add them where the results table belongs", path, tableBegin, tableEnd)
	}
	table = keepOtherRows(s[i+len(tableBegin):j], table)
	s = s[:i+len(tableBegin)] + "\n" + table + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}

// keepOtherRows appends to table the rows of old whose scenario table
// does not have, so that a run of some scenarios updates their rows and
// keeps the others' (each row's seed and elapsed time tell its run apart).
func keepOtherRows(old, table string) string {
	have := map[string]bool{}
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Split(l, "|"); len(f) > 2 && strings.HasPrefix(l, "| ") && strings.TrimSpace(f[1]) != "Scenario" {
			have[strings.TrimSpace(f[1])] = true
		}
	}
	var kept []string
	for _, l := range strings.Split(old, "\n") {
		f := strings.Split(l, "|")
		if len(f) < 3 || !strings.HasPrefix(l, "| ") || l == "" {
			continue
		}
		name := strings.TrimSpace(f[1])
		if name == "Scenario" || name == "" || have[name] {
			continue
		}
		kept = append(kept, l)
	}
	if len(kept) == 0 {
		return table
	}
	return strings.TrimRight(table, "\n") + "\n" + strings.Join(kept, "\n") + "\n\nRows after the first " + fmt.Sprint(len(have)) + " are kept from earlier runs.\n"
}
