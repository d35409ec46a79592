package config

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults for [announce], [bgp] and [route_table].
const (
	DefaultHoldDown       = 10 * time.Second
	DefaultWithdrawGrace  = 2 * time.Second
	DefaultUnhealthyAfter = 30 * time.Second
	DefaultBGPHoldTime    = 9 * time.Second
	DefaultBGPPort        = 179
	DefaultRouteDevice    = "lo"
	DefaultBFDInterval    = 300 * time.Millisecond
	DefaultBFDMultiplier  = 3
	defaultAnnounceRule   = "all"
)

var announceRules = []string{"all", "any"}

// Announce holds [announce]: when the director announces a VIP, shared
// by the BGP speaker and route-table mode.
type Announce struct {
	// HoldDown is how long a withdrawn VIP stays withdrawn before it may
	// be announced again, against flapping routes.
	HoldDown time.Duration
	// WithdrawGrace is how long the director waits on SIGTERM after
	// withdrawing every VIP, for the routers to move traffic away, before
	// the rest of shutdown (on_shutdown) runs.
	WithdrawGrace time.Duration
	// UnhealthyAfter: when the kernel table could not be reconciled for
	// this long, or the engine stops turning, every VIP is withdrawn.
	UnhealthyAfter time.Duration
}

// BGP holds [bgp]: the embedded speaker.
type BGP struct {
	ASN      uint32
	RouterID netip.Addr
	// ListenPort is the port incoming sessions are accepted on; -1 (the
	// default) accepts none: the director connects to its peers.
	ListenPort int32
	// NextHop is the next hop announced; zero: the session's own address.
	NextHop netip.Addr
	Peers   []BGPPeer
	Line    int
}

// BGPPeer is one [[bgp.peer]].
type BGPPeer struct {
	Address  netip.Addr
	ASN      uint32
	Port     uint16        // default 179
	HoldTime time.Duration // default 9s; keepalives at a third of it
	// PasswordFile holds the TCP MD5 password; Password is its content,
	// read at load. Both empty: no password.
	PasswordFile string
	Password     string
	BFD          bool
	// BFDInterval is how often BFD packets are sent and expected;
	// BFDMultiplier how many may be missed before the session is down.
	BFDInterval   time.Duration
	BFDMultiplier int
	Line          int
}

// RouteTable holds [route_table]: instead of (or beside) a speaker, each
// announced VIP is a host route in this kernel routing table, for a
// routing daemon to redistribute.
type RouteTable struct {
	Table  uint32
	Device string // default "lo"
	Line   int
}

// VIPAnnounce is a virtual server's announce settings.
type VIPAnnounce struct {
	Enabled bool
	// Rule is how the services of one VIP combine: "all" (default) or
	// "any" must be healthy.
	Rule string
	// Above is the share of the pool's configured weight that must be
	// healthy to announce; Below the share under which it is withdrawn.
	// Both 0 (the default): announced while any real server serves.
	Above, Below float64
	Communities  []uint32 // as "ASN:value", packed high:low
	MED          *uint32
	LocalPref    *uint32
}

var (
	secAnnounce    = section{name: "[announce]", keys: []string{"hold_down", "withdraw_grace", "unhealthy_after"}}
	secBGP         = section{name: "[bgp]", keys: []string{"asn", "router_id", "listen_port", "next_hop", "peer"}, nested: map[string]string{"address": "[[bgp.peer]]", "hold_time": "[[bgp.peer]]", "password_file": "[[bgp.peer]]", "bfd": "[[bgp.peer]]"}}
	secBGPPeer     = section{name: "[[bgp.peer]]", keys: []string{"address", "asn", "port", "hold_time", "password_file", "bfd", "bfd_interval", "bfd_multiplier"}}
	secRouteTable  = section{name: "[route_table]", keys: []string{"table", "device"}}
	vsAnnounceKeys = []string{"announce", "announce_rule", "announce_above", "withdraw_below", "communities", "med", "local_pref"}
)

// Announcing reports whether anything announces VIPs ([bgp] or [route_table]).
func (c *Config) Announcing() bool { return c.BGP != nil || c.RouteTable != nil }

