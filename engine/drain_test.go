package engine

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
)

func TestDrainWaitsForConnections(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	mem := ipvs.NewMemory()
	h, logs := startLogged(t, testConfig("quiesce", b1, b2), mem)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	setConns(t, mem, webKey, b2.addr, 3, 2)

	next := testConfig("quiesce", b1)
	next.VirtualServers[0].DrainTimeout = time.Hour
	reload(t, h, next)
	// Right after the reload: b2 takes no new connections but is not cut.
	if got, _ := weights(t, mem, webKey); fmt.Sprint(got) != fmt.Sprint(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 0}) {
		t.Fatalf("after removing b2 with connections: table %v, want b2 at weight 0", got)
	}
	if v := h.stateMetric("web", b2.addr, "draining"); v != 1 {
		t.Errorf("director_real_server_state{state=draining} for b2 = %v, want 1", v)
	}
	if d := h.engine.Draining(); len(d) != 1 || d[0].RealServer != b2.addr {
		t.Errorf("Draining() = %+v, want b2", d)
	}
	// Several polls with connections left: still there.
	time.Sleep(200 * time.Millisecond)
	if got, _ := weights(t, mem, webKey); len(got) != 2 {
		t.Fatalf("b2 deleted while it still had connections: %v", got)
	}
	setConns(t, mem, webKey, b2.addr, 0, 1)
	time.Sleep(100 * time.Millisecond)
	if got, _ := weights(t, mem, webKey); len(got) != 2 {
		t.Fatalf("b2 deleted with an inactive connection left: %v", got)
	}
	setConns(t, mem, webKey, b2.addr, 0, 0)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "b2 drained")
	if v := h.counter("director_drains_total", "result", "connections"); v != 1 {
		t.Errorf("director_drains_total{result=connections} = %v, want 1", v)
	}
	if v := h.stateMetric("web", b2.addr, "draining"); v != -1 {
		t.Errorf("b2's state series still exported after it left (%v)", v)
	}
	if n := logs.count("real server draining", b2.addr.String()); n != 1 {
		t.Errorf("%d 'real server draining' lines for b2, want 1:\n%s", n, logs)
	}
	if n := logs.count("real server drained", b2.addr.String()); n != 1 {
		t.Errorf("%d 'real server drained' lines for b2, want 1:\n%s", n, logs)
	}
}

func TestDrainTimeout(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	mem := ipvs.NewMemory()
	h, logs := startLogged(t, testConfig("quiesce", b1, b2), mem)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	setConns(t, mem, webKey, b2.addr, 5, 0)
	next := testConfig("quiesce", b1)
	next.VirtualServers[0].DrainTimeout = 1500 * time.Millisecond
	reload(t, h, next)
	if got, _ := weights(t, mem, webKey); got[b2.addr] != 0 || len(got) != 2 {
		t.Fatalf("after reload: %v, want b2 at weight 0", got)
	}
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "b2 deleted at drain_timeout")
	if v := h.counter("director_drains_total", "result", "timeout"); v != 1 {
		t.Errorf("director_drains_total{result=timeout} = %v, want 1", v)
	}
	if n := logs.count("drain timed out", "connections=5"); n != 1 {
		t.Errorf("want one timeout line naming the 5 connections left:\n%s", logs)
	}
}

func TestZeroDrainTimeoutDeletesAtOnce(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	mem := ipvs.NewMemory()
	h, _ := startLogged(t, testConfig("quiesce", b1, b2), mem)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	setConns(t, mem, webKey, b2.addr, 5, 0)
	next := testConfig("quiesce", b1) // DrainTimeout 0, as UDP services get by default
	reload(t, h, next)
	if got, _ := weights(t, mem, webKey); fmt.Sprint(got) != fmt.Sprint(map[netip.AddrPort]uint32{b1.addr: 100}) {
		t.Fatalf("drain_timeout 0: table %v right after the reload, want b2 deleted", got)
	}
}

func TestIdleServerDeletedAtOnce(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	mem := ipvs.NewMemory()
	h, _ := startLogged(t, testConfig("quiesce", b1, b2), mem)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	next := testConfig("quiesce", b1)
	next.VirtualServers[0].DrainTimeout = time.Hour
	reload(t, h, next)
	if got, _ := weights(t, mem, webKey); fmt.Sprint(got) != fmt.Sprint(map[netip.AddrPort]uint32{b1.addr: 100}) {
		t.Fatalf("removing a server without connections: table %v right after the reload, want it deleted", got)
	}
}

