package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsdirector/director/internal/testutil"
)

// TestImportCmd: the command's output passes director check, the report
// goes to stderr, includes are read relative to the file, and the exit
// status says usable (0), unreadable source (1) or usage error (2).
func TestImportCmd(t *testing.T) {
	dir := t.TempDir()
	testutil.WriteFile(t, dir, "keepalived.conf", "global_defs {\n router_id x\n}\ninclude conf.d/*.conf\n")
	if err := os.Mkdir(filepath.Join(dir, "conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, filepath.Join(dir, "conf.d"), "web.conf", "virtual_server 192.0.2.1 80 {\n lb_algo rr\n real_server 10.0.0.1 80 {\n  TCP_CHECK {\n   connect_timeout 1\n  }\n }\n}\n")
	out := filepath.Join(dir, "director.toml")
	var stdout, stderr bytes.Buffer
	if code := realMain([]string{"import", "-o", out, filepath.Join(dir, "keepalived.conf")}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, w := range []string{"read as keepalived", "keepalived.conf:2: router_id: ignored", "options: "} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("report lacks %q:\n%s", w, stderr.String())
		}
	}
	stdout.Reset()
	stderr.Reset()
	if code := realMain([]string{"check", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("director check of the output: exit %d: %s", code, stderr.String())
	}

	testutil.WriteFile(t, dir, "bad.conf", "virtual_server 192.0.2.1 80 {\n")
	stderr.Reset()
	if code := realMain([]string{"import", "-from", "keepalived", filepath.Join(dir, "bad.conf")}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "bad.conf:1: block virtual_server is never closed") {
		t.Errorf("parse error: exit %d, %s", code, stderr.String())
	}
	for _, args := range [][]string{{"import"}, {"import", "-from", "nginx", "x"}, {"import", "a", "b"}} {
		stderr.Reset()
		if code := realMain(args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, stderr.String())
		}
	}
}

// TestImportServicesFile: a port name the importer's own table lacks is
// looked up in the services database (-services), and the output has the
// number, so it does not depend on that file.
func TestImportServicesFile(t *testing.T) {
	dir := t.TempDir()
	testutil.WriteFile(t, dir, "services", "zzsvc\t7777/tcp\t# a local service\n")
	testutil.WriteFile(t, dir, "keepalived.conf", "virtual_server 192.0.2.1 zzsvc {\n real_server 10.0.0.1 zzsvc {\n  TCP_CHECK {\n  }\n }\n}\n")
	var stdout, stderr bytes.Buffer
	if code := realMain([]string{"import", "-services", filepath.Join(dir, "services"), filepath.Join(dir, "keepalived.conf")}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), `address = "192.0.2.1:7777"`) || !strings.Contains(stdout.String(), `address = "10.0.0.1:7777"`) {
		t.Errorf("zzsvc not resolved:\n%s\n%s", stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := realMain([]string{"import", "-services", filepath.Join(dir, "none"), filepath.Join(dir, "keepalived.conf")}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, w := range []string{"warning: ", "virtual_server 192.0.2.1 zzsvc: not supported"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("without the file: report lacks %q:\n%s", w, stderr.String())
		}
	}
}
