package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lvsdirector/director/internal/safefile"

	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/policy/drain"
	"github.com/lvsdirector/director/policy/override"
	"github.com/lvsdirector/director/statefile"
)

// File I/O stays off the loop: each read or write runs in a goroutine of
// its own and hands its result back, and the loop waits at most
// Options.FileTimeout for it. A file system that hangs (a dead NFS mount)
// costs the loop that long, once, never forever; a FIFO, socket or device
// where a regular file belongs is refused without being opened for
// blocking reads.

// maxStateFileBytes bounds the state file read at start: it lists
// overrides and services, a few hundred bytes each.
const maxStateFileBytes = 64 << 20

// maxMaintFileBytes bounds a maintenance file: its first line is all
// that is read, and a bigger one is not something an operator wrote.
const maxMaintFileBytes = 1 << 20

// maxMaintFiles bounds how many maintenance files one read takes.
const maxMaintFiles = 100000

// offLoop runs f in a goroutine and waits up to timeout (or ctx) for it.
// A timed-out f goes on in the background; Run waits for it before it
// returns (waitFiles).
func (e *Engine) offLoop(ctx context.Context, what string, f func() error) error {
	done := make(chan error, 1)
	e.files.Go(func() { done <- f() })
	t := time.NewTimer(e.opts.FileTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("%s did not finish within %s (a hung file system?)", what, e.opts.FileTimeout)
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
}

// waitFiles waits, boundedly, for file operations still in flight.
func (e *Engine) waitFiles() {
	done := make(chan struct{})
	go func() { e.files.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(e.opts.FileTimeout):
		e.log.Error("file operations still hang at exit; leaving them", "waited", e.opts.FileTimeout)
	}
}

// stateFileKeep is what the state file holds and what it should.
type stateFileKeep struct {
	dirty bool // overrides changed without being saved
	// keys is the list of managed services the file holds (normalized);
	// nil leaves the list out of the file.
	keys  map[ipvs.ServiceKey]bool
	saved bool // the file holds keys
	// loaded is the list the file held at start; nil when it had none (no
	// file, a corrupt one, or one written by an older director).
	loaded  map[ipvs.ServiceKey]bool
	failing bool // writing the list fails: logged once
	writes  chan stateWrite
}

type stateWrite struct {
	data []byte
	done chan error
}

// stateWriter is the goroutine that writes the state file.
type stateWriter struct {
	jobs chan stateWrite
	done chan struct{}
}

// startStateWriter starts the state file's writer; stop ends it.
func (e *Engine) startStateWriter() *stateWriter {
	w := &stateWriter{jobs: make(chan stateWrite), done: make(chan struct{})}
	e.stateFile.writes = w.jobs
	path := e.opts.StateFile
	go func() {
		defer close(w.done)
		for job := range w.jobs {
			job.done <- safefile.WriteFileAtomic(path, job.data, 0o600)
		}
	}()
	return w
}

func (w *stateWriter) stop() {
	close(w.jobs)
	select {
	case <-w.done:
	case <-time.After(5 * time.Second): // a write hangs in the kernel; nothing more to do
	}
}

// saveState writes the API overrides and the managed services to
// Options.StateFile (nothing when it is ""), through the writer, waiting
// at most Options.FileTimeout.
func (e *Engine) saveState(ctx context.Context) error {
	if e.opts.StateFile == "" {
		e.stateFile.dirty = false
		return nil
	}
	data, err := statefile.Encode(e.overrides.API, e.stateFile.keys)
	if err != nil {
		return err
	}
	if e.stateFile.writes == nil {
		return errors.New("the engine is not running")
	}
	job := stateWrite{data: data, done: make(chan error, 1)}
	t := time.NewTimer(e.opts.FileTimeout)
	defer t.Stop()
	select {
	case e.stateFile.writes <- job:
	case <-t.C:
		return fmt.Errorf("the previous write of %s has not finished after %s (a hung file system?)", e.opts.StateFile, e.opts.FileTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err = <-job.done:
	case <-t.C:
		return fmt.Errorf("writing %s did not finish within %s (a hung file system?)", e.opts.StateFile, e.opts.FileTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	e.stateFile.dirty = false
	e.stateFile.saved = true
	return nil
}

// loadState reads the overrides and the managed services kept by the last
// run, at start. A missing file is a first start. A regular file that
// does not parse is logged, moved aside (for the operator to look at) and
// the director starts without overrides and without the list of services
// it managed: a director that refuses to start is worse than one that
// forgot a drain. A path that is not a regular file (a directory, a FIFO)
// is never moved: it is logged and left alone. Overrides of servers the
// config no longer has, and expired ones, are dropped.
func (e *Engine) loadState(ctx context.Context, now time.Time) {
	path := e.opts.StateFile
	if path == "" {
		return
	}
	var data []byte
	err := e.offLoop(ctx, "reading the state file", func() (err error) {
		data, err = safefile.ReadFile(path, maxStateFileBytes)
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		e.log.Error("the override state file cannot be read; starting without API overrides (servers drained or disabled through the API are back under their checks); it is left where it is",
			"path", path, "err", err, "fix", "state_file must name a regular file the director can read and write")
		return
	}
	api, managed, err := statefile.Decode(data)
	if err != nil {
		aside := path + ".corrupt"
		if os.Rename(path, aside) != nil {
			aside = "" // left in place; the next save replaces it
		}
		e.log.Error("the override state file is unreadable (it does not parse); starting without API overrides (servers drained or disabled through the API are back under their checks)",
			"path", path, "err", err, "moved_to", aside,
			"fix", "set the overrides again through the API; the old file shows what they were")
		return
	}
	for id, o := range api {
		if !o.Expires.IsZero() && !o.Expires.After(now) {
			delete(api, id)
			e.stateFile.dirty = true
			e.log.Info("override expired while the director was stopped", "virtual_server", id.VirtualServer, "real_server", id.RealServer.String(), "kind", o.Kind, "reason", o.Reason)
		}
	}
	e.overrides.API = api
	e.stateFile.loaded = managed
	for id, o := range api {
		e.log.Info("override restored from the state file", "virtual_server", id.VirtualServer, "real_server", id.RealServer.String(),
			"kind", o.Kind, "reason", o.Reason, "since", o.Since.UTC().Format(time.RFC3339))
	}
}

// Ownership across restarts. The director deletes only the services it
// manages, and the running config says which those are: a service dropped
// from the config is retired and deleted by the next reconcile. If the
// director stops before that (killed, restarted, a reload cut short), the
// next run's config no longer names the service and nothing would ever
// delete it. So the state file also lists every service the director
// answers for, managed or retired: written before a start or a reload can
// create one in the kernel (a crash right after the create still finds it
// listed), and again once a retired one is deleted. At start, listed
// services that the config no longer declares and that the kernel still
// holds are retired: deleted by the first reconcile, after their
// connections drain.
//
// A dry run neither acts on the list nor changes it: its table is in
// memory, and with state_file set it shares the real director's file.

// recordOwned brings the state file's list to the services the director
// answers for (managed and retired) plus extra (those a reload is about to
// create), writing the file when they differ. A failed write is logged
// once and retried at the next call; it holds nothing up.
func (e *Engine) recordOwned(ctx context.Context, extra ...ipvs.ServiceKey) {
	if e.opts.StateFile == "" || e.opts.DryRun {
		return
	}
	want := make(map[ipvs.ServiceKey]bool, len(e.managed)+len(e.retired)+len(extra))
	for k := range e.managed {
		want[k.Normalize()] = true
	}
	for k := range e.retired {
		want[k.Normalize()] = true
	}
	for _, k := range extra {
		want[k.Normalize()] = true
	}
	if e.stateFile.saved && maps.Equal(want, e.stateFile.keys) {
		return
	}
	e.stateFile.keys = want
	if err := e.saveState(ctx); err != nil {
		e.stateFile.saved = false
		if !e.stateFile.failing {
			e.stateFile.failing = true
			e.log.Error("writing the state file failed; the services this director manages are not recorded, so one dropped from the config could stay in the kernel after a restart; retried at each reconcile",
				"path", e.opts.StateFile, "err", err)
		}
		return
	}
	if e.stateFile.failing {
		e.stateFile.failing = false
		e.log.Info("state file written again; the services this director manages are recorded", "path", e.opts.StateFile)
	}
}

// retireRecorded, at start, after adoptConfig, retires the services the
// last run managed that the config no longer declares, so that the first
// reconcile deletes them; real servers with connections drain first, as
// when a reload drops a virtual server.
func (e *Engine) retireRecorded(now time.Time) {
	if e.opts.DryRun {
		e.stateFile.keys = e.stateFile.loaded // kept as it was when overrides are saved
		return
	}
	managed := map[ipvs.ServiceKey]bool{}
	for k := range e.managed {
		managed[k.Normalize()] = true
	}
	kernel := map[ipvs.ServiceKey]*ipvs.ServiceState{}
	for i := range e.actual {
		kernel[e.actual[i].Key.Normalize()] = &e.actual[i]
	}
	for _, k := range statefile.SortedKeys(e.stateFile.loaded) {
		svc := kernel[k]
		if managed[k] || svc == nil {
			continue // still configured, or already gone
		}
		e.retired[k] = true
		drains := drain.Retired(svc, e.cfg.Director.DrainTimeout, now)
		e.beginDrains(drains, desired.Index(e.actual), "its virtual service left the config while the director was stopped")
		e.log.Warn("deleting a virtual service this director no longer manages", "service", k.String(),
			"real_servers", len(svc.Destinations), "draining", len(drains),
			"reason", "managed by this director before the restart; no longer in the config")
	}
}

// recordFlushed empties the state file's list once on_shutdown = flush has
// deleted every service the director answered for.
func (e *Engine) recordFlushed(ctx context.Context) {
	if e.opts.StateFile == "" || e.opts.DryRun {
		return
	}
	e.stateFile.keys = map[ipvs.ServiceKey]bool{}
	if err := e.saveState(ctx); err != nil {
		e.stateFile.saved = false
		e.log.Error("on_shutdown = flush: writing the state file failed; the next start deletes the services it lists if they are back in the kernel and not in the config",
			"path", e.opts.StateFile, "err", err)
	}
}

// maintRead is one read of the maintenance directory.
type maintRead struct {
	dir     string
	files   []override.MaintFile
	skipped []skippedFile // entries that are not regular files, or unreadable
	err     error
}

type skippedFile struct{ path, why string }

// maintReader reads the maintenance directory in the background.
type maintReader struct {
	done     chan maintRead
	inFlight bool
	lastErr  string          // the last read error, logged once
	warned   map[string]bool // file paths already warned about (unmatched or skipped)
}

// start begins a read unless one is in flight; its result arrives on done.
func (m *maintReader) start(ctx context.Context, e *Engine) {
	if m.inFlight {
		return
	}
	if m.done == nil {
		m.done = make(chan maintRead, 1)
	}
	m.inFlight = true
	dir := e.cfg.Director.MaintenanceDir
	e.files.Go(func() {
		r := readMaintenance(dir)
		select {
		case m.done <- r:
		case <-ctx.Done():
		}
	})
}

// readNow reads the directory and waits for it, at most FileTimeout.
func (m *maintReader) readNow(ctx context.Context, e *Engine) maintRead {
	dir := e.cfg.Director.MaintenanceDir
	var r maintRead
	if err := e.offLoop(ctx, "reading maintenance_dir", func() error { r = readMaintenance(dir); return nil }); err != nil {
		return maintRead{dir: dir, err: err}
	}
	return r
}

func (m *maintReader) warnUnmatched(log *slog.Logger, unmatched []override.MaintFile) {
	seen := map[string]bool{}
	for _, f := range unmatched {
		seen[f.Path] = true
		if !m.warned[f.Path] {
			m.warned[f.Path] = true
			log.Warn("maintenance_dir: file matches no real server of the running config; ignored", "file", f.Path,
				"fix", "name it <ip>, <ip>_<port> or <ip>:<port>, optionally in a subdirectory named after the virtual server")
		}
	}
	for p := range m.warned {
		if !seen[p] && !strings.HasPrefix(p, "skipped:") {
			delete(m.warned, p)
		}
	}
}

// warnSkipped logs each odd entry once while it stays.
func (m *maintReader) warnSkipped(log *slog.Logger, skipped []skippedFile) {
	seen := map[string]bool{}
	for _, s := range skipped {
		key := "skipped:" + s.path
		seen[key] = true
		if !m.warned[key] {
			m.warned[key] = true
			log.Warn("maintenance_dir: entry ignored", "file", s.path, "why", s.why,
				"fix", "maintenance files must be small regular files")
		}
	}
	for p := range m.warned {
		if strings.HasPrefix(p, "skipped:") && !seen[p] {
			delete(m.warned, p)
		}
	}
}

// readMaintenance lists the files of dir and its virtual server
// subdirectories. dir "" is no directory. A directory that does not exist
// holds no files; any other error is returned (and the caller keeps what
// it had, rather than putting every server back because of a hiccup).
// Entries that are not regular files are skipped, and said so.
func readMaintenance(dir string) maintRead {
	r := maintRead{dir: dir}
	if dir == "" {
		return r
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return r
	}
	if err != nil {
		r.err = err
		return r
	}
	for _, ent := range entries {
		if strings.HasPrefix(ent.Name(), ".") {
			continue
		}
		if ent.IsDir() {
			sub, err := os.ReadDir(filepath.Join(dir, ent.Name()))
			if err != nil {
				r.err = err
				return r
			}
			for _, s := range sub {
				if strings.HasPrefix(s.Name(), ".") || s.IsDir() {
					continue
				}
				r.add(filepath.Join(dir, ent.Name(), s.Name()), ent.Name(), s.Name())
			}
			continue
		}
		r.add(filepath.Join(dir, ent.Name()), "", ent.Name())
	}
	return r
}

// add reads one maintenance file: its first line, at most
// MaxReasonLength bytes; only a regular file counts.
func (r *maintRead) add(path, vs, name string) {
	if len(r.files) >= maxMaintFiles {
		r.skipped = append(r.skipped, skippedFile{path, fmt.Sprintf("more than %d files", maxMaintFiles)})
		return
	}
	f, err := safefile.Open(path)
	var fi os.FileInfo
	if err == nil {
		if fi, err = f.Stat(); err != nil {
			f.Close()
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			// Unreadable, but there: the name is what matters.
			r.files = append(r.files, override.MaintFile{VirtualServer: vs, Name: name, Path: path})
			return
		}
		r.skipped = append(r.skipped, skippedFile{path, err.Error()})
		return
	}
	defer f.Close()
	if fi.Size() > maxMaintFileBytes {
		r.skipped = append(r.skipped, skippedFile{path, fmt.Sprintf("%d bytes, larger than the %d a maintenance file may have", fi.Size(), maxMaintFileBytes)})
		return
	}
	buf := make([]byte, override.MaxReasonLength)
	n, _ := io.ReadFull(f, buf)
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	r.files = append(r.files, override.MaintFile{VirtualServer: vs, Name: name, Path: path, Content: strings.TrimSpace(line), ModTime: fi.ModTime()})
}
