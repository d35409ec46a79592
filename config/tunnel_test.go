package config

import (
	"strings"
	"testing"
)

func TestTunnel(t *testing.T) {
	cfg, errs := parseNamed(t, `[[virtual_server]]
name = "t"
address = "192.0.2.10:80"
forwarding = "tun"
tun_type = "gue"
tun_port = 6080
tun_csum = "remcsum"
fallback = "10.0.0.9:80"
  [[virtual_server.real_server]]
  address = "10.0.0.1:80"        # inherits gue 6080 remcsum
  [[virtual_server.real_server]]
  address = "10.0.0.2:80"
  tun_type = "gre"               # its own keys alone: no port
  tun_csum = "csum"
  [[virtual_server.real_server]]
  address = "10.0.0.3:80"
  tun_type = "ipip"
  [[virtual_server.real_server]]
  address = "10.0.0.4:8080"
  forwarding = "nat"             # not tun: no tunnel
  [[virtual_server.real_server]]
  address = "10.0.0.5:80"
  tun_type = "gue"
  tun_port = "sip"               # a udp service name
`)
	if errs != nil {
		t.Fatal(strings.Join(errs, "\n"))
	}
	vs := cfg.VirtualServers[0]
	want := []Tunnel{{Type: "gue", Port: 6080, Csum: "remcsum"}, {Type: "gre", Csum: "csum"}, {}, {}, {Type: "gue", Port: 5060}}
	for i, w := range want {
		if got := vs.RealServers[i].Tunnel; got != w {
			t.Errorf("real server %d: tunnel %+v, want %+v", i, got, w)
		}
	}
	if vs.Tunnel != want[0] {
		t.Errorf("virtual server tunnel %+v", vs.Tunnel)
	}
}

func TestTunnelErrors(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"tun_type = \"gue\"",
			`director.toml:4: virtual_server[web].tun_type: is only used with forwarding = "tun"; this one's forwarding is "nat"`},
		{"forwarding = \"tun\"\ntun_type = \"gue\"",
			`director.toml:5: virtual_server[web].tun_type: gue needs tun_port: the UDP port the real server's fou/gue listener decapsulates on, such as 6080`},
		{"forwarding = \"tun\"\ntun_type = \"gre\"\ntun_port = 6080",
			`director.toml:6: virtual_server[web].tun_port: is only used with tun_type = "gue"; gre has no port`},
		{"forwarding = \"tun\"\ntun_port = 6080",
			`director.toml:5: virtual_server[web].tun_port: is only used with tun_type = "gue"; ipip has no port`},
		{"forwarding = \"tun\"\ntun_csum = \"csum\"",
			`director.toml:5: virtual_server[web].tun_csum: ipip has no checksum; tun_csum is for tun_type = "gue" or "gre"`},
		{"forwarding = \"tun\"\ntun_type = \"gre\"\ntun_csum = \"remcsum\"",
			`director.toml:6: virtual_server[web].tun_csum: remote checksum offload is a GUE option; gre takes "none" or "csum"`},
		{"forwarding = \"tun\"\ntun_type = \"fou\"",
			`director.toml:5: virtual_server[web].tun_type: unknown tunnel type "fou"; valid: ipip, gue, gre (fou with GUE headers is "gue")`},
		{"forwarding = \"tun\"\ntun_type = \"gue\"\ntun_port = 70000",
			`director.toml:6: virtual_server[web].tun_port: 70000 is out of range; ports are 1-65535`},
		{"forwarding = \"dr\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\ntun_type = \"gre\"",
			`director.toml:7: virtual_server[web].real_server[0].tun_type: is only used with forwarding = "tun"; this one's forwarding is "dr"`},
	} {
		_, errs := parseNamed(t, vs(c.body+"\n"))
		if len(errs) != 1 || errs[0] != c.want {
			t.Errorf("%s:\ngot  %q\nwant %q", c.body, errs, c.want)
		}
	}
}

func TestDiffTunnel(t *testing.T) {
	a, _ := parseNamed(t, vs("forwarding = \"tun\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n"))
	b, _ := parseNamed(t, vs("forwarding = \"tun\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\ntun_type = \"gre\"\n"))
	if c := Diff(a, b); len(c.ReweightedRS) != 1 || len(c.ChangedVS) != 0 {
		t.Errorf("a real server's new tunnel: %+v", c)
	}
}
