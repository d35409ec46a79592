package desired

import (
	"net/netip"
	"testing"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
)

// A group is one kernel service per member, each with the group's real
// servers; a view (an override, health) is per member.
func TestBuildGroup(t *testing.T) {
	cfg, err := config.Parse("group.toml", []byte(`[[virtual_server]]
name = "web"
addresses = ["192.0.2.10-11:80", "192.0.2.20:443"]
forwarding = "dr"
scheduler = "rr"
  [[virtual_server.real_server]]
  address = "10.0.0.1"
  [[virtual_server.real_server]]
  address = "10.0.0.2"
  weight = 3

[[virtual_server]]
name = "marks"
fwmarks = [5, 6]
  [virtual_server.check]
  port = 80
  [[virtual_server.real_server]]
  address = "10.0.0.3"
`))
	if err != nil {
		t.Fatal(err)
	}
	drained := config.ServerID{VirtualServer: "web@192.0.2.11:80", RealServer: netip.MustParseAddrPort("10.0.0.2:80")}
	ds := Build(cfg, Input{View: func(id config.ServerID) View {
		if id == drained {
			return View{State: health.Up, Hold: HoldDrain}
		}
		return View{State: health.Up}
	}})
	type dest struct {
		addr   string
		weight uint32
	}
	want := []struct {
		key   ipvs.ServiceKey
		dests []dest
	}{
		{ipvs.ServiceKey{Family: ipvs.IPv4, Protocol: ipvs.TCP, Address: netip.MustParseAddrPort("192.0.2.10:80")}, []dest{{"10.0.0.1:80", 1}, {"10.0.0.2:80", 3}}},
		{ipvs.ServiceKey{Family: ipvs.IPv4, Protocol: ipvs.TCP, Address: netip.MustParseAddrPort("192.0.2.11:80")}, []dest{{"10.0.0.1:80", 1}, {"10.0.0.2:80", 0}}},
		{ipvs.ServiceKey{Family: ipvs.IPv4, Protocol: ipvs.TCP, Address: netip.MustParseAddrPort("192.0.2.20:443")}, []dest{{"10.0.0.1:443", 1}, {"10.0.0.2:443", 3}}},
		{ipvs.ServiceKey{Family: ipvs.IPv4, FWMark: 5}, []dest{{"10.0.0.3:0", 1}}},
		{ipvs.ServiceKey{Family: ipvs.IPv4, FWMark: 6}, []dest{{"10.0.0.3:0", 1}}},
	}
	if len(ds) != len(want) {
		t.Fatalf("%d services, want %d: %+v", len(ds), len(want), ds)
	}
	for i, w := range want {
		if ds[i].Service.Key != w.key || ds[i].Service.Scheduler != cfg.VirtualServers[i].Scheduler {
			t.Errorf("service %d is %v, want %v", i, ds[i].Service.Key, w.key)
		}
		if len(ds[i].Destinations) != len(w.dests) {
			t.Fatalf("service %v: destinations %+v, want %v", w.key, ds[i].Destinations, w.dests)
		}
		for j, d := range w.dests {
			got := ds[i].Destinations[j]
			if got.Address.String() != d.addr || got.Weight != d.weight {
				t.Errorf("service %v destination %d: %s weight %d, want %s weight %d", w.key, j, got.Address, got.Weight, d.addr, d.weight)
			}
		}
	}
}
