package vrrp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/lvsdirector/director/internal/safefile"
)

// writeTrackFile replaces path's content with value, atomically (a
// temporary file beside it, renamed over it), so keepalived, which
// watches the directory for a file closed after writing or moved in,
// never reads a half-written number and reads the new one at once. It is
// world-readable: keepalived may run as another user.
func writeTrackFile(path string, value int) error {
	if err := safefile.WriteFileAtomic(path, []byte(strconv.Itoa(value)+"\n"), 0o644); err != nil {
		return fmt.Errorf("write the track file %s: %w", path, err)
	}
	return nil
}

// trackWriter writes the track file in a goroutine of its own, so that a
// hung file system holds up nothing else: the latest value wins, values
// asked for while a write hangs are folded into the next one.
type trackWriter struct {
	path    string
	timeout time.Duration
	values  chan int
	// written receives each write's outcome.
	written chan trackWrite
}

type trackWrite struct {
	Value int
	Err   error
}

func newTrackWriter(path string, timeout time.Duration) *trackWriter {
	return &trackWriter{path: path, timeout: timeout, values: make(chan int, 1), written: make(chan trackWrite, 1)}
}

// set asks for value to be written; it never blocks.
func (w *trackWriter) set(value int) {
	for {
		select {
		case w.values <- value:
			return
		default:
		}
		select {
		case <-w.values: // an older value nobody wrote yet
		default:
		}
	}
}

// run writes until ctx ends. A write that outlives the timeout is
// reported as failed and left to finish on its own goroutine.
func (w *trackWriter) run(ctx context.Context) {
	for {
		var v int
		select {
		case <-ctx.Done():
			return
		case v = <-w.values:
		}
		done := make(chan error, 1)
		go func() { done <- writeTrackFile(w.path, v) }()
		var err error
		select {
		case err = <-done:
		case <-time.After(w.timeout):
			// Say so now; the next write waits for this one.
			if !w.report(ctx, trackWrite{v, fmt.Errorf("write the track file %s: %w", w.path, errTrackTimeout)}) {
				return
			}
			select {
			case err = <-done:
			case <-ctx.Done():
				return
			}
		case <-ctx.Done():
			return
		}
		if !w.report(ctx, trackWrite{v, err}) {
			return
		}
	}
}

func (w *trackWriter) report(ctx context.Context, r trackWrite) bool {
	select {
	case w.written <- r:
		return true
	case <-ctx.Done():
		return false
	}
}

var errTrackTimeout = errors.New("the write did not finish in time (a hung file system?)")
