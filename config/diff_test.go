package config

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestDiffConfigs(t *testing.T) {
	a, b := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80")
	vs := func(name, sched string, line int, rs ...netip.AddrPort) VirtualServer {
		v := VirtualServer{Name: name, Scheduler: sched, Line: line}
		for _, r := range rs {
			v.RealServers = append(v.RealServers, RealServer{Address: r, Line: line + 1})
		}
		return v
	}
	old := &Config{VirtualServers: []VirtualServer{vs("web", "rr", 1, a, b), vs("gone", "rr", 10, a), vs("same", "rr", 20, a)}}
	next := &Config{VirtualServers: []VirtualServer{vs("web", "wlc", 5, a), vs("new", "rr", 1, b), vs("same", "rr", 40, a)}}
	got := Diff(old, next)
	want := Change{
		AddedVS: []string{"new"}, RemovedVS: []string{"gone"}, ChangedVS: []string{"web"},
		AddedRS: []string{"new/10.0.0.2:80"}, RemovedRS: []string{"gone/10.0.0.1:80", "web/10.0.0.2:80"},
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("Diff = %+v\nwant %+v", got, want)
	}
}

// A real server kept with another weight or forwarding method is
// reweighted, and that alone does not change its virtual server.
func TestDiffReweighted(t *testing.T) {
	a, b, c := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80"), netip.MustParseAddrPort("10.0.0.3:80")
	base := func() *Config {
		return &Config{VirtualServers: []VirtualServer{{
			Name: "web", Scheduler: "wrr", Forwarding: "nat", Line: 3,
			Checks: []Check{{Type: "tcp", Name: "tcp", Interval: 5 * time.Second, Timeout: time.Second}},
			RealServers: []RealServer{
				{Address: a, Weight: 10, Forwarding: "nat", Line: 8},
				{Address: b, Weight: 20, Forwarding: "nat", Line: 12},
			},
		}}}
	}
	for _, tt := range []struct {
		name string
		edit func(*VirtualServer)
		want Change
	}{
		{"nothing", func(*VirtualServer) {}, Change{}},
		{"lines moved", func(vs *VirtualServer) { vs.Line, vs.RealServers[0].Line, vs.RealServers[1].Line = 30, 40, 50 }, Change{}},
		{"real servers reordered", func(vs *VirtualServer) {
			vs.RealServers[0], vs.RealServers[1] = vs.RealServers[1], vs.RealServers[0]
		}, Change{}},
		{"weight", func(vs *VirtualServer) { vs.RealServers[1].Weight = 0 },
			Change{ReweightedRS: []string{"web/10.0.0.2:80"}}},
		{"forwarding", func(vs *VirtualServer) { vs.RealServers[0].Forwarding = "dr" },
			Change{ReweightedRS: []string{"web/10.0.0.1:80"}}},
		{"both servers, listed in order", func(vs *VirtualServer) { vs.RealServers[1].Weight, vs.RealServers[0].Weight = 1, 2 },
			Change{ReweightedRS: []string{"web/10.0.0.1:80", "web/10.0.0.2:80"}}},
		{"reweighted next to added and removed", func(vs *VirtualServer) {
			vs.RealServers[0] = RealServer{Address: c, Weight: 10, Forwarding: "nat"}
			vs.RealServers[1].Weight = 5
		}, Change{AddedRS: []string{"web/10.0.0.3:80"}, RemovedRS: []string{"web/10.0.0.1:80"}, ReweightedRS: []string{"web/10.0.0.2:80"}}},
		{"own setting and a weight: both", func(vs *VirtualServer) { vs.Scheduler = "wlc"; vs.RealServers[0].Weight = 11 },
			Change{ChangedVS: []string{"web"}, ReweightedRS: []string{"web/10.0.0.1:80"}}},
		{"check", func(vs *VirtualServer) { vs.Checks[0].Interval = time.Second }, Change{ChangedVS: []string{"web"}}},
		{"a second check", func(vs *VirtualServer) { vs.Checks = append(vs.Checks, Check{Type: "icmp", Name: "icmp"}) },
			Change{ChangedVS: []string{"web"}}},
		{"a real server's own check: only that server", func(vs *VirtualServer) {
			vs.RealServers[1].Checks = []Check{vs.Checks[0], {Type: "icmp", Name: "icmp"}}
		}, Change{RecheckedRS: []string{"web/10.0.0.2:80"}}},
		{"a real server's own check written as the virtual server's: nothing", func(vs *VirtualServer) {
			vs.RealServers[1].Checks = []Check{vs.Checks[0]}
		}, Change{}},
		{"renamed: a new virtual server, not a reweighting", func(vs *VirtualServer) { vs.Name = "www"; vs.RealServers[0].Weight = 1 },
			Change{AddedVS: []string{"www"}, RemovedVS: []string{"web"},
				AddedRS: []string{"www/10.0.0.1:80", "www/10.0.0.2:80"}, RemovedRS: []string{"web/10.0.0.1:80", "web/10.0.0.2:80"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			old, next := base(), base()
			tt.edit(&next.VirtualServers[0])
			got := Diff(old, next)
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("Diff = %q\nwant %q", got, tt.want)
			}
			if len(old.VirtualServers[0].RealServers) != 2 || old.VirtualServers[0].RealServers[0].Address != a {
				t.Errorf("Diff changed its input")
			}
		})
	}
}
