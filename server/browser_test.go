package server_test

import (
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/chronicle-engine/chronicle/sdk"
)

// screenshotDir is where the browser tests save their screenshots: the
// repository's artifacts/ directory, which git ignores.
const screenshotDir = "../artifacts/screenshots"

// chromium finds the headless browser: $CHROMIUM, else chromium on PATH.
// The browser tests fail, never skip, without one.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the admin UI's browser tests need Chromium and found none on PATH; install Debian's package " +
		"(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium), or set CHROMIUM to a Chromium or Chrome binary; .ci/run installs it")
	return ""
}

// browser starts a headless Chromium with a fresh profile that sends the
// basic-auth login of the test server with every request.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// No timeout on the context that starts the browser: it would stop the
	// browser. Each step below gets its own.
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPassword))
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		t.Fatalf("set the login header: %v", err)
	}
	return ctx
}

// stepTimeout bounds each browser step.
const stepTimeout = 20 * time.Second

// run runs browser actions, failing the test with what was being done.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// browserValue runs one browser action that returns a value.
func browserValue[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// text reads the visible text of the first element matching sel.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return browserValue(t, ctx, "read "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// screenshot saves the whole page as artifacts/screenshots/name.png.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := browserValue(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotDir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitText reloads the page until the element's text contains want.
func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		sctx, cancel := context.WithTimeout(ctx, stepTimeout)
		err := chromedp.Do(sctx, chromedp.WaitVisible(chromedp.CSS(sel)))
		var s string
		if err == nil {
			s, err = chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
		}
		cancel()
		if err == nil && strings.Contains(s, want) {
			return
		}
		if time.Now().After(deadline) {
			screenshot(t, ctx, "failure")
			loc := browserValue(t, ctx, "read the location", chromedp.Location())
			t.Fatalf("browser: at %s, %s shows %q, want it to contain %q (err %v); artifacts/screenshots/failure.png shows the page", loc, sel, s, want, err)
		}
		time.Sleep(100 * time.Millisecond)
		run(t, ctx, "reload", chromedp.Reload())
	}
}

