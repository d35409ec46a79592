//go:build linux

package guest

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kernelPingGroupRange is net.ipv4.ping_group_range as the kernel boots
// with it: no group may open unprivileged ping sockets, not even root's.
const kernelPingGroupRange = "1 0"

// The icmp checks' timing here: a timeout of at least a second, as
// emulation needs, and the waits that follow from it.
const (
	icmpInterval = 2 * time.Second
	icmpTimeout  = 1500 * time.Millisecond
)

func icmpUpWithin() time.Duration   { return time.Duration(rise)*icmpInterval + icmpTimeout + slack }
func icmpDownWithin() time.Duration { return time.Duration(fall)*icmpInterval + icmpTimeout + slack }

// waitStarted waits for the director's "director started" line: on a
// busy host, under emulation, starting alone can take longer than the
// waits for checks allow.
func waitStarted(t *testing.T, d *director, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); !strings.Contains(d.log.String(), "director started"); time.Sleep(100 * time.Millisecond) {
		if !d.running() {
			t.Fatalf("director exited: %v", d.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("director not started within %v", within)
		}
	}
}

// 26. ICMP as root out of the box: with the kernel's default
// ping_group_range, an icmp check without privileged falls back to a raw
// socket (the director runs as root, with CAP_NET_RAW), logs that once,
// keeps a live server up and takes a dead one out; privileged = false
// keeps to ping sockets and so fails, saying why.
func Test26ICMPAsRoot(t *testing.T) {
	guest(t)
	old, err := os.ReadFile("/proc/sys/net/ipv4/ping_group_range")
	if err != nil {
		t.Fatal(err)
	}
	if err := writeSysctl("net.ipv4.ping_group_range", kernelPingGroupRange); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writeSysctl("net.ipv4.ping_group_range", strings.TrimSpace(string(old))) })
	// The kernel refuses root a ping socket now.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, syscall.IPPROTO_ICMP)
	if err == nil {
		syscall.Close(fd)
		t.Fatalf("ping socket allowed with ping_group_range %q", kernelPingGroupRange)
	} else if !errors.Is(err, syscall.EACCES) {
		t.Fatalf("ping socket: %v, want EACCES", err)
	}

	d := startDirector(t, directorConfig("30s", "keep", fmt.Sprintf(`[[virtual_server]]
name = "icmp26"
address = "10.0.100.26:80"
scheduler = "rr"
  [virtual_server.check]
  type = "icmp"
  interval = %[1]q
  timeout = %[2]q
%[3]s
[[virtual_server]]
name = "strict26"
address = "10.0.100.36:80"
scheduler = "rr"
  [virtual_server.check]
  type = "icmp"
  interval = %[1]q
  timeout = %[2]q
  privileged = false
%[4]s`, icmpInterval, icmpTimeout, reals(rs(1).addr4(80)+" 1", rs(2).addr4(80)+" 1"), reals(rs(3).addr4(80)+" 1"))))
	waitStarted(t, d, time.Minute)

	waitTable(t, icmpUpWithin(), "icmp without privileged: rs1 and rs2 up", dests("TCP 10.0.100.26:80", "rr", masq(rs(1), 1), masq(rs(2), 1)))
	served(t, "http://10.0.100.26/", 10, []string{"rs1", "rs2"}, "rs1", "rs2")

	t.Run("dead server out", func(t *testing.T) {
		if err := rs(2).linkDown(); err != nil {
			t.Fatal(err)
		}
		waitTable(t, icmpDownWithin(), "rs2 unreachable: down, rs1 stays up", dests("TCP 10.0.100.26:80", "rr", masq(rs(1), 1), masq(rs(2), 0)))
		served(t, "http://10.0.100.26/", 10, []string{"rs1"}, "rs1")
	})

	t.Run("strict stays down", func(t *testing.T) {
		if err := dests("TCP 10.0.100.36:80", "rr", masq(rs(3), 0))(mustTable(t)); err != nil {
			t.Error(err)
		}
		const hint = "icmp: unprivileged ping not permitted (net.ipv4.ping_group_range = 1 0 excludes gid 0); widen it or set privileged = true"
		if !strings.Contains(d.log.String(), hint) {
			t.Errorf("the director log never gives the privileged = false check's reason %q", hint)
		}
	})

	t.Run("fallback logged once", func(t *testing.T) {
		if n := strings.Count(d.log.String(), "icmp checks use raw sockets"); n != 1 {
			t.Errorf("the fallback to raw sockets logged %d times, want once", n)
		}
	})
}
