package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/internal/etcservices"
	"github.com/lvsdirector/director/internal/safefile"
)

// Built-in defaults for [director] and [[virtual_server]].
const (
	DefaultListen         = "127.0.0.1:9410"
	DefaultResyncInterval = 30 * time.Second
	DefaultDrainTimeout   = 5 * time.Minute
	defaultOnFailure      = "quiesce"
	defaultOnShutdown     = "keep"
	defaultProtocol       = "tcp"
	defaultScheduler      = "wlc"
	defaultForwarding     = "nat"
	defaultWeight         = 1
)

var (
	onFailures  = []string{"quiesce", "remove"}
	onShutdowns = []string{"keep", "flush"}
	kernelStats = []string{"backends", "services", "off"}
	protocols   = []string{"tcp", "udp", "sctp"}
	schedulers  = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos"}
	forwardings = []string{"nat", "dr", "tun"}
	families    = []string{"ipv4", "ipv6"}

	onFailureAliases = map[string]string{
		"quiescent": `ldirectord's quiescent = yes is "quiesce"`, "inhibit": `keepalived's inhibit_on_failure is "quiesce"`,
		"inhibit_on_failure": `keepalived's inhibit_on_failure is "quiesce"`,
	}
	forwardingAliases = map[string]string{
		"gate": `ldirectord's gate is "dr"`, "masq": `ldirectord's masq is "nat"`, "ipip": `ldirectord's ipip is "tun"`,
		"DR": `write it in lower case: "dr"`, "NAT": `write it in lower case: "nat"`, "TUN": `write it in lower case: "tun"`,
		"direct": `direct routing is "dr"`, "masquerade": `masquerading is "nat"`, "tunnel": `tunnelling is "tun"`,
	}
)

var (
	secTop      = section{name: "the top level", keys: []string{"director", "defaults", "virtual_server", "vrrp", "announce", "bgp", "route_table", "notify"}}
	secDirector = section{name: "[director]", keys: []string{"listen", "max_connections", "resync_interval", "on_failure", "on_shutdown", "drain_timeout", "slow_start", "watch_config", "fast_checks", "kernel_stats",
		"notify_command", "notify_url", "notify_timeout", "maintenance_dir", "api_token_file", "state_file", "panic_threshold",
		"flap_damping", "flap_penalty", "flap_suppress", "flap_reuse", "flap_half_life", "flap_max_suppress"},
		nested: nestedCheckKeys("[defaults.check]")}
	secDefaults = section{name: "[defaults]", keys: []string{"check"}, nested: nestedCheckKeys("[defaults.check]")}
	secVS       = section{name: "[[virtual_server]]", keys: []string{
		"name", "address", "fwmark", "addresses", "fwmarks", "family", "protocol", "scheduler", "persistence",
		"persistence_netmask", "forwarding", "tun_type", "tun_port", "tun_csum", "on_failure", "drain_timeout", "slow_start", "fallback", "check", "real_server",
		"notify_command", "notify_url", "quorum", "hysteresis", "panic_threshold",
		"scheduler_flags", "ops", "announce", "announce_rule", "announce_above", "withdraw_below", "communities", "med", "local_pref",
	}, nested: merge(nestedCheckKeys("[virtual_server.check]"), map[string]string{"weight": "[[virtual_server.real_server]]"})}
	secRS = section{name: "[[virtual_server.real_server]]", keys: []string{"address", "weight", "forwarding", "tun_type", "tun_port", "tun_csum", "check"},
		nested: nestedCheckKeys("[[virtual_server.real_server.check]]")}
	secDefaultsCheck = section{name: "[defaults.check]", keys: checkKeys}
	secVSCheck       = section{name: "[virtual_server.check]", keys: checkKeys}
	secRSCheck       = section{name: "[[virtual_server.real_server.check]]", keys: checkKeys}
)

