package activities

import (
	"archive/zip"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chronicle-engine/chronicle/sdk"
)

// data.export defaults.
const (
	// DefaultExportExpiry is how long an export is kept for the user to
	// download: 7 days.
	DefaultExportExpiry = 7 * 24 * time.Hour
	// JobTypeCleanupDataExports deletes expired exports. RegisterDataExport
	// registers its handler; schedule it (daily, say) or enqueue it.
	JobTypeCleanupDataExports = "cleanup.data_exports"
	// EmailTypeDataExport is the Email.Type of export notifications.
	EmailTypeDataExport = "data_export"
)

// ErrInvalidExport: an export request cannot be run as it is; the message
// says which field. Jobs fail with it for good.
var ErrInvalidExport = errors.New("invalid export request")

// ExportProvider supplies one kind of a user's data to data.export, such as
// their profile, orders or messages. The application implements it.
type ExportProvider interface {
	// Name names the provider's file in the archive, NAME.json: lower-case
	// letters, digits, '_' and '-'.
	Name() string
	// Export calls emit once per record of the user's data and returns when
	// all are emitted. Each record is encoded as JSON at once and not kept,
	// so a provider that streams from its store (a database cursor) exports
	// any amount of data in little memory. When emit returns an error (the
	// job's context ended, the disk is full), stop and return it.
	Export(ctx context.Context, userID string, emit func(record any) error) error
}

// NewExportProvider makes an ExportProvider of a name and a function.
func NewExportProvider(name string, export func(ctx context.Context, userID string, emit func(record any) error) error) ExportProvider {
	return funcProvider{name: name, export: export}
}

type funcProvider struct {
	name   string
	export func(ctx context.Context, userID string, emit func(record any) error) error
}

func (p funcProvider) Name() string { return p.name }
func (p funcProvider) Export(ctx context.Context, userID string, emit func(record any) error) error {
	return p.export(ctx, userID, emit)
}

