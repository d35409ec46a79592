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
	"strings"
	"testing"
	"time"
)

// suiteBudget bounds the whole suite (downloads, builds, boot, scenarios),
// well inside go test's default 10-minute timeout.
const suiteBudget = 8 * time.Minute

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
			t.Fatalf("CI=true, and a prerequisite of the e2e suite is missing: %v", err)
		}
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
	// BIRD 2 is the router of the BGP scenarios (guest/bgp_test.go).
	birdArchive, birdVersion, err := prepareOverlay(ctx, root, bird, t.Logf)
	if err != nil {
		if errors.As(err, new(prereqError)) {
			prereq(err)
		}
		t.Fatal(err)
	}
	t.Logf("bird2 %s (%.1fs)", birdVersion, time.Since(start).Seconds())

	tmp := t.TempDir()
	director, guest := filepath.Join(tmp, "director"), filepath.Join(tmp, "guest.test")
	if err := buildBinaries(ctx, director, guest); err != nil {
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
	if r := os.Getenv("DIRECTOR_E2E_RUN"); r != "" {
		args = append(args, "-test.run="+r)
	}
	initrd := filepath.Join(tmp, "initrd.gz")
	if err := writeInitrd(initrd, a, guestInit(args), map[string]string{"director": director, "guest.test": guest}, birdArchive); err != nil {
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
	t.Logf("boot to power-off %.1fs under %s; suite %.1fs; console in %s",
		time.Since(bootStart).Seconds(), accel, time.Since(start).Seconds(), console.Name())

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

// buildBinaries builds the director and the guest test binary: static,
// for linux/amd64, without the race detector whatever the host test uses.
func buildBinaries(ctx context.Context, director, guest string) error {
	mod, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=")
	for _, args := range [][]string{
		{"build", "-o", director, "./cmd/director"},
		{"test", "-c", "-o", guest, "./e2e/guest"},
	} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = mod
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// guestInit is the guest's /init: load the modules, run the tests, power off.
func guestInit(testArgs []string) string {
	return `#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
for m in $(cat /mods/order); do insmod /mods/$m.ko || echo "e2e: insmod $m failed"; done
ip link set lo up
export PATH=/bin:/sbin HOME=/tmp DIRECTOR_E2E_GUEST=1 DIRECTOR_BIN=/director
cd /tmp
echo ` + markStart + `
/guest.test ` + strings.Join(testArgs, " ") + ` 2>&1
echo "` + markExit + `$?"
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
	runRE  = regexp.MustCompile(`^=== RUN\s+(\S+)$`)
	doneRE = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (\S+) \(([^)]*)\)`)
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

func TestParser(t *testing.T) {
	p := newParser()
	for _, l := range strings.Split(`[    1.0] boot noise
E2E-GUEST-START
=== RUN   TestA
    a_test.go:1: hello
=== RUN   TestA/sub
--- PASS: TestA (1.00s)
    --- PASS: TestA/sub (0.50s)
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
	if a := p.tests[0]; a.status != "PASS" || a.dur != "1.00s" {
		t.Errorf("TestA: %+v", a)
	}
	if b := p.tests[1]; b.status != "FAIL" || !strings.Contains(strings.Join(b.lines, "\n"), "boom") {
		t.Errorf("TestB: %+v", b)
	}
	if c := p.tests[2]; c.status != "" || len(c.lines) != 1 {
		t.Errorf("TestC: %+v", c)
	}
}
