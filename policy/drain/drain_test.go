package drain

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/ipvs"
)

var vip = netip.MustParseAddrPort("192.0.2.10:80")

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
	busy := map[desired.DestKey]ipvs.DestinationState{desired.Key(svc, a): {Counters: ipvs.Counters{ActiveConns: 1}}, desired.Key(svc, b): {}}
	now := time.Unix(5, 0)
	tests := []struct {
		name              string
		old, next         *config.Config
		running           Set
		drains, restored  []netip.AddrPort
		wantTimeoutOfLast time.Duration
	}{
		{"busy server leaves: drains", mk(time.Minute, a, b), mk(time.Minute, b), nil, []netip.AddrPort{a}, nil, time.Minute},
		{"idle server leaves: deleted", mk(time.Minute, a, b), mk(time.Minute, a), nil, nil, nil, 0},
		{"timeout 0: deleted", mk(time.Minute, a, b), mk(0, b), nil, nil, nil, 0},
		{"new timeout applies", mk(time.Minute, a, b), mk(time.Hour, b), nil, []netip.AddrPort{a}, nil, time.Hour},
		{"draining server returns", mk(time.Minute, b), mk(time.Minute, a, b),
			Set{desired.Key(svc, a): {ID: config.ServerID{VirtualServer: "web", RealServer: a}}}, nil, []netip.AddrPort{a}, 0},
		{"running drain goes on", mk(time.Minute, b), mk(time.Minute, b),
			Set{desired.Key(svc, a): {ID: config.ServerID{VirtualServer: "web", RealServer: a}, Timeout: time.Second}}, []netip.AddrPort{a}, nil, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			drains, restored := Next(tt.old, tt.next, tt.running, nil, busy, now)
			addrs := func(m Set) []netip.AddrPort {
				var out []netip.AddrPort
				for k := range m {
					out = append(out, k.Addr)
				}
				return out
			}
			if fmt.Sprint(addrs(drains)) != fmt.Sprint(tt.drains) || fmt.Sprint(addrs(restored)) != fmt.Sprint(tt.restored) {
				t.Errorf("drains %v restored %v, want %v and %v", addrs(drains), addrs(restored), tt.drains, tt.restored)
			}
			for _, d := range drains {
				if d.Timeout != tt.wantTimeoutOfLast {
					t.Errorf("timeout %s, want %s", d.Timeout, tt.wantTimeoutOfLast)
				}
				if d.Dest.Weight != 0 {
					t.Errorf("draining destination weight %d, want 0", d.Dest.Weight)
				}
			}
		})
	}
}

func TestEndedDrains(t *testing.T) {
	svc := ipvs.AddressKey(ipvs.TCP, vip)
	a, b, c, d := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80"),
		netip.MustParseAddrPort("10.0.0.3:80"), netip.MustParseAddrPort("10.0.0.4:80")
	t0 := time.Unix(1000, 0)
	drains := Set{
		desired.Key(svc, a): {Since: t0, Timeout: time.Minute},
		desired.Key(svc, b): {Since: t0, Timeout: time.Minute},
		desired.Key(svc, c): {Since: t0, Timeout: time.Minute},
		desired.Key(svc, d): {Since: t0.Add(-2 * time.Minute), Timeout: time.Minute},
	}
	kernel := map[desired.DestKey]ipvs.DestinationState{
		desired.Key(svc, a): {Counters: ipvs.Counters{ActiveConns: 1}},
		desired.Key(svc, b): {Counters: ipvs.Counters{PersistentConns: 9}},
		desired.Key(svc, d): {Counters: ipvs.Counters{InactiveConns: 2}},
	}
	got := Ended(drains, kernel, t0.Add(30*time.Second))
	want := []End{
		{Key: desired.Key(svc, b), Result: "connections"},
		{Key: desired.Key(svc, c), Result: "gone"},
		{Key: desired.Key(svc, d), Result: "timeout", Conns: 2},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Ended = %+v\nwant %+v", got, want)
	}
}

