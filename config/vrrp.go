package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// The director as one of an active-backup pair: keepalived runs VRRP only
// and moves the VIPs; the director tells it its health (track_file),
// learns its role from it (notify_fifo), and runs the kernel's connection
// sync daemon to match (README, "Active-backup with keepalived").

// VRRP is the [vrrp] table; Config.VRRP is nil without it.
type VRRP struct {
	// NotifyFIFO is the FIFO keepalived writes its state changes to
	// (global_defs notify_fifo); the director reads it.
	NotifyFIFO string
	// TrackFile is the file the director writes its health to and
	// keepalived tracks (vrrp_track_file); "" leaves it out.
	TrackFile string
	// HealthyValue is what the track file holds while the director is
	// healthy: the priority keepalived adds (track weight 1). A missing
	// file reads as 0, so a director that is not running loses the bonus.
	HealthyValue int
	// OnUnhealthy: "lower" writes 0 (the bonus goes, a healthy peer
	// takes over); "fault" writes -254 (keepalived's instance goes FAULT
	// and gives up the VIPs whatever the peer's state).
	OnUnhealthy string
	// UnhealthyAfter is how long the kernel table may stay unreconciled
	// before the director counts as unhealthy.
	UnhealthyAfter time.Duration
	// MinPoolShare: a virtual server with less of its weight healthy
	// makes the director unhealthy; 0 is off.
	MinPoolShare float64

	// For `director vrrp-config`: the keepalived side of the pair.
	Interface  string        // the interface VRRP runs on (and the default sync interface)
	AdvertInt  time.Duration // default 1s
	Version    int           // VRRP version, 2 or 3 (default 3: fractional advert_int)
	UnicastSrc netip.Addr    // optional; with Peers
	Peers      []netip.Addr  // unicast peers; none: multicast
	Instances  []VRRPInstance

	Sync VRRPSync
	Line int // line of the [vrrp] header
}

// VRRPInstance is one [[vrrp.instance]]: a keepalived vrrp_instance whose
// role the director follows.
type VRRPInstance struct {
	Name            string
	VirtualRouterID int
	Priority        int    // base priority, before the track file's bonus
	Interface       string // [vrrp] interface unless set
	// VirtualServers whose addresses it holds; all of them when not set.
	VirtualServers []string
	Line           int
}

// Sync daemon modes.
const (
	SyncOff        = "off"
	SyncFollowRole = "follow-role" // master daemon on MASTER, backup daemon otherwise
	SyncBothAlways = "both-always" // both daemons always, with distinct sync ids
)

// VRRPSync is [vrrp.sync]: the kernel's connection sync daemon.
type VRRPSync struct {
	Mode      string // SyncOff (no [vrrp.sync]), SyncFollowRole (default) or SyncBothAlways
	Interface string // [vrrp] interface unless set
	// SyncID is what this director's master daemon sends with; in
	// follow-role mode the backup daemon takes it too. PeerSyncID is
	// what the peer's master sends with (both-always: the backup
	// daemon's id).
	SyncID     uint8
	PeerSyncID uint8
	Group      netip.Addr // zero: the kernel's 224.0.0.81
	Port       uint16     // zero: 8848
	TTL        uint8      // zero: 1
	MaxLen     uint16     // zero: from the MTU
}

// VRRP defaults.
const (
	DefaultVRRPHealthyValue   = 50
	DefaultVRRPUnhealthyAfter = 10 * time.Second
	DefaultVRRPAdvertInt      = time.Second
	DefaultVRRPPriority       = 100
	// TrackFault is what the track file holds for on_unhealthy = "fault":
	// keepalived puts the instance in FAULT at -254.
	TrackFault = -254
)

var (
	secVRRP = section{name: "[vrrp]", keys: []string{"notify_fifo", "track_file", "healthy_value", "on_unhealthy", "unhealthy_after",
		"min_pool_share", "interface", "advert_int", "version", "unicast_src", "peers", "instance", "sync"},
		nested: map[string]string{"mode": "[vrrp.sync]", "sync_id": "[vrrp.sync]", "peer_sync_id": "[vrrp.sync]",
			"virtual_router_id": "[[vrrp.instance]]", "priority": "[[vrrp.instance]]"}}
	secVRRPInstance = section{name: "[[vrrp.instance]]", keys: []string{"name", "virtual_router_id", "priority", "interface", "virtual_servers"}}
	secVRRPSync     = section{name: "[vrrp.sync]", keys: []string{"mode", "interface", "sync_id", "peer_sync_id", "group", "port", "ttl", "maxlen"}}

	onUnhealthy = []string{"lower", "fault"}
	syncModes   = []string{SyncFollowRole, SyncBothAlways, SyncOff}
	// keepalived takes a name as one word; quotes would break the FIFO's lines.
	vrrpName = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)
)

