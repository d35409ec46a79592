package vrrp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// fifoReader reads keepalived's notify_fifo in a goroutine of its own, so
// that a FIFO nobody writes to, or one that is missing, never holds up
// anything else. keepalived only writes on changes; the reader keeps the
// FIFO open for reading and writing, so it never sees end-of-file when
// keepalived restarts, and reopens it when the path names another file
// (keepalived removes a FIFO it created when it stops and makes a new one
// when it starts).
type fifoReader struct {
	path string
	// events receives every VRRP event, in order.
	events chan<- Event
	// report receives what an operator should hear about, each once per
	// cause: the FIFO opened, failing, lines that are not VRRP events.
	report func(fifoReport)
	// poll is how often the path is checked against the open FIFO.
	poll time.Duration
	// retry is how long to wait after the FIFO could not be opened.
	retry time.Duration
}

// fifoReport is a change in the reader's situation, or a line it ignored.
type fifoReport struct {
	Open    bool   // the FIFO is open now
	Err     error  // why it is not (nil when Open)
	Ignored string // a line that is not a VRRP event ("" otherwise)
}

// maxLine bounds a line: keepalived's are short; anything longer is not
// one of them.
const maxLine = 4096

// run reads until ctx ends.
func (r *fifoReader) run(ctx context.Context) {
	var lastErr string
	for ctx.Err() == nil {
		f, err := openFIFO(r.path)
		if err != nil {
			if err.Error() != lastErr { // once per cause
				lastErr = err.Error()
				r.report(fifoReport{Err: err})
			}
			select {
			case <-ctx.Done():
			case <-time.After(r.retry):
			}
			continue
		}
		lastErr = ""
		r.report(fifoReport{Open: true})
		err = r.read(ctx, f)
		f.Close()
		if ctx.Err() == nil {
			r.report(fifoReport{Err: err})
		}
	}
}

// openFIFO opens path as a FIFO, creating it when missing; anything else
// at path is an error, left alone.
func openFIFO(path string) (*os.File, error) {
	if err := syscall.Mkfifo(path, 0o600); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create the notify FIFO %s: %w", path, err)
	}
	// O_RDWR never blocks on a FIFO and keeps it from reaching
	// end-of-file between writers; O_NONBLOCK lets the runtime poll it, so
	// reads take deadlines.
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open the notify FIFO: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open the notify FIFO: %w", err)
	}
	if fi.Mode()&fs.ModeNamedPipe == 0 {
		f.Close()
		return nil, fmt.Errorf("%s is not a FIFO (%s): remove it, or set [vrrp] notify_fifo to another path", path, fi.Mode().Type())
	}
	return f, nil
}

// errReplaced ends a read when the path no longer names the open FIFO.
var errReplaced = errors.New("the notify FIFO was removed or replaced; reopening it")

// read passes f's lines on until ctx ends, the path names another file,
// or a read fails.
func (r *fifoReader) read(ctx context.Context, f *os.File) error {
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Now()) })
	defer stop()
	opened, err := f.Stat()
	if err != nil {
		return err
	}
	buf := make([]byte, 0, 512)
	chunk := make([]byte, 512)
	discarding := false // inside a line longer than maxLine
	for {
		if err := f.SetReadDeadline(time.Now().Add(r.poll)); err != nil {
			return err
		}
		n, err := f.Read(chunk)
		buf = append(buf, chunk[:n]...)
		for {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				break
			}
			line := string(buf[:i])
			buf = buf[i+1:]
			if discarding {
				discarding = false
				continue
			}
			if !r.line(ctx, line) {
				return ctx.Err()
			}
		}
		if len(buf) > maxLine {
			if !discarding {
				r.report(fifoReport{Ignored: string(buf[:64]) + "... (a line longer than 4096 bytes)"})
			}
			buf, discarding = buf[:0], true
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, os.ErrDeadlineExceeded):
			if fi, serr := os.Stat(r.path); serr != nil || !os.SameFile(fi, opened) {
				return errReplaced
			}
		case err != nil:
			return fmt.Errorf("read the notify FIFO: %w", err)
		}
	}
}

// line hands one line on; false when ctx ended first.
func (r *fifoReader) line(ctx context.Context, line string) bool {
	ev, err := ParseLine(line)
	if err != nil {
		if line != "" {
			r.report(fifoReport{Ignored: line})
		}
		return true
	}
	select {
	case r.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