func TestDrainingServerRestored(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	mem := ipvs.NewMemory()
	h, _ := startLogged(t, testConfig("quiesce", b1, b2), mem)
	all := map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}
	h.eventually(all, "start")
	setConns(t, mem, webKey, b2.addr, 1, 0)
	next := testConfig("quiesce", b1)
	next.VirtualServers[0].DrainTimeout = time.Hour
	reload(t, h, next)
	if got, _ := weights(t, mem, webKey); got[b2.addr] != 0 || len(got) != 2 {
		t.Fatalf("after removal: %v", got)
	}
	back := testConfig("quiesce", b1, b2)
	back.VirtualServers[0].DrainTimeout = time.Hour
	reload(t, h, back)
	// It comes back with the verdict it left with (up), in the same reload.
	if got, _ := weights(t, mem, webKey); fmt.Sprint(got) != fmt.Sprint(all) {
		t.Fatalf("after restoring b2: table %v right after the reload, want %v", got, all)
	}
	if v := h.counter("director_drains_total", "result", "restored"); v != 1 {
		t.Errorf("director_drains_total{result=restored} = %v, want 1", v)
	}
	if len(h.engine.Draining()) != 0 {
		t.Errorf("still draining after restore: %+v", h.engine.Draining())
	}
	if v := h.stateMetric("web", b2.addr, "up"); v != 1 {
		t.Errorf("b2 state up = %v after restore, want 1", v)
	}
}

func TestRemovedVirtualServerDrainsThenGoes(t *testing.T) {
	b1 := newBackend(t)
	cfg := testConfig("quiesce", b1)
	addVS(cfg, "api", apiVIP).DrainTimeout = time.Hour

	mem := ipvs.NewMemory()
	h, _ := startLogged(t, cfg, mem)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "start")
	if !within(10*time.Second, func() bool { w, _ := weights(t, mem, apiKey); return w[b1.addr] == 100 }) {
		t.Fatal("api never came up")
	}
	setConns(t, mem, apiKey, b1.addr, 2, 0)
	reload(t, h, testConfig("quiesce", b1)) // api is gone from the config
	if w, ok := weights(t, mem, apiKey); !ok || w[b1.addr] != 0 {
		t.Fatalf("removed service with connections: %v (present %v), want kept with its server at weight 0", w, ok)
	}
	setConns(t, mem, apiKey, b1.addr, 0, 0)
	if !within(10*time.Second, func() bool { return !hasService(t, mem, apiKey) }) {
		t.Fatal("removed service never deleted after its last server drained")
	}
	if w, _ := weights(t, mem, webKey); w[b1.addr] != 100 {
		t.Errorf("web disturbed: %v", w)
	}
}

func TestStrayWithConnectionsDrainsAtStart(t *testing.T) {
	b1 := newBackend(t)
	cfg := testConfig("quiesce", b1)
	cfg.VirtualServers[0].DrainTimeout = time.Hour
	mem := ipvs.NewMemory()
	ctx := context.Background()
	stray := netip.MustParseAddrPort("127.0.0.1:9")
	if err := mem.CreateService(ctx, service(&cfg.VirtualServers[0])); err != nil {
		t.Fatal(err)
	}
	if err := mem.CreateDestination(ctx, webKey, ipvs.Destination{Address: stray, Weight: 10}); err != nil {
		t.Fatal(err)
	}
	setConns(t, mem, webKey, stray, 4, 0)
	h, _ := startLogged(t, cfg, mem)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, stray: 0}, "stray drained, not deleted")
	setConns(t, mem, webKey, stray, 0, 0)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "stray deleted once idle")
}

// Pure parts, table-tested.

func TestEndedDrains(t *testing.T) {
	svc := ipvs.AddressKey(ipvs.TCP, vip)
	a, b, c, d := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80"),
		netip.MustParseAddrPort("10.0.0.3:80"), netip.MustParseAddrPort("10.0.0.4:80")
	t0 := time.Unix(1000, 0)
	drains := map[destKey]*drain{
		normKey(svc, a): {since: t0, timeout: time.Minute},
		normKey(svc, b): {since: t0, timeout: time.Minute},
		normKey(svc, c): {since: t0, timeout: time.Minute},
		normKey(svc, d): {since: t0.Add(-2 * time.Minute), timeout: time.Minute},
	}
	kernel := map[destKey]ipvs.DestinationState{
		normKey(svc, a): {Counters: ipvs.Counters{ActiveConns: 1}},
		normKey(svc, b): {Counters: ipvs.Counters{PersistentConns: 9}},
		normKey(svc, d): {Counters: ipvs.Counters{InactiveConns: 2}},
	}
	got := endedDrains(drains, kernel, t0.Add(30*time.Second))
	want := []drainEnd{
		{key: normKey(svc, b), result: "connections"},
		{key: normKey(svc, c), result: "gone"},
		{key: normKey(svc, d), result: "timeout", conns: 2},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("endedDrains = %+v\nwant %+v", got, want)
	}
}

