package main

// Hostile input at the level of the binary (issue 10): files that are not
// what the config says they are.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStateFileDirectoryIsAConfigError: a state_file that names a
// directory (here one holding the operator's maintenance files) is refused
// by check, by run and on reload, and is never moved or touched.
func TestStateFileDirectoryIsAConfigError(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	keep := filepath.Join(stateDir, "maintenance", "web")
	if err := os.MkdirAll(filepath.Dir(keep), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keep, []byte("10.0.0.11:8080 replacing a disk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl := `[director]
listen = "%s"
state_file = "%s"

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
  [[virtual_server.real_server]]
  address = "%s"
`
	backend := okBackend(t)
	listen := freePort(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(tmpl, listen, stateDir, backend))
	want := cfg + ":3: director.state_file: " + stateDir + " is a directory, not a regular file"

	var out, errOut bytes.Buffer
	if code := realMain([]string{"check", "-config", cfg}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), want) {
		t.Errorf("check: exit %d, stderr %q; want 1 and %q", code, errOut.String(), want)
	}
	// Without the check, run starts: the deadline ends it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	run, err := exec.CommandContext(ctx, binary, "run", "-dry-run", "-config", cfg).CombinedOutput()
	cancel()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(run), want) {
		t.Errorf("run: %v; want exit 1 and %q in:\n%s", err, want, run)
	}
	untouched := func() {
		t.Helper()
		if data, err := os.ReadFile(keep); err != nil || !strings.Contains(string(data), "replacing a disk") {
			t.Fatalf("the directory's content is gone: %v", err)
		}
		if _, err := os.Stat(stateDir + ".corrupt"); err == nil {
			t.Fatalf("the directory was moved to %s.corrupt", stateDir)
		}
	}
	untouched()

	// Running with a good state file, a reload that points it at the
	// directory is refused.
	writeConfig(t, dir, fmt.Sprintf(tmpl, listen, filepath.Join(dir, "state.json"), backend))
	d := startDaemon(t, "run", "-dry-run", "-config", cfg)
	d.waitStarted()
	writeConfig(t, dir, fmt.Sprintf(tmpl, listen, stateDir, backend))
	d.signal(syscall.SIGHUP)
	d.waitLog(`config reload failed.*is a directory, not a regular file`)
	d.stop()
	untouched()
}
