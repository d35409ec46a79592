package checks

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("raw ICMP sockets need root")
	}
}

func icmpSpec(addr string, socket ICMPSocket) Spec {
	return Spec{Type: "icmp", Target: netip.AddrPortFrom(netip.MustParseAddr(addr), 0), Options: ICMPOptions{Socket: socket}}
}

func TestICMPPrivileged(t *testing.T) {
	needRoot(t)
	p := mustNew(t, icmpSpec("127.0.0.1", ICMPSocketRaw))
	done := checkNoLeak(t)
	wantOK(t, probeWithin(t, p, 2*time.Second))
	done()
}

func TestICMPPrivilegedIPv6(t *testing.T) {
	needRoot(t)
	if !ipv6Loopback() {
		t.Skip("no IPv6 loopback")
	}
	p := mustNew(t, icmpSpec("::1", ICMPSocketRaw))
	done := checkNoLeak(t)
	wantOK(t, probeWithin(t, p, 2*time.Second))
	done()
}

func TestICMPSource(t *testing.T) {
	needRoot(t)
	spec := icmpSpec("127.0.0.1", ICMPSocketRaw)
	spec.Source = netip.MustParseAddr("127.0.0.2")
	wantOK(t, probeWithin(t, mustNew(t, spec), 2*time.Second))
}

// pingAllowed reports whether net.ipv4.ping_group_range lets this process
// open unprivileged ping sockets, and the range as the kernel prints it.
func pingAllowed(t *testing.T) (bool, string) {
	b, err := os.ReadFile(pingGroupRangeFile)
	if err != nil {
		t.Skipf("cannot read %s: %v", pingGroupRangeFile, err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		t.Fatalf("%s: unexpected %q", pingGroupRangeFile, b)
	}
	lo, err1 := strconv.ParseUint(f[0], 10, 32)
	hi, err2 := strconv.ParseUint(f[1], 10, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("%s: unexpected %q", pingGroupRangeFile, b)
	}
	groups, _ := os.Getgroups()
	for _, g := range append(groups, os.Getegid()) {
		if uint64(g) >= lo && uint64(g) <= hi {
			return true, strings.Join(f, " ")
		}
	}
	return false, strings.Join(f, " ")
}

// privileged = false keeps to ping sockets: refused, the check fails with
// the hint, even as root.
func TestICMPUnprivileged(t *testing.T) {
	allowed, rng := pingAllowed(t)
	for _, addr := range []string{"127.0.0.1", "::1"} {
		t.Run(addr, func(t *testing.T) {
			if addr == "::1" && !ipv6Loopback() {
				t.Skip("no IPv6 loopback")
			}
			p := mustNew(t, icmpSpec(addr, ICMPSocketPing))
			done := checkNoLeak(t)
			res := probeWithin(t, p, 2*time.Second)
			done()
			if allowed {
				wantOK(t, res)
				return
			}
			want := fmt.Sprintf("icmp: unprivileged ping not permitted (net.ipv4.ping_group_range = %s excludes gid %d); widen it or set privileged = true", rng, os.Getegid())
			wantReason(t, res, want)
		})
	}
}

// A probe whose deadline passed before it started sends nothing and
// counts neither way (issue 10: a late start is the director's fault).
func TestICMPNoTimeLeft(t *testing.T) {
	p := mustNew(t, icmpSpec("127.0.0.1", ICMPSocketRaw))
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	res := p.Probe(ctx)
	wantReason(t, res, "local: deadline passed before the probe started")
	if !res.Inconclusive {
		t.Errorf("%+v is not inconclusive", res)
	}
}

// In a network namespace of its own, with nothing but a loopback
// interface, no route leads to TEST-NET: every kind of check of an
// address there fails at once, and says "unreachable".
func TestUnreachableNetwork(t *testing.T) {
	noLeaks(t)
	targets := []string{"192.0.2.1", "2001:db8::1"}
	type outcome struct {
		spec Spec
		res  Result
	}
	var outcomes []outcome
	// Unprivileged ping sockets are allowed per namespace.
	inNetNS(t, "0 2147483647", func() error {
		for _, a := range targets {
			addr := netip.MustParseAddr(a)
			for _, spec := range []Spec{
				icmpSpec(a, ICMPSocketRaw),
				icmpSpec(a, ICMPSocketPing),
				icmpSpec(a, ICMPSocketAuto),
				{Type: "tcp", Target: netip.AddrPortFrom(addr, 80)},
				{Type: "http", Target: netip.AddrPortFrom(addr, 80)},
				{Type: "https", Target: netip.AddrPortFrom(addr, 443)},
			} {
				outcomes = append(outcomes, outcome{spec, probeWithin(t, mustNew(t, spec), 3*time.Second)})
			}
		}
		return nil
	})
	for _, o := range outcomes {
		if o.res.OK || o.res.Reason != "unreachable" {
			t.Errorf("%s (options %+v): OK=%v reason %q, want unreachable", o.spec, o.spec.Options, o.res.OK, o.res.Reason)
		}
	}
}