// vrrp reads [vrrp], after the virtual servers it names.
func (l *loader) vrrp(root table, cfg *Config) {
	t, ok := root.sub("vrrp")
	if !ok {
		return
	}
	t.unknown(secVRRP)
	v := &VRRP{Line: l.lineOf(t.n), HealthyValue: DefaultVRRPHealthyValue, OnUnhealthy: "lower",
		UnhealthyAfter: DefaultVRRPUnhealthyAfter, AdvertInt: DefaultVRRPAdvertInt, Version: 3}
	cfg.VRRP = v

	if p, _, ok := l.path(t, "notify_fifo"); ok {
		v.NotifyFIFO = p
	} else if !t.has("notify_fifo") {
		l.errorf(t.n.child("notify_fifo"), "missing; the director learns its role from keepalived's notify_fifo, such as \"/run/director/keepalived.fifo\"")
	}
	if p, _, ok := l.path(t, "track_file"); ok {
		v.TrackFile = p
	} else if !t.has("track_file") {
		l.warnf(t.n, "has no track_file: keepalived will not know when this director is unhealthy")
	}
	if x, _, ok := t.intRange("healthy_value", 1, 253, "keepalived adds 1-253 to the priority"); ok {
		v.HealthyValue = int(x)
	}
	if s, _, ok := t.enum("on_unhealthy", "on_unhealthy action", onUnhealthy, nil); ok {
		v.OnUnhealthy = s
	}
	if d, _, ok := t.positive("unhealthy_after"); ok {
		v.UnhealthyAfter = d
	}
	if x, ok := l.share(t, "min_pool_share"); ok {
		v.MinPoolShare = x
	}
	if s, n, ok := t.str("interface"); ok {
		if msg := checkIfName(s); msg != "" {
			l.errorf(n, "%s", msg)
		} else {
			v.Interface = s
		}
	}
	if x, _, ok := t.intRange("version", 2, 3, "VRRP versions are 2 and 3"); ok {
		v.Version = int(x)
	}
	if d, n, ok := t.positive("advert_int"); ok {
		switch {
		case v.Version == 2 && d%time.Second != 0:
			l.errorf(n, "%s: VRRP version 2 counts whole seconds (keepalived would round it); write \"1s\", or set version = 3", d)
		case d%(10*time.Millisecond) != 0:
			l.errorf(n, "%s: VRRP version 3 counts hundredths of a second", d)
		case d > 40*time.Second:
			l.errorf(n, "%s is too long; VRRP allows at most 40s", d)
		default:
			v.AdvertInt = d
		}
	}
	if a, ok := l.addr(t, "unicast_src"); ok {
		v.UnicastSrc = a
	}
	if ss, n, ok := t.strList("peers"); ok {
		for i, s := range ss {
			a, err := netip.ParseAddr(s)
			switch {
			case err != nil:
				l.errorf(n.elem(i, strconv.Itoa(i)), "%q is not an IP address", s)
			case v.UnicastSrc.IsValid() && a.Is4() != v.UnicastSrc.Is4():
				l.errorf(n.elem(i, strconv.Itoa(i)), "%s and unicast_src %s are of different families", a, v.UnicastSrc)
			default:
				v.Peers = append(v.Peers, a)
			}
		}
	}
	if v.UnicastSrc.IsValid() && !t.has("peers") {
		l.errorf(t.n.child("unicast_src"), "has no effect without peers")
	}

	ids := map[int]int{}
	names := map[string]int{}
	for _, it := range t.tables("instance", func(i int, m map[string]any) string {
		if s, ok := m["name"].(string); ok && s != "" {
			return s
		}
		return strconv.Itoa(i)
	}) {
		it.unknown(secVRRPInstance)
		in := VRRPInstance{Line: l.lineOf(it.n), Priority: DefaultVRRPPriority, Interface: v.Interface}
		if s, n, ok := it.str("name"); ok {
			switch {
			case !vrrpName.MatchString(s):
				l.errorf(n, "%q: keepalived instance names are 1-64 letters, digits and _.:-", s)
			case names[s] != 0:
				l.errorf(n, "duplicate instance %q; also on line %d", s, names[s])
			default:
				names[s] = in.Line
				in.Name = s
			}
		} else if !it.has("name") {
			l.errorf(it.n.child("name"), "missing; name the keepalived vrrp_instance, such as \"VI_1\"")
		}
		if x, n, ok := it.intRange("virtual_router_id", 1, 255, "VRRP router ids are 1-255"); ok {
			if ids[int(x)] != 0 {
				l.errorf(n, "duplicate virtual_router_id %d; also on line %d", x, ids[int(x)])
			}
			ids[int(x)] = in.Line
			in.VirtualRouterID = int(x)
		} else if !it.has("virtual_router_id") {
			l.errorf(it.n.child("virtual_router_id"), "missing; pick a number 1-255 that no other VRRP router on the link uses")
		}
		if x, n, ok := it.intRange("priority", 1, 254, "VRRP priorities are 1-254 (255 is the address owner, which never gives the VIPs up)"); ok {
			in.Priority = int(x)
			if in.Priority+v.HealthyValue > 254 {
				l.warnf(n, "%d + healthy_value %d is above 254: keepalived caps it, so two healthy directors may tie", in.Priority, v.HealthyValue)
			}
		}
		if s, n, ok := it.str("interface"); ok {
			if msg := checkIfName(s); msg != "" {
				l.errorf(n, "%s", msg)
			} else {
				in.Interface = s
			}
		}
		if ss, n, ok := it.strList("virtual_servers"); ok {
			for j, name := range ss {
				if !slices.ContainsFunc(cfg.VirtualServers, func(vs VirtualServer) bool { return vs.Name == name }) {
					l.errorf(n.elem(j, strconv.Itoa(j)), "no virtual server is named %q", name)
				}
			}
			in.VirtualServers = ss
		}
		v.Instances = append(v.Instances, in)
	}
	if len(v.Instances) == 0 && !t.has("instance") {
		l.errorf(t.n.child("instance"), "missing; add a [[vrrp.instance]] with the name of the keepalived vrrp_instance whose role this director follows")
	}

	if st, ok := t.sub("sync"); ok {
		l.vrrpSync(st, v)
	} else {
		v.Sync.Mode = SyncOff
	}
}