func TestWithDrainsAndRetired(t *testing.T) {
	web := ipvs.Service{Key: ipvs.AddressKey(ipvs.TCP, vip), Scheduler: "wrr"}
	gone := ipvs.Service{Key: ipvs.AddressKey(ipvs.TCP, netip.MustParseAddrPort("192.0.2.20:80")), Scheduler: "rr"}
	a, b := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80")
	table := []ipvs.DesiredService{{Service: web, Destinations: []ipvs.Destination{{Address: a, Weight: 7}}}}
	drains := Set{
		desired.Key(web.Key, b):  {Service: web, Dest: ipvs.Destination{Address: b}},
		desired.Key(gone.Key, a): {Service: gone, Dest: ipvs.Destination{Address: a}},
	}
	got := With(table, drains)
	if len(table[0].Destinations) != 1 {
		t.Fatal("With changed its input")
	}
	want := []ipvs.DesiredService{
		{Service: web, Destinations: []ipvs.Destination{{Address: a, Weight: 7}, {Address: b}}},
		{Service: gone, Destinations: []ipvs.Destination{{Address: a}}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("With = %v\nwant %v", got, want)
	}
	other := ipvs.AddressKey(ipvs.UDP, vip)
	ret := RetiredExcept(map[ipvs.ServiceKey]bool{gone.Key: true, other: true}, got)
	if fmt.Sprint(ret) != fmt.Sprint([]ipvs.ServiceKey{other}) {
		t.Errorf("RetiredExcept = %v, want only %v (gone still drains)", ret, other)
	}
}

// dests is a kernel service's destinations: address and active connections.
func dests(fwd ipvs.Forwarding, conns map[netip.AddrPort]uint32) []ipvs.DestinationState {
	var out []ipvs.DestinationState
	for a, n := range conns {
		out = append(out, ipvs.DestinationState{
			Destination: ipvs.Destination{Address: a, Weight: 3, Forwarding: fwd},
			Counters:    ipvs.Counters{ActiveConns: n},
		})
	}
	return out
}

// describe renders a drain set compactly: "id weight fwd timeout since service", sorted by key.
func describe(s Set) []string {
	var out []string
	for _, k := range s.Keys() {
		d := s[k]
		out = append(out, fmt.Sprintf("%s w%d %s %s t=%d svc=%s", d.ID, d.Dest.Weight, d.Dest.Forwarding, d.Timeout, d.Since.Unix(), d.Service.Key))
	}
	return out
}

func TestStrays(t *testing.T) {
	a, x, y := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.7:80"), netip.MustParseAddrPort("10.0.0.8:80")
	sorry := netip.MustParseAddrPort("10.0.0.9:80")
	other := netip.MustParseAddrPort("192.0.2.30:80")
	web := config.VirtualServer{Name: "web", Address: vip, Family: "ipv4", Protocol: "tcp", Scheduler: "wlc", DrainTimeout: time.Minute,
		Fallback: sorry, RealServers: []config.RealServer{{Address: a, Weight: 3, Forwarding: "dr"}}}
	now := time.Unix(77, 0)
	for _, tt := range []struct {
		name   string
		vs     config.VirtualServer
		actual []ipvs.ServiceState
		want   []string
	}{
		{"unnamed busy destination drains; configured, fallback and idle ones do not", web,
			[]ipvs.ServiceState{{Service: ipvs.Service{Key: ipvs.AddressKey(ipvs.TCP, vip)},
				Destinations: dests(ipvs.DR, map[netip.AddrPort]uint32{a: 4, x: 2, y: 0, sorry: 5})}},
			[]string{"web/10.0.0.7:80 w0 dr 1m0s t=77 svc=tcp 192.0.2.10:80"}},
		{"service the config does not name is not ours to drain", web,
			[]ipvs.ServiceState{{Service: ipvs.Service{Key: ipvs.AddressKey(ipvs.TCP, other)},
				Destinations: dests(ipvs.NAT, map[netip.AddrPort]uint32{x: 2})}},
			nil},
		{"drain timeout 0: cut at once", func() config.VirtualServer { v := web; v.DrainTimeout = 0; return v }(),
			[]ipvs.ServiceState{{Service: ipvs.Service{Key: ipvs.AddressKey(ipvs.TCP, vip)},
				Destinations: dests(ipvs.NAT, map[netip.AddrPort]uint32{x: 2})}},
			nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{VirtualServers: []config.VirtualServer{tt.vs}}
			got := describe(Strays(cfg, tt.actual, now))
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Strays = %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestRetired(t *testing.T) {
	a, b := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80")
	tcp := ipvs.Service{Key: ipvs.AddressKey(ipvs.TCP, vip), Scheduler: "rr"}
	udp := ipvs.Service{Key: ipvs.AddressKey(ipvs.UDP, vip), Scheduler: "rr"}
	now := time.Unix(9, 0)
	for _, tt := range []struct {
		name    string
		svc     ipvs.Service
		timeout time.Duration
		want    []string
	}{
		{"tcp: busy destinations drain under the service's key", tcp, time.Hour,
			[]string{"tcp 192.0.2.10:80/10.0.0.1:80 w0 tun 1h0m0s t=9 svc=tcp 192.0.2.10:80"}},
		{"udp: deleted at once", udp, time.Hour, nil},
		{"timeout 0: deleted at once", tcp, 0, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := &ipvs.ServiceState{Service: tt.svc, Destinations: dests(ipvs.TUN, map[netip.AddrPort]uint32{a: 1, b: 0})}
			got := describe(Retired(st, tt.timeout, now))
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Retired = %q\nwant %q", got, tt.want)
			}
		})
	}
}
