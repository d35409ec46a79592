//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// suiteBudget bounds the whole suite (downloads, builds, boot, scenarios).
// The test's own deadline wins when it is nearer: with go test's default
// 10-minute timeout the suite gets 9m45s; CI passes -timeout 30m, since
// the BGP and VRRP labs made the suite longer than 9 minutes on a busy host.
const suiteBudget = 25 * time.Minute

// Console markers written by the guest's /init.
const (
	markStart = "E2E-GUEST-START"
	markExit  = "E2E-GUEST-EXIT "
	markKVM   = "E2E-KVM-OK"
)

// TestE2E boots a real IPVS kernel once and runs every guest scenario in
// it; each guest test becomes a subtest here, failing with the guest's log.
func TestE2E(t *testing.T) {
	if os.Getenv("DIRECTOR_E2E") == "0" {
		t.Skip("DIRECTOR_E2E=0")
	}
	if testing.Short() {
		t.Skip("-short: the e2e suite boots a VM")
	}
	ci := os.Getenv("CI") == "true"
	prereq := func(err error) {
		t.Helper()
		if ci {
			announce(t, "e2e: FAILED: a prerequisite is missing: "+err.Error())
			t.Fatalf("CI=true, and a prerequisite of the e2e suite is missing: %v", err)
		}
		announce(t, "e2e: skipped: "+err.Error())
		t.Skipf("e2e prerequisite missing (under CI=true this fails): %v", err)
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		prereq(fmt.Errorf("no qemu-system-x86_64: apt-get install --no-install-recommends qemu-system-x86 (%v)", err))
	}
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			prereq(fmt.Errorf("no %s: the suite fetches Debian's kernel, busybox and ipvsadm with apt (%v)", tool, err))
		}
	}

	budget := suiteBudget
	if dl, ok := t.Deadline(); ok {
		budget = min(budget, time.Until(dl)-15*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	start := time.Now()

	root, err := cacheRoot()
	if err != nil {
		prereq(fmt.Errorf("no cache directory: %v", err))
	}
	a, err := prepareAssets(ctx, root, t.Logf)
	if err != nil {
		if errors.As(err, new(prereqError)) {
			prereq(err)
		}
		t.Fatal(err)
	}
	t.Logf("kernel %s, cache %s (%.1fs)", a.kver, a.dir, time.Since(start).Seconds())

	// keepalived for the active-backup scenarios (e2e/guest/vrrp_test.go):
	// without it they skip, and under CI fail.
	var extra []string
	if ka, kver, err := prepareKeepalived(ctx, root, t.Logf); err != nil {
		if ci {
			t.Fatalf("CI=true, and keepalived for the guest is missing: %v", err)
		}
		t.Logf("no keepalived for the guest; its scenarios skip: %v", err)
	} else {
		extra = append(extra, ka)
		t.Logf("keepalived %s", kver)
	}
	// Programs of some scenarios, each its own overlay: without one those
	// scenarios skip, and under CI fail. BIRD 2 is the router of the BGP
	// scenarios (e2e/guest/bgp_test.go); ldirectord (perl) runs in the
	// import scenario (e2e/guest/import_test.go, Test31).
	for _, o := range []overlay{bird, ldirectord} {
		start := time.Now()
		archive, version, err := prepareOverlay(ctx, root, o, t.Logf)
		if err != nil {
			if ci {
				t.Fatalf("CI=true, and %s for the guest is missing: %v", o.pkg, err)
			}
			t.Logf("no %s for the guest; its scenarios skip: %v", o.pkg, err)
			continue
		}
		extra = append(extra, archive)
		t.Logf("%s %s (%.1fs)", o.pkg, version, time.Since(start).Seconds())
	}

	tmp := t.TempDir()
	director := filepath.Join(tmp, "director")
	bins := map[string]string{"director": director}
	for _, gt := range guestTests {
		bins[gt.binary] = filepath.Join(tmp, gt.binary)
	}
	if err := buildBinaries(ctx, director, bins); err != nil {
		t.Fatal(err)
	}
	t.Logf("built director and guest tests (%.1fs)", time.Since(start).Seconds())

	accel := chooseAccel(ctx, t, qemu, a, root)

	// The guest gets most of what is left; the host keeps a margin to
	// collect the result and to kill qemu if the guest hangs anyway.
	guestTimeout := time.Until(deadlineOf(ctx)) - 45*time.Second
	if guestTimeout < time.Minute {
		t.Fatalf("not enough time left for the guest (%v)", guestTimeout)
	}
	args := []string{"-test.v", "-test.count=1", fmt.Sprintf("-test.timeout=%ds", int(guestTimeout.Seconds()))}
	initrd := filepath.Join(tmp, "initrd.gz")
	if err := writeInitrd(initrd, a, guestInit(args, os.Getenv("DIRECTOR_E2E_RUN")), bins, extra...); err != nil {
		t.Fatal(err)
	}

	// The console is kept in the cache directory when the suite fails.
	console, err := os.Create(filepath.Join(root, fmt.Sprintf("console-%d.log", os.Getpid())))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		console.Close()
		if !t.Failed() {
			os.Remove(console.Name())
		}
	}()
	p := newParser()
	bootStart := time.Now()
	err = boot(ctx, qemu, accel, a.kernel, initrd, func(line string) {
		fmt.Fprintln(console, line)
		if ev := p.line(line); ev != "" {
			t.Logf("guest %s [%.0fs]", ev, time.Since(bootStart).Seconds())
		}
	})
	bootTime := time.Since(bootStart)
	t.Logf("boot to power-off %.1fs under %s; suite %.1fs; console in %s",
		bootTime.Seconds(), accel, time.Since(start).Seconds(), console.Name())
	announce(t, summary(p.tests, a.kver, accel, bootTime, time.Since(start))...)

	for _, g := range p.tests {
		t.Run(g.name, func(t *testing.T) {
			switch g.status {
			case "PASS":
				t.Logf("passed in the guest (%s):\n%s", g.dur, strings.Join(g.lines, "\n"))
			case "SKIP":
				t.Skipf("skipped in the guest:\n%s", strings.Join(g.lines, "\n"))
			case "FAIL":
				t.Errorf("failed in the guest (%s):\n%s", g.dur, strings.Join(g.lines, "\n"))
			default:
				t.Errorf("did not finish in the guest; its output:\n%s", strings.Join(tail(g.lines, 200), "\n"))
			}
		})
	}
	switch {
	case err != nil:
		t.Errorf("qemu: %v; last console lines:\n%s", err, strings.Join(tail(p.all, 60), "\n"))
	case !p.started:
		t.Errorf("the guest never started its tests; console:\n%s", strings.Join(tail(p.all, 80), "\n"))
	case p.exit == "":
		t.Errorf("the guest test binary did not exit; last console lines:\n%s", strings.Join(tail(p.all, 80), "\n"))
	case p.exit != "0":
		if !t.Failed() {
			t.Errorf("guest tests exited %s; last console lines:\n%s", p.exit, strings.Join(tail(p.all, 80), "\n"))
		}
	case len(p.tests) == 0:
		t.Errorf("the guest ran no tests")
	}
}

