package activities

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/internal/smtptest"
	"github.com/chronicle-engine/chronicle/sdk"
)

// messageRecord is a record the large provider makes up on the fly.
type messageRecord struct {
	ID      int    `json:"id"`
	UserID  string `json:"user_id"`
	Sent    string `json:"sent_at"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

// largeProvider yields n records of about 400 bytes each, made one at a
// time and never kept: a database cursor's behaviour.
func largeProvider(n int) ExportProvider {
	return NewExportProvider("messages", func(ctx context.Context, userID string, emit func(any) error) error {
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range n {
			rec := messageRecord{ID: i + 1, UserID: userID, Sent: base.Add(time.Duration(i) * time.Minute).Format(time.RFC3339),
				Subject: fmt.Sprintf("Message %d", i+1),
				Body:    fmt.Sprintf("%d: %s", i, strings.Repeat("lorem ipsum dolor sit amet ", 12))}
			if err := emit(rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// heapPeak samples the live heap until stop is called and returns the
// highest HeapAlloc seen.
func heapPeak() (stop func() uint64) {
	var (
		mu   sync.Mutex
		peak uint64
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		mu.Lock()
		peak = max(peak, ms.HeapAlloc)
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		sample()
		return peak
	}
}

// A provider yielding 100,000 records (about 40 MB of JSON) is exported in
// bounded memory: the heap never holds more than a few MB more than before,
// far less than the records. The archive is a valid ZIP whose SHA-256 is
// the manifest's and whose JSON holds every record.
//
// Not parallel: the heap is the process's, and tests running beside it
// would be measured too. Parallel tests start only after the serial ones.
func TestExportStreamsLargeExportInBoundedMemory(t *testing.T) {
	const records = 100_000
	dir := t.TempDir()
	e, err := NewExporter(ExportConfig{Dir: dir, Providers: []ExportProvider{
		NewExportProvider("profile", func(ctx context.Context, userID string, emit func(any) error) error {
			return emit(map[string]string{"user_id": userID, "name": "Ada Lovelace"})
		}),
		largeProvider(records),
	}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	stop := heapPeak()
	m, err := e.write(context.Background(), ExportRequest{UserID: "u-42", ExportID: "exp-large"})
	peak := stop()
	if err != nil {
		t.Fatal(err)
	}
	growth := int64(peak) - int64(before.HeapAlloc)
	t.Logf("archive %d bytes; heap before %.1f MiB, peak %.1f MiB (growth %.1f MiB)",
		m.Size, float64(before.HeapAlloc)/(1<<20), float64(peak)/(1<<20), float64(growth)/(1<<20))
	// The records as JSON are ~40 MB; holding them (or the archive) in
	// memory would grow the heap by more than that. Streaming keeps one
	// record, the deflate window and the buffers, plus garbage the GC has
	// not collected yet (GOGC lets the heap double before it runs).
	const limit = 16 << 20
	if growth > limit {
		t.Fatalf("heap grew by %.1f MiB while exporting, over the %d MiB bound: the export is not streaming", float64(growth)/(1<<20), limit>>20)
	}

	// The checksum is the file's, and the manifest next to it says so.
	f, err := os.Open(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	size, err := io.Copy(h, f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.SHA256 || size != m.Size {
		t.Fatalf("file sha256 %s (%d bytes), manifest says %s (%d bytes)", got, size, m.SHA256, m.Size)
	}
	onDisk, err := ReadManifest(dir, "exp-large")
	if err != nil {
		t.Fatal(err)
	}
	if onDisk.SHA256 != m.SHA256 || onDisk.Path != filepath.Join(dir, "exp-large.zip") || !onDisk.ExpiresAt.Equal(m.CreatedAt.Add(DefaultExportExpiry)) {
		t.Fatalf("manifest on disk %+v, want %+v", onDisk, m)
	}
	if len(m.Files) != 2 || m.Files[0] != (ManifestFile{Name: "profile.json", Records: 1}) || m.Files[1] != (ManifestFile{Name: "messages.json", Records: records}) {
		t.Fatalf("manifest files = %+v", m.Files)
	}

	// The archive is a valid ZIP of JSON files holding every record.
	zr, err := zip.OpenReader(m.Path)
	if err != nil {
		t.Fatalf("open archive: %v", err)
	}
	defer zr.Close()
	var names []string
	for _, zf := range zr.File {
		names = append(names, zf.Name)
	}
	if strings.Join(names, ",") != "profile.json,messages.json,export.json" {
		t.Fatalf("archive files = %v", names)
	}
	rc, err := zr.File[1].Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		t.Fatalf("messages.json does not start a JSON array: %v %v", tok, err)
	}
	n := 0
	for dec.More() {
		var rec messageRecord
		if err := dec.Decode(&rec); err != nil {
			t.Fatalf("record %d: %v", n+1, err)
		}
		n++
		if rec.ID != n || rec.UserID != "u-42" {
			t.Fatalf("record %d = id %d user %s", n, rec.ID, rec.UserID)
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim(']') || n != records {
		t.Fatalf("read %d records, end %v %v; want %d and the array closed", n, tok, err, records)
	}
}

// A provider that fails leaves no archive behind, only the error.
func TestExportProviderFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	boom := errors.New("orders database unavailable")
	e, err := NewExporter(ExportConfig{Dir: dir, Logger: quiet, Providers: []ExportProvider{
		largeProvider(10),
		NewExportProvider("orders", func(ctx context.Context, userID string, emit func(any) error) error {
			if err := emit(map[string]int{"order": 1}); err != nil {
				return err
			}
			return boom
		}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.write(context.Background(), ExportRequest{UserID: "u", ExportID: "exp-fail"})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "provider orders") {
		t.Fatalf("write = %v, want the provider's error naming it", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("directory holds %v after a failed export, want nothing", entries)
	}
}

// A data.export job, registered with RegisterAll, writes the archive,
// records the manifest in its history, notifies by email.send (delivered
// once), and another job for the same export does not write again.
// cleanup.data_exports deletes it once expired.
func TestDataExportJob(t *testing.T) {
	t.Parallel()
	srv := newSMTPServer(t, smtptest.Options{})
	dir := t.TempDir()
	var clock struct {
		sync.Mutex
		now time.Time
	}
	clock.now = time.Now()
	now := func() time.Time { clock.Lock(); defer clock.Unlock(); return clock.now }
	var runs atomic.Int32
	provider := NewExportProvider("profile", func(ctx context.Context, userID string, emit func(any) error) error {
		runs.Add(1)
		return emit(map[string]string{"user_id": userID, "email": "ada@example.com"})
	})
	b := setup(t, func(c *sdk.Client, w *sdk.Worker) error {
		emailCfg := testEmailConfig(srv)
		return RegisterAll(w, Config{
			Email: &emailCfg,
			Export: &ExportConfig{Dir: dir, Providers: []ExportProvider{provider}, Client: c, Now: now, Expiry: time.Hour,
				DownloadURL: func(m Manifest) string { return "https://example.com/exports/" + m.ExportID }, Logger: quiet},
		})
	})

	id := b.enqueue(t, sdk.JobTypeDataExport, ExportRequest{UserID: "u-7", NotifyEmail: "ada@example.com"})
	if j := b.waitSettled(t, id); j.Status != sdk.StatusSucceeded {
		t.Fatalf("export job %s: %s", j.Status, j.LastError)
	}
	steps := b.steps(t, id)
	var m Manifest
	if len(steps) != 1 || steps[0].Key != ExportKey("u-7", id.String()) || json.Unmarshal(steps[0].Result, &m) != nil {
		t.Fatalf("StepCompleted = %+v, want the export's manifest", steps)
	}
	if m.Path != filepath.Join(dir, id.String()+".zip") || len(m.SHA256) != 64 || !m.ExpiresAt.Equal(m.CreatedAt.Add(time.Hour)) {
		t.Fatalf("recorded manifest = %+v", m)
	}
	if _, err := os.Stat(m.Path); err != nil {
		t.Fatalf("archive: %v", err)
	}
	waitFor(t, "the notification email", 10*time.Second, func() bool { return len(srv.Messages()) == 1 })
	msg, err := mail.ReadMessage(bytes.NewReader(srv.Messages()[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	text := mimeParts(t, msg.Header, msg.Body)["text/plain"]
	if msg.Header.Get("Subject") != "Your data export is ready" {
		t.Errorf("notification subject %q", msg.Header.Get("Subject"))
	}
	for _, want := range []string{"https://example.com/exports/" + id.String(), m.SHA256, m.ExpiresAt.Format(time.RFC1123)} {
		if !strings.Contains(text, want) {
			t.Errorf("notification lacks %q:\n%s", want, text)
		}
	}

	// The same export enqueued again returns the recorded manifest and
	// does not notify twice.
	again := b.enqueue(t, sdk.JobTypeDataExport, ExportRequest{UserID: "u-7", ExportID: id.String(), NotifyEmail: "ada@example.com"})
	if j := b.waitSettled(t, again); j.Status != sdk.StatusSucceeded {
		t.Fatalf("second export job %s: %s", j.Status, j.LastError)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("provider ran %d times for export %s, want 1", n, id)
	}
	// The second job's notification was enqueued (or found) before it
	// succeeded: the enqueue key made it the first one.
	if jobs, err := b.client.ListJobs(context.Background(), sdk.JobFilter{Types: []string{sdk.JobTypeEmailSend}}); err != nil || len(jobs) != 1 {
		t.Fatalf("email.send jobs = %d (%v), want 1", len(jobs), err)
	}

	// Expired: cleanup.data_exports deletes the archive and its manifest.
	cleanup := b.enqueue(t, JobTypeCleanupDataExports, nil)
	if j := b.waitSettled(t, cleanup); j.Status != sdk.StatusSucceeded {
		t.Fatalf("cleanup %s: %s", j.Status, j.LastError)
	}
	if _, err := os.Stat(m.Path); err != nil {
		t.Fatalf("cleanup deleted an export that has not expired: %v", err)
	}
	clock.Lock()
	clock.now = clock.now.Add(2 * time.Hour)
	clock.Unlock()
	cleanup = b.enqueue(t, JobTypeCleanupDataExports, nil)
	if j := b.waitSettled(t, cleanup); j.Status != sdk.StatusSucceeded {
		t.Fatalf("cleanup %s: %s", j.Status, j.LastError)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("after cleanup the directory holds %v", entries)
	}

	// RegisterAll registered the SDK's cleanup jobs too.
	if j := b.waitSettled(t, b.enqueue(t, sdk.JobTypeCleanupIdempotencyKeys, nil)); j.Status != sdk.StatusSucceeded {
		t.Fatalf("%s: %s %s", sdk.JobTypeCleanupIdempotencyKeys, j.Status, j.LastError)
	}
}

func TestExportRefusesBadInput(t *testing.T) {
	t.Parallel()
	p := largeProvider(1)
	for _, tt := range []struct {
		name string
		cfg  ExportConfig
		want string
	}{
		{"no dir", ExportConfig{Providers: []ExportProvider{p}}, "Dir is empty"},
		{"no providers", ExportConfig{Dir: t.TempDir()}, "Providers is empty"},
		{"bad provider name", ExportConfig{Dir: t.TempDir(), Providers: []ExportProvider{NewExportProvider("../x", nil)}}, `provider name "../x"`},
		{"duplicate provider", ExportConfig{Dir: t.TempDir(), Providers: []ExportProvider{p, p}}, "used twice"},
	} {
		if _, err := NewExporter(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewExporter = %v, want %q", tt.name, err, tt.want)
		}
	}
	e, err := NewExporter(ExportConfig{Dir: t.TempDir(), Providers: []ExportProvider{p}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		req  ExportRequest
		want string
	}{
		{ExportRequest{ExportID: "x"}, "user_id missing"},
		{ExportRequest{UserID: "u", ExportID: "../../etc/passwd"}, "export_id"},
		{ExportRequest{UserID: "u", ExportID: "x", NotifyEmail: "a@example.com"}, "ExportConfig.Client is nil"},
	} {
		if err := e.validate(tt.req); !errors.Is(err, ErrInvalidExport) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("validate(%+v) = %v, want %q", tt.req, err, tt.want)
		}
	}
}
