package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// TestWatchConfigAndSystemd runs the binary as systemd would (notify
// socket, watchdog) with watch_config: edits are reloaded between
// RELOADING=1 and READY=1; a deleted, half-written or invalid file
// changes nothing; SIGTERM says STOPPING=1.
func TestWatchConfigAndSystemd(t *testing.T) {
	backend := okBackend(t)

	dir := t.TempDir()
	tmpl := fmt.Sprintf(`[director]
listen = "%s"
watch_config = true

[defaults.check]
interval = "200ms"
timeout = "100ms"

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
scheduler = "%%s"
  [[virtual_server.real_server]]
  address = "%s"
  weight = 100
`, testutil.ClosedPort(t).String(), backend)
	cfg := testutil.WriteFile(t, dir, "director.toml", fmt.Sprintf(tmpl, "wrr"))
	sock, next := testutil.NotifySocket(t, 20*time.Second)
	d := startDaemonEnv(t, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=400000"}, "run", "-dry-run", "-config", cfg)
	listen := d.waitStarted()

	// READY=1 once started; watchdog pings come in between.
	msg := func(want string) string {
		t.Helper()
		for range 200 {
			if m := next(); strings.HasPrefix(m, want) {
				return m
			}
		}
		t.Fatalf("no %q notify message", want)
		return ""
	}
	msg("READY=1")
	msg("WATCHDOG=1")

	replace := func(text string) {
		t.Helper()
		tmp := filepath.Join(dir, ".director.toml.tmp")
		if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfg); err != nil {
			t.Fatal(err)
		}
	}

	// An editor replaces the file: reloaded as a diff.
	replace(fmt.Sprintf(tmpl, "rr"))
	d.waitLog(`op="edit service tcp 192.0.2.10:80 scheduler wrr -> rr"`)
	if m := msg("RELOADING=1"); !strings.Contains(m, "MONOTONIC_USEC=") {
		t.Errorf("RELOADING without MONOTONIC_USEC: %q", m)
	}
	msg("READY=1")

	// The file disappears: nothing changes.
	if err := os.Remove(cfg); err != nil {
		t.Fatal(err)
	}
	d.waitLog(`config file missing or unreadable; the running config stays`)

	// Half-written: cut in the middle of a table.
	full := fmt.Sprintf(tmpl, "lc")
	if err := os.WriteFile(cfg, []byte(full[:strings.Index(full, "scheduler")+11]), 0o644); err != nil {
		t.Fatal(err)
	}
	d.waitLog(`config reload failed; still running the previous config`)
	if code, _, _ := testutil.Get(t, "http://"+listen+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d after a refused reload, want 200", code)
	}
	if strings.Contains(d.logText(), "scheduler rr -> lc") {
		t.Error("half-written config was applied")
	}

	d.signal(syscall.SIGTERM)
	msg("STOPPING=1")
	d.waitExit()
}
