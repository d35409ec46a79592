//go:build linux

package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"testing"
)

// cpioWriter writes a gzip'd cpio archive in the kernel's "newc" format,
// the format an initramfs is. Several such archives concatenated are read
// by the kernel as one, which lets a cached base take a small overlay.
type cpioWriter struct {
	gz   *gzip.Writer
	ino  uint32
	dirs map[string]bool
	err  error
}

func newCpio(w io.Writer) *cpioWriter {
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	return &cpioWriter{gz: gz, ino: 1, dirs: map[string]bool{".": true, "/": true, "": true}}
}

const (
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFLNK = 0o120000
)

func (c *cpioWriter) entry(name string, mode uint32, data []byte) {
	if c.err != nil {
		return
	}
	nlink := 1
	if mode&0o170000 == sIFDIR {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	c.ino++
	var b bytes.Buffer
	b.WriteString(hdr)
	b.WriteString(name)
	b.WriteByte(0)
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	b.Write(data)
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	_, c.err = c.gz.Write(b.Bytes())
}

// mkdirAll adds name and its parents as directories (once each).
func (c *cpioWriter) mkdirAll(name string) {
	name = path.Clean(name)
	if c.dirs[name] {
		return
	}
	c.mkdirAll(path.Dir(name))
	c.dirs[name] = true
	c.entry(name, sIFDIR|0o755, nil)
}

// file adds a regular file, creating its directories.
func (c *cpioWriter) file(name string, perm uint32, data []byte) {
	c.mkdirAll(path.Dir(name))
	c.entry(path.Clean(name), sIFREG|perm, data)
}

// copyFile adds the host file src (symlinks followed) as name.
func (c *cpioWriter) copyFile(name string, perm uint32, src string) {
	data, err := os.ReadFile(src)
	if err != nil {
		if c.err == nil {
			c.err = err
		}
		return
	}
	c.file(name, perm, data)
}

func (c *cpioWriter) symlink(name, target string) {
	c.mkdirAll(path.Dir(name))
	c.entry(path.Clean(name), sIFLNK|0o777, []byte(target))
}

func (c *cpioWriter) close() error {
	c.entry("TRAILER!!!", 0, nil)
	if err := c.gz.Close(); err != nil && c.err == nil {
		c.err = err
	}
	return c.err
}

// TestCpioFormat checks the archive's layout, and reads it back with
// busybox cpio where that is installed.
func TestCpioFormat(t *testing.T) {
	var buf bytes.Buffer
	c := newCpio(&buf)
	c.file("a/b/hello", 0o644, []byte("hello\n"))
	c.symlink("a/link", "b/hello")
	c.file("odd", 0o755, []byte("x"))
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a\x00", "a/b\x00", "a/b/hello\x00", "hello\n", "a/link\x00", "b/hello", "TRAILER!!!\x00"} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("archive lacks %q", want)
		}
	}
	if len(raw)%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", len(raw))
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("no busybox to read the archive back")
	}
	cmd := exec.Command(bb, "cpio", "-t")
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("busybox cpio -t: %v", err)
	}
	if got, want := strings.Fields(string(out)), []string{"a", "a/b", "a/b/hello", "a/link", "odd"}; !slices.Equal(got, want) {
		t.Errorf("busybox cpio -t lists %q, want %q", got, want)
	}
}
