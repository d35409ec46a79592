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

func icmpSpec(addr string, privileged bool) Spec {
	return Spec{Type: "icmp", Target: netip.AddrPortFrom(netip.MustParseAddr(addr), 0), Privileged: privileged}
}

func TestICMPPrivileged(t *testing.T) {
	needRoot(t)
	p := mustNew(t, icmpSpec("127.0.0.1", true))
	done := checkNoLeak(t)
	wantOK(t, probeWithin(t, p, 2*time.Second))
	done()
}

func TestICMPPrivilegedIPv6(t *testing.T) {
	needRoot(t)
	if !ipv6Loopback() {
		t.Skip("no IPv6 loopback")
	}
	p := mustNew(t, icmpSpec("::1", true))
	done := checkNoLeak(t)
	wantOK(t, probeWithin(t, p, 2*time.Second))
	done()
}

func TestICMPSource(t *testing.T) {
	needRoot(t)
	spec := icmpSpec("127.0.0.1", true)
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

func TestICMPUnprivileged(t *testing.T) {
	allowed, rng := pingAllowed(t)
	for _, addr := range []string{"127.0.0.1", "::1"} {
		t.Run(addr, func(t *testing.T) {
			if addr == "::1" && !ipv6Loopback() {
				t.Skip("no IPv6 loopback")
			}
			p := mustNew(t, icmpSpec(addr, false))
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

func TestICMPNoTimeLeft(t *testing.T) {
	p := mustNew(t, icmpSpec("127.0.0.1", true))
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	wantReason(t, p.Probe(ctx), "timeout")
}
