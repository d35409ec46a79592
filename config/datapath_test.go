package config

import (
	"net/netip"
	"testing"

	"github.com/lvsdirector/director/checks"
)

func TestDataPathCheck(t *testing.T) {
	cfg := mustParse(t, `[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
forwarding = "dr"
  [virtual_server.check]
  type = "http"
  datapath = true
  source = "10.0.0.50"
  [[virtual_server.real_server]]
  address = "10.0.0.11"
  [[virtual_server.real_server]]
  address = "10.0.0.12"
  forwarding = "tun"
`)
	vs := &cfg.VirtualServers[0]
	if !vs.Check.DataPath {
		t.Fatal("datapath = true not read")
	}
	for i, want := range []checks.DataPath{
		{VIP: netip.MustParseAddr("192.0.2.10")},
		{VIP: netip.MustParseAddr("192.0.2.10"), Tunnel: true},
	} {
		spec := vs.CheckSpec(&vs.RealServers[i])
		if spec.DataPath != want || spec.Target != netip.AddrPortFrom(vs.RealServers[i].Address.Addr(), 80) {
			t.Errorf("real server %d: spec %+v, want data path %+v to its address", i, spec, want)
		}
		if _, err := checks.New(spec); err != nil {
			t.Errorf("real server %d: %v", i, err)
		}
	}

	// From [defaults.check], for every virtual server.
	cfg = mustParse(t, `[defaults.check]
datapath = true
source = "10.0.0.50"
[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
forwarding = "dr"
  [[virtual_server.real_server]]
  address = "10.0.0.11"
`)
	if spec := cfg.VirtualServers[0].CheckSpec(&cfg.VirtualServers[0].RealServers[0]); !spec.DataPath.On() {
		t.Error("datapath from [defaults.check] not used")
	}
}

func TestDataPathErrors(t *testing.T) {
	const rs = "[[virtual_server.real_server]]\naddress = \"10.0.0.11\"\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"without source", vs("forwarding = \"dr\"\n[virtual_server.check]\ndatapath = true\n" + rs),
			[]string{`director.toml:6: virtual_server[web].check.datapath: datapath = true needs source: an unused IPv4 address on the real servers' segment, which the director's probe namespace takes (not an address of the director's own: the real server's answers must reach the namespace)`}},
		{"nat real server", vs("forwarding = \"dr\"\n[virtual_server.check]\ndatapath = true\nsource = \"10.0.0.50\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.11:80\"\nforwarding = \"nat\"\n"),
			[]string{`director.toml:9: virtual_server[web].real_server[0].address: uses nat forwarding, but the check has datapath = true, which probes the way dr and tun forwarding deliver (a nat real server is reached at its own address: leave datapath out)`}},
		{"check type", vs("forwarding = \"dr\"\n[virtual_server.check]\ntype = \"udp\"\ndatapath = true\nsource = \"10.0.0.50\"\n" + rs),
			[]string{`director.toml:7: virtual_server[web].check.datapath: datapath is only used by http, https, tcp and dialogue checks; this check's type is "udp"`}},
		{"fwmark", "[[virtual_server]]\nname = \"web\"\nfwmark = 1\nfamily = \"ipv4\"\nforwarding = \"dr\"\n[virtual_server.check]\ndatapath = true\nsource = \"10.0.0.50\"\nport = 80\n" + rs,
			[]string{`director.toml:7: virtual_server[web].check.datapath: datapath needs the virtual server's address, which the probe is sent to; a fwmark service has none`}},
		{"ipv6", "[[virtual_server]]\nname = \"web\"\naddress = \"[2001:db8::10]:80\"\nforwarding = \"dr\"\n[virtual_server.check]\ndatapath = true\nsource = \"2001:db8::50\"\n[[virtual_server.real_server]]\naddress = \"2001:db8::11\"\n",
			[]string{`director.toml:6: virtual_server[web].check.datapath: datapath checks are IPv4 only; this virtual server is IPv6`}},
		{"not a boolean", vs("forwarding = \"dr\"\n[virtual_server.check]\ndatapath = \"yes\"\n" + rs),
			[]string{`director.toml:6: virtual_server[web].check.datapath: must be true or false, not a string ("yes")`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sameLines(t, problems(t, tc.src), tc.want)
		})
	}
}

// TestDataPathFromDefaults: [defaults.check] serves every virtual server,
// so its datapath applies where it can and is unused elsewhere.
func TestDataPathFromDefaults(t *testing.T) {
	cfg := mustParse(t, `[defaults.check]
datapath = true
source = "10.0.0.50"
[[virtual_server]]
name = "nat"
address = "192.0.2.10:80"
  [[virtual_server.real_server]]
  address = "10.0.0.11:80"
[[virtual_server]]
name = "dr"
address = "192.0.2.20:80"
forwarding = "dr"
  [[virtual_server.real_server]]
  address = "10.0.0.11"
  [[virtual_server.real_server]]
  address = "10.0.0.12:80"
  forwarding = "nat"
`)
	nat, dr := &cfg.VirtualServers[0], &cfg.VirtualServers[1]
	if spec := nat.CheckSpec(&nat.RealServers[0]); spec.DataPath.On() {
		t.Error("datapath from [defaults.check] applied to a nat service")
	}
	if spec := dr.CheckSpec(&dr.RealServers[0]); !spec.DataPath.On() {
		t.Error("datapath from [defaults.check] not applied to a dr service")
	}
	if spec := dr.CheckSpec(&dr.RealServers[1]); spec.DataPath.On() {
		t.Error("datapath applied to a nat real server of a dr service")
	}
}