// accelNames say what each accelerator means for the suite's speed.
var accelNames = map[string]string{"kvm": "kvm (hardware virtualisation)", "tcg": "tcg (emulation, no KVM)"}

// summary is what the suite ran: one line for the boot, one per scenario.
func summary(tests []*guestTest, kver, accel string, boot, suite time.Duration) []string {
	name := accelNames[accel]
	if name == "" {
		name = accel
	}
	scenarios := "scenarios"
	if len(tests) == 1 {
		scenarios = "scenario"
	}
	lines := []string{fmt.Sprintf("e2e: %d %s in Debian's kernel %s under %s: boot to power-off %.0fs, suite %.0fs",
		len(tests), scenarios, kver, name, boot.Seconds(), suite.Seconds())}
	for _, g := range tests {
		status, dur := g.status, g.dur
		if status == "" {
			status, dur = "DID NOT FINISH", "?"
		}
		lines = append(lines, fmt.Sprintf("e2e:   %-4s %s (%s)", status, g.name, dur))
	}
	return lines
}

// announce shows lines to whoever runs the suite, also when it passes
// without -v: go test prints a passing package's output only with -v, and
// a bare "ok" would not say which scenarios ran, nor under which
// accelerator. Without -v the lines go straight to the standard output of
// the process that ran this test binary (go test); with -v (or -json, or
// where that cannot be opened) to the test log.
func announce(t *testing.T, lines ...string) {
	t.Helper()
	text := strings.Join(lines, "\n") + "\n"
	if !testing.Verbose() && writeParentStdout(text) == nil {
		return
	}
	t.Log(text)
}

