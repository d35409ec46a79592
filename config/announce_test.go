package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestAnnounceConfig(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "bgp.secret")
	os.WriteFile(secret, []byte("s3cret\n"), 0o600)
	cfg := mustParse(t, `[announce]
hold_down = "30s"
withdraw_grace = "3s"
unhealthy_after = "1m"

[bgp]
asn = 65001
router_id = "10.0.1.2"
next_hop = "10.0.1.2"
  [[bgp.peer]]
  address = "10.0.1.1"
  asn = 65000
  hold_time = "3s"
  password_file = "`+secret+`"
  bfd = true
  bfd_interval = "100ms"
  bfd_multiplier = 5
  [[bgp.peer]]
  address = "2001:db8::1"
  asn = 65000
  port = 1179

[route_table]
table = 100

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
scheduler = "mh"
announce = true
announce_above = 0.5
withdraw_below = 0.25
communities = ["65000:100", "no-export"]
med = 10
  [[virtual_server.real_server]]
  address = "10.0.0.11:8080"

[[virtual_server]]
name = "tls"
address = "192.0.2.10:443"
scheduler = "mh"
announce = true
communities = ["65000:100", "no-export"]
med = 10
  [[virtual_server.real_server]]
  address = "10.0.0.11:8443"

[[virtual_server]]
name = "quiet"
address = "192.0.2.20:80"
  [[virtual_server.real_server]]
  address = "10.0.0.11:8080"
`)
	if want := (Announce{HoldDown: 30 * time.Second, WithdrawGrace: 3 * time.Second, UnhealthyAfter: time.Minute}); cfg.Announce != want {
		t.Errorf("announce = %+v, want %+v", cfg.Announce, want)
	}
	want := &BGP{ASN: 65001, RouterID: netip.MustParseAddr("10.0.1.2"), ListenPort: -1, NextHop: netip.MustParseAddr("10.0.1.2"), Line: 6,
		Peers: []BGPPeer{
			{Address: netip.MustParseAddr("10.0.1.1"), ASN: 65000, Port: 179, HoldTime: 3 * time.Second, PasswordFile: secret, Password: "s3cret", BFD: true,
				BFDInterval: 100 * time.Millisecond, BFDMultiplier: 5, Line: 10},
			{Address: netip.MustParseAddr("2001:db8::1"), ASN: 65000, Port: 1179, HoldTime: 9 * time.Second,
				BFDInterval: DefaultBFDInterval, BFDMultiplier: DefaultBFDMultiplier, Line: 18},
		}}
	if !reflect.DeepEqual(cfg.BGP, want) {
		t.Errorf("bgp = %+v\nwant %+v", cfg.BGP, want)
	}
	if rt := cfg.RouteTable; rt == nil || rt.Table != 100 || rt.Device != "lo" {
		t.Errorf("route_table = %+v, want table 100 on lo", rt)
	}
	med := uint32(10)
	if a := cfg.VirtualServers[0].Announce; !reflect.DeepEqual(a, VIPAnnounce{Enabled: true, Rule: "all", Above: 0.5, Below: 0.25,
		Communities: []uint32{65000<<16 | 100, 0xFFFFFF01}, MED: &med}) {
		t.Errorf("web announce = %+v", a)
	}
	vips := cfg.VIPs()
	if len(vips) != 1 || vips[0].Address != netip.MustParseAddr("192.0.2.10") || !reflect.DeepEqual(vips[0].VirtualServers, []string{"web", "tls"}) ||
		vips[0].Prefix() != netip.MustParsePrefix("192.0.2.10/32") {
		t.Errorf("VIPs = %+v, want 192.0.2.10/32 from web and tls", vips)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
}