func (l *loader) vrrpSync(t table, v *VRRP) {
	t.unknown(secVRRPSync)
	s := &v.Sync
	s.Mode, s.Interface, s.SyncID = SyncFollowRole, v.Interface, 1
	if m, _, ok := t.enum("mode", "sync mode", syncModes, nil); ok {
		s.Mode = m
	}
	if x, n, ok := t.str("interface"); ok {
		if msg := checkIfName(x); msg != "" {
			l.errorf(n, "%s", msg)
		} else {
			s.Interface = x
		}
	}
	if s.Mode != SyncOff && s.Interface == "" {
		l.errorf(t.n.child("interface"), "missing; the sync daemon needs the interface its multicast goes out on (here or in [vrrp])")
	}
	if x, _, ok := t.intRange("sync_id", 0, 255, "sync ids are 0-255"); ok {
		s.SyncID = uint8(x)
	}
	if x, n, ok := t.intRange("peer_sync_id", 0, 255, "sync ids are 0-255"); ok {
		s.PeerSyncID = uint8(x)
		if s.Mode == SyncFollowRole {
			l.warnf(n, "is only used with mode = %q; in %q both directors use sync_id", SyncBothAlways, SyncFollowRole)
		}
	}
	if s.Mode == SyncBothAlways {
		switch {
		case !t.has("peer_sync_id"):
			l.errorf(t.n.child("peer_sync_id"), "missing; with mode = %q each director's backup daemon takes the peer's sync id, which must differ from sync_id", SyncBothAlways)
		case s.PeerSyncID == s.SyncID:
			l.errorf(t.n.child("peer_sync_id"), "%d is also sync_id; with mode = %q they must differ, or each director would install its own connections back", s.PeerSyncID, SyncBothAlways)
		case s.SyncID == 0 || s.PeerSyncID == 0:
			l.errorf(t.n.child("sync_id"), "0 makes a backup daemon accept every sync id; with mode = %q use two distinct ids 1-255", SyncBothAlways)
		}
	}
	if a, ok := l.addr(t, "group"); ok {
		if !a.IsMulticast() {
			l.errorf(t.n.child("group"), "%s is not a multicast address, such as \"224.0.0.81\" (the kernel's default)", a)
		} else {
			s.Group = a
		}
	}
	if x, _, ok := t.intRange("port", 1, 65535, "ports are 1-65535"); ok {
		s.Port = uint16(x)
	}
	if x, _, ok := t.intRange("ttl", 1, 255, "TTLs are 1-255"); ok {
		s.TTL = uint8(x)
	}
	if x, _, ok := t.intRange("maxlen", 1, 65507, "sync messages fit a UDP payload: 1-65507 bytes"); ok {
		s.MaxLen = uint16(x)
	}
}

// addr reads an IP address.
func (l *loader) addr(t table, key string) (netip.Addr, bool) {
	s, n, ok := t.str(key)
	if !ok {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		l.errorf(n, "%q is not an IP address", s)
		return netip.Addr{}, false
	}
	return a, true
}

// checkIfName returns why s is not a Linux interface name, or "".
func checkIfName(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > 15:
		return fmt.Sprintf("%q is longer than the 15 bytes Linux allows an interface name", s)
	}
	for _, c := range s {
		if c == '/' || c == ' ' || c == ':' || c < 0x21 || c > 0x7e {
			return fmt.Sprintf("%q is not an interface name", s)
		}
	}
	return ""
}

// VRRPAddresses returns the addresses of the virtual servers in holds,
// in config order without repeats (fwmark services have none).
func (c *Config) VRRPAddresses(in *VRRPInstance) []netip.Addr {
	want := map[string]bool{}
	for _, n := range in.VirtualServers {
		want[n] = true
	}
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, vs := range c.VirtualServers {
		if len(want) > 0 && !want[vs.Name] {
			continue
		}
		if a := vs.Address.Addr(); a.IsValid() && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}
