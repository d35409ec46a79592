package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// A director with [vrrp], run as a process: the track file says "not
// ready" (0) before anything else, then the healthy value; keepalived's
// lines on the FIFO become the role in the status (JSON, page, director
// status), in /metrics, in the log and in a notify event; the sync
// daemon (in memory under -dry-run) follows the role; SIGTERM removes the
// track file. Under -dry-run the FIFO and the track file are in the
// temporary directory, and the configured ones are left alone.
func TestDaemonFollowsKeepalived(t *testing.T) {
	backend := okBackend(t)
	listen := testutil.ClosedPort(t).String()
	dir, tmp := t.TempDir(), t.TempDir()
	configured := filepath.Join(dir, "track")
	fifo, track, events := filepath.Join(tmp, "director-dry-run-keepalived.fifo"), filepath.Join(tmp, "director-dry-run-vrrp-track"), filepath.Join(dir, "events")
	script := filepath.Join(dir, "notify")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$DIRECTOR_EVENT $DIRECTOR_VRRP_INSTANCE $DIRECTOR_FROM>$DIRECTOR_TO\" >> \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(configured, []byte("50\n"), 0o644); err != nil { // a running director's
		t.Fatal(err)
	}
	cfg := testutil.WriteFile(t, dir, "director.toml", fmt.Sprintf(`[director]
listen = %q
notify_command = [%q, %q]

[defaults.check]
interval = "200ms"
timeout = "100ms"

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
  [virtual_server.check]
  type = "http"
  [[virtual_server.real_server]]
  address = %q

[vrrp]
notify_fifo = %q
track_file = %q
healthy_value = 60
interface = "eth0"
  [[vrrp.instance]]
  name = "VI_1"
  virtual_router_id = 51
  [vrrp.sync]
  sync_id = 7
`, listen, script, events, backend, filepath.Join(dir, "keepalived.fifo"), configured))

	// The first thing written, before the director is ready: 0.
	d := startDaemonEnv(t, []string{"TMPDIR=" + tmp}, "run", "-dry-run", "-config", cfg)
	d.waitLog(`msg="director health" component=vrrp healthy=false cause=starting`)
	d.waitStarted()
	if v := readFile(t, track); v != "0" && v != "60" {
		t.Errorf("track file %q after start", v)
	}
	poll(t, "the healthy value", func() bool { return readFile(t, track) == "60" })

	f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("the director did not create the FIFO: %v", err)
	}
	fmt.Fprintln(f, `INSTANCE "VI_1" MASTER 160`)
	f.Close()
	d.waitLog(`msg="VRRP state changed" component=vrrp instance=VI_1 from=UNKNOWN to=MASTER priority=160`)
	d.waitLog(`msg="sync daemon started" component=vrrp daemon="master sync daemon on eth0, sync id 7"`)

	var out, errOut bytes.Buffer
	if code := realMain([]string{"status", "-addr", listen}, &out, &errOut); code != 0 {
		t.Fatalf("director status: exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"VRRP MASTER: VI_1 MASTER (priority 160", "director healthy, track file 60; sync follow-role: master id 7 on eth0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("director status lacks %q:\n%s", want, out.String())
		}
	}
	if _, _, body := testutil.Get(t, "http://"+listen+"/api/v1/status"); !strings.Contains(body, `"role": "MASTER"`) {
		t.Errorf("/api/v1/status has no MASTER role:\n%s", body)
	}
	_, _, metrics := testutil.Get(t, "http://"+listen+"/metrics")
	for _, want := range []string{
		`director_vrrp_instance_state{instance="VI_1",state="MASTER"} 1`,
		`director_vrrp_instance_state{instance="VI_1",state="BACKUP"} 0`,
		`director_self_healthy 1`,
		`director_vrrp_track_file_value 60`,
		`director_sync_daemon_running{state="master"} 1`,
		`director_sync_daemon_running{state="backup"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	poll(t, "the notify event", func() bool { return strings.Contains(readFile(t, events), "vrrp VI_1 UNKNOWN>MASTER") })

	// [vrrp] is read at start: a reload that changes it says so.
	text, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(text), "healthy_value = 60", "healthy_value = 70", 1)), 0o644)
	d.signal(syscall.SIGHUP)
	d.waitLog(`\[vrrp\] changed: the active-backup settings .* take effect on restart`)

	d.stop()
	if _, err := os.Stat(track); !os.IsNotExist(err) {
		t.Errorf("the track file is still there after SIGTERM (%v): keepalived would keep the bonus", err)
	}
	if v := readFile(t, configured); v != "50" {
		t.Errorf("a dry run changed the configured track file to %q", v)
	}
	if _, err := os.Stat(filepath.Join(dir, "keepalived.fifo")); err == nil {
		t.Error("a dry run made the configured FIFO")
	}
}

func TestVRRPConfigCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := testutil.WriteFile(t, dir, "director.toml", `[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
[vrrp]
notify_fifo = "/run/director/keepalived.fifo"
track_file = "/run/director/vrrp-track"
interface = "eth0"
  [[vrrp.instance]]
  name = "VI_1"
  virtual_router_id = 51
  priority = 150
`)
	var out, errOut bytes.Buffer
	if code := realMain([]string{"vrrp-config", "-config", cfg}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "vrrp_instance VI_1 {") || !strings.Contains(out.String(), "192.0.2.10/32 dev eth0") {
		t.Errorf("vrrp-config printed:\n%s", out.String())
	}
	out.Reset()
	errOut.Reset()
	plain := testutil.WriteFile(t, t.TempDir(), "director.toml", "[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.10:80\"\n")
	if code := realMain([]string{"vrrp-config", "-config", plain}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "has no [vrrp] section") {
		t.Errorf("without [vrrp]: exit %d, %q", code, errOut.String())
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
