package testutil

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Within polls cond every 10 ms for up to d and says whether it came true.
func Within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// RequireTool finds an external program a test needs. Under CI=true a
// missing tool fails the test, so CI cannot pass by skipping; elsewhere
// the test skips and says which Debian package to install.
func RequireTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := name + " not found; install it with: apt-get install -y --no-install-recommends " + pkg
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: this test must run)")
	}
	t.Skip(msg)
	return ""
}

// NotifySocket listens as systemd's notify socket does and returns its
// path and a function that waits up to wait for the next message.
func NotifySocket(t testing.TB, wait time.Duration) (string, func() string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return path, func() string {
		t.Helper()
		buf := make([]byte, 4096)
		conn.SetReadDeadline(time.Now().Add(wait))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no message on the notify socket within %v: %v", wait, err)
		}
		return string(buf[:n])
	}
}