// announceSections reads [announce], [bgp] and [route_table].
func (l *loader) announceSections(root table, cfg *Config) {
	cfg.Announce = Announce{HoldDown: DefaultHoldDown, WithdrawGrace: DefaultWithdrawGrace, UnhealthyAfter: DefaultUnhealthyAfter}
	if t, ok := root.sub("announce"); ok {
		t.unknown(secAnnounce)
		if v, n, ok := t.duration("hold_down"); ok {
			if v < 0 {
				l.errorf(n, "must not be negative; \"0s\" announces again as soon as the pool is healthy")
			} else {
				cfg.Announce.HoldDown = v
			}
		}
		if v, n, ok := t.duration("withdraw_grace"); ok {
			if v < 0 {
				l.errorf(n, "must not be negative; \"0s\" stops right after withdrawing")
			} else {
				cfg.Announce.WithdrawGrace = v
			}
		}
		if v, _, ok := t.positive("unhealthy_after"); ok {
			cfg.Announce.UnhealthyAfter = v
		}
	}
	if t, ok := root.sub("bgp"); ok {
		cfg.BGP = l.bgp(t)
	}
	if t, ok := root.sub("route_table"); ok {
		t.unknown(secRouteTable)
		rt := &RouteTable{Device: DefaultRouteDevice, Line: l.lineOf(t.n)}
		if v, n, ok := t.intRange("table", 1, 1<<32-1, "kernel routing tables are 1-4294967295"); ok {
			switch v {
			case 253, 254, 255:
				l.errorf(n, "%d is a table the kernel uses itself (253 default, 254 main, 255 local); pick a table of its own, such as 100, for the routing daemon to read", v)
			default:
				rt.Table = uint32(v)
			}
		} else if !t.has("table") {
			l.errorf(t.n.child("table"), "missing; the kernel routing table to put announced VIPs in, such as 100")
		}
		if s, n, ok := t.str("device"); ok {
			if s == "" || len(s) > 15 || strings.ContainsAny(s, "/ \t") {
				l.errorf(n, "%q is not an interface name", s)
			} else {
				rt.Device = s
			}
		}
		cfg.RouteTable = rt
	}
}

func (l *loader) bgp(t table) *BGP {
	t.unknown(secBGP)
	b := &BGP{ListenPort: -1, Line: l.lineOf(t.n)}
	if v, ok := l.asn(t, "asn"); ok {
		b.ASN = v
	}
	if s, n, ok := t.str("router_id"); ok {
		if a, err := netip.ParseAddr(s); err != nil || !a.Is4() {
			l.errorf(n, "%q is not an IPv4 address; a BGP router ID is written as one, such as \"10.0.1.2\" (the director's address towards its routers)", s)
		} else {
			b.RouterID = a
		}
	} else if !t.has("router_id") {
		l.errorf(t.n.child("router_id"), "missing; a BGP router ID such as \"10.0.1.2\" (the director's address towards its routers)")
	}
	if v, _, ok := t.intRange("listen_port", -1, 65535, "write -1 to accept no incoming sessions, or a port 1-65535"); ok {
		if v == 0 {
			l.errorf(t.n.child("listen_port"), "0 is not a port; write -1 to accept no incoming sessions, or 179")
		} else {
			b.ListenPort = int32(v)
		}
	}
	if s, n, ok := t.str("next_hop"); ok {
		if a, err := netip.ParseAddr(s); err != nil || a.Zone() != "" {
			l.errorf(n, "%q is not an IP address", s)
		} else {
			b.NextHop = a
		}
	}
	seen := map[netip.Addr]int{}
	for _, pt := range t.tables("peer", func(i int, m map[string]any) string {
		if s, ok := m["address"].(string); ok && s != "" {
			return s
		}
		return strconv.Itoa(i)
	}) {
		pt.unknown(secBGPPeer)
		p := BGPPeer{Port: DefaultBGPPort, HoldTime: DefaultBGPHoldTime, BFDInterval: DefaultBFDInterval, BFDMultiplier: DefaultBFDMultiplier, Line: l.lineOf(pt.n)}
		if s, n, ok := pt.str("address"); ok {
			a, err := netip.ParseAddr(s)
			switch {
			case err != nil || a.Zone() != "":
				l.errorf(n, "%q is not an IP address, such as \"10.0.1.1\"", s)
			case seen[a] != 0:
				l.errorf(n, "duplicate peer %s; also on line %d", a, seen[a])
			default:
				seen[a] = p.Line
				p.Address = a
			}
		} else if !pt.has("address") {
			l.errorf(pt.n.child("address"), "missing; the router's address, such as \"10.0.1.1\"")
		}
		if v, ok := l.asn(pt, "asn"); ok {
			p.ASN = v
		}
		if v, _, ok := pt.intRange("port", 1, 65535, "ports are 1-65535"); ok {
			p.Port = uint16(v)
		}
		if v, n, ok := pt.duration("hold_time"); ok {
			switch {
			case v != 0 && v < 3*time.Second:
				l.errorf(n, "%s is too short; BGP hold times are 0 (no keepalives) or at least 3s", v)
			case v%time.Second != 0:
				l.errorf(n, "%s: BGP hold times are whole seconds", v)
			case v > 65535*time.Second:
				l.errorf(n, "%s is too long; BGP hold times are at most 65535s", v)
			default:
				p.HoldTime = v
			}
		}
		if path, n, ok := l.path(pt, "password_file"); ok {
			p.PasswordFile = path
			if data, err := os.ReadFile(path); err != nil {
				l.errorf(n, "%s: %v; the TCP MD5 password must be readable (or leave password_file out for none)", path, unwrapPath(err))
			} else if pw := strings.TrimSpace(string(data)); pw == "" {
				l.errorf(n, "%s is empty; put the session's TCP MD5 password in it", path)
			} else if len(pw) > 80 {
				l.errorf(n, "%s: the password is longer than TCP MD5 allows (80 bytes)", path)
			} else {
				p.Password = pw
			}
		}
		if v, _, ok := pt.boolean("bfd"); ok {
			p.BFD = v
		}
		if v, n, ok := pt.duration("bfd_interval"); ok {
			if v < 10*time.Millisecond || v > 10*time.Second || v%time.Millisecond != 0 {
				l.errorf(n, "%s is out of range; BFD intervals are whole milliseconds from 10ms to 10s, such as \"300ms\"", v)
			} else {
				p.BFDInterval = v
			}
		}
		if v, _, ok := pt.intRange("bfd_multiplier", 1, 255, "BFD detection multipliers are 1-255"); ok {
			p.BFDMultiplier = int(v)
		}
		b.Peers = append(b.Peers, p)
	}
	if len(b.Peers) == 0 && !t.has("peer") {
		l.errorf(t.n.child("peer"), "missing; add at least one [[bgp.peer]] with the router's address and asn")
	}
	return b
}

