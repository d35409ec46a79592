package config

import (
	"net/netip"
	"testing"
)

// TestMappedAddressErrors: IPv4-mapped addresses are unmapped before the
// duplicate and family checks; what the kernel would refuse is an error
// that says what to write.
func TestMappedAddressErrors(t *testing.T) {
	rs := func(addrs ...string) string {
		out := ""
		for _, a := range addrs {
			out += "[[virtual_server.real_server]]\naddress = \"" + a + "\"\n"
		}
		return out
	}
	v6 := func(body string) string {
		return "[[virtual_server]]\nname = \"web6\"\naddress = \"[2001:db8::10]:80\"\n" + body
	}
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"mapped duplicate of a real server", vs(rs("127.0.0.1:8080", "[::ffff:127.0.0.1]:8080")), []string{
			`director.toml:7: virtual_server[web].real_server[1].address: duplicate real server 127.0.0.1:8080; also on line 4`,
		}},
		{"mapped real server in an IPv6 service", v6(rs("[::ffff:127.0.0.1]:8080")), []string{
			`director.toml:5: virtual_server[web6].real_server[0].address: "[::ffff:127.0.0.1]:8080" is an IPv4-mapped IPv6 address, which the kernel takes as the IPv4 address 127.0.0.1 and refuses in an IPv6 virtual server; give the server's IPv6 address, or write "127.0.0.1:8080" in an IPv4 virtual server; only forwarding = "tun" can mix families`,
		}},
		{"mapped fallback in an IPv6 service", v6(`fallback = "[::ffff:10.0.0.9]:80"` + "\n" + rs("[2001:db8::11]:80")), []string{
			`director.toml:4: virtual_server[web6].fallback: "[::ffff:10.0.0.9]:80" is an IPv4-mapped IPv6 address, which the kernel takes as the IPv4 address 10.0.0.9 and refuses in an IPv6 virtual server; give the server's IPv6 address, or write "10.0.0.9:80" in an IPv4 virtual server`,
		}},
		{"mapped virtual service duplicates an IPv4 one",
			vs(rs("10.0.0.1:80")) + "[[virtual_server]]\nname = \"again\"\naddress = \"[::ffff:192.0.2.10]:80\"\n", []string{
				`director.toml:8: virtual_server[again].address: duplicate virtual service tcp 192.0.2.10:80; virtual_server[web] on line 1 already defines it`,
			}},
		{"unspecified", vs(rs("0.0.0.0:80")), []string{
			`director.toml:5: virtual_server[web].real_server[0].address: 0.0.0.0 is the unspecified address, not a server; IPVS refuses it: give the server's own address`,
		}},
		{"IPv6 unspecified", v6(rs("[::]:80")), []string{
			`director.toml:5: virtual_server[web6].real_server[0].address: :: is the unspecified address, not a server; IPVS refuses it: give the server's own address`,
		}},
		{"multicast", vs(rs("224.0.0.1:80")), []string{
			`director.toml:5: virtual_server[web].real_server[0].address: 224.0.0.1 is a multicast address; IPVS forwards only to unicast addresses`,
		}},
		{"broadcast", vs(rs("255.255.255.255:80")), []string{
			`director.toml:5: virtual_server[web].real_server[0].address: 255.255.255.255 is the broadcast address; IPVS forwards only to unicast addresses`,
		}},
		{"IPv6 link-local", v6(rs("[fe80::1]:80")), []string{
			`director.toml:5: virtual_server[web6].real_server[0].address: fe80::1 is an IPv6 link-local address, which IPVS refuses as a destination (it takes no zone); give the server a global or unique local address`,
		}},
		{"mapped multicast", vs(rs("[::ffff:224.0.0.1]:80")), []string{
			`director.toml:5: virtual_server[web].real_server[0].address: 224.0.0.1 is a multicast address; IPVS forwards only to unicast addresses`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { sameLines(t, problems(t, tc.src), tc.want) })
	}
}

// TestMappedAddressesUnmapped: accepted mapped addresses are used as the
// IPv4 addresses they are, with a warning saying what to write.
func TestMappedAddressesUnmapped(t *testing.T) {
	cfg := mustParse(t, `[[virtual_server]]
name = "web"
address = "[::ffff:192.0.2.10]:80"
  [virtual_server.check]
  address = "::ffff:10.0.0.50"
  [[virtual_server.real_server]]
  address = "[::ffff:10.0.0.11]:8080"
`)
	vs := cfg.VirtualServers[0]
	if vs.Address != netip.MustParseAddrPort("192.0.2.10:80") || vs.Family != "ipv4" {
		t.Errorf("virtual server %s (%s), want 192.0.2.10:80 (ipv4)", vs.Address, vs.Family)
	}
	if got := vs.RealServers[0].Address; got != netip.MustParseAddrPort("10.0.0.11:8080") {
		t.Errorf("real server %s, want 10.0.0.11:8080", got)
	}
	if vs.Checks[0].Address != netip.MustParseAddr("10.0.0.50") {
		t.Errorf("check address %s, want 10.0.0.50", vs.Checks[0].Address)
	}
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.String())
	}
	sameLines(t, got, []string{
		`director.toml:3: virtual_server[web].address: "[::ffff:192.0.2.10]:80" is an IPv4-mapped IPv6 address, which the kernel takes as the IPv4 address; write "192.0.2.10:80"`,
		`director.toml:5: virtual_server[web].check.address: "::ffff:10.0.0.50" is an IPv4-mapped IPv6 address, which the kernel takes as the IPv4 address; write "10.0.0.50"`,
		`director.toml:7: virtual_server[web].real_server[0].address: "[::ffff:10.0.0.11]:8080" is an IPv4-mapped IPv6 address, which the kernel takes as the IPv4 address; write "10.0.0.11:8080"`,
	})
}
