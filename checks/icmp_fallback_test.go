package checks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// refusingNetNS runs f in a network namespace of its own whose
// net.ipv4.ping_group_range refuses ping sockets to every group (the
// kernel's default, "1 0"), with lo up.
func refusingNetNS(t *testing.T, f func() error) {
	t.Helper()
	inNetNS(t, "1 0", func() error {
		if err := testutil.LoopbackUp(); err != nil {
			return err
		}
		return f()
	})
}

// inNetNS runs f in a network namespace of its own, with
// net.ipv4.ping_group_range (per namespace) set to pingRange.
func inNetNS(t *testing.T, pingRange string, f func() error) {
	t.Helper()
	ns, err := testutil.NewNetNS()
	if errors.Is(err, os.ErrPermission) {
		t.Skipf("a network namespace of its own needs CAP_SYS_ADMIN: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	err = ns.Do(func() error {
		if err := os.WriteFile(pingGroupRangeFile, []byte(pingRange), 0o644); err != nil {
			return err
		}
		return f()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// As root, with ping sockets refused, an icmp check without privileged
// falls back to a raw socket, and the director logs that once however
// many checks and probes there are; privileged = false keeps failing with
// the hint.
func TestICMPFallbackToRaw(t *testing.T) {
	needRoot(t)
	var logs bytes.Buffer
	var results []string
	refusingNetNS(t, func() error {
		sh := NewShared().WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))
		probe := func(spec Spec) string {
			p, err := sh.New(spec)
			if err != nil {
				t.Fatal(err)
			}
			res := probeWithin(t, p, 2*time.Second)
			return fmt.Sprintf("%s %v: ok=%v %s", spec.Target.Addr(), spec.Options.(ICMPOptions).Socket, res.OK, res.Reason)
		}
		for range 3 {
			results = append(results, probe(icmpSpec("127.0.0.1", ICMPSocketAuto)))
		}
		results = append(results,
			probe(icmpSpec("127.0.0.2", ICMPSocketAuto)),
			probe(icmpSpec("127.0.0.1", ICMPSocketPing)),
			probe(icmpSpec("127.0.0.1", ICMPSocketRaw)),
			probe(icmpSpec("192.0.2.1", ICMPSocketAuto)), // no route in the namespace
		)
		return nil
	})
	hint := fmt.Sprintf("icmp: unprivileged ping not permitted (net.ipv4.ping_group_range = 1 0 excludes gid %d); widen it or set privileged = true", os.Getegid())
	want := []string{
		"127.0.0.1 auto: ok=true ",
		"127.0.0.1 auto: ok=true ",
		"127.0.0.1 auto: ok=true ",
		"127.0.0.2 auto: ok=true ",
		"127.0.0.1 ping: ok=false " + hint,
		"127.0.0.1 raw: ok=true ",
		"192.0.2.1 auto: ok=false unreachable",
	}
	if strings.Join(results, "\n") != strings.Join(want, "\n") {
		t.Errorf("results:\n%s\nwant:\n%s", strings.Join(results, "\n"), strings.Join(want, "\n"))
	}
	if n := strings.Count(logs.String(), "icmp checks use raw sockets"); n != 1 || !strings.Contains(logs.String(), `ping_group_range="1 0"`) {
		t.Errorf("logged the fallback %d times, want once with the range:\n%s", n, logs.String())
	}
}

// icmpHelperEnv makes the test binary, run as a child, probe instead of
// testing (TestICMPNoRawHelper).
const icmpHelperEnv = "DIRECTOR_TEST_ICMP_HELPER"

// Without CAP_NET_RAW (as nobody) and with ping sockets refused, an icmp
// check without privileged cannot fall back: it fails with a hint naming
// both ways out.
func TestICMPNoFallbackWithoutCapNetRaw(t *testing.T) {
	needRoot(t)
	// The test binary, where nobody can run it.
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // the test's directory and its own
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(dir, "checks.test")
	copyFile(t, os.Args[0], exe)
	var out []byte
	var runErr error
	refusingNetNS(t, func() error {
		// The child is forked from this thread, in the namespace.
		cmd := exec.Command(exe, "-test.run", "^TestICMPNoRawHelper$", "-test.v")
		cmd.Env = append(os.Environ(), icmpHelperEnv+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, runErr = cmd.CombinedOutput()
		return nil
	})
	want := "reason: icmp: unprivileged ping not permitted (net.ipv4.ping_group_range = 1 0 excludes gid 65534) and no CAP_NET_RAW for a raw socket; widen the range or grant CAP_NET_RAW\n"
	if runErr != nil || !strings.Contains(string(out), want) {
		t.Errorf("child as nobody: %v\n%s\nwant the line %q", runErr, out, want)
	}
}

// TestICMPNoRawHelper is TestICMPNoFallbackWithoutCapNetRaw's child.
func TestICMPNoRawHelper(t *testing.T) {
	if os.Getenv(icmpHelperEnv) == "" {
		t.Skip("run by TestICMPNoFallbackWithoutCapNetRaw")
	}
	res := probeWithin(t, mustNew(t, icmpSpec("127.0.0.1", ICMPSocketAuto)), 2*time.Second)
	fmt.Printf("reason: %s\n", res.Reason)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
