package checks

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "check")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

var execTarget = netip.MustParseAddrPort("127.0.0.1:5432")

func execSpec(o ExecOptions) Spec {
	return Spec{Type: "exec", Target: execTarget, Timeout: 2 * time.Second, Options: o,
		VirtualServer: "db", RealServer: netip.MustParseAddrPort("10.0.0.11:5432")}
}

func execProbe(t *testing.T, o ExecOptions) Result {
	t.Helper()
	return probeWithin(t, mustNew(t, execSpec(o)), 2*time.Second)
}

func wantWeight(t *testing.T, res Result, weight int64) {
	t.Helper()
	wantOK(t, res)
	switch {
	case weight < 0 && res.HasWeight:
		t.Errorf("weight %d reported, want none", res.Weight)
	case weight >= 0 && (!res.HasWeight || int64(res.Weight) != weight):
		t.Errorf("weight %v %d, want %d", res.HasWeight, res.Weight, weight)
	}
}

func TestExecStatus(t *testing.T) {
	wantWeight(t, execProbe(t, ExecOptions{Command: []string{script(t, "exit 0")}}), -1)
	wantReason(t, execProbe(t, ExecOptions{Command: []string{script(t, "echo checking; echo 'replica lag 30s' >&2; exit 1")}}),
		"exit status 1: replica lag 30s")
	wantReason(t, execProbe(t, ExecOptions{Command: []string{script(t, "echo 'no route'; exit 1")}}), "exit status 1: no route")
	// Without dynamic_weight any status but 0 is down, and weight lines
	// mean nothing.
	wantReason(t, execProbe(t, ExecOptions{Command: []string{script(t, "exit 7")}}), "exit status 7")
	wantWeight(t, execProbe(t, ExecOptions{Command: []string{script(t, "echo weight=5")}}), -1)
	wantReason(t, execProbe(t, ExecOptions{Command: []string{script(t, "kill -9 $$")}}), "killed by signal killed")
	// Arguments go as they are: no shell sees them.
	wantOK(t, execProbe(t, ExecOptions{Command: []string{script(t, `[ "$1" = '$HOME; exit 1' ] && [ $# = 2 ]`), "$HOME; exit 1", ""}}))
}

// keepalived's misc_dynamic: 0 up, 1 down, 2-255 up with weight status-2.
func TestExecDynamicWeight(t *testing.T) {
	for code := 0; code <= 255; code++ {
		if code > 5 && code < 250 && code%37 != 0 {
			continue // the edges and a sample of the middle
		}
		res := execProbe(t, ExecOptions{Command: []string{script(t, "exit "+strconv.Itoa(code))}, DynamicWeight: true})
		switch code {
		case 0:
			wantWeight(t, res, -1)
		case 1:
			wantReason(t, res, "exit status 1")
		default:
			wantWeight(t, res, int64(code-2))
		}
	}
}

func TestExecWeightLine(t *testing.T) {
	dyn := func(body string) Result {
		return execProbe(t, ExecOptions{Command: []string{script(t, body)}, DynamicWeight: true})
	}
	wantWeight(t, dyn("echo load ok; echo weight=250"), 250)
	wantWeight(t, dyn("echo weight=0"), 0)
	wantWeight(t, dyn("echo weight=65535"), 65535)
	wantWeight(t, dyn("echo weight=10; echo weight=20"), 20)
	wantWeight(t, dyn("printf ' weight=30 \\r\\n'"), 30)
	wantWeight(t, dyn("printf weight=40"), 40) // no newline at the end
	// The line wins over the status.
	wantWeight(t, dyn("echo weight=300; exit 12"), 300)
	// Status 1 is down, whatever the output says.
	wantReason(t, dyn("echo weight=300; exit 1"), "exit status 1: weight=300")
	// Only stdout carries weights.
	wantWeight(t, dyn("echo weight=9 >&2"), -1)
	for _, bad := range []string{"weight=65536", "weight=-1", "weight=abc", "weight="} {
		wantReason(t, dyn("echo "+bad), fmt.Sprintf("bad output %q: want weight=N with N 0-65535", bad))
	}
	// A weight line past the output cap is not read; the command is not
	// blocked by the output it cannot get rid of.
	wantWeight(t, dyn("head -c 1000000 /dev/zero | tr '\\0' x; echo; echo weight=5"), -1)
	// A line cut by the cap is not trusted.
	wantReason(t, dyn(fmt.Sprintf("head -c %d /dev/zero | tr '\\0' '\\n'; echo weight=12345", execOutputCap-8)),
		`bad output "weight=1": want weight=N with N 0-65535`)
}

