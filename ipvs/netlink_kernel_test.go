//go:build linux

package ipvs_test

// Tests against the real kernel IPVS. They run in network namespaces of
// their own, so they never touch the host's table, and skip where the
// kernel has no IPVS or the test lacks privileges, unless
// DIRECTOR_REQUIRE_IPVS=1 (the e2e VM sets it, and runs them in every
// `go test ./e2e/`), which turns a skip into a failure.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/ipvs/ipvstest"
)

// kernelTable returns the kernel's table in a fresh network namespace,
// and the namespace.
func kernelTable(t *testing.T) (*ipvs.Netlink, *testutil.NetNS) {
	t.Helper()
	required := os.Getenv("DIRECTOR_REQUIRE_IPVS") == "1"
	skip := func(err error) {
		t.Helper()
		if !required {
			t.Skipf("no kernel IPVS here (set DIRECTOR_REQUIRE_IPVS=1 to fail instead): %v", err)
		}
		t.Fatalf("kernel IPVS: %v", err)
	}
	ns, err := testutil.NewNetNS()
	if errors.Is(err, os.ErrPermission) {
		skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	var n *ipvs.Netlink
	// The netlink socket stays in the namespace it was opened in.
	err = ns.Do(func() (err error) { n, err = ipvs.NewNetlink(); return err })
	if err != nil {
		ns.Close()
		if errors.Is(err, ipvs.ErrNotSupported) || errors.Is(err, ipvs.ErrPermission) {
			skip(err)
		}
		t.Fatalf("kernel IPVS: %v", err)
	}
	t.Cleanup(func() { n.Close(); ns.Close() })
	return n, ns
}

// TestKernelConformance holds the kernel's table to the contract of
// ipvs.Table, the same cases the in-memory table passes, one at a time
// (see ipvstest.Target.Parallel).
func TestKernelConformance(t *testing.T) {
	kernelTable(t) // skips the whole suite at once where there is no IPVS
	ipvstest.Run(t, ipvstest.Target{
		New:          func(t *testing.T) ipvs.Table { n, _ := kernelTable(t); return n },
		Unprivileged: func(_ *testing.T, tb ipvs.Table) ipvs.Table { return ipvstest.WithoutNetAdmin(tb) },
	})
}

// TestKernelIpvsadmAgrees reconciles the sample table into the kernel and
// reads it back with ipvsadm, an independent client, where installed.
func TestKernelIpvsadmAgrees(t *testing.T) {
	n, ns := kernelTable(t)
	ipvsadm, err1 := exec.LookPath("ipvsadm")
	nsenter, err2 := exec.LookPath("nsenter")
	if err1 != nil || err2 != nil {
		t.Skip("no ipvsadm or nsenter: no cross-check")
	}
	ctx := context.Background()
	if err := n.CreateService(ctx, ipvstest.HandMade); err != nil {
		t.Fatal(err)
	}
	if r, err := ipvs.Reconcile(ctx, n, ipvstest.Sample(), nil); err != nil || len(r.Errors) != 0 {
		t.Fatalf("reconcile: %v %v", err, r.Errors)
	}
	cmd := exec.Command(nsenter, "--net=/proc/self/fd/3", ipvsadm, "-Ln")
	cmd.ExtraFiles = []*os.File{ns.File()}
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil {
		t.Fatalf("ipvsadm -Ln: %v\n%s", err, out)
	}
	t.Logf("ipvsadm -Ln:\n%s", out)
	for _, re := range []string{
		`TCP  192\.0\.2\.10:80 wlc persistent 60 mask 255\.255\.255\.0\n  -> 10\.0\.0\.1:8080 +Masq +100 .*\n  -> 10\.0\.0\.2:8080 +Masq +50 `,
		`UDP  192\.0\.2\.10:53 rr\n  -> 10\.0\.0\.1:53 +Route +1 `,
		`FWM  10 wrr\n  -> 10\.0\.0\.1:0 +Tunnel +3 `,
		`TCP  \[2001:db8::10\]:80 sh \(sh-fallback\)\n  -> 10\.0\.0\.3:80 +Tunnel +1 .*\n  -> \[2001:db8::1\]:80 +Masq +1 `,
		`TCP  192\.0\.2\.11:443 rr\n`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("ipvsadm -Ln does not match %s", re)
		}
	}
}

// TestKernelPermission runs the probe as an unprivileged user (the test
// binary again, as nobody) and expects ErrPermission.
func TestKernelPermission(t *testing.T) {
	if os.Getenv("DIRECTOR_PROBE_CHILD") == "1" {
		_, err := ipvs.NewNetlink()
		fmt.Printf("probe: %v\n", err)
		if !errors.Is(err, ipvs.ErrPermission) {
			os.Exit(1)
		}
		return
	}
	kernelTable(t) // skips without IPVS
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to an unprivileged user")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKernelPermission$")
	cmd.Env = append(os.Environ(), "DIRECTOR_PROBE_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	t.Logf("as uid 65534: %s", out)
	if err != nil {
		t.Errorf("unprivileged probe did not fail with ErrPermission: %v", err)
	}
}

// TestKernelCounters sends a connection through a NAT service on the
// loopback and reads the counters back.
func TestKernelCounters(t *testing.T) {
	n, ns := kernelTable(t)
	ctx := context.Background()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp4", "127.0.0.1:8080"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	key := ipvs.AddressKey(ipvs.TCP, netip.MustParseAddrPort("127.0.0.2:80"))
	real := netip.MustParseAddrPort("127.0.0.1:8080")
	if err := n.CreateService(ctx, ipvs.Service{Key: key, Scheduler: "rr"}); err != nil {
		t.Fatal(err)
	}
	if err := n.CreateDestination(ctx, key, ipvs.Destination{Address: real, Weight: 1}); err != nil {
		t.Fatal(err)
	}
	var conn net.Conn
	if err := ns.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp4", key.Address.String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial through the service: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping\n" {
		t.Fatalf("echo through the service: %q %v", buf, err)
	}
	deadline := time.Now().Add(6 * time.Second) // byte counters refresh every 2 s
	for {
		all, err := n.Services(ctx)
		if err != nil || len(all) != 1 || len(all[0].Destinations) != 1 {
			t.Fatalf("services: %+v %v", all, err)
		}
		s, d := all[0], all[0].Destinations[0]
		if d.Counters.ActiveConns == 1 && d.Counters.Connections == 1 && d.Counters.PacketsIn > 0 && d.Counters.BytesIn > 0 && s.Counters.Connections == 1 {
			t.Logf("service %+v\ndestination %s %+v", s.Counters, d.Forwarding, d.Counters)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters did not show the connection: service %+v, destination %+v", s.Counters, d.Counters)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