func TestAnnounceErrors(t *testing.T) {
	const vs = "[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.10:80\"\n"
	for _, tt := range []struct {
		name, src string
		want      []string
	}{
		{"announce without speaker", vs + "announce = true", []string{
			`director.toml:4: virtual_server[web].announce: nothing announces: add a [bgp] section (the embedded BGP speaker) or a [route_table] section`,
		}},
		{"bgp missing keys", "[bgp]\nlisten_port = 0", []string{
			`director.toml:1: bgp.asn: missing; the AS number, such as 65001`,
			`director.toml:1: bgp.router_id: missing; a BGP router ID such as "10.0.1.2" (the director's address towards its routers)`,
			`director.toml:1: bgp.peer: missing; add at least one [[bgp.peer]] with the router's address and asn`,
			`director.toml:2: bgp.listen_port: 0 is not a port; write -1 to accept no incoming sessions, or 179`,
		}},
		{"bgp bad values", "[bgp]\nasn = 0\nrouter_id = \"::1\"\nbfd = true\n[[bgp.peer]]\naddress = \"10.0.1.1\"\nhold_time = \"2s\"\nbfd_interval = \"5ms\"\n[[bgp.peer]]\naddress = \"10.0.1.1\"\nasn = 65000\npassword_file = \"/nonexistent/pw\"", []string{
			`director.toml:2: bgp.asn: 0 is out of range; AS numbers are 1-4294967295`,
			`director.toml:3: bgp.router_id: "::1" is not an IPv4 address; a BGP router ID is written as one, such as "10.0.1.2" (the director's address towards its routers)`,
			`director.toml:4: bgp.bfd: unknown key; bfd belongs in [[bgp.peer]]`,
			`director.toml:5: bgp.peer[10.0.1.1].asn: missing; the AS number, such as 65001`,
			`director.toml:7: bgp.peer[10.0.1.1].hold_time: 2s is too short; BGP hold times are 0 (no keepalives) or at least 3s`,
			`director.toml:8: bgp.peer[10.0.1.1].bfd_interval: 5ms is out of range; BFD intervals are whole milliseconds from 10ms to 10s, such as "300ms"`,
			`director.toml:10: bgp.peer[10.0.1.1].address: duplicate peer 10.0.1.1; also on line 5`,
			`director.toml:12: bgp.peer[10.0.1.1].password_file: /nonexistent/pw: no such file or directory; the TCP MD5 password must be readable (or leave password_file out for none)`,
		}},
		{"route table", "[route_table]\ntable = 254\ndevice = \"a b\"", []string{
			`director.toml:2: route_table.table: 254 is a table the kernel uses itself (253 default, 254 main, 255 local); pick a table of its own, such as 100, for the routing daemon to read`,
			`director.toml:3: route_table.device: "a b" is not an interface name`,
		}},
		{"route table missing", "[route_table]\n", []string{
			`director.toml:1: route_table.table: missing; the kernel routing table to put announced VIPs in, such as 100`,
		}},
		{"announce values", "[route_table]\ntable = 100\n" + vs + "announce = true\nannounce_above = 0.2\nwithdraw_below = 0.3\nannounce_rule = \"most\"\ncommunities = [\"65000:70000\"]\nmed = -1", []string{
			`director.toml:8: virtual_server[web].withdraw_below: 0.3 is above announce_above (0.2): a VIP is announced at announce_above and withdrawn below withdraw_below`,
			`director.toml:9: virtual_server[web].announce_rule: unknown announce_rule "most"; valid: all, any`,
			`director.toml:10: virtual_server[web].communities[0]: "65000:70000" is not a BGP community; write "ASN:value" with each part 0-65535, such as "65000:100", or no-export`,
			`director.toml:11: virtual_server[web].med: -1 is out of range; BGP med is 0-4294967295`,
		}},
		{"shared VIP disagrees", "[route_table]\ntable = 100\n" + vs + "announce = true\n[[virtual_server]]\nname = \"tls\"\naddress = \"192.0.2.10:443\"\nannounce = true\nannounce_rule = \"any\"\n", []string{
			`director.toml:10: virtual_server[tls].announce: VIP 192.0.2.10 is also announced by virtual server "web" (line 3) with other announce_rule, communities, med or local_pref; one VIP is one route, so they must agree`,
		}},
		{"fwmark", "[route_table]\ntable = 100\n[[virtual_server]]\nname = \"m\"\nfwmark = 1\nannounce = true\n", []string{
			`director.toml:6: virtual_server[m].announce: a firewall-mark service has no address to announce; announce the address-based services of the VIP instead`,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) { sameLines(t, problems(t, tt.src), tt.want) })
	}
}

func TestAnnounceWarnings(t *testing.T) {
	cfg := mustParse(t, "[route_table]\ntable = 100\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.10:80\"\nmed = 5\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n")
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.String())
	}
	sameLines(t, got, []string{
		`director.toml:1: route_table: no virtual server has announce = true; nothing will be announced`,
		`director.toml:6: virtual_server[web].med: has no effect without announce = true`,
	})
}