// asn reads a required AS number.
func (l *loader) asn(t table, key string) (uint32, bool) {
	v, _, ok := t.intRange(key, 1, 1<<32-1, "AS numbers are 1-4294967295")
	if !ok && !t.has(key) {
		l.errorf(t.n.child(key), "missing; the AS number, such as 65001")
	}
	return uint32(v), ok
}

// vsAnnounce reads a virtual server's announce keys.
func (l *loader) vsAnnounce(t table, vs *VirtualServer) {
	a := VIPAnnounce{Rule: defaultAnnounceRule}
	if v, _, ok := t.boolean("announce"); ok {
		a.Enabled = v
	}
	if v, _, ok := t.enum("announce_rule", "announce_rule", announceRules, nil); ok {
		a.Rule = v
	}
	for _, f := range []struct {
		key string
		dst *float64
	}{{"announce_above", &a.Above}, {"withdraw_below", &a.Below}} {
		if v, n, ok := t.number(f.key); ok {
			if v < 0 || v > 1 {
				l.errorf(n, "%v is out of range; write a share of the pool's weight from 0 to 1, such as 0.5", v)
			} else {
				*f.dst = v
			}
		}
	}
	if a.Below > a.Above {
		l.errorf(t.n.child("withdraw_below"), "%v is above announce_above (%v): a VIP is announced at announce_above and withdrawn below withdraw_below", a.Below, a.Above)
	}
	if list, n, ok := t.strList("communities"); ok {
		for i, s := range list {
			c, msg := parseCommunity(s)
			if msg != "" {
				l.errorf(n.elem(i, strconv.Itoa(i)), "%s", msg)
				continue
			}
			a.Communities = append(a.Communities, c)
		}
	}
	for _, f := range []struct {
		key string
		dst **uint32
	}{{"med", &a.MED}, {"local_pref", &a.LocalPref}} {
		if v, _, ok := t.intRange(f.key, 0, 1<<32-1, "BGP "+f.key+" is 0-4294967295"); ok {
			u := uint32(v)
			*f.dst = &u
		}
	}
	if !a.Enabled {
		for _, k := range vsAnnounceKeys[1:] {
			if t.has(k) && !t.has("announce") {
				l.warnf(t.n.child(k), "has no effect without announce = true")
				break
			}
		}
	}
	if vs.Scheduler == "mh" && vs.OnFailure == "remove" && t.has("on_failure") {
		l.warnf(t.n.child("on_failure"), "an mh service keeps a failed real server at weight 0 instead of removing it, so that the Maglev table does not move other flows")
	}
	if a.Enabled && vs.FWMark != 0 {
		l.errorf(t.n.child("announce"), "a firewall-mark service has no address to announce; announce the address-based services of the VIP instead")
	}
	vs.Announce = a
}