func nestedCheckKeys(where string) map[string]string {
	m := make(map[string]string, len(checkKeys))
	for _, k := range checkKeys {
		m[k] = where
	}
	return m
}

func merge(a, b map[string]string) map[string]string {
	for k, v := range b {
		a[k] = v
	}
	return a
}

// DefaultMaxBytes is the largest config file Load reads (the
// -max-config-bytes flag changes it): far above any real config, far
// below what would hurt the director to read and parse.
const DefaultMaxBytes = 16 << 20

// Load reads and validates the configuration file at path, which must be
// a regular file of at most DefaultMaxBytes. On failure the error is an
// *Errors listing every problem found.
func Load(path string) (*Config, error) { return LoadLimited(path, DefaultMaxBytes) }

// LoadLimited is Load for a file of at most maxBytes (DefaultMaxBytes when
// 0 or less).
func LoadLimited(path string, maxBytes int64) (*Config, error) {
	data, err := readConfigFile(path, maxBytes)
	if err != nil {
		return nil, &Errors{Problems: []Problem{{File: path, Msg: err.Error()}}}
	}
	return Parse(path, data)
}

// readConfigFile reads a config file through safefile: a FIFO or a device
// in its place is refused without blocking, and the read is capped. The
// error says what is wrong without repeating the path.
func readConfigFile(path string, maxBytes int64) ([]byte, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	data, err := safefile.ReadFile(path, maxBytes)
	var nre *safefile.NotRegularError
	var tle *safefile.TooLargeError
	switch {
	case errors.As(err, &nre):
		return nil, fmt.Errorf("a %s, not a regular file", nre.Kind)
	case errors.As(err, &tle):
		return nil, fmt.Errorf("larger than %d bytes, the most a config file may be; if it is meant to be this large, raise -max-config-bytes", maxBytes)
	case err != nil:
		return nil, unwrapPath(err)
	}
	return data, nil
}

// Parse validates a configuration held in memory. name is used in messages
// and as Config.Path; relative ca_file paths are taken from its directory.
// Nesting deeper than MaxNesting is refused before the file is parsed.
func Parse(name string, data []byte) (*Config, error) {
	return ParseWith(name, data, Options{})
}

// ParseWith is Parse with o's outside sources (the services database).
func ParseWith(name string, data []byte, o Options) (*Config, error) {
	if o.ServicesFile == "" {
		o.ServicesFile = etcservices.DefaultPath
	}
	l := &loader{file: name, dir: filepath.Dir(name), ports: &portNames{path: o.ServicesFile}}
	if line := nestedTooDeep(string(data), MaxNesting); line > 0 {
		return nil, &Errors{Problems: []Problem{{File: name, Line: line,
			Msg: fmt.Sprintf("arrays and tables nested more than %d deep; a director config needs no more than a few levels", MaxNesting)}}}
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		p := Problem{File: name, Msg: err.Error()}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			p.Line = pe.Position.Line
			p.Msg = "syntax error: " + pe.Message
		}
		return nil, &Errors{Problems: []Problem{p}}
	}
	detach(raw)
	l.lines = indexLines(string(data))
	cfg := l.config(raw)
	if len(l.errs) > 0 {
		return nil, &Errors{Problems: tidy(l.errs)}
	}
	cfg.Warnings = tidy(l.warns)
	sum := sha256.Sum256(data)
	cfg.SHA256 = hex.EncodeToString(sum[:])
	return cfg, nil
}

// detach gives every string value of a decoded document memory of its
// own. The decoder's strings are slices of its one copy of the whole
// file, so a single name the config kept held all of it, comments
// included, for as long as the config ran (1.5 MB of a 20,000 server
// config). Values are replaced in place; of the keys, the few a config
// keeps (header names, a warning's key) are copied where they are kept
// (StringTable, warnf): copying all would rebuild every table.
func detach(m map[string]any) {
	for k, v := range m {
		m[k] = detachValue(v)
	}
}

