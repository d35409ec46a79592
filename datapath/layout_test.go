package datapath

import (
	"net/netip"
	"strings"
	"testing"
)

func TestPlan(t *testing.T) {
	a := netip.MustParseAddr
	src, src2 := a("10.0.0.50"), a("10.0.1.50")
	rs1, rs2, rs3 := a("10.0.0.11"), a("10.0.0.12"), a("10.0.1.13")
	vip1, vip2 := a("192.0.2.10"), a("192.0.2.20")
	hops := map[netip.Addr]NextHop{
		rs1: {Link: 4}, rs2: {Link: 4}, rs3: {Link: 7, Gateway: a("10.0.1.1")},
	}
	routes := []Route{
		{Source: src, RealServer: rs2, VIP: vip1},
		{Source: src, RealServer: rs1, VIP: vip2},
		{Source: src, RealServer: rs1, VIP: vip1},
		{Source: src, RealServer: rs1, VIP: vip1}, // a duplicate: one path
		{Source: src, RealServer: rs1, VIP: vip1, Tunnel: true},
		{Source: src2, RealServer: rs3, VIP: vip1, Tunnel: true},
	}
	got, err := plan(routes, hops)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d namespaces, want one per source: %+v", len(got), got)
	}
	l := got[src]
	if len(l.links) != 1 || l.links[0] != 4 {
		t.Errorf("links %v, want [4]", l.links)
	}
	want := []struct {
		rs     netip.Addr
		tunnel bool
		vips   int
	}{{rs1, false, 2}, {rs1, true, 1}, {rs2, false, 1}}
	if len(l.paths) != len(want) {
		t.Fatalf("paths %+v, want %d", l.paths, len(want))
	}
	for i, w := range want {
		p := l.paths[i]
		if p.mark != firstMark+uint32(i) || p.realServer != w.rs || p.tunnel != w.tunnel || len(p.vips) != w.vips {
			t.Errorf("path %d = %+v, want mark %d to %s tunnel=%v with %d VIPs", i, p, firstMark+i, w.rs, w.tunnel, w.vips)
		}
	}
	if m := l.mark(Route{Source: src, RealServer: rs2, VIP: vip1}); m != firstMark+2 {
		t.Errorf("mark of rs2 = %d, want %d", m, firstMark+2)
	}
	if m := l.mark(Route{Source: src, RealServer: rs2, VIP: vip2}); m != 0 {
		t.Errorf("mark of a VIP rs2 does not serve = %d, want 0", m)
	}
	if p := got[src2].paths[0]; p.hop.Gateway != a("10.0.1.1") || got[src2].links[0] != 7 {
		t.Errorf("a real server behind a gateway: %+v, want the gateway as next hop on link 7", p)
	}

	// The same routes in another order give an equal layout (a reload
	// that changes nothing keeps the namespace); any change does not.
	shuffled := []Route{routes[5], routes[4], routes[0], routes[2], routes[1]}
	again, err := plan(shuffled, hops)
	if err != nil {
		t.Fatal(err)
	}
	for s, l := range got {
		if o := again[s]; !l.equal(&o) {
			t.Errorf("source %s: reordered routes changed the layout", s)
		}
	}
	fewer, _ := plan(routes[1:], hops)
	if o := fewer[src]; l.equal(&o) {
		t.Error("dropping a real server kept the layout equal")
	}
	moved := map[netip.Addr]NextHop{rs1: {Link: 5}, rs2: {Link: 4}, rs3: hops[rs3]}
	other, _ := plan(routes, moved)
	if o := other[src]; l.equal(&o) {
		t.Error("a real server reached through another interface kept the layout equal")
	}
}

func TestPlanRefuses(t *testing.T) {
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name  string
		route Route
		want  string
	}{
		{"ipv6", Route{Source: a("2001:db8::50"), RealServer: a("2001:db8::11"), VIP: a("2001:db8::10")}, "only IPv4"},
		{"no next hop", Route{Source: a("10.0.0.50"), RealServer: a("10.9.9.9"), VIP: a("192.0.2.10")}, "no route to the real server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hops := map[netip.Addr]NextHop{a("2001:db8::11"): {Link: 2}}
			_, err := plan([]Route{tc.route}, hops)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