// ExportConfig configures data.export.
type ExportConfig struct {
	// Dir is where archives and their manifests are written. Required; it
	// is created (mode 0700) when missing. Exports hold personal data: keep
	// it private.
	Dir string
	// Providers supply the data, one archive file each. At least one.
	Providers []ExportProvider
	// Expiry is how long an export is kept. Defaults to DefaultExportExpiry
	// (7 days); cleanup.data_exports deletes it after.
	Expiry time.Duration
	// Client enqueues the notification email (email.send) of requests that
	// name NotifyEmail. Required for those.
	Client *sdk.Client
	// NotifyTemplate names the EmailConfig template of the notification,
	// executed with the Manifest's fields (user_id, export_id, sha256,
	// size, expires_at, files) and download_url. Empty sends a built-in
	// plain-text email.
	NotifyTemplate string
	// DownloadURL returns the link put in the notification, such as a
	// signed URL of your download endpoint. Optional.
	DownloadURL func(Manifest) string
	// Now is the clock of creation and expiry times. Defaults to time.Now.
	Now func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// ExportRequest is the payload of a data.export job.
type ExportRequest struct {
	// UserID is whose data to export. Required.
	UserID string `json:"user_id"`
	// ExportID names the export and its files. Defaults to the job's ID.
	// Letters, digits, '_' and '-'.
	ExportID string `json:"export_id,omitempty"`
	// NotifyEmail, when set, is sent an email.send job once the export is
	// ready.
	NotifyEmail string `json:"notify_email,omitempty"`
}

// Manifest describes a finished export. It is written next to the archive
// as {ExportID}.manifest.json.
type Manifest struct {
	ExportID string `json:"export_id"`
	UserID   string `json:"user_id"`
	// Path is the archive's absolute path: {Dir}/{ExportID}.zip.
	Path string `json:"path"`
	// SHA256 is the hex SHA-256 of the archive file.
	SHA256    string         `json:"sha256"`
	Size      int64          `json:"size"`
	CreatedAt time.Time      `json:"created_at"`
	ExpiresAt time.Time      `json:"expires_at"`
	Files     []ManifestFile `json:"files"`
}

// ManifestFile is one file of an export archive.
type ManifestFile struct {
	Name    string `json:"name"`
	Records int64  `json:"records"`
}

// Exporter writes data exports. RegisterDataExport makes one for the
// data.export handler.
type Exporter struct {
	cfg ExportConfig
	dir string
	log *slog.Logger
}

// NewExporter checks cfg, fills in its defaults and creates Dir.
func NewExporter(cfg ExportConfig) (*Exporter, error) {
	if cfg.Dir == "" {
		return nil, errors.New("data.export: ExportConfig.Dir is empty; name the directory exports are written to")
	}
	if len(cfg.Providers) == 0 {
		return nil, errors.New("data.export: ExportConfig.Providers is empty; register at least one ExportProvider")
	}
	seen := map[string]bool{}
	for i, p := range cfg.Providers {
		if p == nil {
			return nil, fmt.Errorf("data.export: ExportConfig.Providers[%d] is nil", i)
		}
		name := p.Name()
		if !validName(name, false) {
			return nil, fmt.Errorf("data.export: provider name %q: use lower-case letters, digits, '_' and '-'", name)
		}
		if seen[name] || name == "export" {
			return nil, fmt.Errorf("data.export: provider name %q is used twice (or is the reserved \"export\")", name)
		}
		seen[name] = true
	}
	if cfg.Expiry <= 0 {
		cfg.Expiry = DefaultExportExpiry
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("data.export: ExportConfig.Dir %q: %w", cfg.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data.export: create ExportConfig.Dir: %w", err)
	}
	return &Exporter{cfg: cfg, dir: dir, log: cfg.Logger}, nil
}

// validName reports whether s is a non-empty name of letters, digits, '_'
// and '-' (lower-case letters only unless upper is set).
func validName(s string, upper bool) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || upper && r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// RegisterDataExport registers the data.export handler on w, and the
// cleanup.data_exports handler that deletes expired exports.
func RegisterDataExport(w *sdk.Worker, cfg ExportConfig) error {
	e, err := NewExporter(cfg)
	if err != nil {
		return err
	}
	if err := sdk.RegisterJobHandler(w, sdk.JobTypeDataExport, e.Handle); err != nil {
		return err
	}
	return w.Handle(JobTypeCleanupDataExports, func(ctx context.Context, _ json.RawMessage) error {
		_, err := e.DeleteExpired(ctx)
		return err
	})
}

// Handle is the data.export handler: Export, then the notification.
func (e *Exporter) Handle(ctx context.Context, req ExportRequest) error {
	_, err := e.Export(ctx, req)
	return err
}

// Export writes the user's data from every provider to a ZIP of JSON files,
// {Dir}/{ExportID}.zip, and its manifest next to it, and enqueues the
// notification when the request asks for one. It must run inside a job
// handler. The archive is written once per idempotency key
// export:{userId}:{exportId} within Expiry, and its Manifest (where it is,
// its checksum and expiry) is recorded in the job's history (the
// StepCompleted event of the key); a retry after a failed notification
// does not write it again. It is written to a temporary file and renamed
// into place, so a crashed attempt never leaves a partial archive under
// the final name.
func (e *Exporter) Export(ctx context.Context, req ExportRequest) (Manifest, error) {
	if req.ExportID == "" {
		if info, ok := sdk.JobFromContext(ctx); ok {
			req.ExportID = info.ID.String()
		}
	}
	if err := e.validate(req); err != nil {
		return Manifest{}, sdk.Permanent(err)
	}
	written := false
	m, err := sdk.WithIdempotencyResult(ctx, ExportKey(req.UserID, req.ExportID), e.cfg.Expiry, func(ctx context.Context) (Manifest, error) {
		m, err := e.write(ctx, req)
		written = err == nil
		return m, err
	})
	if err != nil {
		return Manifest{}, err
	}
	if written {
		e.log.InfoContext(ctx, "data export written", "export_id", m.ExportID, "user_id", m.UserID, "path", m.Path,
			"sha256", m.SHA256, "bytes", m.Size, "expires_at", m.ExpiresAt)
	} else {
		e.log.InfoContext(ctx, "data export already written; not writing again", "export_id", m.ExportID, "path", m.Path)
	}
	if req.NotifyEmail != "" {
		if err := e.notify(ctx, req, m); err != nil {
			return Manifest{}, fmt.Errorf("export %s: notify %s: %w", req.ExportID, req.NotifyEmail, err)
		}
	}
	return m, nil
}

// write writes the archive and its manifest.
func (e *Exporter) write(ctx context.Context, req ExportRequest) (Manifest, error) {
	now := e.cfg.Now().UTC().Truncate(time.Second)
	m := Manifest{ExportID: req.ExportID, UserID: req.UserID, Path: filepath.Join(e.dir, req.ExportID+".zip"),
		CreatedAt: now, ExpiresAt: now.Add(e.cfg.Expiry)}
	if err := e.writeArchive(ctx, &m); err != nil {
		return Manifest{}, fmt.Errorf("export %s of user %s: %w", req.ExportID, req.UserID, err)
	}
	if err := writeFileAtomic(e.manifestPath(req.ExportID), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}); err != nil {
		return Manifest{}, fmt.Errorf("export %s: write manifest: %w", req.ExportID, err)
	}
	return m, nil
}

// ExportKey is the idempotency key of an export: export:{userId}:{exportId}.
func ExportKey(userID, exportID string) string {
	return "export:" + userID + ":" + exportID
}

func (e *Exporter) validate(req ExportRequest) error {
	if req.UserID == "" {
		return fmt.Errorf("%w: user_id missing", ErrInvalidExport)
	}
	if !validName(req.ExportID, true) {
		return fmt.Errorf("%w: export_id %q: use letters, digits, '_' and '-' (it names the files), or leave it empty inside a job", ErrInvalidExport, req.ExportID)
	}
	if req.NotifyEmail != "" && strings.Contains(req.UserID, ":") {
		return fmt.Errorf("%w: user_id %q contains ':', so it cannot be the {recipientId} of the notification's idempotency key", ErrInvalidExport, req.UserID)
	}
	if req.NotifyEmail != "" && e.cfg.Client == nil {
		return fmt.Errorf("%w: notify_email is set but ExportConfig.Client is nil, so no email.send can be enqueued", ErrInvalidExport)
	}
	return nil
}

func (e *Exporter) manifestPath(exportID string) string {
	return filepath.Join(e.dir, exportID+".manifest.json")
}

// writeArchive streams every provider's records into the archive while
// hashing it, and fills in m's checksum, size and files.
func (e *Exporter) writeArchive(ctx context.Context, m *Manifest) error {
	return writeFileAtomic(m.Path, func(f io.Writer) error {
		h := sha256.New()
		counted := &countingWriter{w: io.MultiWriter(f, h)}
		// The ZIP writer only appends, so hashing the stream hashes the file.
		zw := zip.NewWriter(counted)
		for _, p := range e.cfg.Providers {
			n, err := writeProvider(ctx, zw, p, m.UserID, m.CreatedAt)
			if err != nil {
				return fmt.Errorf("provider %s: %w", p.Name(), err)
			}
			m.Files = append(m.Files, ManifestFile{Name: p.Name() + ".json", Records: n})
		}
		about, err := zw.CreateHeader(&zip.FileHeader{Name: "export.json", Method: zip.Deflate, Modified: m.CreatedAt})
		if err != nil {
			return err
		}
		enc := json.NewEncoder(about)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"export_id": m.ExportID, "user_id": m.UserID, "created_at": m.CreatedAt, "files": m.Files}); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		m.SHA256, m.Size = hex.EncodeToString(h.Sum(nil)), counted.n
		return nil
	})
}