func detachValue(v any) any {
	switch v := v.(type) {
	case string:
		return strings.Clone(v)
	case map[string]any:
		detach(v)
	case []map[string]any:
		for _, m := range v {
			detach(m)
		}
	case []any:
		for i := range v {
			v[i] = detachValue(v[i])
		}
	}
	return v
}

func (l *loader) config(raw map[string]any) *Config {
	root := table{l: l, m: raw}
	root.unknown(secTop)
	cfg := &Config{Path: l.file, Director: Director{
		Listen:         DefaultListen,
		ResyncInterval: DefaultResyncInterval,
		OnFailure:      defaultOnFailure,
		OnShutdown:     defaultOnShutdown,
		KernelStats:    "backends",
		DrainTimeout:   DefaultDrainTimeout,
		Damping:        defaultDamping(),
		FastChecks:     true,
	}}
	cfg.Notify.Timeout = DefaultNotifyTimeout
	if t, ok := root.sub("director"); ok {
		l.director(t, &cfg.Director)
		cfg.Notify = l.notify(t, cfg.Notify)
		l.notifyTimeout(t, &cfg.Notify)
	}
	var defCheck rawCheck
	if t, ok := root.sub("defaults"); ok {
		t.unknown(secDefaults)
		if ct, ok := t.sub("check"); ok {
			defCheck = l.parseCheck(ct, secDefaultsCheck)
		}
	}
	l.announceSections(root, cfg)
	vsTables := root.tables("virtual_server", func(i int, m map[string]any) string {
		if s, ok := m["name"].(string); ok && s != "" {
			return s
		}
		return strconv.Itoa(i)
	})
	names := map[string]int{}
	services := map[string]string{}
	budget := MaxGroupServices
	var vsNodes []node // where each of cfg.VirtualServers is written
	for _, t := range vsTables {
		vs, members, gt := l.virtualServer(t, cfg.Director, defCheck, names, services, budget)
		vs.Notify = l.notify(t, cfg.Notify)
		if members == nil {
			cfg.VirtualServers = append(cfg.VirtualServers, vs)
			vsNodes = append(vsNodes, t.n)
			continue
		}
		budget -= len(members)
		n := t.n.child("addresses")
		if vs.FWMark != 0 {
			n = t.n.child("fwmarks")
		}
		for _, m := range l.expand(vs, members, gt, names, services, n, t.n.key) {
			cfg.VirtualServers = append(cfg.VirtualServers, m)
			vsNodes = append(vsNodes, t.n)
		}
	}
	l.checkAnnounce(cfg, vsNodes)
	l.vrrp(root, cfg)
	l.email(root, cfg)
	return cfg
}

func (l *loader) director(t table, d *Director) {
	t.unknown(secDirector)
	if s, n, ok := t.str("listen"); ok {
		if msg := checkListen(s); msg != "" {
			l.errorf(n, "%s", msg)
		} else {
			d.Listen = s
		}
	}
	if v, _, ok := t.intRange("max_connections", 1, MaxMaxConnections, fmt.Sprintf("write 1-%d, or leave it out for the default (512, or a quarter of the open-file limit if lower)", MaxMaxConnections)); ok {
		d.MaxConnections = int(v)
	}
	if v, _, ok := t.positive("resync_interval"); ok {
		d.ResyncInterval = v
	}
	if v, _, ok := t.enum("on_failure", "on_failure action", onFailures, onFailureAliases); ok {
		d.OnFailure = v
	}
	if v, _, ok := t.enum("on_shutdown", "on_shutdown action", onShutdowns, nil); ok {
		d.OnShutdown = v
	}
	if v, ok := l.drainTimeout(t); ok {
		d.DrainTimeout = v
	}
	if v, ok := l.slowStart(t); ok {
		d.SlowStart = v
	}
	if v, _, ok := t.boolean("watch_config"); ok {
		d.WatchConfig = v
	}
	if v, _, ok := t.boolean("fast_checks"); ok {
		d.FastChecks = v
	}
	if v, _, ok := t.enum("kernel_stats", "kernel_stats setting", kernelStats, nil); ok {
		d.KernelStats = v
	}
	l.admin(t, d)
}

