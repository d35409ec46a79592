package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchFile watches the config file at path and sends on the returned
// channel when its content has changed and then stayed quiet for
// debounce. It watches the directory, not the file: editors and config
// managers replace the file (write a new one, rename it over), which ends
// a watch on the file itself. Only content counts: a touch, a chmod or a
// rewrite with the same bytes sends nothing, and neither does a file that
// is missing or unreadable (that is logged; the running config stays).
// Whether new content is valid is for the reload to decide. lastSHA256 is
// the hex SHA-256 of the content running now.
//
// The file is read as Load reads it (a regular file of at most maxBytes),
// so a FIFO or a huge file put in its place cannot hang or exhaust the
// watch.
//
// The watch runs until ctx ends; stop waits for its goroutine.
func WatchFile(ctx context.Context, path, lastSHA256 string, maxBytes int64, debounce time.Duration, log *slog.Logger) (changes <-chan struct{}, stop func(), err error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, nil, fmt.Errorf("watch_config: %w", err)
	}
	dir := filepath.Dir(path)
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("watch_config: watching %s: %w", dir, err)
	}
	out := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer w.Close()
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		defer timer.Stop()
		last, lastProblem := lastSHA256, ""
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				_ = ev // any change in the directory may be ours (symlink swaps included): look at the content
				timer.Reset(debounce)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.Warn("watch_config: watching the config directory failed; reload with SIGHUP meanwhile", "dir", dir, "err", err)
			case <-timer.C:
				data, err := readConfigFile(path, maxBytes)
				if err != nil {
					if msg := err.Error(); msg != lastProblem {
						lastProblem = msg
						log.Warn("watch_config: config file missing or unreadable; the running config stays", "path", path, "err", err)
					}
					continue
				}
				lastProblem = ""
				sum := sha256.Sum256(data)
				if h := hex.EncodeToString(sum[:]); h != last {
					last = h
					select {
					case out <- struct{}{}:
					default: // a reload is already due
					}
				}
			}
		}
	})
	return out, func() { cancel(); wg.Wait() }, nil
}