func TestNextDrains(t *testing.T) {
	a, b := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80")
	mk := func(timeout time.Duration, rs ...netip.AddrPort) *config.Config {
		vs := config.VirtualServer{Name: "web", Address: vip, Family: "ipv4", Protocol: "tcp", DrainTimeout: timeout}
		for _, r := range rs {
			vs.RealServers = append(vs.RealServers, config.RealServer{Address: r, Weight: 5, Forwarding: "nat"})
		}
		return &config.Config{VirtualServers: []config.VirtualServer{vs}}
	}
	svc := ipvs.AddressKey(ipvs.TCP, vip)
	busy := map[destKey]ipvs.DestinationState{normKey(svc, a): {Counters: ipvs.Counters{ActiveConns: 1}}, normKey(svc, b): {}}
	now := time.Unix(5, 0)
	tests := []struct {
		name              string
		old, next         *config.Config
		running           map[destKey]*drain
		drains, restored  []netip.AddrPort
		wantTimeoutOfLast time.Duration
	}{
		{"busy server leaves: drains", mk(time.Minute, a, b), mk(time.Minute, b), nil, []netip.AddrPort{a}, nil, time.Minute},
		{"idle server leaves: deleted", mk(time.Minute, a, b), mk(time.Minute, a), nil, nil, nil, 0},
		{"timeout 0: deleted", mk(time.Minute, a, b), mk(0, b), nil, nil, nil, 0},
		{"new timeout applies", mk(time.Minute, a, b), mk(time.Hour, b), nil, []netip.AddrPort{a}, nil, time.Hour},
		{"draining server returns", mk(time.Minute, b), mk(time.Minute, a, b),
			map[destKey]*drain{normKey(svc, a): {id: serverID{"web", a}}}, nil, []netip.AddrPort{a}, 0},
		{"running drain goes on", mk(time.Minute, b), mk(time.Minute, b),
			map[destKey]*drain{normKey(svc, a): {id: serverID{"web", a}, timeout: time.Second}}, []netip.AddrPort{a}, nil, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			drains, restored := nextDrains(tt.old, tt.next, tt.running, nil, busy, now)
			addrs := func(m map[destKey]*drain) []netip.AddrPort {
				var out []netip.AddrPort
				for k := range m {
					out = append(out, k.addr)
				}
				return out
			}
			if fmt.Sprint(addrs(drains)) != fmt.Sprint(tt.drains) || fmt.Sprint(addrs(restored)) != fmt.Sprint(tt.restored) {
				t.Errorf("drains %v restored %v, want %v and %v", addrs(drains), addrs(restored), tt.drains, tt.restored)
			}
			for _, d := range drains {
				if d.timeout != tt.wantTimeoutOfLast {
					t.Errorf("timeout %s, want %s", d.timeout, tt.wantTimeoutOfLast)
				}
				if d.dest.Weight != 0 {
					t.Errorf("draining destination weight %d, want 0", d.dest.Weight)
				}
			}
		})
	}
}

func TestWithDrainsAndRetired(t *testing.T) {
	web := ipvs.Service{Key: ipvs.AddressKey(ipvs.TCP, vip), Scheduler: "wrr"}
	gone := ipvs.Service{Key: ipvs.AddressKey(ipvs.TCP, netip.MustParseAddrPort("192.0.2.20:80")), Scheduler: "rr"}
	a, b := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80")
	desired := []ipvs.DesiredService{{Service: web, Destinations: []ipvs.Destination{{Address: a, Weight: 7}}}}
	drains := map[destKey]*drain{
		normKey(web.Key, b):  {service: web, dest: ipvs.Destination{Address: b}},
		normKey(gone.Key, a): {service: gone, dest: ipvs.Destination{Address: a}},
	}
	got := withDrains(desired, drains)
	if len(desired[0].Destinations) != 1 {
		t.Fatal("withDrains changed its input")
	}
	want := []ipvs.DesiredService{
		{Service: web, Destinations: []ipvs.Destination{{Address: a, Weight: 7}, {Address: b}}},
		{Service: gone, Destinations: []ipvs.Destination{{Address: a}}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("withDrains = %v\nwant %v", got, want)
	}
	other := ipvs.AddressKey(ipvs.UDP, vip)
	ret := retiredExcept(map[ipvs.ServiceKey]bool{gone.Key: true, other: true}, got)
	if fmt.Sprint(ret) != fmt.Sprint([]ipvs.ServiceKey{other}) {
		t.Errorf("retiredExcept = %v, want only %v (gone still drains)", ret, other)
	}
}

func TestPlannedStates(t *testing.T) {
	a, b, c := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80"), netip.MustParseAddrPort("10.0.0.3:80")
	cfg := &config.Config{VirtualServers: []config.VirtualServer{{Name: "web", Address: vip, Family: "ipv4", Protocol: "tcp",
		RealServers: []config.RealServer{{Address: a}, {Address: b}, {Address: c}}}}}
	svc := ipvs.AddressKey(ipvs.TCP, vip)
	kernel := map[destKey]ipvs.DestinationState{
		normKey(svc, a): {Destination: ipvs.Destination{Weight: 5}},
		normKey(svc, b): {Destination: ipvs.Destination{Weight: 0}},
	}
	got := plannedStates(cfg, map[serverID]health.State{{"web", c}: health.Down}, kernel)
	want := map[serverID]health.State{{"web", a}: health.Up, {"web", b}: health.Unknown, {"web", c}: health.Down}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("plannedStates = %v, want %v", got, want)
	}
}