// drainTimeout reads drain_timeout: a duration of 0 or more.
func (l *loader) drainTimeout(t table) (time.Duration, bool) {
	v, n, ok := t.duration("drain_timeout")
	if ok && v < 0 {
		l.errorf(n, "must not be negative; \"0s\" deletes a leaving real server at once")
		return 0, false
	}
	return v, ok
}

// checkListen returns why s is not a usable host:port, or "".
func checkListen(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q must be host:port, such as \"127.0.0.1:9410\" or \"[::1]:9410\"", s)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		if _, err := strconv.ParseUint(port, 10, 64); err == nil {
			return fmt.Sprintf("%q: port %s out of range 1–65535", s, port)
		}
		return fmt.Sprintf("%q: port must be a number 1-65535", s)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Sprintf("%q: %q is not a host name or address", s, host)
	}
	return ""
}

// portOutOfRange returns the port of an "ip:port" whose address is fine
// but whose port is a number past 65535, so that the message names the
// port rather than calling the whole thing no address.
func portOutOfRange(s string) (string, bool) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", false
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return "", false
	}
	if p, err := strconv.ParseUint(port, 10, 64); err != nil || p <= 65535 {
		return "", false
	}
	return port, true
}

func familyOf(a netip.Addr) string {
	if a.Is4() {
		return "ipv4"
	}
	return "ipv6"
}

func familyName(f string) string {
	if f == "ipv4" {
		return "IPv4"
	}
	return "IPv6"
}

// parseTarget reads a real server or fallback address: "ip:port",
// "[ipv6]:port", or an address alone (port 0). The address is unmapped
// (addr.go).
func parseTarget(s string) (target, string) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
		if err != nil {
			if port, ok := portOutOfRange(s); ok {
				return target{}, fmt.Sprintf("%q: port %s out of range 1–65535", s, port)
			}
			return target{}, fmt.Sprintf("%q is not an IP address with an optional port, such as \"10.0.0.11:8080\" or \"[2001:db8::11]:8080\"", s)
		}
		ap = netip.AddrPortFrom(a, 0)
	}
	if ap.Addr().Zone() != "" {
		return target{}, fmt.Sprintf("%q: IPv6 zones are not supported", s)
	}
	t := target{written: s}
	t.ap, t.mapped = unmapAddrPort(ap)
	return t, ""
}

