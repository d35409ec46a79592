package checks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, content, 0o600)
		return p
	}
	for _, tt := range []struct {
		name, path, want, err string
	}{
		{"plain", file("a", "s3cret"), "s3cret", ""},
		{"final newline dropped", file("b", "s3cret\n"), "s3cret", ""},
		{"final CRLF dropped", file("c", "s3cret\r\n"), "s3cret", ""},
		{"only one line break dropped", file("d", "s3cret\n\n"), "s3cret\n", ""},
		{"spaces kept", file("e", " s3 cret "), " s3 cret ", ""},
		{"empty", file("f", ""), "", ""},
		{"at the cap", file("g", strings.Repeat("x", secretFileCap)), strings.Repeat("x", secretFileCap), ""},
		{"over the cap", file("h", strings.Repeat("x", secretFileCap+1)), "",
			"is larger than 4096 bytes; it must hold the secret alone"},
		{"missing", filepath.Join(dir, "nope"), "", "cannot read " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"a directory", dir, "", dir + " is not a regular file"},
		{"a device", "/dev/zero", "", "/dev/zero is not a regular file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readSecret(tt.path)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("readSecret: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("readSecret: error %v, want one containing %q", err, tt.err)
			case got != tt.want:
				t.Errorf("readSecret = %q, want %q", got, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "xxxx") {
				t.Errorf("the error shows the file's content: %v", err)
			}
		})
	}
	if os.Geteuid() != 0 {
		p := file("unreadable", "s3cret")
		os.Chmod(p, 0)
		if _, err := readSecret(p); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("unreadable file: %v", err)
		}
	}
}
