package bench

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestHarnessKinds runs the per-kind table over the in-process protocol
// backends (dns, grpc, radius), small and short: each kind's checks must
// happen (the backends see them, the director counts them), pass, and
// have a CPU figure.
func TestHarnessKinds(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the director three times (~15s)")
	}
	o := Options{N: 6, VirtualServers: 2, Interval: time.Second, Timeout: 900 * time.Millisecond,
		Rise: 1, Fall: 3, Window: 2 * time.Second, Port: 18082}
	var progress bytes.Buffer
	buildHarness(t, &o, &progress)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kinds := []string{"dns", "grpc", "radius"}
	rep, err := RunKinds(ctx, o, kinds)
	if err != nil {
		t.Fatalf("harness: %v\n%s", err, progress.String())
	}
	var out bytes.Buffer
	rep.Print(&out)
	t.Log("\n" + out.String())
	if failed := rep.Failed(); len(failed) > 0 {
		t.Errorf("runs failed: %q\n%s", failed, progress.String())
	}
	if len(rep.Rows) != len(kinds) {
		t.Fatalf("%d rows, want one per kind (%d)", len(rep.Rows), len(kinds))
	}
	for _, row := range rep.Rows {
		// 6 servers every second.
		wantChecked(t, row.Kind, row.Director, 6)
		if !strings.Contains(out.String(), row.Kind) {
			t.Errorf("the table lacks a row for %s", row.Kind)
		}
	}
}

// TestHarnessDaemonKinds runs the harness once over mysql, postgresql
// and ldap backends, which are Debian's mariadbd, postgres and slapd
// behind counting forwarders. Without those servers (outside CI) it
// skips.
func TestHarnessDaemonKinds(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mariadbd, postgres and slapd (~20s)")
	}
	for _, d := range []struct{ name, pkg string }{{"mariadbd", "mariadb-server"}, {"slapd", "slapd"},
		{"postgres", "postgresql"}} {
		if _, err := program(d.name, d.pkg, pgBinDirs...); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%v; .ci/run must install it", err)
			}
			t.Skip(err)
		}
	}
	groups, err := ParseGroups("mysql:4:1s,postgresql:4:1s,ldap:4:1s")
	if err != nil {
		t.Fatal(err)
	}
	rep, _ := runHarness(t, Options{Groups: groups, N: 1, Interval: time.Second, VirtualServers: 3,
		Timeout: 900 * time.Millisecond, Rise: 1, Fall: 3, Window: 2 * time.Second, Port: 18083})
	wantChecked(t, "mysql, postgresql and ldap", rep.Director, 12)
}

// wantChecked wants about perSec checks a second done, seen by the
// backends and passed: it allows for a busy machine, not for checks that
// did not happen or did not pass.
func wantChecked(t *testing.T, what string, d CheckerStats, perSec float64) {
	t.Helper()
	if d.PlannedPerSec != perSec {
		t.Errorf("%s: planned %v/s, want %v", what, d.PlannedPerSec, perSec)
	}
	if d.CompletedPerSec < perSec/2 || d.BackendPerSec < perSec/2 || d.FailedPerSec > d.CompletedPerSec/4 {
		t.Errorf("%s: completed %.1f/s, backends saw %.1f/s, failed %.1f/s; want about %v, %v and 0",
			what, d.CompletedPerSec, d.BackendPerSec, d.FailedPerSec, perSec, perSec)
	}
	if d.CPUPer1000Checks <= 0 {
		t.Errorf("%s: no CPU figure: %+v", what, d)
	}
}