// serviceAddress reads what selects the virtual service's packets:
// address or fwmark, or addresses or fwmarks for a group (group.go), with
// family and protocol. For a group it returns the members, and vs holds
// the first one. ok says vs's address or fwmark is usable.
func (l *loader) serviceAddress(t table, vs *VirtualServer, budget int) ([]member, bool) {
	addrOK := false
	given := 0
	for _, k := range []string{"address", "fwmark", "addresses", "fwmarks"} {
		if t.has(k) {
			given++
		}
	}
	// The protocol picks a port name's entry; a bad one is reported
	// below, and tcp stands in meanwhile.
	proto, _ := t.m["protocol"].(string)
	if !slices.Contains(protocols, proto) {
		proto = defaultProtocol
	}
	var members []member
	switch {
	case given == 2 && t.has("address") && t.has("fwmark"):
		l.errorf(t.n.child("fwmark"), "set either address or fwmark, not both")
	case given > 1:
		l.errorf(t.n, "set only one of address, fwmark, addresses and fwmarks; a group mixing addresses and marks is written as two virtual servers")
	case given == 0:
		l.errorf(t.n.child("address"), "missing; set address (such as \"192.0.2.10:80\") or fwmark, or addresses or fwmarks for a group")
	case t.has("fwmark") || t.has("fwmarks"):
		if t.has("fwmarks") {
			members, addrOK = l.groupMembers(t, proto, budget)
			if addrOK {
				vs.FWMark = members[0].mark
			}
		} else if v, _, ok := t.intRange("fwmark", 1, 1<<32-1, "firewall marks are 1-4294967295"); ok {
			vs.FWMark = uint32(v)
			addrOK = true
		}
		vs.Family = "ipv4"
		if f, _, ok := t.enum("family", "family", families, map[string]string{
			"inet": `write "ipv4"`, "inet6": `write "ipv6"`, "4": `write "ipv4"`, "6": `write "ipv6"`,
		}); ok {
			vs.Family = f
		} else if t.has("family") {
			vs.Family = ""
		}
		if t.has("protocol") {
			l.errorf(t.n.child("protocol"), "is not used with fwmark; the firewall mark already selects the packets")
		}
	default:
		if t.has("addresses") {
			members, addrOK = l.groupMembers(t, proto, budget)
			if addrOK {
				vs.Address = members[0].ap
				vs.Family = familyOf(vs.Address.Addr())
			}
		} else if s, n, ok := t.str("address"); ok {
			numbered, named := l.withPortNumber(s, n, proto)
			ap, err := netip.ParseAddrPort(numbered)
			switch {
			case !named:
			case err != nil:
				if a, err := netip.ParseAddr(s); err == nil {
					l.errorf(n, "%q has no port; write %q", s, netip.AddrPortFrom(a, 80).String())
				} else if port, ok := portOutOfRange(s); ok {
					l.errorf(n, "%q: port %s out of range 1–65535", s, port)
				} else {
					l.errorf(n, "%q is not an IP address and port, such as \"192.0.2.10:80\" or \"[2001:db8::10]:80\"", s)
				}
			case ap.Port() == 0:
				l.errorf(n, "%q: port 0 is not allowed; a virtual service needs a port", s)
			case ap.Addr().Zone() != "":
				l.errorf(n, "%q: IPv6 zones are not supported", s)
			default:
				if canon, mapped := unmapAddrPort(ap); mapped {
					l.warnf(n, "%s", mappedWarning(s, canon.String()))
					ap = canon
				}
				vs.Address = ap
				vs.Family = familyOf(ap.Addr())
				addrOK = true
			}
		}
		if t.has("family") {
			l.errorf(t.n.child("family"), "is only used with fwmark; an address-based service takes its family from the address")
		}
		vs.Protocol = defaultProtocol
		if p, _, ok := t.enum("protocol", "protocol", protocols, nil); ok {
			vs.Protocol = p
		}
	}
	if !addrOK {
		members = nil
	}
	return members, addrOK
}

// uniqueService reports vs's kernel service if an earlier virtual server
// (or group member) defines it; vsKey and vs.Line say where vs is.
func (l *loader) uniqueService(vs *VirtualServer, n node, vsKey string, services map[string]string) {
	svc := vs.Protocol + " " + vs.Address.String()
	if vs.FWMark != 0 {
		svc = fmt.Sprintf("fwmark %d (%s)", vs.FWMark, vs.Family)
	}
	if prev, ok := services[svc]; ok {
		l.errorf(n, "duplicate virtual service %s; %s", svc, prev)
		return
	}
	services[svc] = fmt.Sprintf("%s on line %d already defines it", vsKey, vs.Line)
}

// fallback checks the fallback's address tg at n against the virtual
// server and its real servers (seen), and sets it when valid.
func (l *loader) fallback(vs *VirtualServer, vsOK bool, tg target, n node, seen map[netip.AddrPort]int) {
	ap, ok := l.checkTarget(vs, vsOK, tg, vs.Forwarding, false, n, "fallback")
	if !ok {
		return
	}
	if line, dup := seen[ap]; dup {
		l.errorf(n, "%s is also a real server (line %d); the fallback must be a different server", ap, line)
		return
	}
	vs.Fallback = ap
}

