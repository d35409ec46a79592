package apitoken

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Watcher holds the current token of a token file, read again every
// Interval and on Reload. Token is safe to call from any goroutine and
// never waits for the file.
type Watcher struct {
	log         *slog.Logger
	interval    time.Duration
	readTimeout time.Duration
	read        func(path string) (string, error) // Read; tests stand in a hanging one

	token atomic.Pointer[string]

	mu       sync.Mutex // serializes refreshes; Token does not take it
	path     string
	inflight chan readResult // a read still running (a file on a hung mount)
	shown    string          // what was last logged, to log each change once
}

type readResult struct {
	path string
	tok  string
	err  error
}

// Defaults of NewWatcher.
const (
	DefaultInterval    = time.Second
	DefaultReadTimeout = 2 * time.Second
)

// NewWatcher returns a watcher of the token file at path ("" for none:
// the write API is off). It has read nothing yet: call Reload or Run.
func NewWatcher(path string, log *slog.Logger) *Watcher {
	w := &Watcher{log: log, interval: DefaultInterval, readTimeout: DefaultReadTimeout, read: Read, path: path}
	w.token.Store(new(string))
	return w
}

// Token returns the token in force; "" when the write API is off.
func (w *Watcher) Token() string { return *w.token.Load() }

// Reload switches to the token file at path (a reloaded config's
// api_token_file; "" for none) and reads it now.
func (w *Watcher) Reload(path string) {
	w.mu.Lock()
	w.path = path
	w.mu.Unlock()
	w.refresh()
}

// Run reads the file every interval until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.refresh()
		}
	}
}

// refresh reads the token file, giving up after readTimeout: a read
// that hangs (a file on a dead network mount) turns the write API off
// rather than holding anyone up. At most one read runs at a time; one
// that hangs is waited for again on the next refresh, and its goroutine
// ends when the read does.
func (w *Watcher) refresh() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.path == "" {
		w.set("", nil)
		return
	}
	timeout := time.NewTimer(w.readTimeout)
	defer timeout.Stop()
	for {
		if w.inflight == nil {
			ch := make(chan readResult, 1) // the reader never blocks on sending
			w.inflight = ch
			go func(path string) {
				tok, err := w.read(path)
				ch <- readResult{path, tok, err}
			}(w.path)
		}
		select {
		case r := <-w.inflight:
			w.inflight = nil
			if r.path != w.path {
				continue // a read of the file before a reload: read the new one
			}
			w.set(r.tok, r.err)
			return
		case <-timeout.C:
			w.set("", fmt.Errorf("%s: reading it took longer than %s (a hung file system?)", w.path, w.readTimeout))
			return
		}
	}
}

// set puts tok in force and logs each change of state once: never the
// token itself, only a short digest of it to tell changes apart.
func (w *Watcher) set(tok string, err error) {
	w.token.Store(&tok)
	var shown string
	switch {
	case err == nil && tok == "":
		shown = "off"
	case err == nil:
		shown = fmt.Sprintf("on %x", sha256.Sum256([]byte(tok)))
	default:
		shown = err.Error()
	}
	if shown == w.shown {
		return
	}
	first := w.shown == ""
	w.shown = shown
	switch {
	case err == nil && tok == "":
		if !first {
			w.log.Warn("api_token_file is no longer set: the write API is off")
		}
	case err == nil:
		w.log.Info("API token read: the write API is on", "api_token_file", w.path)
	case errors.Is(err, ErrNoToken):
		w.log.Warn("API token gone: the write API is off (403) until the file holds a token", "api_token_file", w.path, "why", err)
	default:
		w.log.Error("API token file unusable: the write API is off (403)", "api_token_file", w.path, "err", err)
	}
}