func TestExecEnvironment(t *testing.T) {
	out := filepath.Join(t.TempDir(), "env")
	cmd := script(t, "env > "+out)
	spec := execSpec(ExecOptions{Command: []string{cmd}})
	spec.Source = netip.MustParseAddr("127.0.0.9")
	spec.Timeout = 1500 * time.Millisecond
	wantOK(t, probeWithin(t, mustNew(t, spec), 2*time.Second))
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	env := string(b)
	for _, want := range []string{"DIRECTOR_VIRTUAL_SERVER=db", "DIRECTOR_REAL_SERVER=10.0.0.11:5432",
		"DIRECTOR_ADDRESS=127.0.0.1", "DIRECTOR_PORT=5432", "DIRECTOR_SOURCE=127.0.0.9", "DIRECTOR_TIMEOUT=1.5",
		"PATH=" + os.Getenv("PATH")} {
		if !strings.Contains(env, "\n"+want+"\n") && !strings.HasPrefix(env, want+"\n") {
			t.Errorf("the command's environment lacks %s:\n%s", want, env)
		}
	}
}

// gone reports whether pid has ended (a zombie waiting for init counts).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

// readPid waits for a command to write its child's pid to path.
func readPid(t *testing.T, path string) int {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
	}
	t.Fatal("the command never wrote its child's pid")
	return 0
}

func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); !gone(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("%s (pid %d) outlived the check", what, pid)
		}
	}
}

func TestExecTimeoutKillsTheGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := script(t, "sleep 60 &\necho $! > "+pidFile+"\nwait")
	p := mustNew(t, execSpec(ExecOptions{Command: []string{cmd}}))
	done := checkNoLeak(t)
	res := probeWithin(t, p, 300*time.Millisecond)
	done()
	wantReason(t, res, "timeout")
	waitGone(t, readPid(t, pidFile), "the grandchild")

	// A command that ignores SIGTERM is no different: the group gets
	// SIGKILL.
	stubborn := script(t, "trap '' TERM\nwhile :; do sleep 1; done")
	wantReason(t, execProbe(t, ExecOptions{Command: []string{stubborn}, DynamicWeight: true}), "timeout")
}

// A command that exits leaving a child behind (holding the output pipe)
// is judged when it exits, and the child is killed. A check that waited
// for the pipe would run into its timeout (10 s here); one that does not
// takes a fraction of a second, a few on a loaded machine: the bound is
// half the timeout.
func TestExecLeftoverChild(t *testing.T) {
	const timeout, bound = 10 * time.Second, 5 * time.Second
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := script(t, "sleep 60 &\necho $! > "+pidFile+"\necho weight=3")
	slowSpec := func(o ExecOptions) Spec { s := execSpec(o); s.Timeout = timeout; return s }
	res := probeWithin(t, mustNew(t, slowSpec(ExecOptions{Command: []string{cmd}, DynamicWeight: true})), timeout)
	wantWeight(t, res, 3)
	if res.Duration > bound {
		t.Errorf("the check took %v: it waited for the child", res.Duration)
	}
	waitGone(t, readPid(t, pidFile), "the leftover child")

	// One that left the group (setsid) is out of reach, but the check
	// does not wait for the pipe it holds.
	setsid := needBinary(t, "setsid")
	cmd = script(t, setsid+" sleep 60 &\nsleep 0.2\npgrep -n -f '^sleep 60$' > "+pidFile+"\nexit 0")
	res = probeWithin(t, mustNew(t, slowSpec(ExecOptions{Command: []string{cmd}})), timeout)
	if pid := readPid(t, pidFile); pid > 0 {
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) }) // ours to end, since the check cannot
	}
	wantOK(t, res)
	if res.Duration > bound {
		t.Errorf("the check took %v: it waited for a pipe held outside its group", res.Duration)
	}
}