// writeParentStdout writes text to the parent process's standard output.
// Opening /proc/PID/fd/1 opens the file anew, with an offset of its own:
// that is safe for a terminal or a pipe, and for a file the parent opened
// for appending, but would overwrite a file the parent writes at its own
// offset, so then it refuses.
func writeParentStdout(text string) error {
	ppid := os.Getppid()
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/1", ppid), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Mode().IsRegular() {
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/1", ppid))
		if err != nil || !appending(string(info)) {
			return errors.New("the parent's standard output is a file it does not append to")
		}
	}
	_, err = f.WriteString(text)
	return err
}

// appending reports whether an fdinfo text has O_APPEND in its flags.
func appending(fdinfo string) bool {
	for _, line := range strings.Split(fdinfo, "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			return err == nil && flags&syscall.O_APPEND != 0
		}
	}
	return false
}

func deadlineOf(ctx context.Context) time.Time {
	dl, _ := ctx.Deadline()
	return dl
}

func tail(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}

// guestTests are the test binaries the guest runs, in this order, with
// the tests each runs unless DIRECTOR_E2E_RUN chooses: the scenarios of
// package e2e/guest, then the kernel tests of package ipvs (the Table
// conformance suite among them, each case in a network namespace of its
// own; the package's unit tests run on the host). The kernel tests come
// last so that the teardown of their namespaces, work the kernel does in
// the background, cannot slow the scenarios' timed checks.
var guestTests = []struct{ pkg, binary, run string }{
	{"./e2e/guest", "guest.test", ""},
	{"./ipvs", "ipvs.test", "^TestKernel"},
}