// parseCommunity parses "ASN:value" (each 0-65535) or a well-known name.
func parseCommunity(s string) (uint32, string) {
	switch s {
	case "no-export":
		return 0xFFFFFF01, ""
	case "no-advertise":
		return 0xFFFFFF02, ""
	case "no-export-subconfed":
		return 0xFFFFFF03, ""
	}
	hi, lo, ok := strings.Cut(s, ":")
	a, errA := strconv.ParseUint(hi, 10, 16)
	b, errB := strconv.ParseUint(lo, 10, 16)
	if !ok || errA != nil || errB != nil {
		return 0, fmt.Sprintf("%q is not a BGP community; write \"ASN:value\" with each part 0-65535, such as \"65000:100\", or no-export", s)
	}
	return uint32(a)<<16 | uint32(b), ""
}

// checkAnnounce validates the announce settings across virtual servers:
// something must announce, and the services of one VIP must agree on how.
// vsNodes[i] is where cfg.VirtualServers[i] is written (a group's
// members share one).
func (l *loader) checkAnnounce(cfg *Config, vsNodes []node) {
	first := map[netip.Addr]int{} // VIP -> index of the first announcing virtual server
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		if !vs.Announce.Enabled || !vs.Address.IsValid() {
			continue
		}
		n := vsNodes[i]
		if !cfg.Announcing() {
			l.errorf(n.child("announce"), "nothing announces: add a [bgp] section (the embedded BGP speaker) or a [route_table] section")
		}
		if vs.Scheduler != "mh" && vs.Scheduler != "sh" && cfg.Announcing() {
			l.warnf(n.child("announce"), "the %s scheduler picks a real server per director, so a flow the routers move to another director lands on another real server and breaks; use scheduler = \"mh\" (with the same real servers on every director)", vs.Scheduler)
		}
		vip := vs.Address.Addr().Unmap()
		j, ok := first[vip]
		if !ok {
			first[vip] = i
			continue
		}
		o := &cfg.VirtualServers[j]
		if !sameAnnounce(o.Announce, vs.Announce) {
			l.errorf(n.child("announce"), "VIP %s is also announced by virtual server %q (line %d) with other announce_rule, communities, med or local_pref; one VIP is one route, so they must agree",
				vip, o.Name, o.Line)
		}
	}
	if cfg.Announcing() && len(first) == 0 {
		n := node{segs: []string{"bgp"}, key: "bgp"}
		if cfg.BGP == nil {
			n = node{segs: []string{"route_table"}, key: "route_table"}
		}
		l.warnf(n, "no virtual server has announce = true; nothing will be announced")
	}
}

// sameAnnounce compares how two services of one VIP want it announced;
// their watermarks are their own.
func sameAnnounce(a, b VIPAnnounce) bool {
	return a.Rule == b.Rule && slices.Equal(a.Communities, b.Communities) &&
		eqPtr(a.MED, b.MED) && eqPtr(a.LocalPref, b.LocalPref)
}

func eqPtr(a, b *uint32) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// VIPs lists the announced VIPs in file order, each with the names of its
// announcing virtual servers.
func (c *Config) VIPs() []VIP {
	var out []VIP
	idx := map[netip.Addr]int{}
	for i := range c.VirtualServers {
		vs := &c.VirtualServers[i]
		if !vs.Announce.Enabled || !vs.Address.IsValid() {
			continue
		}
		a := vs.Address.Addr().Unmap()
		j, ok := idx[a]
		if !ok {
			j = len(out)
			idx[a] = j
			out = append(out, VIP{Address: a, Announce: vs.Announce})
		}
		out[j].VirtualServers = append(out[j].VirtualServers, vs.Name)
	}
	return out
}

// VIP is one announced address and the virtual servers behind it.
type VIP struct {
	Address        netip.Addr
	Announce       VIPAnnounce // of the first of its virtual servers (they agree)
	VirtualServers []string
}

// Prefix is the VIP as a host route: /32 or /128.
func (v VIP) Prefix() netip.Prefix { return netip.PrefixFrom(v.Address, v.Address.BitLen()) }