func TestExecLocalFailures(t *testing.T) {
	// The program vanished after the config was loaded: the director's
	// problem, not the server's.
	path := script(t, "exit 0")
	p := mustNew(t, execSpec(ExecOptions{Command: []string{path}}))
	os.Remove(path)
	res := probeWithin(t, p, 2*time.Second)
	wantReasonPrefix(t, res, "local: exec: ")
	if !res.Inconclusive {
		t.Error("a check that could not start its program is not inconclusive")
	}

	// Every slot taken until the deadline.
	p = mustNew(t, execSpec(ExecOptions{Command: []string{script(t, "exit 0")}}))
	full := make(slots, 1)
	full <- struct{}{}
	p.(*execProber).slots = full
	res = probeWithin(t, p, 200*time.Millisecond)
	wantReason(t, res, "local: all 1 exec check slots busy until the deadline")
	if !res.Inconclusive {
		t.Error("a check that found no slot is not inconclusive")
	}
	// A slot freed in time is used.
	go func() { time.Sleep(50 * time.Millisecond); full.give() }()
	wantOK(t, probeWithin(t, p, 2*time.Second))
	if len(full) != 0 {
		t.Error("the check kept its slot")
	}

	// Started after its deadline: not run, and not a verdict.
	late, cancelLate := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancelLate()
	if res := mustNew(t, execSpec(ExecOptions{Command: []string{script(t, "exit 0")}})).Probe(late); res.OK || !res.Inconclusive {
		t.Errorf("an exec check started after its deadline: %+v, want inconclusive", res)
	}

	// Canceled before a slot came.
	full <- struct{}{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = p.Probe(ctx)
	wantReason(t, res, "canceled")
	if res.Inconclusive {
		t.Error("a canceled check is inconclusive")
	}
}

func TestExecUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	dir := t.TempDir()
	// nobody must reach the script: open the test's directories up.
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o777)
	out := filepath.Join(dir, "id")
	cmd := filepath.Join(dir, "check")
	if err := os.WriteFile(cmd, []byte("#!/bin/sh\nid -u > "+out+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nobody", nobody.Uid} {
		os.Remove(out)
		wantOK(t, execProbe(t, ExecOptions{Command: []string{cmd}, User: name}))
		if b, _ := os.ReadFile(out); strings.TrimSpace(string(b)) != nobody.Uid {
			t.Errorf("user %s: the command ran as uid %q, want %s", name, b, nobody.Uid)
		}
	}
	if _, err := New(execSpec(ExecOptions{Command: []string{cmd}, User: "no-such-user-here"})); err == nil ||
		!strings.Contains(err.Error(), `user: no user "no-such-user-here" on this system`) {
		t.Errorf("New with an unknown user: %v", err)
	}
}

func TestExecOptions(t *testing.T) {
	ok := script(t, "exit 0")
	notExec := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(notExec, nil, 0o644)
	for _, tt := range []struct {
		m        map[string]any
		want     ExecOptions
		problems []string
		invalid  []string
	}{
		{m: map[string]any{"command": []string{ok, "a"}, "dynamic_weight": true}, want: ExecOptions{Command: []string{ok, "a"}, DynamicWeight: true}},
		{m: map[string]any{"command": []string{"check-db"}}, want: ExecOptions{Command: []string{"check-db"}},
			invalid: []string{`command: "check-db" must be an absolute path (no shell or PATH lookup is used)`}},
		{m: map[string]any{"command": []string{"/nonexistent/check"}}, want: ExecOptions{Command: []string{"/nonexistent/check"}},
			problems: []string{"command: cannot run /nonexistent/check: no such file or directory"}},
		{m: map[string]any{"command": []string{notExec}}, want: ExecOptions{Command: []string{notExec}},
			problems: []string{"command: cannot run " + notExec + ": not executable (chmod +x it)"}},
		{m: map[string]any{"command": []string{"/"}}, want: ExecOptions{Command: []string{"/"}},
			problems: []string{"command: cannot run /: not a regular file"}},
		{m: map[string]any{"command": []string{ok}, "user": "no-such-user-here"}, want: ExecOptions{Command: []string{ok}, User: "no-such-user-here"},
			problems: []string{`user: no user "no-such-user-here" on this system`}},
		{m: map[string]any{}, want: ExecOptions{},
			invalid: []string{`command: an exec check needs a command, such as ["/usr/local/bin/check-db", "--quick"] (with type)`}},
	} {
		d := &mapDecoder{m: tt.m}
		k, _ := LookupKind("exec")
		got := k.Decode(d).(ExecOptions)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%v: decoded %+v, want %+v", tt.m, got, tt.want)
		}
		if fmt.Sprint(d.problems) != fmt.Sprint(tt.problems) {
			t.Errorf("%v: problems %q, want %q", tt.m, d.problems, tt.problems)
		}
		if invalid := validation(got); fmt.Sprint(invalid) != fmt.Sprint(tt.invalid) {
			t.Errorf("%v: Validate %q, want %q", tt.m, invalid, tt.invalid)
		}
	}
}

// The exec bound belongs to the Shared that built the probers (one per
// director), not to the package: probers of one Shared share its slots,
// those of another do not.
func TestExecSlotsPerShared(t *testing.T) {
	spec := execSpec(ExecOptions{Command: []string{script(t, "exit 0")}})
	busy := NewShared()
	for range ExecConcurrency {
		busy.execSlots <- struct{}{} // every slot of this director taken
	}
	p, err := busy.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	res := probeWithin(t, p, 200*time.Millisecond)
	if !res.Inconclusive || !strings.Contains(res.Reason, "slots busy") {
		t.Errorf("a prober of a Shared with no free slot: %+v, want inconclusive, slots busy", res)
	}
	other, err := NewShared().New(spec)
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, probeWithin(t, other, 2*time.Second))
}
