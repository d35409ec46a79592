package deploy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// unitKeys returns the [Service] settings of a unit file, in order, as
// "Key=value" lines.
func unitKeys(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			out = append(out, line)
		}
	}
	return out
}

// TestUnitLoadsOnThisSystemd: the shipped unit passes systemd-analyze
// verify with this machine's systemd (Debian 12's 252 in CI), which
// rejected Type=notify-reload. The binary and man pages are not
// installed here: the package test in .ci/run verifies those.
func TestUnitLoadsOnThisSystemd(t *testing.T) {
	bin := testutil.RequireTool(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	unit := filepath.Join(dir, "director.service")
	data, err := os.ReadFile("systemd/director.service")
	if err != nil {
		t.Fatal(err)
	}
	// Point ExecStart at a binary that exists, so that verify looks at
	// everything else.
	if err := os.WriteFile(unit, bytes.ReplaceAll(data, []byte("/usr/sbin/director"), []byte("/bin/true")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "verify", "--man=no", unit).CombinedOutput()
	// verify also loads the units ours pulls in and reports theirs;
	// only what it says of ours counts.
	var ours []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, unit) || strings.HasPrefix(line, "director.service") {
			ours = append(ours, line)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Errorf("systemd-analyze verify director.service: %v\n%s", err, out)
	}
	keys := strings.Join(unitKeys(t, "systemd/director.service"), "\n")
	for _, want := range []string{"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec=", "LimitNOFILE="} {
		if !strings.Contains(keys, want) {
			t.Errorf("director.service lacks %s", want)
		}
	}
}

// TestUnitUnderSystemd runs the shipped unit's service settings under a
// real systemd (a user manager of this machine's systemd, in a private
// mount namespace) with the director in -dry-run: start waits for
// READY=1, the watchdog is fed, a reload (ExecReload's SIGHUP, with
// RELOADING=1 and READY=1 under plain Type=notify) and a refused one keep
// the same process running, LimitNOFILE reaches it, and stop is clean.
func TestUnitUnderSystemd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a systemd manager")
	}
	if runtime.GOOS != "linux" {
		t.Skip("systemd is Linux only")
	}
	systemctl := testutil.RequireTool(t, "systemctl", "systemd")
	manager := "/lib/systemd/systemd"
	if _, err := os.Stat(manager); err != nil {
		testutil.RequireTool(t, "systemd-not-found", "systemd")
	}
	if os.Geteuid() != 0 {
		// The user manager needs /run/systemd/system, which only root
		// can mount over in a private namespace.
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (CI=true: this test must run)")
		}
		t.Skip("needs root, to give a systemd user manager its own /run/systemd")
	}
	unshare := testutil.RequireTool(t, "unshare", "util-linux")

	dir := t.TempDir()
	binary := buildDirector(t, dir)

	listen := freeAddr(t)
	cfgPath := filepath.Join(dir, "director.toml")
	writeCfg := func(scheduler string) {
		t.Helper()
		cfg := fmt.Sprintf(`[director]
listen = %q

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
scheduler = %q
  [virtual_server.check]
  type = "tcp"
  interval = "1s"
  timeout = "500ms"
  [[virtual_server.real_server]]
  address = "127.0.0.1:1"
`, listen, scheduler)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("wrr")

	// The test unit: the shipped [Service] lines that decide how systemd
	// drives the process, with this binary and config, -dry-run, and a
	// short watchdog so that a missed ping would show within the test.
	// User=, capabilities and sandboxing need the system manager.
	logPath := filepath.Join(dir, "director.log")
	var unit strings.Builder
	unit.WriteString("[Service]\n")
	kept := 0
	for _, kv := range unitKeys(t, "systemd/director.service") {
		key, _, _ := strings.Cut(kv, "=")
		switch key {
		case "Type", "NotifyAccess", "ExecReload", "Restart", "RestartSec", "TimeoutStopSec", "LimitNOFILE":
			unit.WriteString(kv + "\n")
			kept++
		case "ExecStartPre", "ExecStart":
			kv = strings.ReplaceAll(kv, "/usr/sbin/director", binary)
			kv = strings.ReplaceAll(kv, "/etc/director/director.toml", cfgPath)
			if key == "ExecStart" {
				kv += " -dry-run"
			}
			unit.WriteString(kv + "\n")
			kept++
		}
	}
	if kept != 9 {
		t.Fatalf("found %d of the 9 settings the test runs in director.service:\n%s", kept, unit.String())
	}
	fmt.Fprintf(&unit, "WatchdogSec=2s\nStandardOutput=append:%s\nStandardError=append:%s\n", logPath, logPath)
	units := filepath.Join(dir, "config", "systemd", "user")
	if err := os.MkdirAll(units, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(units, "director.service"), []byte(unit.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	runtimeDir := filepath.Join(dir, "run")
	if err := os.Mkdir(runtimeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "XDG_RUNTIME_DIR="+runtimeDir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_STATE_HOME="+filepath.Join(dir, "state"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A user manager refuses to start unless /run/systemd/system exists
	// (the system "booted with systemd"); give it one in its own mount
	// namespace, leaving the machine's /run alone.
	mgr := exec.CommandContext(ctx, unshare, "--mount", "--propagation", "private", "sh", "-c",
		"mount -t tmpfs tmpfs /run/systemd 2>/dev/null || mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec "+manager+" --user")
	mgr.Env = env
	var mgrOut bytes.Buffer
	mgr.Stdout, mgr.Stderr = &mgrOut, &mgrOut
	if err := mgr.Start(); err != nil {
		t.Fatal(err)
	}
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Wait() }()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer scancel()
		_ = exec.CommandContext(sctx, systemctl, "--user", "exit").Run() // stops the units first
		select {
		case <-mgrDone:
		case <-sctx.Done():
			_ = mgr.Process.Kill()
			<-mgrDone
		}
	}()

	sc := func(args ...string) (string, error) {
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		defer ccancel()
		cmd := exec.CommandContext(cctx, systemctl, append([]string{"--user"}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	show := func() map[string]string {
		t.Helper()
		out, err := sc("show", "-p", "ActiveState,SubState,MainPID,NRestarts,WatchdogTimestampMonotonic,Result", "director.service")
		if err != nil {
			t.Fatalf("systemctl show: %v\n%s", err, out)
		}
		m := map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				m[k] = v
			}
		}
		return m
	}
	logText := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; unit state %v\nlog:\n%s", what, show(), logText())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// The manager is up once its control socket answers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := sc("show", "-p", "Version"); err == nil {
			break
		}
		select {
		case err := <-mgrDone:
			t.Fatalf("the systemd user manager exited: %v\n%s", err, mgrOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the systemd user manager did not come up\n%s", mgrOut.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	// start returns once the director said READY=1.
	if out, err := sc("start", "director.service"); err != nil {
		t.Fatalf("systemctl start: %v\n%s\nlog:\n%s", err, out, logText())
	}
	st := show()
	if st["ActiveState"] != "active" || st["SubState"] != "running" {
		t.Fatalf("after start: %v\nlog:\n%s", st, logText())
	}
	pid := st["MainPID"]
	if !strings.Contains(logText(), "director started") {
		t.Errorf("READY=1 came before the director logged that it started:\n%s", logText())
	}
	limits, err := os.ReadFile("/proc/" + pid + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	// Without CAP_SYS_RESOURCE (this container) the manager cannot go
	// above its own hard limit; it then sets that.
	var own syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &own); err != nil {
		t.Fatal(err)
	}
	want := min(65536, own.Max)
	if !regexp.MustCompile(fmt.Sprintf(`Max open files\s+%d\s+%d`, want, want)).Match(limits) {
		t.Errorf("LimitNOFILE=65536 did not reach the director (want %d):\n%s", want, limits)
	}

	// The watchdog (2 s) is fed: the service outlives several intervals
	// without a restart, and the last ping moves.
	first := show()["WatchdogTimestampMonotonic"]
	time.Sleep(5 * time.Second)
	st = show()
	if st["ActiveState"] != "active" || st["MainPID"] != pid || st["NRestarts"] != "0" || st["WatchdogTimestampMonotonic"] == first {
		t.Errorf("after 5 s with WatchdogSec=2s: %v (first ping at %s)\nlog:\n%s", st, first, logText())
	}

	// A reload applies the new config in the same process and leaves the
	// unit active (not stuck in "reloading").
	writeCfg("rr")
	if out, err := sc("reload", "director.service"); err != nil {
		t.Fatalf("systemctl reload: %v\n%s", err, out)
	}
	waitFor("the reload to be applied", func() bool { return strings.Contains(logText(), `scheduler wrr -> rr`) })
	waitFor("the unit to be active again after the reload", func() bool {
		s := show()
		return s["ActiveState"] == "active" && s["SubState"] == "running"
	})
	// A refused reload is also answered with READY=1: the unit goes back
	// to active, the previous config runs on.
	if err := os.WriteFile(cfgPath, []byte("[director]\nlisten = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := sc("reload", "director.service"); err != nil {
		t.Fatalf("systemctl reload (bad config): %v\n%s", err, out)
	}
	waitFor("the refused reload to be logged", func() bool { return strings.Contains(logText(), "config reload failed") })
	waitFor("the unit to be active again after the refused reload", func() bool {
		s := show()
		return s["ActiveState"] == "active" && s["SubState"] == "running"
	})
	if st := show(); st["MainPID"] != pid || st["NRestarts"] != "0" {
		t.Errorf("after two reloads: %v, want MainPID %s and no restart", st, pid)
	}

	if out, err := sc("stop", "director.service"); err != nil {
		t.Fatalf("systemctl stop: %v\n%s", err, out)
	}
	if st := show(); st["ActiveState"] != "inactive" || st["Result"] != "success" {
		t.Errorf("after stop: %v\nlog:\n%s", st, logText())
	}
	if !strings.Contains(logText(), "director stopped") {
		t.Errorf("the director did not log its stop:\n%s", logText())
	}
}

// buildDirector builds the director, static as it ships, into dir.
func buildDirector(t *testing.T, dir string) string {
	t.Helper()
	binary := filepath.Join(dir, "director")
	build := exec.Command("go", "build", "-o", binary, "../cmd/director")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building director: %v\n%s", err, out)
	}
	return binary
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}
