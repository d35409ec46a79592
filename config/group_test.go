package config

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestGroupExpansion(t *testing.T) {
	cfg, errs := parseNamed(t, `[[virtual_server]]
name = "web"
addresses = ["192.0.2.10-12:www", "192.0.2.20:443"]
forwarding = "dr"
  [[virtual_server.real_server]]
  address = "10.0.0.11"     # no port: each member's own
  weight = 5
  [[virtual_server.real_server]]
  address = "10.0.0.12:80"  # nat: any port
  forwarding = "nat"

[[virtual_server]]
name = "v6"
addresses = ["[2001:db8::a-c]:443"]
  [[virtual_server.real_server]]
  address = "[2001:db8::11]:8443"

[[virtual_server]]
name = "marks"
fwmarks = [10, 12]
family = "ipv6"
  [virtual_server.check]
  port = 443
  [[virtual_server.real_server]]
  address = "[2001:db8::11]:0"

[[virtual_server]]
name = "plain"
address = "192.0.2.30:80"
`)
	if errs != nil {
		t.Fatal(strings.Join(errs, "\n"))
	}
	var got []string
	for _, vs := range cfg.VirtualServers {
		line := fmt.Sprintf("%s group=%q %s %s fwmark=%d", vs.Name, vs.Group, vs.Family, vs.Address, vs.FWMark)
		for _, rs := range vs.RealServers {
			line += fmt.Sprintf(" %s/%s/%d", rs.Address, rs.Forwarding, rs.Weight)
		}
		got = append(got, line)
	}
	sameLines(t, got, []string{
		`web@192.0.2.10:80 group="web" ipv4 192.0.2.10:80 fwmark=0 10.0.0.11:80/dr/5 10.0.0.12:80/nat/1`,
		`web@192.0.2.11:80 group="web" ipv4 192.0.2.11:80 fwmark=0 10.0.0.11:80/dr/5 10.0.0.12:80/nat/1`,
		`web@192.0.2.12:80 group="web" ipv4 192.0.2.12:80 fwmark=0 10.0.0.11:80/dr/5 10.0.0.12:80/nat/1`,
		`web@192.0.2.20:443 group="web" ipv4 192.0.2.20:443 fwmark=0 10.0.0.11:443/dr/5 10.0.0.12:80/nat/1`,
		`v6@[2001:db8::a]:443 group="v6" ipv6 [2001:db8::a]:443 fwmark=0 [2001:db8::11]:8443/nat/1`,
		`v6@[2001:db8::b]:443 group="v6" ipv6 [2001:db8::b]:443 fwmark=0 [2001:db8::11]:8443/nat/1`,
		`v6@[2001:db8::c]:443 group="v6" ipv6 [2001:db8::c]:443 fwmark=0 [2001:db8::11]:8443/nat/1`,
		`marks@fwmark10 group="marks" ipv6 invalid AddrPort fwmark=10 [2001:db8::11]:0/nat/1`,
		`marks@fwmark12 group="marks" ipv6 invalid AddrPort fwmark=12 [2001:db8::11]:0/nat/1`,
		`plain group="" ipv4 192.0.2.30:80 fwmark=0`,
	})
	// The members share one check: a real server is probed once.
	a, b := &cfg.VirtualServers[0], &cfg.VirtualServers[1]
	if a.CheckSpec(&a.RealServers[0], &a.Checks[0]).Key() != b.CheckSpec(&b.RealServers[0], &b.Checks[0]).Key() {
		t.Error("members' checks of one real server differ; they would be probed once per member")
	}
}

// grp is a virtual server "web" without an address, then body.
func grp(body string) string { return "[[virtual_server]]\nname = \"web\"\n" + body }

