package engine

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"testing"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
)

// The set finds every server by its ID and nothing else: the same
// address in two virtual servers, another port, another zone, IPv4 and
// IPv6, a name it does not hold.
func TestServerSetFindsEveryServer(t *testing.T) {
	addrs := []string{"10.0.0.2:80", "10.0.0.1:80", "10.0.0.1:81", "[2001:db8::1]:80", "[fe80::1%eth0]:80",
		"[fe80::1%eth1]:80", "[::ffff:10.0.0.1]:80", "10.0.0.10:80", "0.0.0.0:0"}
	var set serverSet
	for _, vs := range []string{"b", "a"} {
		var list []*server
		for _, a := range addrs {
			list = append(list, &server{id: config.ServerID{VirtualServer: vs, RealServer: netip.MustParseAddrPort(a)}})
		}
		set.add(vs, list)
	}
	if set.len() != 2*len(addrs) {
		t.Errorf("len %d, want %d", set.len(), 2*len(addrs))
	}
	seen := map[config.ServerID]bool{}
	for id, s := range set.all() {
		if s.id != id || seen[id] {
			t.Errorf("all yields %v for %v, or twice", s.id, id)
		}
		seen[id] = true
	}
	for _, vs := range []string{"a", "b"} {
		for _, a := range addrs {
			id := config.ServerID{VirtualServer: vs, RealServer: netip.MustParseAddrPort(a)}
			if s := set.get(id); s == nil || s.id != id {
				t.Errorf("get(%v) = %v", id, s)
			}
			if !seen[id] {
				t.Errorf("all left out %v", id)
			}
		}
	}
	// In any order, through the cursor or past it: backwards, the same
	// twice, one virtual server then the other.
	for i := len(addrs) - 1; i >= 0; i-- {
		for _, vs := range []string{"a", "a", "b"} {
			id := config.ServerID{VirtualServer: vs, RealServer: netip.MustParseAddrPort(addrs[i])}
			if s := set.get(id); s == nil || s.id != id {
				t.Errorf("get(%v) = %v, backwards", id, s)
			}
		}
	}
	for _, id := range []config.ServerID{
		{VirtualServer: "c", RealServer: netip.MustParseAddrPort("10.0.0.1:80")},
		{VirtualServer: "a", RealServer: netip.MustParseAddrPort("10.0.0.1:82")},
		{VirtualServer: "a", RealServer: netip.MustParseAddrPort("10.0.0.3:80")},
		{VirtualServer: "a", RealServer: netip.MustParseAddrPort("[fe80::1%eth2]:80")},
		{VirtualServer: "a", RealServer: netip.MustParseAddrPort("[fe80::1]:80")},
		{VirtualServer: "a"},
	} {
		if s := set.get(id); s != nil {
			t.Errorf("get(%v) = %v, want none", id, s.id)
		}
	}
	var empty serverSet
	if empty.get(config.ServerID{VirtualServer: "a"}) != nil || empty.len() != 0 {
		t.Error("an empty set finds something")
	}
}

// The set holds a pointer and an index per server, and a map entry per
// virtual server: at 20,000 servers over 200 virtual servers, at most 15
// bytes a server (12, and their size classes), where a map keyed by
// config.ServerID held ~100 (docs/performance.md, "Memory, third pass").
func TestServerSetSize(t *testing.T) {
	const n, nvs = 20000, 200
	servers := make([][]*server, nvs)
	for i := range n {
		v := i % nvs
		servers[v] = append(servers[v], &server{id: config.ServerID{VirtualServer: fmt.Sprintf("vs-%d", v),
			RealServer: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 80)}})
	}
	before := liveHeap()
	var set serverSet
	for _, all := range servers {
		list := make([]*server, len(all)) // as adoptConfig makes them: one per real server
		copy(list, all)
		set.add(all[0].id.VirtualServer, list)
	}
	after := liveHeap()
	runtime.KeepAlive(servers)
	if per := float64(after-before) / n; per > 15 {
		t.Errorf("%.1f bytes a server, want at most 15", per)
	}
	for id, s := range set.all() {
		if set.get(id) != s {
			t.Fatalf("%v not found", id)
		}
	}
}

// A runner feeds the checks of every server that shares it, in config
// order, and after a reload only those the new config still has: its
// chain (serverCheck.next) is all there is between a result and the
// servers' checks.
func TestRunnerFeedsItsChecksInConfigOrder(t *testing.T) {
	b := &backend{addr: netip.MustParseAddrPort("127.0.0.1:9")}
	cfg := testConfig("quiesce", b)
	addVS(cfg, "b", netip.MustParseAddrPort("192.0.2.21:80"))
	addVS(cfg, "c", netip.MustParseAddrPort("192.0.2.22:80"))
	e := scaleUnit(t, cfg, ipvs.NewMemory())
	fed := func() []string {
		t.Helper()
		if len(e.probes) != 1 {
			t.Fatalf("%d runners, want the one the three servers share", len(e.probes))
		}
		var names []string
		for _, p := range e.probes {
			for c := p.feeds; c != nil; c = c.next {
				if c.runner != p || c.s.checks[0] != c {
					t.Errorf("%v: a check of another runner or server in the chain", c.s.id)
				}
				names = append(names, c.s.id.VirtualServer)
			}
		}
		return names
	}
	if got := fed(); !slices.Equal(got, []string{"web", "b", "c"}) {
		t.Errorf("the runner feeds %v, want web, b, c", got)
	}
	next := testConfig("quiesce", b)
	addVS(next, "c", netip.MustParseAddrPort("192.0.2.22:80"))
	e.adoptConfig(next, nil, context.Background())
	if got := fed(); !slices.Equal(got, []string{"web", "c"}) {
		t.Errorf("after a reload the runner feeds %v, want web, c", got)
	}
	for range 2 { // rise 2
		for _, p := range e.probes {
			e.observe(probeResult{key: p.key, result: checks.Result{OK: true}})
		}
	}
	if n := e.servers.len(); n != 2 {
		t.Errorf("%d servers, want 2", n)
	}
	for id, s := range e.servers.all() {
		if st := s.health.State(); st != health.Up {
			t.Errorf("%v: %v after two passing results (rise 2), want up", id, st)
		}
	}
}
