package engine

import (
	"net/netip"
	"runtime"
	"testing"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/ipvs"
)

// destIndex finds what a map by every declared destination key finds
// (the index it replaced): each real server, the last of a destination
// declared twice, nothing for a destination not declared.
func TestDestIndexFindsEveryDeclaredDestination(t *testing.T) {
	cfg := memoryConfig(t, 400, 7)
	// A destination declared twice, and an IPv4-mapped address.
	vs := &cfg.VirtualServers[3]
	vs.RealServers = append(vs.RealServers, vs.RealServers[0])
	vs.RealServers = append(vs.RealServers, config.RealServer{Address: netip.MustParseAddrPort("[::ffff:10.9.9.9]:80"), Weight: 1})
	want := map[desired.DestKey]destOf{}
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		for j := range vs.RealServers {
			want[desired.Key(desired.ServiceKey(vs), vs.RealServers[j].Address)] = destOf{vs, &vs.RealServers[j]}
		}
	}
	var x destIndex
	for k, d := range want {
		got, ok := x.find(cfg, k)
		if !ok || got != d {
			t.Errorf("find(%v) = %v, %v; want %v", k, got, ok, d)
		}
	}
	if got, ok := x.find(cfg, desired.Key(desired.ServiceKey(vs), netip.MustParseAddrPort("10.9.9.9:80"))); !ok || got.rs != &vs.RealServers[len(vs.RealServers)-1] {
		t.Errorf("the IPv4-mapped real server is not found by its IPv4 address")
	}
	if last := &vs.RealServers[len(vs.RealServers)-2]; want[desired.Key(desired.ServiceKey(vs), last.Address)].rs != last {
		t.Fatal("the reference map keeps the first of a duplicate")
	}
	for _, k := range []desired.DestKey{
		desired.Key(desired.ServiceKey(&cfg.VirtualServers[0]), netip.MustParseAddrPort("192.0.2.1:80")),
		desired.Key(ipvs.ServiceKey{Family: ipvs.IPv4, Protocol: ipvs.TCP, Address: netip.MustParseAddrPort("192.0.2.9:80")}, cfg.VirtualServers[0].RealServers[0].Address),
	} {
		if got, ok := x.find(cfg, k); ok {
			t.Errorf("find(%v) = %v for a destination not declared", k, got)
		}
	}
}

// The index holds four bytes a real server (a map by destination key
// held about 140).
func TestDestIndexSize(t *testing.T) {
	const n = 20000
	cfg := memoryConfig(t, n, 200)
	before := liveHeap()
	var x destIndex
	x.build(cfg)
	per := float64(liveHeap()-before) / n
	runtime.KeepAlive(&x)
	if per > 8 {
		t.Errorf("the destination index holds %.1f bytes a real server, want at most 8", per)
	}
}