func TestGroupErrors(t *testing.T) {
	many := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "[[virtual_server]]\nname = \"g%d\"\naddresses = [\"10.0.%d.1-255:80\"]\n", i, i)
		}
		return b.String()
	}
	for _, c := range []struct {
		name, src string
		want      []string
	}{
		{"a typo in a range", grp(`addresses = ["10.0.0.1-255:80", "10.0.1.1-20:80"]`),
			[]string{`director.toml:3: virtual_server[web].addresses: expands to 275 kernel services; a [[virtual_server]] may expand to at most 256: check the ranges for a typo ("10.0.0.1-255" is 255 addresses), or split the group`}},
		{"six groups of 255", many(6),
			[]string{`director.toml:15: virtual_server[g4].addresses: expands to 255 kernel services; all groups of a config together may expand to at most 1024 (4 are left here): check the ranges for a typo ("10.0.0.1-255" is 255 addresses), or split the group`,
				`director.toml:18: virtual_server[g5].addresses: expands to 255 kernel services; all groups of a config together may expand to at most 1024 (4 are left here): check the ranges for a typo ("10.0.0.1-255" is 255 addresses), or split the group`}},
		{"a backwards range", grp(`addresses = ["10.0.0.5-3:80"]`),
			[]string{`director.toml:3: virtual_server[web].addresses[0]: "10.0.0.5-3:80": a range ends in the last octet, from 5 to a number 5-255, such as "10.0.0.5-14"`}},
		{"an IPv6 range in decimal thinking", grp(`addresses = ["[2001:db8::10-g]:80"]`),
			[]string{`director.toml:3: virtual_server[web].addresses[0]: "[2001:db8::10-g]:80": a range ends in the last group, from 10 to a hex number 10-ffff, such as "[2001:db8::10-1f]"`}},
		{"no port", grp(`addresses = ["10.0.0.5"]`),
			[]string{`director.toml:3: virtual_server[web].addresses[0]: "10.0.0.5" has no port; write "10.0.0.5:80"`}},
		{"mixed families", grp(`addresses = ["10.0.0.5:80", "[2001:db8::1]:80"]`),
			[]string{`director.toml:3: virtual_server[web].addresses[1]: 2001:db8::1 is IPv6 but the first address is IPv4; one virtual server's addresses share a family (its real servers do): write two virtual servers`}},
		{"overlapping entries", grp(`addresses = ["10.0.0.1-5:80", "10.0.0.4:80"]`),
			[]string{`director.toml:3: virtual_server[web].addresses[1]: 10.0.0.4:80 is already in entry 0 of addresses`}},
		{"address and addresses", grp("address = \"10.0.0.1:80\"\naddresses = [\"10.0.0.2:80\"]"),
			[]string{`director.toml:1: virtual_server[web]: set only one of address, fwmark, addresses and fwmarks; a group mixing addresses and marks is written as two virtual servers`}},
		{"empty", grp(`addresses = []`),
			[]string{`director.toml:3: virtual_server[web].addresses: is empty; list the virtual addresses, such as ["192.0.2.10-20:80"]`}},
		{"bad marks", grp(`fwmarks = [3, 0, 3, "x"]`),
			[]string{`director.toml:3: virtual_server[web].fwmarks[1]: 0 is out of range; firewall marks are 1-4294967295`,
				`director.toml:3: virtual_server[web].fwmarks[2]: fwmark 3 is listed twice`,
				`director.toml:3: virtual_server[web].fwmarks[3]: must be an integer, not a string ("x")`}},
		{"a member is another virtual server's service",
			"[[virtual_server]]\nname = \"one\"\naddress = \"10.0.0.3:80\"\n" + grp(`addresses = ["10.0.0.1-4:80"]`),
			[]string{`director.toml:6: virtual_server[web].addresses: duplicate virtual service tcp 10.0.0.3:80; virtual_server[one] on line 1 already defines it`}},
		{"a member's name is taken",
			"[[virtual_server]]\nname = \"web@10.0.0.2:80\"\naddress = \"10.0.0.9:80\"\n" + grp(`addresses = ["10.0.0.1-2:80"]`),
			[]string{`director.toml:6: virtual_server[web].addresses: its member 10.0.0.2:80 has the name "web@10.0.0.2:80", which the virtual server on line 1 already uses; rename one`}},
		{"dr port differs from a member's", grp("addresses = [\"10.0.0.1:80\", \"10.0.0.2-3:443\"]\nforwarding = \"dr\"\n[[virtual_server.real_server]]\naddress = \"10.0.1.1:80\""),
			[]string{`director.toml:6: virtual_server[web].real_server[0].address: port 80 differs from the port 443 of web@10.0.0.2:443; IPVS cannot change ports with dr forwarding (leave the port out to use each address's own, or forwarding = "nat")`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errs := parseNamed(t, c.src)
			sameLines(t, errs, c.want)
		})
	}
}

func TestParseAddrRange(t *testing.T) {
	for _, c := range []struct {
		in    string
		first string
		count int
	}{
		{"10.0.0.1:80", "10.0.0.1", 1},
		{"10.0.0.1-20:80", "10.0.0.1", 20},
		{"10.0.0.7-7:80", "10.0.0.7", 1},
		{"10.0.0.0-255:80", "10.0.0.0", 256},
		{"[2001:db8::1]:443", "2001:db8::1", 1},
		{"[2001:db8::ff-1ff]:443", "2001:db8::ff", 257},
		{"[::ffff:10.0.0.1]:80", "10.0.0.1", 1},
	} {
		r, msg := parseAddrRange(c.in)
		if msg != "" || r.first != netip.MustParseAddr(c.first) || r.count != c.count {
			t.Errorf("parseAddrRange(%q) = %v %d %q", c.in, r.first, r.count, msg)
		}
	}
	for _, bad := range []string{"10.0.0.1-256:80", "10.0.0.1-20", "10.0.0.1:0", "10.0.0.1:x", "[2001:db8::1]", "x-2:80", "10.0.0.1-:80", "[fe80::1%eth0]:80", "10.0.0.1-2-3:80"} {
		if _, msg := parseAddrRange(bad); msg == "" {
			t.Errorf("parseAddrRange(%q) accepted", bad)
		}
	}
	r, _ := parseAddrRange("[2001:db8::fffe-ffff]:443")
	if got := r.addrs(); len(got) != 2 || got[1] != netip.MustParseAddrPort("[2001:db8::ffff]:443") {
		t.Errorf("addrs = %v", got)
	}
}

// The README's example parses as it says.
func TestGroupReadmeExample(t *testing.T) {
	cfg, errs := parseNamed(t, `[[virtual_server]]
name = "web"
addresses = ["192.0.2.10-20:80", "192.0.2.30:https"]
forwarding = "dr"
  [[virtual_server.real_server]]
  address = "10.0.0.11"
`)
	if errs != nil {
		t.Fatal(strings.Join(errs, "\n"))
	}
	last := cfg.VirtualServers[len(cfg.VirtualServers)-1]
	if len(cfg.VirtualServers) != 12 || last.Name != "web@192.0.2.30:443" || last.RealServers[0].Address.Port() != 443 {
		t.Errorf("%d services, last %s %v", len(cfg.VirtualServers), last.Name, last.RealServers)
	}
}
