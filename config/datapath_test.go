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
	if !vs.Checks[0].DataPath {
		t.Fatal("datapath = true not read")
	}
	for i, want := range []checks.DataPath{
		{VIP: netip.MustParseAddr("192.0.2.10")},
		{VIP: netip.MustParseAddr("192.0.2.10"), Tunnel: true},
	} {
		spec := vs.CheckSpec(&vs.RealServers[i], &vs.Checks[0])
		if spec.DataPath != want || spec.Target != netip.AddrPortFrom(vs.RealServers[i].Address.Addr(), 80) {
			t.Errorf("real server %d: spec %+v, want data path %+v to its address", i, spec, want)
		}
		if _, err := checks.New(spec); err != nil {
			t.Errorf("real server %d: %v", i, err)
		}
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
			[]string{`director.toml:9: virtual_server[web].real_server[0].address: uses nat forwarding, but its check "tcp" has datapath = true, which probes the way dr and tun forwarding deliver (a nat real server is reached at its own address: leave datapath out)`}},
		{"check type", vs("forwarding = \"dr\"\n[virtual_server.check]\ntype = \"udp\"\ndatapath = true\nsource = \"10.0.0.50\"\n" + rs),
			[]string{`director.toml:7: virtual_server[web].check.datapath: datapath is only used by http, https, tcp and dialogue checks; this check's type is "udp"`}},
		{"fwmark", "[[virtual_server]]\nname = \"web\"\nfwmark = 1\nfamily = \"ipv4\"\nforwarding = \"dr\"\n[virtual_server.check]\ndatapath = true\nsource = \"10.0.0.50\"\nport = 80\n" + rs,
			[]string{`director.toml:3: virtual_server[web].fwmark: a fwmark service has no address for its datapath checks to send the probe to; leave datapath out`}},
		{"ipv6", "[[virtual_server]]\nname = \"web\"\naddress = \"[2001:db8::10]:80\"\nforwarding = \"dr\"\n[virtual_server.check]\ndatapath = true\nsource = \"2001:db8::50\"\n[[virtual_server.real_server]]\naddress = \"2001:db8::11\"\n",
			[]string{`director.toml:3: virtual_server[web].address: datapath checks are IPv4 only; this virtual server is IPv6`}},
		{"in [defaults.check]", "[defaults.check]\ndatapath = true\nsource = \"10.0.0.50\"\n" + vs("forwarding = \"dr\"\n"+rs),
			[]string{`director.toml:2: defaults.check.datapath: datapath belongs in a virtual server's check (or a real server's), not [defaults.check]: it only applies to dr and tun services`}},
		{"not a boolean", vs("forwarding = \"dr\"\n[virtual_server.check]\ndatapath = \"yes\"\n" + rs),
			[]string{`director.toml:6: virtual_server[web].check.datapath: must be true or false, not a string ("yes")`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sameLines(t, problems(t, tc.src), tc.want)
		})
	}
}

// TestDataPathPerRealServer: a real server's own check may turn the
// data path on (or off) for it alone.
func TestDataPathPerRealServer(t *testing.T) {
	cfg := mustParse(t, `[[virtual_server]]
name = "dr"
address = "192.0.2.20:80"
forwarding = "dr"
  [virtual_server.check]
  type = "tcp"
  source = "10.0.0.50"
  [[virtual_server.real_server]]
  address = "10.0.0.11"
  [[virtual_server.real_server]]
  address = "10.0.0.12"
    [[virtual_server.real_server.check]]
    name = "tcp"
    datapath = true
`)
	vs := &cfg.VirtualServers[0]
	for i, want := range []bool{false, true} {
		rs := &vs.RealServers[i]
		checks := vs.ChecksOf(rs)
		if len(checks) != 1 {
			t.Fatalf("real server %d: %d checks, want 1", i, len(checks))
		}
		if got := vs.CheckSpec(rs, &checks[0]).DataPath.On(); got != want {
			t.Errorf("real server %d: data path %v, want %v", i, got, want)
		}
	}
}