// target reads a real server or fallback address at n (parseTarget),
// its port possibly a name of the virtual server's protocol, reporting
// what is wrong.
func (l *loader) target(s string, n node, proto string) (target, bool) {
	s, ok := l.withPortNumber(s, n, serviceProtocols(proto)...)
	if !ok {
		return target{}, false
	}
	tg, msg := parseTarget(s)
	if msg != "" {
		l.errorf(n, "%s", msg)
		return target{}, false
	}
	return tg, true
}

// virtualServer reads one [[virtual_server]]. For a group it also returns
// the members and what expanding needs (group.go); budget is how many
// services groups may still expand to.
func (l *loader) virtualServer(t table, d Director, defCheck rawCheck, names map[string]int, services map[string]string, budget int) (VirtualServer, []member, groupTargets) {
	t.unknown(secVS)
	vs := VirtualServer{
		Line:       l.lineOf(t.n),
		Scheduler:  defaultScheduler,
		Forwarding: defaultForwarding,
		OnFailure:  d.OnFailure,
	}

	// name
	if s, n, ok := t.str("name"); ok {
		switch {
		case s == "":
			l.errorf(n, "must not be empty")
		case names[s] != 0:
			l.errorf(n, "duplicate name %q; the virtual server on line %d already uses it", s, names[s])
		default:
			names[s] = vs.Line
		}
		vs.Name = s
	} else if !t.has("name") {
		l.errorf(t.n.child("name"), "missing; every virtual server needs a unique name")
	}

	// address or fwmark, or a group of either (and family, protocol)
	members, addrOK := l.serviceAddress(t, &vs, budget)
	if addrOK && members == nil {
		n := t.n.child("address")
		if vs.FWMark != 0 {
			n = t.n.child("fwmark")
		}
		l.uniqueService(&vs, n, t.n.key, services)
	}

	if v, _, ok := t.enum("scheduler", "scheduler", schedulers, nil); ok {
		vs.Scheduler = v
	}
	l.schedulerFlags(t, &vs)
	if v, n, ok := t.duration("persistence"); ok {
		switch {
		case v < 0:
			l.errorf(n, "must not be negative")
		case v%time.Second != 0:
			l.errorf(n, "%s: IPVS persistence counts whole seconds; write something like \"300s\"", v)
		case v > (1<<32-1)*time.Second:
			l.errorf(n, "%s is too long for IPVS", v)
		default:
			vs.Persistence = v
		}
	}
	switch vs.Family {
	case "ipv4":
		vs.PersistenceNetmask = 32
	case "ipv6":
		vs.PersistenceNetmask = 128
	}
	if v, n, ok := t.integer("persistence_netmask"); ok {
		max := int64(128)
		if vs.Family == "ipv4" {
			max = 32
		}
		if v < 0 || v > max {
			if vs.Family != "" {
				l.errorf(n, "%d is out of range; %s prefix lengths are 0-%d", v, familyName(vs.Family), max)
			} else {
				l.errorf(n, "%d is out of range; prefix lengths are 0-32 (IPv4) or 0-128 (IPv6)", v)
			}
		} else {
			vs.PersistenceNetmask = uint8(v)
			if vs.Persistence == 0 && !t.has("persistence") {
				l.warnf(n, "has no effect without persistence")
			}
		}
	}
	if v, _, ok := t.enum("forwarding", "forwarding method", forwardings, forwardingAliases); ok {
		vs.Forwarding = v
	}
	vs.Tunnel = l.tunnel(t, vs.Forwarding, Tunnel{})
	if v, _, ok := t.enum("on_failure", "on_failure action", onFailures, onFailureAliases); ok {
		vs.OnFailure = v
	}
	// UDP has no connection end to wait for: IPVS keeps a UDP entry until
	// its idle timeout (300s by default), so a busy UDP server would only
	// ever leave by timeout. Delete at once unless this service asks.
	vs.DrainTimeout = d.DrainTimeout
	if vs.Protocol == "udp" {
		vs.DrainTimeout = 0
	}
	if v, ok := l.drainTimeout(t); ok {
		vs.DrainTimeout = v
	}

	// checks
	vsRaw, srcNodes := l.virtualServerChecks(t, defCheck, &vs)
	dataPathReported := false

	// real servers
	seen := map[netip.AddrPort]int{}
	var gt groupTargets
	rsTables := t.tables("real_server", func(i int, _ map[string]any) string { return strconv.Itoa(i) })
	// At its exact size: the config is kept while it runs, and a slice
	// grown by append held up to twice its real servers.
	if len(rsTables) > 0 {
		vs.RealServers = make([]RealServer, 0, len(rsTables))
	}
	for _, rt := range rsTables {
		gt.rsNodes = append(gt.rsNodes, rt.n.child("address"))
		gt.rsPortless = append(gt.rsPortless, false)
		rt.unknown(secRS)
		rs := RealServer{Line: l.lineOf(rt.n), Weight: defaultWeight, Forwarding: vs.Forwarding}
		if v, _, ok := rt.enum("forwarding", "forwarding method", forwardings, forwardingAliases); ok {
			rs.Forwarding = v
		}
		rs.Tunnel = l.tunnel(rt, rs.Forwarding, vs.Tunnel)
		if v, _, ok := rt.intRange("weight", 0, 65535, "IPVS weights are 0-65535"); ok {
			rs.Weight = uint32(v)
		}
		rsSrc := srcNodes
		if entries := checkTables(rt); len(entries) > 0 {
			rs.Checks, rsSrc = l.realServerChecks(defCheck, vsRaw, vs.Checks, srcNodes, entries)
		}
		s, n, ok := rt.str("address")
		if !ok {
			if !rt.has("address") {
				l.errorf(n, "missing; every real server needs an address, such as \"10.0.0.11:8080\"")
			}
			vs.RealServers = append(vs.RealServers, rs)
			continue
		}
		tg, ok := l.target(s, n, vs.Protocol)
		if !ok {
			vs.RealServers = append(vs.RealServers, rs)
			continue
		}
		gt.rsPortless[len(gt.rsPortless)-1] = tg.ap.Port() == 0
		if ap, ok := l.checkTarget(&vs, addrOK, tg, rs.Forwarding, true, n, "real server"); ok {
			rs.Address = ap
			if line, dup := seen[ap]; dup {
				l.errorf(n, "duplicate real server %s; also on line %d", ap, line)
			} else {
				seen[ap] = rs.Line
			}
			for i, c := range vs.ChecksOf(&rs) {
				l.checkProbeTarget(c, ap, n, rsSrc[i])
				l.checkDataPath(&vs, t, c, &rs, n, &dataPathReported)
			}
		}
		vs.RealServers = append(vs.RealServers, rs)
	}

	// fallback
	if s, n, ok := t.str("fallback"); ok {
		if tg, ok := l.target(s, n, vs.Protocol); ok {
			l.fallback(&vs, addrOK, tg, n, seen)
			gt.fbNode, gt.fbPortless = n, tg.ap.Port() == 0
		}
	}

	l.vsAdmin(t, d, &vs)
	l.vsSlowStart(t, d, &vs)
	l.vsAnnounce(t, &vs)
	l.quorumWarnings(t, &vs)

	if len(rsTables) == 0 && !t.has("real_server") {
		if t.has("fallback") {
			l.warnf(t.n, "has no real servers; only the fallback will serve it")
		} else {
			l.warnf(t.n, "has no real servers; the service will be created but has nowhere to send connections")
		}
	}
	return vs, members, gt
}

