// Package datapath sends health-check probes the way the kernel's direct
// routing (DR) and tunnelling (TUN) forwarding deliver a client's packet:
// addressed to the VIP, delivered to one real server, for DR to its MAC
// address and for TUN inside an IPIP packet to its address.
//
// The director holds the VIP itself, so a probe to the VIP from its own
// network stack is delivered locally (the kernel looks in the local table
// before any routing rule). Probes therefore leave from network namespaces
// of the director's own, which do not hold the VIP: one per probe source
// address, with a macvlan on each interface that leads to a real server
// and, per real server, a routing table chosen by the socket's mark
// (SO_MARK) that sends the VIP to that real server. See Manager.
//
// layout.go is the pure part: which namespaces, interfaces, marks and
// routes a set of routes needs. manager_linux.go builds them.
package datapath

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// Route is one data path to probe through: probes from Source addressed
// to VIP, delivered to RealServer.
type Route struct {
	// Source is the probe namespace's own address on the real servers'
	// segment (the check's source): the real server answers it, so it
	// must not be an address of the director's own stack.
	Source     netip.Addr
	RealServer netip.Addr
	VIP        netip.Addr
	// Tunnel says TUN forwarding (IPIP to RealServer); false is DR (the
	// packet goes to RealServer's MAC address).
	Tunnel bool
}

func (r Route) String() string {
	mode := "dr"
	if r.Tunnel {
		mode = "tun"
	}
	return fmt.Sprintf("%s %s via %s from %s", mode, r.VIP, r.RealServer, r.Source)
}

// NextHop is how the director's own stack reaches a real server: the
// interface (its index) and the gateway, invalid when the real server is
// on that interface's segment.
type NextHop struct {
	Link    int
	Gateway netip.Addr
}

// layout is what one probe namespace holds.
type layout struct {
	source netip.Addr
	links  []int  // parent interfaces, one macvlan each, ascending
	paths  []path // one per real server and forwarding method, by mark
}

// path is one real server as seen from a namespace: probes whose socket
// carries mark use the routing table of the same number.
type path struct {
	mark       uint32
	realServer netip.Addr
	tunnel     bool
	hop        NextHop
	vips       []netip.Addr // ascending
}

// firstMark is the mark (and table) of a namespace's first path; the
// namespace is the director's alone, so any numbers would do, but these
// keep clear of the kernel's own tables (253-255).
const firstMark = 1000

// plan groups routes into namespaces, one per source address, and gives
// each real server (and forwarding method) of a namespace its mark, in
// address order so that equal route sets give equal layouts. hops holds
// the next hop of every real server.
func plan(routes []Route, hops map[netip.Addr]NextHop) (map[netip.Addr]layout, error) {
	sorted := slices.Clone(routes)
	slices.SortFunc(sorted, func(a, b Route) int {
		return cmp.Or(a.Source.Compare(b.Source), a.RealServer.Compare(b.RealServer),
			boolCmp(a.Tunnel, b.Tunnel), a.VIP.Compare(b.VIP))
	})
	sorted = slices.Compact(sorted)
	out := map[netip.Addr]layout{}
	for _, r := range sorted {
		if !r.Source.Is4() || !r.RealServer.Is4() || !r.VIP.Is4() {
			return nil, fmt.Errorf("datapath: %s: only IPv4 is supported", r)
		}
		hop, ok := hops[r.RealServer]
		if !ok {
			return nil, fmt.Errorf("datapath: %s: no route to the real server", r)
		}
		l := out[r.Source]
		l.source = r.Source
		if !slices.Contains(l.links, hop.Link) {
			l.links = append(l.links, hop.Link)
			slices.Sort(l.links)
		}
		n := len(l.paths)
		if n == 0 || l.paths[n-1].realServer != r.RealServer || l.paths[n-1].tunnel != r.Tunnel {
			l.paths = append(l.paths, path{mark: firstMark + uint32(n), realServer: r.RealServer, tunnel: r.Tunnel, hop: hop})
			n++
		}
		l.paths[n-1].vips = append(l.paths[n-1].vips, r.VIP)
		out[r.Source] = l
	}
	return out, nil
}

// mark is the mark of the path to r in l, 0 when l has none.
func (l *layout) mark(r Route) uint32 {
	for _, p := range l.paths {
		if p.realServer == r.RealServer && p.tunnel == r.Tunnel && slices.Contains(p.vips, r.VIP) {
			return p.mark
		}
	}
	return 0
}

// equal reports whether two layouts build the same namespace.
func (l *layout) equal(o *layout) bool {
	return l.source == o.source && slices.Equal(l.links, o.links) &&
		slices.EqualFunc(l.paths, o.paths, func(a, b path) bool {
			return a.mark == b.mark && a.realServer == b.realServer && a.tunnel == b.tunnel &&
				a.hop == b.hop && slices.Equal(a.vips, b.vips)
		})
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}
