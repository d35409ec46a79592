// Package safefile opens the files the director reads from disk (config,
// token, state, maintenance files) so that a wrong file cannot hang or
// exhaust it: only regular files are read, the open never blocks, and the
// read is capped. It also writes files atomically.
//
// A path may be a symlink: what counts is the file it leads to. A symlink
// to /dev/zero is refused because /dev/zero is not a regular file.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrNotRegular is wrapped by every error about a path that is not a
// regular file (a directory, FIFO, socket or device).
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped by the error of a read whose file is larger than
// its cap.
var ErrTooLarge = errors.New("file too large")

// NotRegularError says what a path names instead of a regular file.
type NotRegularError struct {
	Path string
	Kind string // "directory", "named pipe (FIFO)", "socket", ...
}

func (e *NotRegularError) Error() string {
	return fmt.Sprintf("%s is a %s, not a regular file", e.Path, e.Kind)
}

func (e *NotRegularError) Unwrap() error { return ErrNotRegular }

// TooLargeError is a file over a read's cap.
type TooLargeError struct {
	Path string
	Max  int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is larger than %d bytes", e.Path, e.Max)
}

func (e *TooLargeError) Unwrap() error { return ErrTooLarge }

// Kind names the type of file mode m, as errors show it.
func Kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	}
	return "special file"
}

// CheckRegular returns nil when path leads to a regular file, a
// *NotRegularError when it leads to something else, and the stat error
// (fs.ErrNotExist, permission) otherwise.
func CheckRegular(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return &NotRegularError{Path: path, Kind: Kind(fi.Mode())}
	}
	return nil
}

// Open opens path for reading if it is a regular file. The path is looked
// at before it is opened, because opening some devices has effects of its
// own (a watchdog device arms on open); the open is non-blocking (a FIFO
// swapped in meanwhile does not wait for a writer) and what was opened is
// checked again through the descriptor, so a swap between the two is
// caught too.
func Open(path string) (*os.File, error) {
	if err := CheckRegular(path); err != nil {
		return nil, err
	}
	return openRegular(path)
}

// openRegular opens path without blocking and keeps it only if the
// descriptor is a regular file.
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &NotRegularError{Path: path, Kind: Kind(fi.Mode())}
	}
	return f, nil
}

// ReadFile reads the regular file at path, at most max bytes: a larger
// file is a *TooLargeError and nothing of it is returned.
func ReadFile(path string, max int64) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, &TooLargeError{Path: path, Max: max}
	}
	// The file may grow between the stat and the read: read one byte past
	// the cap to tell.
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, &TooLargeError{Path: path, Max: max}
	}
	return data, nil
}

// WriteFileAtomic replaces path with data so that a crash leaves either the
// old file or the new one: it writes a temporary file in the same
// directory, syncs it, renames it over path and syncs the directory. The
// directory is created (0750) if missing. perm is the new file's mode. A
// path that exists and is not a regular file (a directory, a FIFO) is
// refused and left as it is.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	if err := CheckRegular(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: some file systems refuse to sync a directory
		d.Close()
	}
	return nil
}
