package config

import (
	"fmt"
	"net/netip"
)

// Addresses the kernel sees otherwise than they are written, or refuses.
//
// An IPv4-mapped IPv6 address (::ffff:192.0.2.10) is the IPv4 address to
// IPVS: "[::ffff:127.0.0.1]:80" and "127.0.0.1:80" are one destination.
// Every address is unmapped before the duplicate and family checks, so the
// pair is a duplicate, and a mapped real server in an IPv6 service (which
// the kernel refuses, failing every reconcile) is an error here.

// target is a real server or fallback address as read from the file.
type target struct {
	ap      netip.AddrPort // unmapped; port 0 when none was written
	written string
	mapped  bool // written as an IPv4-mapped IPv6 address
}

// unmapAddrPort returns ap with its address unmapped, and whether it was
// mapped.
func unmapAddrPort(ap netip.AddrPort) (netip.AddrPort, bool) {
	if !ap.Addr().Is4In6() {
		return ap, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// spelled is how to write t's address in the file: without a port when it
// had none.
func (t target) spelled() string {
	if t.ap.Port() == 0 {
		return t.ap.Addr().String()
	}
	return t.ap.String()
}

// mappedWarning tells to write an unmapped address as what it is.
func mappedWarning(written, canonical string) string {
	return fmt.Sprintf("%q is an IPv4-mapped IPv6 address, which the kernel takes as the IPv4 address; write %q", written, canonical)
}

// refusedDestination returns why IPVS refuses a as a destination (EINVAL
// on every reconcile), or "". Only what is true whatever the routes are:
// a subnet's broadcast address, say, depends on the director's routes.
func refusedDestination(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return fmt.Sprintf("%s is the unspecified address, not a server; IPVS refuses it: give the server's own address", a)
	case a.IsMulticast():
		return fmt.Sprintf("%s is a multicast address; IPVS forwards only to unicast addresses", a)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "255.255.255.255 is the broadcast address; IPVS forwards only to unicast addresses"
	case a.Is6() && a.IsLinkLocalUnicast():
		return fmt.Sprintf("%s is an IPv6 link-local address, which IPVS refuses as a destination (it takes no zone); give the server a global or unique local address", a)
	}
	return ""
}
