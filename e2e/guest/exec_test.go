//go:build linux

package guest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// execScript writes the exec check's program into dir: it runs the shell
// lines in dir/<DIRECTOR_ADDRESS>, so each real server's verdict is a file
// the test rewrites (and the program proves it was given the address).
func execScript(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "check")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n. \""+dir+"/$DIRECTOR_ADDRESS\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// setVerdict replaces the lines b's check runs, in one rename so that a
// run never reads half a file.
func setVerdict(t *testing.T, dir string, b *backend, lines string) {
	t.Helper()
	tmp := filepath.Join(dir, ".next")
	if err := os.WriteFile(tmp, []byte(lines+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, b.ip4.String())); err != nil {
		t.Fatal(err)
	}
}

// 25. An exec check with dynamic_weight (keepalived's misc_dynamic) sets
// the kernel weight: exit status 7 is weight 5, a "weight=0" line keeps
// the server up at weight 0 (no new connections), "weight=7" is 7, exit
// status 1 is down (class "exit" in the failure counter), and a server
// whose program reports no weight keeps its configured one throughout.
func Test25ExecDynamicWeight(t *testing.T) {
	guest(t)
	dir := t.TempDir()
	prog := execScript(t, dir)
	setVerdict(t, dir, rs(1), "exit 7")
	setVerdict(t, dir, rs(2), "echo fine; exit 0")
	// Emulated fork and exec are slow: a timeout of seconds, not the
	// suite's 900 ms.
	const execInterval, execTimeout = 2 * time.Second, 1500 * time.Millisecond
	startDirector(t, directorConfig("30s", "keep", fmt.Sprintf(`[[virtual_server]]
name = "exec"
address = "10.0.100.25:80"
scheduler = "wrr"
  [virtual_server.check]
  type = "exec"
  command = [%q]
  dynamic_weight = true
  interval = %q
  timeout = %q
%s`, prog, execInterval, execTimeout, reals(rs(1).addr4(80)+" 1", rs(2).addr4(80)+" 2"))))
	const vip = "10.0.100.25:80"
	// A weight follows the next successful run; up and down follow
	// rise and fall runs.
	weightWithin := 2*(execInterval+execTimeout) + slack
	upDown := func(n int) time.Duration { return time.Duration(n)*execInterval + execTimeout + slack }
	want := func(w1 int) func(table) error {
		return dests("TCP "+vip, "wrr", masq(rs(1), w1), masq(rs(2), 2))
	}
	rs1 := map[string]string{"virtual_server": "exec", "real_server": rs(1).addr4(80)}
	upMetric := func() float64 {
		v, ok := metric(t, "director_real_server_up", rs1)
		if !ok {
			t.Fatalf("no director_real_server_up for rs1")
		}
		return v
	}

	waitTable(t, upDown(rise), "exit 7: rs1 up at weight 5, rs2 at its configured 2", want(5))
	served(t, "http://"+vip+"/", 14, []string{"rs1", "rs2"}, "rs1", "rs2")

	setVerdict(t, dir, rs(1), "echo weight=0")
	waitTable(t, weightWithin, "weight=0: rs1 at weight 0", want(0))
	if v := upMetric(); v != 1 {
		t.Errorf("rs1 at a reported weight of 0: director_real_server_up = %v, want 1 (up, weight 0)", v)
	}
	served(t, "http://"+vip+"/", 10, []string{"rs2"}, "rs2")

	setVerdict(t, dir, rs(1), "echo starting; echo weight=7")
	waitTable(t, weightWithin, "weight=7: rs1 at weight 7", want(7))
	served(t, "http://"+vip+"/", 18, []string{"rs1", "rs2"}, "rs1", "rs2")

	setVerdict(t, dir, rs(1), "echo 'replica lag 45s'; exit 1")
	waitTable(t, upDown(fall), "exit 1: rs1 down", want(0))
	if v := upMetric(); v != 0 {
		t.Errorf("rs1 after exit status 1: director_real_server_up = %v, want 0", v)
	}
	if v, ok := metric(t, "director_check_failures_total", map[string]string{
		"virtual_server": "exec", "real_server": rs(1).addr4(80), "reason": "exit"}); !ok || v < fall {
		t.Errorf("rs1's failures counted as exit: %v (found %v), want at least %d", v, ok, fall)
	}

	setVerdict(t, dir, rs(1), "exit 7")
	waitTable(t, upDown(rise), "exit 7 again: rs1 back at weight 5", want(5))
}
