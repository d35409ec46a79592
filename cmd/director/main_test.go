package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/lvsdirector/director/internal/testutil"
)

func TestUsageAndVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := realMain(nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "Usage:") {
		t.Errorf("no arguments: exit %d, stderr %q; want 2 and usage", code, errOut.String())
	}
	out.Reset()
	if code := realMain([]string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "director ") {
		t.Errorf("version: exit %d, stdout %q", code, out.String())
	}
	errOut.Reset()
	if code := realMain([]string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, stderr %q", code, errOut.String())
	}
}

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if code := realMain([]string{"check", "-config", "../../config.example.toml"}, &out, &errOut); code != 0 {
		t.Fatalf("check of config.example.toml: exit %d\n%s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "config.example.toml") || !strings.Contains(out.String(), "OK") {
		t.Errorf("check summary = %q", out.String())
	}

	bad := testutil.WriteFile(t, dir, "director.toml", `[director]
listen = "127.0.0.1:9410"
on_failur = "quiesce"

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
  [[virtual_server.real_server]]
  address = "10.0.0.1:80"
  weight = 70000
`)
	out.Reset()
	errOut.Reset()
	if code := realMain([]string{"check", "-config", bad}, &out, &errOut); code != 1 {
		t.Fatalf("check of a bad config: exit %d, want 1", code)
	}
	msg := errOut.String()
	for _, want := range []string{bad + ":3:", "on_failur", "on_failure", bad + ":10:", "weight"} {
		if !strings.Contains(msg, want) {
			t.Errorf("check output lacks %q:\n%s", want, msg)
		}
	}
}

// TestRunDryRun runs the real binary with -dry-run against a loopback
// backend: it becomes ready, serves metrics, refuses a bad reload, applies
// a good one, and stops cleanly on SIGTERM.
func TestRunDryRun(t *testing.T) {
	backend := okBackend(t)

	dir := t.TempDir()
	good := fmt.Sprintf(`[director]
listen = "%s"

[defaults.check]
interval = "200ms"
timeout = "100ms"

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
scheduler = "%%s"
  [virtual_server.check]
  type = "http"
  [[virtual_server.real_server]]
  address = "%s"
  weight = 100
`, testutil.ClosedPort(t).String(), backend)
	cfg := testutil.WriteFile(t, dir, "director.toml", fmt.Sprintf(good, "wrr"))
	d := startDaemon(t, "run", "-dry-run", "-config", cfg)
	listen := d.waitStarted()
	d.waitLog(`msg="dry-run: ipvs table changed[^"]*" op="edit destination ` + regexp.QuoteMeta(backend) + `.*weight 0 -> 100"`)

	if code, _, _ := testutil.Get(t, "http://"+listen+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d, want 200", code)
	}
	_, _, body := testutil.Get(t, "http://"+listen+"/metrics")
	for _, want := range []string{
		`director_real_server_up{real_server="` + backend + `",virtual_server="web"} 1`,
		`director_real_server_weight{real_server="` + backend + `",virtual_server="web"} 100`,
		`director_config_last_reload_successful 1`,
		`director_build_info{`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// A bad config on SIGHUP is refused and changes nothing.
	testutil.WriteFile(t, dir, "director.toml", fmt.Sprintf(good, "no-such-scheduler"))
	d.signal(syscall.SIGHUP)
	d.waitLog(`config reload failed`)
	_, _, body = testutil.Get(t, "http://"+listen+"/metrics")
	if !strings.Contains(body, "director_config_last_reload_successful 0") {
		t.Errorf("after a bad reload, director_config_last_reload_successful is not 0")
	}

	// A good one is applied as a diff.
	testutil.WriteFile(t, dir, "director.toml", fmt.Sprintf(good, "rr"))
	d.signal(syscall.SIGHUP)
	d.waitLog(`op="edit service tcp 192.0.2.10:80 scheduler wrr -> rr"|op="edit service tcp 192.0.2.10:80.*rr`)

	d.stop()
}

// TestRunWithoutIPVS: on a kernel without IPVS, run explains what to do.
func TestRunWithoutIPVS(t *testing.T) {
	if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
		t.Skip("this kernel has IPVS")
	}
	cfg := testutil.WriteFile(t, t.TempDir(), "director.toml", `[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
  [[virtual_server.real_server]]
  address = "10.0.0.1:80"
`)
	out, err := exec.Command(binary, "run", "-config", cfg).CombinedOutput()
	if err == nil {
		t.Fatalf("run without IPVS succeeded:\n%s", out)
	}
	for _, want := range []string{"IPVS", "modprobe ip_vs", "-dry-run"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("message lacks %q:\n%s", want, out)
		}
	}
}

// TestConfigAsArgument: every command that takes -config FILE also takes
// FILE alone, before or after its flags, and says so when given two.
func TestConfigAsArgument(t *testing.T) {
	dir := t.TempDir()
	bad := testutil.WriteFile(t, dir, "director.toml", "[director]\nlisten = \"127.0.0.1:99999\"\n")
	const example = "../../config.example.toml"
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in stdout+stderr
	}{
		{"check FILE", []string{"check", example}, 0, "config.example.toml: 4 virtual servers"},
		{"check FILE, invalid", []string{"check", bad}, 1, bad + ":2:"},
		{"check -config FILE", []string{"check", "-config", example}, 0, "OK"},
		{"check FILE and the same -config", []string{"check", "-config", example, example}, 0, "OK"},
		{"check FILE and another -config", []string{"check", "-config", bad, example}, 2, "two config files"},
		{"check two FILEs", []string{"check", example, bad}, 2, "one config file, not 2"},
		{"plan FILE -table empty", []string{"plan", example, "-table", "empty"}, 0, "add service tcp 192.0.2.10:80"},
		{"plan -dry-run FILE", []string{"plan", "-dry-run", example}, 0, "against the empty table"},
		{"plan -dry-run with -table kernel", []string{"plan", "-dry-run", "-table", "kernel", example}, 2, "cannot go with -table kernel"},
		{"run FILE, invalid", []string{"run", bad, "-dry-run"}, 1, bad + ":2:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if code := realMain(tc.args, &out, &out); code != tc.code || !strings.Contains(out.String(), tc.want) {
				t.Errorf("director %s: exit %d, output:\n%s\nwant exit %d and %q", strings.Join(tc.args, " "), code, out.String(), tc.code, tc.want)
			}
		})
	}
}

// TestCheckEmpty: a config without virtual servers fails check, as a
// reload would refuse it, unless -allow-empty says it is meant.
func TestCheckEmpty(t *testing.T) {
	dir := t.TempDir()
	for _, body := range []string{"", "# nothing yet\n", "[director]\nlisten = \"127.0.0.1:9410\"\n"} {
		empty := testutil.WriteFile(t, dir, "director.toml", body)
		var out, errOut bytes.Buffer
		if code := realMain([]string{"check", empty}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "no virtual servers") ||
			!strings.Contains(errOut.String(), "-allow-empty") {
			t.Errorf("check of %q: exit %d, stderr %q; want 1 and why", body, code, errOut.String())
		}
		errOut.Reset()
		if code := realMain([]string{"check", "-allow-empty", empty}, &out, &errOut); code != 0 {
			t.Errorf("check -allow-empty of %q: exit %d, stderr %q; want 0", body, code, errOut.String())
		}
	}
}