// checkTarget applies the address, family and port rules shared by real
// servers and the fallback, filling in the virtual server's port where
// forwarding cannot change it. tunMixes says whether tun forwarding may
// cross families. It returns the address to use and whether it is valid;
// a valid address written IPv4-mapped is warned about.
func (l *loader) checkTarget(vs *VirtualServer, vsOK bool, tg target, fwd string, tunMixes bool, n node, what string) (netip.AddrPort, bool) {
	ap := tg.ap
	if msg := refusedDestination(ap.Addr()); msg != "" {
		l.errorf(n, "%s", msg)
		return ap, false
	}
	if !vsOK || vs.Family == "" {
		return ap, true // the virtual server's own error is already reported
	}
	if f := familyOf(ap.Addr()); f != vs.Family && !(tunMixes && fwd == "tun") {
		hint := "; only forwarding = \"tun\" can mix families"
		if !tunMixes {
			hint = ""
		}
		if tg.mapped {
			l.errorf(n, "%q is an IPv4-mapped IPv6 address, which the kernel takes as the IPv4 address %s and refuses in an IPv6 virtual server; give the server's IPv6 address, or write %q in an IPv4 virtual server%s",
				tg.written, ap.Addr(), tg.spelled(), hint)
			return ap, false
		}
		l.errorf(n, "%s is %s but the virtual server is %s%s", ap.Addr(), familyName(f), familyName(vs.Family), hint)
		return ap, false
	}
	if tg.mapped {
		l.warnf(n, "%s", mappedWarning(tg.written, tg.spelled()))
	}
	if vs.FWMark != 0 {
		return ap, true // any port, or 0 to keep the packet's port
	}
	switch fwd {
	case "nat":
		if ap.Port() == 0 {
			l.errorf(n, "%s has no port; a %s behind nat forwarding needs one, such as \"%s\"", ap.Addr(), what, netip.AddrPortFrom(ap.Addr(), vs.Address.Port()))
			return ap, false
		}
	default:
		if ap.Port() == 0 {
			return netip.AddrPortFrom(ap.Addr(), vs.Address.Port()), true
		}
		if ap.Port() != vs.Address.Port() {
			l.errorf(n, "port %d differs from the virtual server's port %d; IPVS cannot change ports with %s forwarding (use port %d, or forwarding = \"nat\")", ap.Port(), vs.Address.Port(), fwd, vs.Address.Port())
			return ap, false
		}
	}
	return ap, true
}

