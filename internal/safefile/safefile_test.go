package safefile

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fixtures makes one path of each kind in a fresh directory.
func fixtures(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }

	if err := os.WriteFile(p("normal"), []byte("token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p("fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", p("socket"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if err := os.Mkdir(p("dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", p("zero-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(p("normal"), p("normal-link")); err != nil {
		t.Fatal(err)
	}
	// A sparse 2 GiB file takes no disk space but must not be read whole.
	f, err := os.Create(p("sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(2 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return map[string]string{
		"normal": p("normal"), "fifo": p("fifo"), "socket": p("socket"), "dir": p("dir"),
		"zero-link": p("zero-link"), "normal-link": p("normal-link"), "sparse": p("sparse"),
		"missing": p("missing"),
	}
}

func TestReadFile(t *testing.T) {
	paths := fixtures(t)
	tests := []struct {
		name    string
		want    string // content, when the read succeeds
		wantErr error
		msg     string // in the error text
	}{
		{name: "normal", want: "token\n"},
		{name: "normal-link", want: "token\n"},
		{name: "fifo", wantErr: ErrNotRegular, msg: "is a named pipe (FIFO), not a regular file"},
		{name: "socket", wantErr: ErrNotRegular, msg: "is a socket, not a regular file"},
		{name: "dir", wantErr: ErrNotRegular, msg: "is a directory, not a regular file"},
		{name: "zero-link", wantErr: ErrNotRegular, msg: "is a character device, not a regular file"},
		{name: "sparse", wantErr: ErrTooLarge, msg: "is larger than 1048576 bytes"},
		{name: "missing", wantErr: fs.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := paths[tc.name]
			type result struct {
				data []byte
				err  error
			}
			done := make(chan result, 1)
			go func() {
				data, err := ReadFile(path, 1<<20)
				done <- result{data, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("ReadFile(%s) blocked", tc.name)
			}
			if tc.wantErr == nil {
				if r.err != nil || string(r.data) != tc.want {
					t.Fatalf("ReadFile = %q, %v; want %q", r.data, r.err, tc.want)
				}
				return
			}
			if !errors.Is(r.err, tc.wantErr) {
				t.Fatalf("ReadFile error = %v; want %v", r.err, tc.wantErr)
			}
			if r.data != nil {
				t.Errorf("ReadFile returned %d bytes with its error", len(r.data))
			}
			if !strings.Contains(r.err.Error(), path) || !strings.Contains(r.err.Error(), tc.msg) {
				t.Errorf("error %q should name %s and say %q", r.err, path, tc.msg)
			}
		})
	}
}

// A file that grows past the cap after the size check is still refused:
// the read itself is bounded.
func TestReadFileCapsTheReadItself(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path, 10); err != nil {
		t.Fatalf("a file of exactly the cap: %v", err)
	}
	if _, err := ReadFile(path, 9); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte over the cap: err = %v, want ErrTooLarge", err)
	}
}

func TestOpenRefusesWithoutOpening(t *testing.T) {
	paths := fixtures(t)
	// Nobody ever writes to the FIFO: a blocking open would hang here.
	f, err := Open(paths["fifo"])
	if err == nil {
		f.Close()
		t.Fatal("Open(fifo) succeeded")
	}
	var nre *NotRegularError
	if !errors.As(err, &nre) || nre.Kind != "named pipe (FIFO)" || nre.Path != paths["fifo"] {
		t.Fatalf("Open(fifo) = %#v", err)
	}
}

// The check through the descriptor catches what the path check missed (a
// FIFO or a device swapped in between): the open itself does not block
// and what it opened is refused.
func TestOpenRegularChecksTheDescriptor(t *testing.T) {
	paths := fixtures(t)
	for name, kind := range map[string]string{"fifo": "named pipe (FIFO)", "zero-link": "character device", "dir": "directory"} {
		f, err := openRegular(paths[name])
		if err == nil {
			f.Close()
			t.Errorf("openRegular(%s) succeeded", name)
			continue
		}
		var nre *NotRegularError
		if !errors.As(err, &nre) || nre.Kind != kind {
			t.Errorf("openRegular(%s) = %v, want a %s refused", name, err, kind)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "state.json")
	if err := WriteFileAtomic(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("two"), 0o640); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil || string(data) != "two" {
		t.Fatalf("content = %q, %v; want two", data, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file (no temporary left)", len(entries))
	}
}

func TestWriteFileAtomicRefusesNonRegular(t *testing.T) {
	paths := fixtures(t)
	inner := filepath.Join(paths["dir"], "keep")
	if err := os.WriteFile(inner, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dir", "fifo", "socket", "zero-link"} {
		err := WriteFileAtomic(paths[name], []byte("data"), 0o600)
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("%s: err = %v, want ErrNotRegular", name, err)
		}
	}
	if _, err := os.Stat(inner); err != nil {
		t.Errorf("the directory's content was touched: %v", err)
	}
	fi, err := os.Lstat(paths["fifo"])
	if err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was replaced: %v %v", fi, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(paths["dir"]))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}