// TestAdminUIInBrowser drives the admin UI in headless Chromium the way
// the runbook's operator does: open /admin/jobs, find a dead-lettered job,
// read its history, Retry it and see it succeed; Resolve another with
// notes and see the notes in its history; bulk-resolve the rest after a
// confirmation naming how many; see a killed worker as stale; signal a
// workflow; pause a schedule. It saves screenshots of the main pages.
func TestAdminUIInBrowser(t *testing.T) {
	t.Parallel()
	e := newWebEnv(t)
	if err := e.c.RegisterWorkflow(Approval); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e.startWorker("ui-worker-1")
	wf, err := e.c.NewWorker(sdk.WorkerConfig{ID: "ui-workflows", PollInterval: 20 * time.Millisecond, Queues: map[string]int{"workflows": 5}})
	if err != nil {
		t.Fatal(err)
	}
	if err := wf.RegisterWorkflow(Approval); err != nil {
		t.Fatal(err)
	}
	if err := wf.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wf.Stop(context.Background()) })
	insertStaleWorker(t, e.c, "killed-worker-7", 5*time.Minute)
	for range 6 {
		if _, err := e.c.Enqueue(ctx, "web.ok", map[string]string{"hello": "world"}); err != nil {
			t.Fatal(err)
		}
	}
	dead := e.deadLetters(5)
	if _, err := e.c.CreateSchedule(ctx, sdk.ScheduleOptions{Name: "nightly-export", Cron: "0 2 * * *", JobType: "web.ok"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.StartWorkflow(ctx, sdk.StartWorkflowOptions{ID: "order-1234", TaskQueue: "workflows"}, Approval, "order-1234"); err != nil {
		t.Fatal(err)
	}
	b := browser(t)

	// The overview: counts, the chart, and the runbook's alerts.
	run(t, b, "open /admin/jobs", chromedp.Navigate(e.url+"/admin/jobs"), chromedp.WaitVisible(chromedp.CSS(".cards")))
	alerts := text(t, b, ".alerts")
	for _, want := range []string{"5 new dead letters", "Worker killed-worker-7 is stale"} {
		if !strings.Contains(alerts, want) {
			t.Errorf("overview alerts %q lack %q", alerts, want)
		}
	}
	screenshot(t, b, "overview")

	// Find the first dead letter and read its history.
	target := dead[0].String()
	run(t, b, "open the dead letter from the overview", chromedp.Click(chromedp.CSS(`a[href="/admin/jobs/`+target+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("#history")))
	if got := text(t, b, "#job-id"); got != target {
		t.Fatalf("job page of %q, want %s", got, target)
	}
	history := text(t, b, "#history")
	for _, want := range []string{"JobEnqueued", "AttemptStarted", "AttemptFailed", "smtp: 554 mailbox unavailable", "JobDeadLettered", "ui-worker-1"} {
		if !strings.Contains(history, want) {
			t.Errorf("the history lacks %q:\n%s", want, history)
		}
	}
	if chain := text(t, b, "#chain"); !strings.Contains(chain, "verified") {
		t.Errorf("chain badge %q, want verified", chain)
	}
	screenshot(t, b, "job-dead-lettered")

	// The fix is deployed: Retry, and see it succeed.
	e.fixed.Store(true)
	run(t, b, "click Retry", chromedp.SendKeys(chromedp.CSS(`input[name="note"]`), "SMTP relay fixed"),
		chromedp.Click(chromedp.CSS("#retry")), chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
	waitText(t, b, "#job-status", "succeeded")
	history = text(t, b, "#history")
	for _, want := range []string{"JobRetried", testUser, "SMTP relay fixed", "AttemptSucceeded"} {
		if !strings.Contains(history, want) {
			t.Errorf("after Retry the history lacks %q:\n%s", want, history)
		}
	}
	screenshot(t, b, "job-retried")
	e.fixed.Store(false)

	// Resolve another with notes, from the dead-letter page.
	run(t, b, "open dead letters", chromedp.Navigate(e.url+"/admin/dead-letters"), chromedp.WaitVisible(chromedp.CSS("#dead-letters")))
	if got := text(t, b, "#dead-count"); !strings.HasPrefix(got, "4 dead letters") {
		t.Errorf("dead-letter count %q, want 4", got)
	}
	screenshot(t, b, "dead-letters")
	second := dead[1].String()
	notes := "Customer deleted the account <b>before</b> delivery; nothing to send."
	run(t, b, "resolve with notes", chromedp.Click(chromedp.CSS(`a[href="/admin/jobs/`+second+`#dead-letter-actions"]`)),
		chromedp.WaitVisible(chromedp.CSS("#resolve-notes")),
		chromedp.SendKeys(chromedp.CSS("#resolve-notes"), notes),
		chromedp.Click(chromedp.CSS("#resolve")), chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
	if st := text(t, b, "#job-status"); st != "resolved" {
		t.Errorf("after Resolve the status is %q", st)
	}
	history = text(t, b, "#history")
	if !strings.Contains(history, "JobResolved") || !strings.Contains(history, notes) {
		t.Errorf("after Resolve the history lacks JobResolved with the notes (shown as text, not markup):\n%s", history)
	}
	screenshot(t, b, "job-resolved")
	if ev := e.events(dead[1], "JobResolved"); len(ev) != 1 || ev[0]["actor"] != testUser || ev[0]["notes"] != notes {
		t.Errorf("JobResolved %v, want actor %s and the notes", ev, testUser)
	}

	// Bulk: resolve the remaining three after a confirmation naming them.
	run(t, b, "bulk resolve", chromedp.Navigate(e.url+"/admin/dead-letters?error=mailbox"), chromedp.WaitVisible(chromedp.CSS("#bulk-resolve")),
		chromedp.SendKeys(chromedp.CSS(`form:has(#bulk-resolve) input[name="notes"]`), "Bounced addresses"),
		chromedp.Click(chromedp.CSS("#bulk-resolve")), chromedp.WaitVisible(chromedp.CSS("#confirm-question")))
	if q := text(t, b, "#confirm-question"); !strings.Contains(q, "Resolve 3 dead letters") || !strings.Contains(q, "mailbox") {
		t.Errorf("confirmation %q, want it to name 3 dead letters and the filter", q)
	}
	screenshot(t, b, "bulk-confirm")
	run(t, b, "confirm", chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
	if f := text(t, b, ".flash.ok"); !strings.Contains(f, "Dead letters resolved: 3.") {
		t.Errorf("after the bulk resolve: %q", f)
	}
	if n, err := e.c.CountDeadLetters(ctx, sdk.DeadLetterFilter{}); err != nil || n != 0 {
		t.Errorf("%d dead letters left (%v), want 0", n, err)
	}

	// Workers: the killed worker is stale and highlighted, the live one alive.
	run(t, b, "open workers", chromedp.Navigate(e.url+"/admin/workers"), chromedp.WaitVisible(chromedp.CSS("#workers")))
	if row := text(t, b, `tr[data-worker="killed-worker-7"]`); !strings.Contains(row, "stale") || !strings.Contains(row, "killed-host") {
		t.Errorf("killed worker's row %q, want stale", row)
	}
	if class := browserValue(t, b, "read the row's class", chromedp.AttributeValue(chromedp.CSS(`tr[data-worker="killed-worker-7"]`), "class")).Value; class != "stale" {
		t.Errorf("killed worker's row class %q, want stale (highlighted)", class)
	}
	if row := text(t, b, `tr[data-worker="ui-worker-1"]`); !strings.Contains(row, "alive") {
		t.Errorf("live worker's row %q, want alive", row)
	}
	screenshot(t, b, "workers")

	// The job list with a filter.
	run(t, b, "open jobs", chromedp.Navigate(e.url+"/admin/jobs/list?status=succeeded"), chromedp.WaitVisible(chromedp.CSS("#jobs")))
	if list := text(t, b, "#jobs"); !strings.Contains(list, target) || strings.Contains(list, second) {
		t.Errorf("succeeded jobs list: want the retried job and not the resolved one:\n%s", list)
	}
	screenshot(t, b, "jobs")

	// A workflow waiting for a signal: send it from the page.
	run(t, b, "open the workflow", chromedp.Navigate(e.url+"/admin/workflows"), chromedp.WaitVisible(chromedp.CSS("#workflows")),
		chromedp.Click(chromedp.CSS(`#workflows a`)), chromedp.WaitVisible(chromedp.CSS("#workflow-id")))
	waitText(t, b, "#history", "WorkflowTaskCompleted")
	screenshot(t, b, "workflow-running")
	run(t, b, "signal", chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "approve"),
		chromedp.SendKeys(chromedp.CSS(`input[name="input"]`), `"dave"`),
		chromedp.Click(chromedp.CSS("#signal")), chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
	waitText(t, b, "#workflow-status", "completed")
	if sig := text(t, b, "#signals"); !strings.Contains(sig, "approve") || !strings.Contains(sig, testUser) {
		t.Errorf("signals table %q, want approve from %s", sig, testUser)
	}
	screenshot(t, b, "workflow-completed")

	// Schedules: pause one.
	run(t, b, "pause the schedule", chromedp.Navigate(e.url+"/admin/schedules"), chromedp.WaitVisible(chromedp.CSS("#schedules")),
		chromedp.SendKeys(chromedp.CSS(`tr[data-schedule="nightly-export"] input[name="reason"]`), "export bucket migration"),
		chromedp.Click(chromedp.CSS(`tr[data-schedule="nightly-export"] button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
	if row := text(t, b, `tr[data-schedule="nightly-export"]`); !strings.Contains(row, "paused") {
		t.Errorf("schedule row %q, want paused", row)
	}
	screenshot(t, b, "schedules")

	run(t, b, "open audit", chromedp.Navigate(e.url+"/admin/audit"), chromedp.WaitVisible(chromedp.CSS("#audit")))
	if a := text(t, b, "#audit"); !strings.Contains(a, "SchedulePaused") || !strings.Contains(a, "JobResolved") || !strings.Contains(a, "JobRetried") {
		t.Errorf("audit page lacks the actions:\n%s", a)
	}
	// The overview afterwards: the chart has the hour's outcomes.
	run(t, b, "open /admin/jobs", chromedp.Navigate(e.url+"/admin/jobs"), chromedp.WaitVisible(chromedp.CSS(".chart")))
	screenshot(t, b, "overview-after")
}
