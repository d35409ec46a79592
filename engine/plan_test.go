package engine

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/ipvs"
)

func TestPlanConfig(t *testing.T) {
	ap := netip.MustParseAddrPort
	a, b, c, d, f := ap("10.0.0.1:80"), ap("10.0.0.2:80"), ap("10.0.0.3:80"), ap("10.0.0.4:80"), ap("10.0.0.9:80")
	oldVIP := ap("192.0.2.20:80")
	web := config.VirtualServer{Name: "web", Address: vip, Family: "ipv4", Protocol: "tcp", Scheduler: "wlc",
		PersistenceNetmask: 32, OnFailure: "quiesce", Fallback: f, DrainTimeout: time.Minute,
		RealServers: []config.RealServer{{Address: a, Weight: 100, Forwarding: "nat"}, {Address: d, Weight: 10, Forwarding: "nat"}}}
	gone := config.VirtualServer{Name: "gone", Address: oldVIP, Family: "ipv4", Protocol: "tcp", Scheduler: "rr", DrainTimeout: time.Minute}
	next := &config.Config{VirtualServers: []config.VirtualServer{web}}
	current := &config.Config{VirtualServers: []config.VirtualServer{web, gone}}

	webSvc := ipvs.Service{Key: ipvs.AddressKey(ipvs.TCP, vip), Scheduler: "wlc", PersistenceNetmask: 32}
	goneSvc := ipvs.Service{Key: ipvs.AddressKey(ipvs.TCP, oldVIP), Scheduler: "rr", PersistenceNetmask: 32}
	dest := func(addr netip.AddrPort, w, conns uint32) ipvs.DestinationState {
		return ipvs.DestinationState{Destination: ipvs.Destination{Address: addr, Weight: w}, Counters: ipvs.Counters{ActiveConns: conns}}
	}
	actual := []ipvs.ServiceState{
		{Service: webSvc, Destinations: []ipvs.DestinationState{dest(a, 100, 0), dest(b, 50, 3), dest(c, 0, 0), dest(f, 1, 0)}},
		{Service: goneSvc, Destinations: []ipvs.DestinationState{dest(a, 1, 0)}},
	}

	plan := PlanConfig(next, current, actual, time.Unix(0, 0))
	var got []string
	for _, op := range plan.Ops {
		got = append(got, op.String())
	}
	want := []string{
		"delete destination 10.0.0.3:80 in tcp 192.0.2.10:80",                      // left, idle
		"delete destination 10.0.0.9:80 in tcp 192.0.2.10:80",                      // fallback: a is up
		"add destination 10.0.0.4:80 in tcp 192.0.2.10:80 forwarding nat weight 0", // new: unknown until checked
		"edit destination 10.0.0.2:80 in tcp 192.0.2.10:80 weight 50 -> 0",         // left, busy: drains
		"delete service tcp 192.0.2.20:80",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	if len(plan.Draining) != 1 || plan.Draining[0].RealServer != b || plan.Draining[0].Connections != 3 || plan.Draining[0].Timeout != time.Minute {
		t.Errorf("draining = %+v, want b with 3 connections", plan.Draining)
	}

	// Without the current config, the service it alone declared is left alone.
	for _, op := range PlanConfig(next, nil, actual, time.Unix(0, 0)).Ops {
		if op.Service.Key == goneSvc.Key {
			t.Errorf("without -current the plan touches %s: %s", goneSvc.Key, op)
		}
	}
	// Against an empty table: everything is created, new servers at weight 0.
	var fresh []string
	for _, op := range PlanConfig(next, nil, nil, time.Unix(0, 0)).Ops {
		fresh = append(fresh, op.String())
	}
	if len(fresh) != 4 || !strings.HasPrefix(fresh[0], "add service tcp 192.0.2.10:80") {
		t.Errorf("plan against an empty table: %q", fresh)
	}
}