// checkProbeTarget checks that the health check can reach this real server.
func (l *loader) checkProbeTarget(c Check, rs netip.AddrPort, rsNode, srcNode node) {
	if k, ok := checks.LookupKind(c.Type); ok && !k.NoPort && c.Port == 0 && rs.Port() == 0 {
		l.errorf(rsNode, "%s has no port for its %s check; give it a port or set the check's port", rs.Addr(), c.Type)
	}
	if !c.Source.IsValid() {
		return
	}
	target := rs.Addr()
	if c.Address.IsValid() {
		target = c.Address
	}
	if familyOf(c.Source) != familyOf(target) {
		l.errorf(srcNode, "%s is %s but the check target %s is %s", c.Source, familyName(familyOf(c.Source)), target, familyName(familyOf(target)))
	}
}

// Summary describes c in one line, e.g.
// "director.toml: 3 virtual servers, 12 real servers, 14 checks". Checks
// counts distinct probes: real servers checked identically share one.
func (c *Config) Summary() string {
	rs := 0
	probes := map[string]bool{}
	for i := range c.VirtualServers {
		vs := &c.VirtualServers[i]
		rs += len(vs.RealServers)
		for j := range vs.RealServers {
			rs := &vs.RealServers[j]
			for _, c := range vs.ChecksOf(rs) {
				probes[vs.CheckSpec(rs, &c).Key()] = true
			}
		}
	}
	return fmt.Sprintf("%s: %s, %s, %s", c.Path,
		plural(len(c.VirtualServers), "virtual server"), plural(rs, "real server"), plural(len(probes), "check"))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