// buildBinaries builds the director and the guest test binaries (name in
// / -> host path): static, for linux/amd64, without the race detector
// whatever the host test uses.
func buildBinaries(ctx context.Context, director string, bins map[string]string) error {
	mod, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=")
	builds := [][]string{{"build", "-o", director, "./cmd/director"}}
	for _, gt := range guestTests {
		builds = append(builds, []string{"test", "-c", "-o", bins[gt.binary], gt.pkg})
	}
	for _, args := range builds {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = mod
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// shellWords quotes each argument for /init's shell: a -test.run pattern
// such as "A|B" must reach the test binary as it is.
func shellWords(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// guestInit is the guest's /init: load the modules, run the test
// binaries, power off. The exit status reported is the first failure's.
// DIRECTOR_REQUIRE_IPVS=1 turns the kernel tests' skip (no IPVS, no
// privileges) into a failure: here there is no excuse.
func guestInit(testArgs []string, runPattern string) string {
	run := ""
	for _, gt := range guestTests {
		args := slices.Clone(testArgs)
		pattern := runPattern
		if pattern == "" {
			pattern = gt.run
		}
		if pattern != "" {
			args = append(args, "-test.run="+pattern)
		}
		run += "/" + gt.binary + " " + shellWords(args) + " 2>&1 || { r=$?; [ $rc = 0 ] && rc=$r; }\n"
	}
	return `#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
for m in $(cat /mods/order); do insmod /mods/$m.ko || echo "e2e: insmod $m failed"; done
ip link set lo up
export PATH=/bin:/sbin:/usr/sbin HOME=/tmp DIRECTOR_E2E_GUEST=1 DIRECTOR_BIN=/director DIRECTOR_REQUIRE_IPVS=1
cd /tmp
echo ` + markStart + `
rc=0
` + run + `echo "` + markExit + `$rc"
poweroff -f
`
}

// writeInitrd writes the cached base, any extra cached archives (the
// keepalived overlay of the peer bench), then an overlay with /init
// and the given binaries (name in / -> host path).
func writeInitrd(path string, a *assets, init string, bins map[string]string, extra ...string) error {
	var all []byte
	for _, p := range append([]string{a.base}, extra...) {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		all = append(all, b...)
	}
	var overlay bytes.Buffer
	c := newCpio(&overlay)
	c.file("init", 0o755, []byte(init))
	for name, src := range bins {
		c.copyFile(name, 0o755, src)
	}
	if err := c.close(); err != nil {
		return err
	}
	return os.WriteFile(path, append(all, overlay.Bytes()...), 0o644)
}

// boot runs qemu until the guest powers off (or ctx ends), passing each
// console line to onLine.
func boot(ctx context.Context, qemu, accel, kernel, initrd string, onLine func(string)) error {
	cpu := "max"
	if accel == "kvm" {
		cpu = "host"
	}
	cmd := exec.CommandContext(ctx, qemu,
		"-accel", accel, "-cpu", cpu, "-m", "512M", "-smp", "2",
		"-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 quiet loglevel=3")
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	r := bufio.NewReaderSize(out, 64<<10)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			onLine(strings.TrimRight(line, "\r\n"))
		}
		if err != nil {
			if err != io.EOF {
				cmd.Process.Kill()
			}
			break
		}
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("killed after the suite's time budget: %w", ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// chooseAccel picks KVM when it can boot this kernel, else TCG. The
// verdict is cached per host kernel and guest kernel: a KVM that cannot
// boot a stock kernel (as on some paravirtual hosts) costs one probe.
func chooseAccel(ctx context.Context, t *testing.T, qemu string, a *assets, root string) string {
	if acc := os.Getenv("DIRECTOR_E2E_ACCEL"); acc == "kvm" || acc == "tcg" {
		return acc
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return "tcg"
	}
	f.Close()
	host, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	verdictFile := filepath.Join(root, "kvm-"+a.key+"-"+strings.TrimSpace(string(host)))
	if v, err := os.ReadFile(verdictFile); err == nil {
		return strings.TrimSpace(string(v))
	}
	verdict := "tcg"
	initrd := filepath.Join(t.TempDir(), "probe.gz")
	if err := writeInitrd(initrd, a, "#!/bin/sh\necho "+markKVM+"\npoweroff -f\n", nil); err == nil {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ok := false
		err := boot(pctx, qemu, "kvm", a.kernel, initrd, func(l string) { ok = ok || strings.Contains(l, markKVM) })
		cancel()
		if ok && err == nil {
			verdict = "kvm"
		} else {
			t.Logf("KVM cannot boot the kernel here, using TCG (%v)", err)
		}
	}
	os.WriteFile(verdictFile, []byte(verdict+"\n"), 0o644)
	return verdict
}

// guestTest is one top-level test of the guest binary.
type guestTest struct {
	name   string
	status string // PASS, FAIL, SKIP; empty while running
	dur    string
	lines  []string
}

// parser reads the guest's `go test -v` output from the console.
type parser struct {
	started bool
	exit    string
	all     []string
	tests   []*guestTest
	cur     *guestTest
}

func newParser() *parser { return &parser{} }

var (
	runRE     = regexp.MustCompile(`^=== RUN\s+(\S+)$`)
	doneRE    = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (\S+) \(([^)]*)\)`)
	subDoneRE = regexp.MustCompile(`^\s+--- (PASS|FAIL|SKIP): (\S+) \(([^)]*)\)`)
)

// line takes one console line and returns a short event to show live, if any.
func (p *parser) line(l string) string {
	p.all = append(p.all, l)
	if i := strings.Index(l, markStart); i >= 0 {
		p.started = true
		return ""
	}
	if i := strings.Index(l, markExit); i >= 0 {
		p.exit = strings.TrimSpace(l[i+len(markExit):])
		return "tests exited " + p.exit
	}
	if !p.started {
		return ""
	}
	if m := runRE.FindStringSubmatch(l); m != nil && !strings.Contains(m[1], "/") {
		p.cur = &guestTest{name: m[1]}
		p.tests = append(p.tests, p.cur)
		return "RUN " + m[1]
	}
	if p.cur == nil {
		// The verdicts of a finished test's subtests follow its own.
		if n := len(p.tests); n > 0 {
			if m := subDoneRE.FindStringSubmatch(l); m != nil && strings.HasPrefix(m[2], p.tests[n-1].name+"/") {
				p.tests[n-1].lines = append(p.tests[n-1].lines, l)
			}
		}
		return ""
	}
	p.cur.lines = append(p.cur.lines, l)
	if m := doneRE.FindStringSubmatch(l); m != nil && m[2] == p.cur.name {
		p.cur.status, p.cur.dur = m[1], m[3]
		p.cur = nil
		return m[1] + " " + m[2] + " (" + m[3] + ")"
	}
	return ""
}

func TestGuestInit(t *testing.T) {
	init := guestInit([]string{"-test.v"}, "")
	for _, want := range []string{"/guest.test '-test.v' 2>&1", "/ipvs.test '-test.v' '-test.run=^TestKernel' 2>&1"} {
		if !strings.Contains(init, want) {
			t.Errorf("/init runs no %q:\n%s", want, init)
		}
	}
	if strings.Index(init, "/guest.test") > strings.Index(init, "/ipvs.test") {
		t.Errorf("/init runs the kernel tests before the scenarios:\n%s", init)
	}
	init = guestInit([]string{"-test.v"}, "Drift|it's")
	for _, want := range []string{`/ipvs.test '-test.v' '-test.run=Drift|it'\''s' 2>&1`, `/guest.test '-test.v' '-test.run=Drift|it'\''s' 2>&1`} {
		if !strings.Contains(init, want) {
			t.Errorf("/init runs no %q:\n%s", want, init)
		}
	}
}

func TestSummary(t *testing.T) {
	tests := []*guestTest{{name: "Test01Start", status: "PASS", dur: "6.21s"}, {name: "Test02BackendDies", status: "FAIL", dur: "9.00s"}, {name: "Test03X"}}
	got := strings.Join(summary(tests, "6.1.0-37-amd64", "tcg", 212*time.Second, 255*time.Second), "\n")
	want := `e2e: 3 scenarios in Debian's kernel 6.1.0-37-amd64 under tcg (emulation, no KVM): boot to power-off 212s, suite 255s
e2e:   PASS Test01Start (6.21s)
e2e:   FAIL Test02BackendDies (9.00s)
e2e:   DID NOT FINISH Test03X (?)`
	if got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
}

func TestAppending(t *testing.T) {
	for _, tc := range []struct {
		info string
		want bool
	}{
		{"pos:\t0\nflags:\t0102001\nmnt_id:\t29\n", true}, // O_WRONLY|O_APPEND|O_LARGEFILE
		{"pos:\t0\nflags:\t0100001\nmnt_id:\t29\n", false},
		{"pos:\t0\n", false},
	} {
		if got := appending(tc.info); got != tc.want {
			t.Errorf("appending(%q) = %v, want %v", tc.info, got, tc.want)
		}
	}
}

func TestParser(t *testing.T) {
	p := newParser()
	for _, l := range strings.Split(`[    1.0] boot noise
E2E-GUEST-START
=== RUN   TestA
    a_test.go:1: hello
=== RUN   TestA/sub
--- PASS: TestA (1.00s)
    --- SKIP: TestA/sub (0.50s)
    --- PASS: TestAB/sub (0.50s)
=== RUN   TestB
    b_test.go:2: boom
--- FAIL: TestB (2.00s)
=== RUN   TestC
panic: test timed out
E2E-GUEST-EXIT 1`, "\n") {
		p.line(l)
	}
	if len(p.tests) != 3 || p.exit != "1" {
		t.Fatalf("tests %d exit %q", len(p.tests), p.exit)
	}
	if a := p.tests[0]; a.status != "PASS" || a.dur != "1.00s" || !slices.Contains(a.lines, "    --- SKIP: TestA/sub (0.50s)") ||
		slices.ContainsFunc(a.lines, func(l string) bool { return strings.Contains(l, "TestAB") }) {
		t.Errorf("TestA: %+v", a)
	}
	if b := p.tests[1]; b.status != "FAIL" || !strings.Contains(strings.Join(b.lines, "\n"), "boom") {
		t.Errorf("TestB: %+v", b)
	}
	if c := p.tests[2]; c.status != "" || len(c.lines) != 1 {
		t.Errorf("TestC: %+v", c)
	}
}

func TestShellWords(t *testing.T) {
	got := shellWords([]string{"-test.v", "-test.run=TestA|TestB", "it's"})
	if want := `'-test.v' '-test.run=TestA|TestB' 'it'\''s'`; got != want {
		t.Errorf("shellWords = %s, want %s", got, want)
	}
	out, err := exec.Command("sh", "-c", "printf '%s\\n' "+got).Output()
	if err != nil || string(out) != "-test.v\n-test.run=TestA|TestB\nit's\n" {
		t.Errorf("the shell reads %q (%v)", out, err)
	}
}