// writeProvider writes one provider's records as a JSON array, one record
// per line, holding none of them after it is written.
func writeProvider(ctx context.Context, zw *zip.Writer, p ExportProvider, userID string, modified time.Time) (int64, error) {
	fw, err := zw.CreateHeader(&zip.FileHeader{Name: p.Name() + ".json", Method: zip.Deflate, Modified: modified})
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(fw, 32<<10)
	var n int64
	if _, err := bw.WriteString("["); err != nil {
		return 0, err
	}
	emit := func(record any) error {
		if n%1000 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		b, err := json.Marshal(record)
		if err != nil {
			return fmt.Errorf("record %d is not JSON: %w", n+1, err)
		}
		sep := ",\n"
		if n == 0 {
			sep = "\n"
		}
		if _, err := bw.WriteString(sep); err != nil {
			return err
		}
		if _, err := bw.Write(b); err != nil {
			return err
		}
		n++
		return nil
	}
	if err := p.Export(ctx, userID, emit); err != nil {
		return n, err
	}
	if _, err := bw.WriteString("\n]\n"); err != nil {
		return n, err
	}
	return n, bw.Flush()
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeFileAtomic writes path through a temporary file in the same
// directory, synced and renamed into place, so that readers see the whole
// file or none of it.
func writeFileAtomic(path string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// notify enqueues the email.send of a finished export. Its enqueue key
// makes a retried export enqueue it once.
func (e *Exporter) notify(ctx context.Context, req ExportRequest, m Manifest) error {
	link := ""
	if e.cfg.DownloadURL != nil {
		link = e.cfg.DownloadURL(m)
	}
	email := Email{Type: EmailTypeDataExport, RecipientID: req.UserID, UniqueID: req.ExportID, To: []string{req.NotifyEmail}}
	if e.cfg.NotifyTemplate != "" {
		email.Template = e.cfg.NotifyTemplate
		email.Data = map[string]any{"user_id": m.UserID, "export_id": m.ExportID, "sha256": m.SHA256, "size": m.Size,
			"expires_at": m.ExpiresAt.Format(time.RFC1123), "files": m.Files, "download_url": link}
	} else {
		var b strings.Builder
		fmt.Fprintf(&b, "Your data export %s is ready.\n\n", m.ExportID)
		if link != "" {
			fmt.Fprintf(&b, "Download it here: %s\n\n", link)
		}
		fmt.Fprintf(&b, "It is available until %s.\nSHA-256 of the archive: %s\n", m.ExpiresAt.Format(time.RFC1123), m.SHA256)
		email.Subject, email.Text = "Your data export is ready", b.String()
	}
	key := EmailKey(email.Type, email.RecipientID, email.UniqueID)
	_, err := e.cfg.Client.Enqueue(ctx, sdk.JobTypeEmailSend, email, sdk.WithIdempotencyKey(key, e.cfg.Expiry))
	return err
}

// DeleteExpired deletes the exports whose manifest says they expired, and
// returns how many. It is the cleanup.data_exports handler.
func (e *Exporter) DeleteExpired(ctx context.Context) (int, error) {
	paths, err := filepath.Glob(filepath.Join(e.dir, "*.manifest.json"))
	if err != nil {
		return 0, err
	}
	now := e.cfg.Now()
	deleted := 0
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return deleted, err
		}
		m, err := readManifest(p)
		if err != nil {
			e.log.WarnContext(ctx, "skipping unreadable export manifest", "path", p, "err", err)
			continue
		}
		if now.Before(m.ExpiresAt) {
			continue
		}
		archive := filepath.Join(e.dir, m.ExportID+".zip")
		if err := os.Remove(archive); err != nil && !errors.Is(err, os.ErrNotExist) {
			return deleted, fmt.Errorf("delete expired export %s: %w", archive, err)
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return deleted, fmt.Errorf("delete manifest %s: %w", p, err)
		}
		deleted++
		e.log.InfoContext(ctx, "expired data export deleted", "export_id", m.ExportID, "user_id", m.UserID, "expired_at", m.ExpiresAt)
	}
	return deleted, nil
}

// ReadManifest reads the manifest of an export from dir.
func ReadManifest(dir, exportID string) (Manifest, error) {
	if !validName(exportID, true) {
		return Manifest{}, fmt.Errorf("%w: export_id %q", ErrInvalidExport, exportID)
	}
	return readManifest(filepath.Join(dir, exportID+".manifest.json"))
}

func readManifest(path string) (Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("manifest %s: %w", path, err)
	}
	return m, nil
}
