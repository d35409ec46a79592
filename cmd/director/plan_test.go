package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/lvsdirector/director/internal/testutil"
)

func TestPlanCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := realMain([]string{"plan", "-config", "../../config.example.toml", "-table", "empty"}, &out, &errOut); code != 0 {
		t.Fatalf("plan of config.example.toml against an empty table: exit %d\n%s", code, errOut.String())
	}
	for _, want := range []string{
		"add service tcp 192.0.2.10:80 scheduler wlc",
		"add destination 10.0.0.11:8080 in tcp 192.0.2.10:80 forwarding nat weight 0",
		"add service fwmark 10 ipv4 scheduler rr",
		"# health assumed",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan output lacks %q:\n%s", want, out.String())
		}
	}

	dir := t.TempDir()
	bad := testutil.WriteFile(t, dir, "director.toml", "[director]\nlisten = \"127.0.0.1:9410\"\nresync = \"1s\"\n")
	out.Reset()
	errOut.Reset()
	if code := realMain([]string{"plan", "-config", bad, "-table", "empty"}, &out, &errOut); code != 1 {
		t.Errorf("plan of an invalid config: exit %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), bad+":3:") || out.Len() != 0 {
		t.Errorf("invalid config: stdout %q, stderr %q; want the problem with its line and no plan", out.String(), errOut.String())
	}
	if code := realMain([]string{"plan", "-config", bad, "-table", "disk"}, &out, &errOut); code != 2 {
		t.Errorf("bad -table: exit %d, want 2", code)
	}
}
