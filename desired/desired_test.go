package desired

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
)

var vip = netip.MustParseAddrPort("192.0.2.10:80")

func TestBuildTable(t *testing.T) {
	a, b, c := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80"), netip.MustParseAddrPort("10.0.0.3:80")
	sorry := netip.MustParseAddrPort("10.0.0.9:80")
	cfg := &config.Config{VirtualServers: []config.VirtualServer{{
		Name: "web", Address: vip, Family: "ipv4", Protocol: "tcp", Scheduler: "wrr", Forwarding: "nat", OnFailure: "remove",
		Fallback: sorry, Quorum: 150,
		RealServers: []config.RealServer{{Address: a, Weight: 100, Forwarding: "nat"}, {Address: b, Weight: 100, Forwarding: "nat"}, {Address: c, Weight: 50, Forwarding: "nat"}},
	}}}
	up := View{State: health.Up}
	down := View{State: health.Down}
	for _, tt := range []struct {
		name  string
		views map[netip.AddrPort]View
		want  map[netip.AddrPort]uint32 // absent: not in the table
	}{
		{"all up", map[netip.AddrPort]View{a: up, b: up, c: up}, map[netip.AddrPort]uint32{a: 100, b: 100, c: 50}},
		{"drain keeps weight 0 even with remove; disable removes", map[netip.AddrPort]View{
			a: {State: health.Up, Hold: HoldDrain}, b: {State: health.Up, Hold: HoldDisable}, c: up},
			map[netip.AddrPort]uint32{a: 0, c: 0, sorry: 1}}, // 50 < quorum 150: takeover
		{"suppressed is out like down", map[netip.AddrPort]View{a: {State: health.Up, Suppressed: true}, b: up, c: up},
			map[netip.AddrPort]uint32{b: 100, c: 50}},
		{"held by the panic guard keeps its weight", map[netip.AddrPort]View{a: {State: health.Down, Kept: true}, b: down, c: up},
			map[netip.AddrPort]uint32{a: 100, c: 50}},
		{"quorum lost: fallback in, serving servers at 0", map[netip.AddrPort]View{a: up, b: down, c: down},
			map[netip.AddrPort]uint32{a: 0, sorry: 1}},
		{"exactly quorum", map[netip.AddrPort]View{a: up, b: down, c: up}, map[netip.AddrPort]uint32{a: 100, c: 50}},
		{"a reported weight replaces the configured one", map[netip.AddrPort]View{
			a: {State: health.Up, HasWeight: true, Weight: 70}, b: up, c: {State: health.Up, HasWeight: true, Weight: 0}},
			map[netip.AddrPort]uint32{a: 70, b: 100, c: 0}}, // 170 >= quorum 150
		{"reported weights count toward quorum", map[netip.AddrPort]View{
			a: {State: health.Up, HasWeight: true, Weight: 20}, b: up, c: down},
			map[netip.AddrPort]uint32{a: 0, b: 0, sorry: 1}}, // 120 < 150
		{"a down server's reported weight does not count", map[netip.AddrPort]View{
			a: {State: health.Down, HasWeight: true, Weight: 200}, b: up, c: up},
			map[netip.AddrPort]uint32{b: 100, c: 50}}, // on_failure remove; 150 = quorum
	} {
		t.Run(tt.name, func(t *testing.T) {
			ds := Build(cfg, Input{View: func(id config.ServerID) View { return tt.views[id.RealServer] }})
			got := map[netip.AddrPort]uint32{}
			for _, d := range ds[0].Destinations {
				got[d.Address] = d.Weight
			}
			if len(got) != len(tt.want) {
				t.Fatalf("table %v, want %v", got, tt.want)
			}
			for k, w := range tt.want {
				if g, ok := got[k]; !ok || g != w {
					t.Fatalf("table %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// The quorum hook replaces the plain rule: hysteresis decided elsewhere
// can keep the fallback in though the healthy weight is above quorum,
// and keep it out below.
func TestBuildTableQuorumHook(t *testing.T) {
	a, b := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80")
	sorry := netip.MustParseAddrPort("10.0.0.9:80")
	cfg := &config.Config{VirtualServers: []config.VirtualServer{{
		Name: "web", Address: vip, Family: "ipv4", Protocol: "tcp", Forwarding: "dr", OnFailure: "quiesce",
		Fallback: sorry, Quorum: 100,
		RealServers: []config.RealServer{{Address: a, Weight: 100, Forwarding: "dr"}, {Address: b, Weight: 100, Forwarding: "dr"}},
	}}}
	for _, tt := range []struct {
		name        string
		bUp, lost   bool
		wantHealthy uint64
		want        string
	}{
		{"hook says lost with 200 healthy", true, true, 200, "[10.0.0.1:80/0 10.0.0.2:80/0 10.0.0.9:80/1]"},
		{"hook says kept with 100 healthy", false, false, 100, "[10.0.0.1:80/100 10.0.0.2:80/0]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var gotHealthy uint64
			ds := Build(cfg, Input{
				View: func(id config.ServerID) View {
					if id.RealServer == b && !tt.bUp {
						return View{State: health.Down}
					}
					return View{State: health.Up}
				},
				QuorumLost: func(vs *config.VirtualServer, healthy uint64) bool { gotHealthy = healthy; return tt.lost },
			})
			if gotHealthy != tt.wantHealthy {
				t.Errorf("hook saw healthy weight %d, want %d", gotHealthy, tt.wantHealthy)
			}
			var got []string
			for _, d := range ds[0].Destinations {
				if d.Forwarding != ipvs.DR {
					t.Errorf("%s forwarding %v, want dr", d.Address, d.Forwarding)
				}
				got = append(got, fmt.Sprintf("%s/%d", d.Address, d.Weight))
			}
			if fmt.Sprint(got) != tt.want {
				t.Errorf("table %v, want %s", got, tt.want)
			}
		})
	}
}

func TestPlannedStates(t *testing.T) {
	a, b, c := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80"), netip.MustParseAddrPort("10.0.0.3:80")
	cfg := &config.Config{VirtualServers: []config.VirtualServer{{Name: "web", Address: vip, Family: "ipv4", Protocol: "tcp",
		RealServers: []config.RealServer{{Address: a}, {Address: b}, {Address: c}}}}}
	svc := ipvs.AddressKey(ipvs.TCP, vip)
	kernel := map[DestKey]ipvs.DestinationState{
		Key(svc, a): {Destination: ipvs.Destination{Weight: 5}},
		Key(svc, b): {Destination: ipvs.Destination{Weight: 0}},
	}
	got := PlannedStates(cfg, map[config.ServerID]health.State{{VirtualServer: "web", RealServer: c}: health.Down}, kernel)
	want := map[config.ServerID]health.State{
		{VirtualServer: "web", RealServer: a}: health.Up,
		{VirtualServer: "web", RealServer: b}: health.Unknown,
		{VirtualServer: "web", RealServer: c}: health.Down,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("PlannedStates = %v, want %v", got, want)
	}
}

// A Maglev (mh) service keeps a failed server at weight 0 even with
// on_failure = "remove": taking it out would rebuild the lookup table and
// move flows of healthy servers. Its scheduler flags and one-packet
// scheduling reach the table.
func TestBuildMaglev(t *testing.T) {
	a, b := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80")
	cfg := &config.Config{VirtualServers: []config.VirtualServer{{
		Name: "web", Address: vip, Family: "ipv4", Protocol: "tcp", Scheduler: "mh", Forwarding: "dr", OnFailure: "remove",
		SchedulerFlags: []string{"mh-port", "mh-fallback"}, OnePacket: true,
		RealServers: []config.RealServer{{Address: a, Weight: 1, Forwarding: "dr"}, {Address: b, Weight: 1, Forwarding: "dr"}},
	}}}
	ds := Build(cfg, Input{View: func(id config.ServerID) View {
		if id.RealServer == a {
			return View{State: health.Down}
		}
		return View{State: health.Up}
	}})
	if got := ds[0].Destinations; len(got) != 2 || got[0].Address != a || got[0].Weight != 0 || got[1].Weight != 1 {
		t.Errorf("destinations %+v, want a at weight 0 and b at 1", got)
	}
	if s := ds[0].Service; s.SchedulerFlags != ipvs.MHFallback|ipvs.MHPort || !s.OnePacket {
		t.Errorf("service flags %b ops %v, want mh-fallback|mh-port and ops", s.SchedulerFlags, s.OnePacket)
	}
	cfg.VirtualServers[0].Scheduler = "wrr"
	if got := Build(cfg, Input{View: func(id config.ServerID) View {
		return View{State: map[bool]health.State{true: health.Down, false: health.Up}[id.RealServer == a]}
	}})[0].Destinations; len(got) != 1 {
		t.Errorf("wrr with on_failure remove: %+v, want the failed server removed", got)
	}
}

// A server in slow start gets its ramped weight (of the configured or the
// reported one), and counts toward quorum with its full weight.
func TestBuildSlowStart(t *testing.T) {
	a, b, c := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80"), netip.MustParseAddrPort("10.0.0.3:80")
	sorry := netip.MustParseAddrPort("10.0.0.9:80")
	vs := func(slowStart time.Duration) *config.Config {
		return &config.Config{VirtualServers: []config.VirtualServer{{
			Name: "web", Address: vip, Family: "ipv4", Protocol: "tcp", Scheduler: "wlc", Forwarding: "nat", OnFailure: "quiesce",
			Fallback: sorry, Quorum: 250, SlowStart: slowStart,
			RealServers: []config.RealServer{{Address: a, Weight: 100, Forwarding: "nat"}, {Address: b, Weight: 100, Forwarding: "nat"}, {Address: c, Weight: 100, Forwarding: "nat"}},
		}}}
	}
	ramp := func(elapsed time.Duration) View { return View{State: health.Up, Ramp: true, RampElapsed: elapsed} }
	up := View{State: health.Up}
	for _, tt := range []struct {
		name      string
		slowStart time.Duration
		views     map[netip.AddrPort]View
		want      map[netip.AddrPort]uint32
	}{
		{"ramping at 40% and, of a reported weight, at 50%; quorum counts full weights", 10 * time.Second, map[netip.AddrPort]View{
			a: ramp(4 * time.Second), b: {State: health.Up, HasWeight: true, Weight: 50, Ramp: true, RampElapsed: 5 * time.Second}, c: up},
			map[netip.AddrPort]uint32{a: 40, b: 25, c: 100}}, // 100+50+100 = quorum 250
		{"the ramp's first step is 1, not 0", 10 * time.Second, map[netip.AddrPort]View{a: ramp(0), b: up, c: up},
			map[netip.AddrPort]uint32{a: 1, b: 100, c: 100}},
		{"past slow_start: the full weight", 10 * time.Second, map[netip.AddrPort]View{a: ramp(10 * time.Second), b: up, c: up},
			map[netip.AddrPort]uint32{a: 100, b: 100, c: 100}},
		{"slow start off: the full weight", 0, map[netip.AddrPort]View{a: ramp(time.Second), b: up, c: up},
			map[netip.AddrPort]uint32{a: 100, b: 100, c: 100}},
		{"a drain wins over the ramp", 10 * time.Second, map[netip.AddrPort]View{
			a: {State: health.Up, Hold: HoldDrain, Ramp: true, RampElapsed: time.Second}, b: up, c: up},
			map[netip.AddrPort]uint32{a: 0, b: 0, c: 0, sorry: 1}}, // 200 < 250
		{"quorum lost: a ramping server is at 0 like the rest", 10 * time.Second, map[netip.AddrPort]View{
			a: ramp(5 * time.Second), b: {State: health.Down}, c: up},
			map[netip.AddrPort]uint32{a: 0, b: 0, c: 0, sorry: 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ds := Build(vs(tt.slowStart), Input{View: func(id config.ServerID) View { return tt.views[id.RealServer] }})
			got := map[netip.AddrPort]uint32{}
			for _, d := range ds[0].Destinations {
				got[d.Address] = d.Weight
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("table %v, want %v", got, tt.want)
			}
		})
	}
}
