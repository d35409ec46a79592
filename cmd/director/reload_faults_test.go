package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// TestReloadOfBrokenConfigFileChangesNothing sends SIGHUP while the config
// file is gone, unreadable, cut short or emptied (a writer that truncates
// first, caught in the act): each reload is refused, the table and the
// running config stay as they are, and the director stays ready. A good
// file afterwards reloads as usual.
func TestReloadOfBrokenConfigFileChangesNothing(t *testing.T) {
	backend := okBackend(t)

	dir := t.TempDir()
	tmpl := fmt.Sprintf(`[director]
listen = "%s"

[defaults.check]
interval = "100ms"
timeout = "80ms"

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
scheduler = "%%s"
  [[virtual_server.real_server]]
  address = "%s"
  weight = 100
`, testutil.ClosedPort(t).String(), backend)
	good := fmt.Sprintf(tmpl, "wrr")
	cfg := testutil.WriteFile(t, dir, "director.toml", good)
	d := startDaemon(t, "run", "-dry-run", "-config", cfg)
	listen := d.waitStarted()
	d.waitLog(`op="edit destination ` + regexp.QuoteMeta(backend) + `.*weight 0 -> 100"`)
	mark := len(d.logText())

	write := func(text string, mode os.FileMode) {
		t.Helper()
		os.RemoveAll(cfg)
		if err := os.WriteFile(cfg, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	troubles := []struct {
		name  string
		apply func()
	}{
		{"file removed", func() { os.Remove(cfg) }},
		{"a directory in its place", func() {
			os.Remove(cfg)
			if err := os.Mkdir(cfg, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"cut inside a table", func() { write(good[:strings.Index(good, "scheduler")+11], 0o644) }},
		{"cut after the [director] table", func() { write(good[:strings.Index(good, "[defaults.check]")], 0o644) }},
		{"empty", func() { write("", 0o644) }},
	}
	if os.Geteuid() != 0 { // root reads whatever the mode says
		troubles = append(troubles, struct {
			name  string
			apply func()
		}{"unreadable", func() { write(good, 0) }})
	}
	for _, tc := range troubles {
		tc.apply()
		d.signal(syscall.SIGHUP)
		line := d.waitLog(`config reload failed.*`)[0]
		t.Logf("%s: %s", tc.name, line)
	}
	time.Sleep(500 * time.Millisecond) // a few check rounds
	if changes := grepLines(d.logText()[mark:], "ipvs table changed"); changes != "" {
		t.Errorf("refused reloads changed the table:\n%s", changes)
	}
	if code, _, _ := testutil.Get(t, "http://"+listen+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d after refused reloads, want 200", code)
	}
	_, _, status := testutil.Get(t, "http://"+listen+"/api/v1/status")
	if !strings.Contains(status, `"name": "web"`) || !strings.Contains(status, `"scheduler": "wrr"`) {
		t.Errorf("the running config changed:\n%s", status)
	}
	_, _, metrics := testutil.Get(t, "http://"+listen+"/metrics")
	if !strings.Contains(metrics, "director_config_last_reload_successful 0") {
		t.Errorf("director_config_last_reload_successful is not 0 after refused reloads")
	}

	// The file is whole again: it reloads.
	os.RemoveAll(cfg)
	testutil.WriteFile(t, filepath.Dir(cfg), "director.toml", fmt.Sprintf(tmpl, "rr"))
	d.signal(syscall.SIGHUP)
	d.waitLog(`op="edit service tcp 192.0.2.10:80 scheduler wrr -> rr"`)
	d.stop()
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
