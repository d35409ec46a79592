package importer

import (
	"fmt"
	"net/mail"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/lvsdirector/director/config"
)

// keepalived's defaults, where they differ from the director's.
const (
	kaDelayLoop      = 60 // seconds between checks
	kaConnectTimeout = 5  // seconds
	kaRetry          = 1  // retries after a failed check
	kaPersistence    = 360
	kaWeight         = 1
)

// maxGroupMembers bounds what one virtual_server_group expands to.
const maxGroupMembers = 1024

const vrrpHint = "VRRP stays keepalived's job; run keepalived for VRRP only beside the director (README, Active-backup with keepalived; director vrrp-config)"

type kaConv struct {
	tally
	doc    document
	groups map[string]*knode
	used   map[string]bool
	names  map[string]int
	ports  PortLookup
	// groupServices counts the kernel services the groups written so far
	// expand to (config.MaxGroupServices bounds them).
	groupServices int
}

func importKeepalived(name string, data []byte, src Source, ports PortLookup) (*Result, error) {
	root, p, err := parseKeepalived(name, data, src)
	if err != nil {
		return nil, err
	}
	c := &kaConv{ports: ports, groups: map[string]*knode{}, used: map[string]bool{}, names: map[string]int{}}
	c.doc.header = []string{
		"Imported from " + name + " (keepalived) by director import.",
		"Each item names the line it came from; the report on standard error lists",
		"every option that was not converted exactly.",
	}
	for _, at := range p.skipped {
		c.unsupported(at, "@", "a line for another config id (keepalived -i); not read")
	}
	// keepalived removes a failed real server unless inhibit_on_failure.
	c.doc.director.set("on_failure", "remove", pos{}, "keepalived's default: a failed real server is removed")
	c.doc.defaults.set("rise", 1, pos{}, "keepalived puts a server back after one good check")
	for _, n := range root.children {
		if n.name() == "virtual_server_group" {
			c.group(n)
		}
	}
	for _, n := range root.children {
		c.top(n)
	}
	for gname, g := range c.groups {
		if !c.used[gname] {
			c.unsupported(g.at, "virtual_server_group "+gname, "no virtual_server uses it, so no service is made from it")
		}
	}
	sortNotes(c.notes)
	return c.result(&c.doc), nil
}

func (c *kaConv) top(n *knode) {
	switch n.name() {
	case "global_defs":
		c.exact(n.at, n.name())
		done := c.email(n)
		for _, o := range n.children {
			if !done[o] {
				c.global(o)
			}
		}
	case "virtual_server_group":
		// read first, counted where used
	case "virtual_server":
		c.virtualServer(n)
	case "vrrp_instance", "vrrp_sync_group", "vrrp_script", "vrrp_track_process", "static_ipaddress", "static_routes",
		"static_rules", "garp_group", "track_file", "vrrp_track_file", "bfd_instance", "linkbeat_interfaces":
		c.ignored(n.at, n.name()+" "+n.arg(1), "%s", vrrpHint)
	default:
		c.ignored(n.at, n.name(), "keepalived's own setting, not the director's job")
	}
}

func (c *kaConv) global(o *knode) {
	switch o.name() {
	case "smtp_helo_name", "smtp_alert", "smtp_alert_checker", "smtp_alert_vrrp":
		c.unsupported(o.at, o.name(), "[notify.email] mails every event the director has")
	case "lvs_flush_onstop":
		c.doc.director.set("on_shutdown", "flush", o.at, "lvs_flush_onstop")
		c.exact(o.at, o.name())
	case "lvs_flush":
		c.approx(o.at, o.name(), "nothing: the director deletes only the services it manages, never the whole table")
	case "lvs_timeouts":
		c.unsupported(o.at, o.name(), "IPVS connection timeouts are the kernel's (ipvsadm --set)")
	case "lvs_sync_daemon":
		c.unsupported(o.at, o.name(), "the director runs the sync daemons in a [vrrp] pair (README, Active-backup with keepalived); set that up by hand")
	case "router_id":
		c.ignored(o.at, o.name(), "keepalived's name in its own logs and mail")
	default:
		if strings.HasPrefix(o.name(), "vrrp_") || strings.HasPrefix(o.name(), "bfd_") {
			c.ignored(o.at, o.name(), "%s", vrrpHint)
		} else {
			c.ignored(o.at, o.name(), "keepalived's own setting, not the director's job")
		}
	}
}

// email converts global_defs' mail settings into [notify.email] when
// they make a complete one, and says which options it handled.
func (c *kaConv) email(g *knode) map[*knode]bool {
	done := map[*knode]bool{}
	var to, from, server, timeout *knode
	for _, o := range g.children {
		switch o.name() {
		case "notification_email":
			to = o
		case "notification_email_from":
			from = o
		case "smtp_server":
			server = o
		case "smtp_connect_timeout":
			timeout = o
		default:
			continue
		}
		done[o] = true
	}
	if to == nil && from == nil && server == nil && timeout == nil {
		return done
	}
	var addrs []string
	problem := ""
	if to != nil {
		for _, a := range to.children {
			addrs = append(addrs, strings.Join(a.words, " "))
		}
	}
	for _, a := range addrs {
		if _, err := mail.ParseAddress(a); err != nil || !strings.Contains(a, "@") {
			problem = fmt.Sprintf("%q is not a mail address", a)
		}
	}
	var relay string
	switch {
	case to == nil || len(addrs) == 0:
		problem = "no notification_email recipients"
	case from == nil:
		problem = "no notification_email_from"
	case server == nil:
		problem = "no smtp_server"
	}
	if from != nil && problem == "" {
		if _, err := mail.ParseAddress(from.arg(1)); err != nil || !strings.Contains(from.arg(1), "@") {
			problem = fmt.Sprintf("%q is not a mail address", from.arg(1))
		}
	}
	if server != nil && problem == "" {
		port := 25
		if server.arg(2) != "" {
			p, err := c.ports.port(server.arg(2))
			if err != nil {
				problem = fmt.Sprintf("%q is not a port", server.arg(2))
			}
			port = p
		}
		if _, err := netip.ParseAddr(server.arg(1)); err == nil {
			relay = hostPort(server.arg(1), port)
		} else {
			relay = server.arg(1) + ":" + strconv.Itoa(port)
		}
	}
	if problem != "" {
		for _, o := range []*knode{to, from, server, timeout} {
			if o != nil {
				c.unsupported(o.at, o.name(), "[notify.email] needs a relay, a sender and recipients that are mail addresses: %s", problem)
			}
		}
		return done
	}
	c.doc.email.set("server", relay, server.at, "")
	c.doc.email.set("from", from.arg(1), from.at, "")
	c.doc.email.set("to", addrs, to.at, "")
	c.exact(to.at, to.name())
	c.exact(from.at, from.name())
	c.exact(server.at, server.name())
	if timeout != nil {
		if v, ok := kaSeconds(timeout.arg(1)); ok {
			c.doc.director.set("notify_timeout", seconds(v), timeout.at, "")
			c.approx(timeout.at, timeout.name(), "notify_timeout, which bounds the whole SMTP exchange (and notify_command, webhooks)")
		} else {
			c.unsupported(timeout.at, timeout.name(), "%q is not a number of seconds", timeout.arg(1))
		}
	}
	return done
}

// group reads a virtual_server_group: its members, each a service.
func (c *kaConv) group(n *knode) {
	name := n.arg(1)
	if name == "" {
		c.unsupported(n.at, n.name(), "a group needs a name")
		return
	}
	c.groups[name] = n
}

// member is one entry of what a virtual_server stands for: an address
// and port (count addresses from addr, a range, when count > 1) or a
// firewall mark.
type member struct {
	at     pos
	addr   netip.Addr
	count  int
	port   int
	fwmark int
}

// host is the address as the director writes it: "10.0.0.3-10" for a range.
func (m member) host() string {
	if m.count <= 1 {
		return m.addr.String()
	}
	b := m.addr.AsSlice()
	if m.addr.Is4() {
		return fmt.Sprintf("%s-%d", m.addr, int(b[3])+m.count-1)
	}
	return fmt.Sprintf("%s-%x", m.addr, (int(b[14])<<8|int(b[15]))+m.count-1)
}

func (m member) String() string {
	if m.fwmark != 0 {
		return "fwmark " + strconv.Itoa(m.fwmark)
	}
	return hostPort(m.host(), m.port)
}

// singles lists a range's addresses one by one.
func (m member) singles() []member {
	out := make([]member, 0, max(m.count, 1))
	a := m.addr
	for range max(m.count, 1) {
		out = append(out, member{at: m.at, addr: a, count: 1, port: m.port})
		a = a.Next()
	}
	return out
}

// groupMembers reads a group's entries, ranges kept whole (the director's
// addresses take them as written).
func (c *kaConv) groupMembers(g *knode) []member {
	var out []member
	total := 0
	seenAddr := map[netip.AddrPort]int{} // the line that listed it
	seenMark := map[int]int{}
	for _, e := range g.children {
		switch {
		case e.name() == "fwmark":
			mark, err := strconv.Atoi(e.arg(1))
			if err != nil || mark <= 0 || mark > 1<<32-1 {
				c.unsupported(e.at, "fwmark "+e.arg(1), "not a firewall mark; no service made")
				continue
			}
			if line, dup := seenMark[mark]; dup {
				c.approx(e.at, "fwmark "+e.arg(1), "one service (already in the group on line %d)", line)
				continue
			}
			if total+1 > maxGroupMembers {
				c.unsupported(e.at, e.name(), "more than %d services in one group; not converted", maxGroupMembers)
				continue
			}
			seenMark[mark] = e.at.line
			total++
			out = append(out, member{at: e.at, fwmark: mark})
			c.exact(e.at, "fwmark")
		default:
			addrs, ok := expandRange(e.name())
			port, perr := c.ports.port(e.arg(1))
			if !ok || perr != nil {
				c.unsupported(e.at, strings.Join(e.words, " "), "not an address (range) and port; no service made")
				continue
			}
			if total+len(addrs) > maxGroupMembers {
				c.unsupported(e.at, e.name(), "more than %d services in one group; not converted", maxGroupMembers)
				continue
			}
			dupLine := 0
			for _, a := range addrs {
				if line, dup := seenAddr[netip.AddrPortFrom(a, uint16(port))]; dup {
					dupLine = line
					break
				}
			}
			if dupLine != 0 {
				c.unsupported(e.at, e.name(), "overlaps the entry on line %d; the director lists an address once per group: write the range without the overlap", dupLine)
				continue
			}
			for _, a := range addrs {
				seenAddr[netip.AddrPortFrom(a, uint16(port))] = e.at.line
			}
			total += len(addrs)
			out = append(out, member{at: e.at, addr: addrs[0], count: len(addrs), port: port})
			c.exact(e.at, e.name())
		}
	}
	return out
}

// expandRange reads "10.0.0.1", "10.0.0.1-20" (last octet) or
// "2001:db8::1-ff" (last group, hexadecimal).
func expandRange(s string) ([]netip.Addr, bool) {
	base, end, hasRange := strings.Cut(s, "-")
	a, err := netip.ParseAddr(base)
	if err != nil || a.Zone() != "" {
		return nil, false
	}
	if !hasRange {
		return []netip.Addr{a}, true
	}
	var last, lim uint64
	b := a.AsSlice()
	if a.Is4() {
		last = uint64(b[3])
		lim, err = strconv.ParseUint(end, 10, 8)
	} else {
		last = uint64(b[14])<<8 | uint64(b[15])
		lim, err = strconv.ParseUint(end, 16, 16)
	}
	if err != nil || lim < last {
		return nil, false
	}
	var out []netip.Addr
	for v := last; v <= lim; v++ {
		if a.Is4() {
			b[3] = byte(v)
		} else {
			b[14], b[15] = byte(v>>8), byte(v)
		}
		x, _ := netip.AddrFromSlice(b)
		out = append(out, x)
	}
	return out, true
}

// port reads a port number or name: the built-in table first, then the
// lookup, under tcp and then udp, as the sources name ports without
// saying the protocol (it may follow on a later line).
func (l PortLookup) port(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err == nil && p >= 0 && p <= 65535 {
		return p, nil
	}
	if q, ok := wellKnownPorts[s]; ok {
		return q, nil
	}
	if l != nil && err != nil {
		for _, proto := range []string{"tcp", "udp"} {
			if q, ok := l(s, proto); ok {
				return int(q), nil
			}
		}
	}
	return 0, fmt.Errorf("bad port %q", s)
}

// realOut is a converted real_server and the checks it had.
type realOut struct {
	at      pos
	block   *block
	checks  []*block // none: no checker
	records []record // the checkers' options, counted once the checks are placed
	inhibit bool
	ckNodes []*knode // the checker of each check
}

// record is an option's outcome held back until it is known to count.
type record struct {
	at      pos
	opt     string
	outcome Outcome
	msg     string
}

func (c *kaConv) flush(rs []record) {
	for _, r := range rs {
		if r.outcome == Exact {
			c.exact(r.at, r.opt)
		} else {
			c.note(r.at, r.opt, r.outcome, "%s", r.msg)
		}
	}
}

func (c *kaConv) virtualServer(n *knode) {
	var members []member
	vs := &vsBlock{}
	what := strings.Join(n.words, " ")
	isGroup := n.arg(1) == "group"
	var group *knode
	switch {
	case isGroup:
		g, ok := c.groups[n.arg(2)]
		group = g
		if !ok {
			c.unsupported(n.at, what, "no virtual_server_group %q; its %d real servers are not converted", n.arg(2), countReals(n))
			return
		}
		c.used[n.arg(2)] = true
		members = c.groupMembers(g)
		if len(members) == 0 {
			c.unsupported(n.at, what, "the group has no usable member; its %d real servers are not converted", countReals(n))
			return
		}
		c.exact(n.at, "virtual_server group")
	case n.arg(1) == "fwmark":
		mark, err := strconv.Atoi(n.arg(2))
		if err != nil || mark <= 0 {
			c.unsupported(n.at, what, "not a firewall mark; its %d real servers are not converted", countReals(n))
			return
		}
		members = []member{{at: n.at, fwmark: mark}}
		c.exact(n.at, "virtual_server")
	default:
		a, err := netip.ParseAddr(n.arg(1))
		port, perr := c.ports.port(n.arg(2))
		if err != nil || perr != nil || port == 0 {
			c.unsupported(n.at, what, "not an address and port; its %d real servers are not converted", countReals(n))
			return
		}
		members = []member{{at: n.at, addr: a, count: 1, port: port}}
		c.exact(n.at, "virtual_server")
	}

	// Virtual-server-wide settings.
	proto := "tcp"
	fwd := "nat"
	var fwdAt pos
	delay, delayAt := float64(kaDelayLoop), pos{}
	inhibitVS := false
	var vsHost *knode
	var reals []*realOut
	family := ""
	for _, o := range n.children {
		switch o.name() {
		case "delay_loop":
			if v, ok := kaSeconds(o.arg(1)); ok {
				delay, delayAt = v, o.at
				c.exact(o.at, o.name())
			} else {
				c.unsupported(o.at, o.name(), "%q is not a number of seconds", o.arg(1))
			}
		case "lb_algo", "lvs_sched":
			s := strings.ToLower(o.arg(1))
			if knownSchedulers[s] {
				vs.set("scheduler", s, o.at, "")
				c.exact(o.at, o.name())
			} else {
				c.unsupported(o.at, o.name(), "no IPVS scheduler %q; the director's default wlc is used", o.arg(1))
			}
		case "hashed", "flag-1", "flag-2", "flag-3", "sh-port", "sh-fallback", "mh-port", "mh-fallback":
			flag := map[string]string{"flag-1": "sh-fallback", "flag-2": "sh-port", "flag-3": "flag-3"}[o.name()]
			if flag == "" {
				flag = o.name()
			}
			if flag == "hashed" || flag == "flag-3" {
				c.unsupported(o.at, o.name(), "the director sets no such scheduler flag")
				continue
			}
			cur, _ := vs.get("scheduler_flags")
			flags := parseStringList(cur)
			vs.set("scheduler_flags", append(flags, flag), o.at, "")
			c.exact(o.at, o.name())
		case "lb_kind", "lvs_method":
			switch strings.ToUpper(o.arg(1)) {
			case "NAT":
				fwd = "nat"
			case "DR":
				fwd = "dr"
			case "TUN":
				fwd = "tun"
			default:
				c.unsupported(o.at, o.name(), "no forwarding method %q; nat is used", o.arg(1))
				continue
			}
			fwdAt = o.at
			if len(o.words) > 2 {
				if msg := tunnelOptions(vs, o, c.ports); msg != "" {
					c.unsupported(o.at, o.name()+" "+strings.Join(o.words[2:], " "), "%s; ipip is used", msg)
					continue
				}
			}
			c.exact(o.at, o.name())
		case "persistence_timeout":
			secs := kaPersistence
			if o.arg(1) != "" {
				v, err := strconv.Atoi(o.arg(1))
				if err != nil || v < 0 {
					c.unsupported(o.at, o.name(), "%q is not a number of seconds", o.arg(1))
					continue
				}
				secs = v
			}
			vs.set("persistence", strconv.Itoa(secs)+"s", o.at, "")
			c.exact(o.at, o.name())
		case "persistence_granularity":
			bits, ok := netmaskBits(o.arg(1))
			if !ok {
				c.unsupported(o.at, o.name(), "%q is not a netmask", o.arg(1))
				continue
			}
			vs.set("persistence_netmask", bits, o.at, "")
			c.exact(o.at, o.name())
		case "persistence_engine":
			c.unsupported(o.at, o.name(), "the director sets no persistence engine (SIP Call-ID persistence)")
		case "protocol":
			switch p := strings.ToLower(o.arg(1)); p {
			case "tcp", "udp", "sctp":
				proto = p
				c.exact(o.at, o.name())
			default:
				c.unsupported(o.at, o.name(), "no protocol %q; tcp is used", o.arg(1))
			}
		case "ip_family":
			switch o.arg(1) {
			case "inet":
				family = "ipv4"
			case "inet6":
				family = "ipv6"
			}
			c.exact(o.at, o.name())
		case "ops":
			vs.set("ops", true, o.at, "")
			c.exact(o.at, o.name())
		case "ha_suspend":
			c.ignored(o.at, o.name(), "%s", vrrpHint)
		case "virtualhost":
			vsHost = o
		case "sorry_server":
			a, err := netip.ParseAddr(o.arg(1))
			port, perr := c.ports.port(o.arg(2))
			if err != nil || (o.arg(2) != "" && perr != nil) {
				c.unsupported(o.at, o.name(), "%q is not an address and port", strings.Join(o.words[1:], " "))
				continue
			}
			if o.arg(2) == "" {
				vs.set("fallback", a.String(), o.at, "")
			} else {
				vs.set("fallback", hostPort(a.String(), port), o.at, "")
			}
			c.exact(o.at, o.name())
		case "sorry_server_inhibit":
			c.approx(o.at, o.name(), "a fallback that is removed while not needed (the director never keeps it at weight 0)")
		case "sorry_server_lvs_method":
			c.unsupported(o.at, o.name(), "the fallback uses the virtual server's forwarding")
		case "inhibit_on_failure":
			inhibitVS = true
			c.exact(o.at, o.name())
		case "alpha":
			c.exact(o.at, o.name()) // the director always waits for a first check
		case "omega":
			c.unsupported(o.at, o.name(), "the director runs no quorum or server scripts at shutdown")
		case "quorum", "hysteresis":
			v, err := strconv.Atoi(o.arg(1))
			if err != nil || v < 0 {
				c.unsupported(o.at, o.name(), "%q is not a number", o.arg(1))
				continue
			}
			vs.set(o.name(), v, o.at, "")
			c.exact(o.at, o.name())
		case "quorum_up", "quorum_down":
			c.unsupported(o.at, o.name(), "the director has no quorum scripts; notify_command hears every server's change")
		case "smtp_alert":
			c.unsupported(o.at, o.name(), "e-mail alerts are not built in yet; send them from notify_command")
		case "snmp_name":
			c.exact(o.at, o.name())
		case "weight":
			c.unsupported(o.at, o.name(), "a default weight for real servers; each real server's weight is written")
		case "retry", "delay_before_retry", "warmup", "connect_timeout":
			c.unsupported(o.at, o.name(), "a virtual-server-wide checker default; only the checkers' own settings are converted")
		case "real_server":
			if r := c.realServer(o, vsHost); r != nil {
				reals = append(reals, r)
			}
		default:
			c.unsupported(o.at, o.name(), "not known to the importer")
		}
	}
	if fwd != "nat" {
		vs.set("forwarding", fwd, fwdAt, "")
	}

	// The checks: the first real server's checkers become the virtual
	// server's; another real server's differences become its own check
	// entries (overriding keys, or adding checks).
	var chosen *realOut
	for _, r := range reals {
		if len(r.checks) > 0 {
			chosen = r
			break
		}
	}
	interval := func(b *block) {
		b.set("interval", seconds(delay), delayAt, map[bool]string{true: "keepalived's default delay_loop"}[delayAt.line == 0])
	}
	if chosen == nil {
		none := &block{}
		none.set("type", "none", n.at, "no real server has a checker")
		vs.checks = []*block{none}
		for _, r := range reals {
			c.flush(r.records)
		}
	} else {
		for _, cb := range chosen.checks {
			vs.checks = append(vs.checks, &block{items: append([]item(nil), cb.items...)})
		}
		for _, cb := range vs.checks {
			interval(cb)
		}
		for _, r := range reals {
			c.flush(r.records)
			if r == chosen {
				continue
			}
			if len(r.checks) == 0 {
				c.approx(r.at, "real_server "+r.block.items[0].value, "a real server checked like the others (line %d); keepalived never checks a real server without a checker", chosen.ckNodes[0].at.line)
				continue
			}
			c.ownChecks(r, vs.checks, interval)
		}
	}
	if vsHost != nil {
		used := false
		for _, cb := range vs.checks {
			if t, _ := cb.get("type"); t == `"http"` || t == `"https"` {
				if _, ok := cb.get("host"); !ok {
					cb.set("host", vsHost.arg(1), vsHost.at, "")
				}
				used = true
			}
		}
		if used {
			c.exact(vsHost.at, vsHost.name())
		} else {
			c.ignored(vsHost.at, vsHost.name(), "no HTTP check uses it")
		}
	}
	// inhibit_on_failure: on the virtual server, or on every real server.
	inhibitAll := len(reals) > 0
	inhibitAny := false
	for _, r := range reals {
		inhibitAll = inhibitAll && r.inhibit
		inhibitAny = inhibitAny || r.inhibit
	}
	if inhibitVS || inhibitAll {
		vs.set("on_failure", "quiesce", n.at, "inhibit_on_failure")
	} else if inhibitAny {
		for _, r := range reals {
			if r.inhibit {
				c.approx(r.at, "inhibit_on_failure", "on_failure = \"remove\" of its virtual server: the director sets it per virtual server")
			}
		}
	}

	// A group becomes the director's own: one virtual server with
	// addresses and one with fwmarks, which cannot mix (and one per
	// address family, which a virtual server's addresses share).
	units := []memberUnit{{members: members}}
	if isGroup {
		units = c.groupUnits(members)
	}
	warnedPorts := false
	for _, unit := range units {
		u, asGroup := unit.members, unit.group
		m := u[0]
		out := &vsBlock{}
		out.comment = []string{fmt.Sprintf("%s: %s", n.at, what)}
		switch {
		case asGroup:
			out.comment = append(out.comment, fmt.Sprintf("%s: virtual_server_group %s", group.at, n.arg(2)))
		case isGroup:
			out.comment = append(out.comment, fmt.Sprintf("%s: member %s", m.at, m))
		}
		name := ""
		if asGroup {
			name = c.uniqueGroupName(n.arg(2), m, proto, units)
		} else {
			name = c.uniqueName(m, proto)
		}
		out.set("name", name, pos{}, "")
		var entries []string
		var lines []string
		ports := map[int]bool{}
		for _, e := range u {
			if e.fwmark != 0 {
				entries = append(entries, strconv.Itoa(e.fwmark))
			} else {
				entries = append(entries, tomlString(e.String()))
				ports[e.port] = true
			}
			lines = append(lines, strconv.Itoa(e.at.line))
		}
		listFrom, listNote := m.at, ""
		if len(lines) > 1 {
			listFrom, listNote = pos{}, "lines "+strings.Join(lines, ", ")
		}
		switch {
		case asGroup && m.fwmark != 0:
			out.set("fwmarks", rawTOML("["+strings.Join(entries, ", ")+"]"), listFrom, listNote)
		case asGroup:
			out.set("addresses", rawTOML("["+strings.Join(entries, ", ")+"]"), listFrom, listNote)
		case m.fwmark != 0:
			out.set("fwmark", m.fwmark, m.at, "")
		default:
			out.set("address", m.String(), m.at, "")
		}
		if m.fwmark != 0 {
			f := family
			if f == "" {
				f = "ipv4"
				for _, r := range reals {
					if strings.HasPrefix(r.block.items[0].value, `"[`) {
						f = "ipv6"
					}
				}
			}
			out.set("family", f, m.at, "")
		} else if proto != "tcp" {
			out.set("protocol", proto, m.at, "")
		}
		out.items = append(out.items, vs.items...)
		out.checks = slices.Clone(vs.checks)
		for _, r := range reals {
			rb := &block{items: append([]item(nil), r.block.items...), checks: r.block.checks}
			if m.fwmark == 0 && fwd != "nat" && len(ports) == 1 {
				fixDRPort(rb, m.port)
			}
			out.reals = append(out.reals, rb)
		}
		switch {
		case m.fwmark != 0:
			if !fwmarkPorts(out, "keepalived", "keepalived ignores a fwmark real server's port") && !warnedPorts {
				warnedPorts = true
				c.approx(m.at, "fwmark "+strconv.Itoa(m.fwmark), "a check on each real server's own port cannot be kept: the real servers of this fwmark service use different ports and IPVS ignores them; set the check's port")
			}
		case fwd != "nat" && len(ports) > 1:
			// Under DR and TUN each address's service reaches the real
			// servers on its own port: written without one, a real
			// server takes each address's port, as in keepalived's table.
			for i, it := range out.items {
				if ap, err := netip.ParseAddrPort(unquote(it.value)); it.key == "fallback" && err == nil {
					out.items[i].value = tomlString(ap.Addr().String())
					out.items[i].note = "each address's own port, as " + fwd + " forwarding has it"
				}
			}
			if !fwmarkPorts(out, "keepalived", "each address's own port, as "+fwd+" forwarding has it") && !warnedPorts {
				warnedPorts = true
				c.approx(m.at, "real_server", "a check on each real server's own port cannot be kept: the real servers use different ports and the group's addresses different ones again; set the check's port")
			}
		}
		c.doc.vss = append(c.doc.vss, out)
	}
}

// memberUnit is what one director virtual server stands for: members
// written as a group (addresses or fwmarks), or one address or mark.
type memberUnit struct {
	members []member
	group   bool
}

// groupUnits splits a group's members into the director's virtual
// servers: IPv4 addresses, IPv6 addresses and fwmarks apart, each within
// the config's bounds on a group's size; members beyond what all groups
// of a config may expand to become virtual servers of their own.
func (c *kaConv) groupUnits(members []member) []memberUnit {
	var v4, v6, marks []member
	for _, m := range members {
		switch {
		case m.fwmark != 0:
			marks = append(marks, m)
		case m.addr.Is4():
			v4 = append(v4, m)
		default:
			v6 = append(v6, m)
		}
	}
	var units []memberUnit
	for _, kind := range [][]member{v4, v6, marks} {
		var cur []member
		size := 0
		flush := func() {
			if len(cur) > 0 {
				units = append(units, memberUnit{members: cur, group: true})
			}
			cur, size = nil, 0
		}
		for _, m := range kind {
			k := max(m.count, 1)
			if c.groupServices+k > config.MaxGroupServices {
				flush()
				for _, s := range m.singles() {
					units = append(units, memberUnit{members: []member{s}})
				}
				if m.count > 1 {
					c.approx(m.at, m.host(), "%d virtual servers, one per address: all groups of a config together expand to at most %d services", m.count, config.MaxGroupServices)
				}
				continue
			}
			if size+k > config.MaxGroupMembers {
				flush()
			}
			c.groupServices += k
			cur = append(cur, m)
			size += k
		}
		flush()
	}
	return units
}

// uniqueGroupName names a group's virtual server after the group; when
// the group takes several, those after the first kind say what they hold.
func (c *kaConv) uniqueGroupName(gname string, m member, proto string, units []memberUnit) string {
	name := gname
	if memberKind(m) != memberKind(units[0].members[0]) {
		name += "-" + memberKind(m)
	}
	if proto != "tcp" {
		name += "/" + proto
	}
	c.names[name]++
	if c.names[name] > 1 {
		name += "#" + strconv.Itoa(c.names[name])
	}
	return name
}

func memberKind(m member) string {
	switch {
	case m.fwmark != 0:
		return "fwmarks"
	case m.addr.Is4():
		return "ipv4"
	}
	return "ipv6"
}

// fwmarkPorts drops the real servers' ports from a fwmark service, as
// keepalived does (ipvsadm, so ldirectord, keeps them), and moves them to
// the check, which keepalived runs on them. It says false when the real
// servers' ports differ and the check has none of its own.
func fwmarkPorts(vs *vsBlock, who, note string) bool {
	ports := map[uint16]bool{}
	for _, rb := range vs.reals {
		s, _ := strconv.Unquote(rb.items[0].value)
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			continue
		}
		ports[ap.Port()] = true
		rb.items[0].value = tomlString(ap.Addr().String())
		rb.items[0].note = note
	}
	if len(ports) == 0 {
		return true
	}
	for i, cb := range vs.checks {
		t, _ := cb.get("type")
		if _, has := cb.get("port"); has || t == `"none"` || t == `"icmp"` {
			continue
		}
		if len(ports) > 1 {
			return false
		}
		check := &block{comment: cb.comment, items: append([]item(nil), cb.items...)}
		for p := range ports {
			check.set("port", int(p), pos{}, "the real servers' port, which "+who+" checks")
		}
		vs.checks[i] = check
	}
	return true
}

// tunnelOptions reads what follows "lvs_method TUN": type ipip, gue (with
// port N) or gre, and nocsum, csum or remcsum; it says what is wrong.
func tunnelOptions(vs *vsBlock, o *knode, ports PortLookup) string {
	if strings.ToUpper(o.arg(1)) != "TUN" {
		return "options after " + o.arg(1)
	}
	typ, port, csum := "ipip", 0, ""
	w := o.words[2:]
	for i := 0; i < len(w); i++ {
		switch w[i] {
		case "type":
			if i+1 >= len(w) {
				return "type needs ipip, gue or gre"
			}
			i++
			typ = w[i]
			if typ != "ipip" && typ != "gue" && typ != "gre" {
				return fmt.Sprintf("no tunnel type %q", typ)
			}
		case "port":
			if i+1 >= len(w) {
				return "port needs a number"
			}
			i++
			p, err := ports.port(w[i])
			if err != nil || p == 0 {
				return fmt.Sprintf("%q is not a port", w[i])
			}
			port = p
		case "nocsum":
			csum = "none"
		case "csum", "remcsum":
			csum = w[i]
		default:
			return fmt.Sprintf("%q is not a tunnel option", w[i])
		}
	}
	if (typ == "gue") != (port != 0) || (typ == "ipip" && csum != "" && csum != "none") || (typ == "gre" && csum == "remcsum") {
		return "not a tunnel the kernel has (gue needs a port, ipip takes no checksum, remcsum is for gue)"
	}
	if typ != "ipip" {
		vs.set("tun_type", typ, o.at, "")
	}
	if port != 0 {
		vs.set("tun_port", port, o.at, "")
	}
	if csum != "" && typ != "ipip" {
		vs.set("tun_csum", csum, o.at, "")
	}
	return ""
}

// fixDRPort writes a dr/tun real server with the virtual server's port:
// IPVS cannot change the port then, and ipvsadm and keepalived put the
// virtual server's port in the table whatever was written.
func fixDRPort(rb *block, port int) {
	if rb.items[0].key != "address" {
		return
	}
	s, _ := strconv.Unquote(rb.items[0].value)
	ap, err := netip.ParseAddrPort(s)
	if err != nil || int(ap.Port()) == port {
		return
	}
	rb.items[0].value = tomlString(hostPort(ap.Addr().String(), port))
}

func (c *kaConv) uniqueName(m member, proto string) string {
	name := m.String()
	if m.fwmark != 0 {
		name = "fwmark-" + strconv.Itoa(m.fwmark)
	} else if proto != "tcp" {
		name += "/" + proto
	}
	c.names[name]++
	if c.names[name] > 1 {
		name += "#" + strconv.Itoa(c.names[name])
	}
	return name
}

func countReals(n *knode) int {
	k := 0
	for _, o := range n.children {
		if o.name() == "real_server" {
			k++
		}
	}
	return k
}

func (c *kaConv) realServer(o *knode, vsHost *knode) *realOut {
	a, err := netip.ParseAddr(o.arg(1))
	port := 0
	if o.arg(2) != "" {
		p, perr := c.ports.port(o.arg(2))
		if perr != nil {
			err = perr
		}
		port = p
	}
	if err != nil {
		c.unsupported(o.at, "real_server "+strings.Join(o.words[1:], " "), "not an address and port; this real server is not converted")
		return nil
	}
	r := &realOut{at: o.at, block: &block{}}
	addr := a.String()
	if port != 0 {
		addr = hostPort(addr, port)
	}
	r.block.set("address", addr, o.at, "")
	r.block.set("weight", kaWeight, o.at, "keepalived's default weight")
	c.exact(o.at, "real_server")
	for _, x := range o.children {
		switch x.name() {
		case "weight":
			v, err := strconv.Atoi(x.arg(1))
			if err != nil || v < 0 || v > 65535 {
				c.unsupported(x.at, x.name(), "%q is not a weight 0-65535", x.arg(1))
				continue
			}
			r.block.set("weight", v, x.at, "")
			c.exact(x.at, x.name())
		case "lvs_method":
			f := map[string]string{"NAT": "nat", "DR": "dr", "TUN": "tun"}[strings.ToUpper(x.arg(1))]
			if f == "" || len(x.words) > 2 {
				c.unsupported(x.at, x.name(), "%q: only NAT, DR and TUN (ipip)", strings.Join(x.words[1:], " "))
				continue
			}
			r.block.set("forwarding", f, x.at, "")
			c.exact(x.at, x.name())
		case "inhibit_on_failure":
			r.inhibit = true
			c.exact(x.at, x.name())
		case "uthreshold", "lthreshold":
			c.unsupported(x.at, x.name(), "the director sets no connection thresholds")
		case "notify_up", "notify_down":
			c.unsupported(x.at, x.name(), "per-server scripts: notify_command on the virtual server hears every change (DIRECTOR_REAL_SERVER says which)")
		case "smtp_alert":
			c.unsupported(x.at, x.name(), "e-mail alerts are not built in yet; send them from notify_command")
		case "alpha":
			c.exact(x.at, x.name())
		case "retry", "delay_before_retry", "warmup", "connect_timeout", "delay_loop":
			c.unsupported(x.at, x.name(), "a checker default on the real server; only the checkers' own settings are converted")
		case "virtualhost":
			c.unsupported(x.at, x.name(), "set on the checker instead")
		case "HTTP_GET", "SSL_GET", "TCP_CHECK", "MISC_CHECK", "SMTP_CHECK", "DNS_CHECK", "UDP_CHECK", "PING_CHECK", "BFD_CHECK", "FILE_CHECK":
			bs, recs := c.checker(x, vsHost)
			r.records = append(r.records, recs...)
			for _, b := range bs {
				// Two checks of one type need names of their own.
				t, _ := b.get("type")
				same := 1
				for _, o := range r.checks {
					if ot, _ := o.get("type"); ot == t {
						same++
					}
				}
				if same > 1 {
					tn, _ := strconv.Unquote(t)
					b.set("name", tn+"-"+strconv.Itoa(same), x.at, "")
				}
				r.checks = append(r.checks, b)
				r.ckNodes = append(r.ckNodes, x)
			}
		default:
			c.unsupported(x.at, x.name(), "not known to the importer")
		}
	}
	return r
}

// checker converts one checker block into a check; its options' outcomes
// are returned to be counted once the virtual server's check is chosen.
func (c *kaConv) checker(x *knode, vsHost *knode) ([]*block, []record) {
	var recs []record
	ok := func(o *knode) { recs = append(recs, record{at: o.at, opt: o.name()}) }
	bad := func(o *knode, out Outcome, format string, args ...any) {
		recs = append(recs, record{at: o.at, opt: o.name(), outcome: out, msg: fmt.Sprintf(format, args...)})
	}
	b := &block{}
	kind := x.name()
	switch kind {
	case "HTTP_GET":
		b.set("type", "http", x.at, "")
	case "SSL_GET":
		b.set("type", "https", x.at, "")
		b.set("tls_skip_verify", true, x.at, "keepalived does not verify certificates")
	case "TCP_CHECK":
		b.set("type", "tcp", x.at, "")
	case "MISC_CHECK":
		b.set("type", "exec", x.at, "")
	case "SMTP_CHECK":
		b.set("type", "dialogue", x.at, "")
	case "DNS_CHECK":
		b.set("type", "dns", x.at, "")
	case "UDP_CHECK":
		b.set("type", "udp", x.at, "")
	case "PING_CHECK":
		b.set("type", "icmp", x.at, "")
	default:
		bad(x, NotConverted, "no such check in the director; the real server is checked by its other checkers or not at all")
		return nil, recs
	}
	ok(x)
	retry, retryAt := kaRetry, pos{}
	// keepalived waits 3s before retrying an HTTP or SSL check, 1s others.
	retryDelay, retryDelayAt := 1.0, pos{}
	if kind == "HTTP_GET" || kind == "SSL_GET" {
		retryDelay = 3
	}
	timeout := float64(kaConnectTimeout)
	var timeoutAt pos
	helo := "smtpchecker.keepalived.org"
	var hosts []*knode
	var urls []*block
	for _, o := range x.children {
		switch o.name() {
		case "connect_timeout", "misc_timeout":
			v, good := kaSeconds(o.arg(1))
			if !good {
				bad(o, NotConverted, "%q is not a number of seconds", o.arg(1))
				continue
			}
			timeout, timeoutAt = v, o.at
			ok(o)
		case "connect_port":
			p, err := c.ports.port(o.arg(1))
			if err != nil || p == 0 {
				bad(o, NotConverted, "%q is not a port", o.arg(1))
				continue
			}
			b.set("port", p, o.at, "")
			ok(o)
		case "connect_ip":
			if _, err := netip.ParseAddr(o.arg(1)); err != nil {
				bad(o, NotConverted, "%q is not an address", o.arg(1))
				continue
			}
			b.set("address", o.arg(1), o.at, "")
			ok(o)
		case "bindto", "bind_to":
			if _, err := netip.ParseAddr(o.arg(1)); err != nil {
				bad(o, NotConverted, "%q is not an address", o.arg(1))
				continue
			}
			b.set("source", o.arg(1), o.at, "")
			ok(o)
		case "bind_port", "bind_if", "fwmark":
			bad(o, NotConverted, "the director's checks choose their own source port and route")
		case "retry", "nb_get_retry":
			v, err := strconv.Atoi(o.arg(1))
			if err != nil || v < 0 {
				bad(o, NotConverted, "%q is not a number", o.arg(1))
				continue
			}
			retry, retryAt = v, o.at
			ok(o)
		case "delay_before_retry":
			v, good := kaSeconds(o.arg(1))
			if !good {
				bad(o, NotConverted, "%q is not a number of seconds", o.arg(1))
				continue
			}
			retryDelay, retryDelayAt = v, o.at
			ok(o)
		case "warmup":
			bad(o, NotConverted, "the director spreads its first checks itself")
		case "delay_loop":
			bad(o, Approximate, "the virtual server's interval (delay_loop there): the director has one interval per check")
		case "alpha":
			ok(o)
		case "url":
			ok(o)
			ub := &block{}
			for _, u := range o.children {
				switch u.name() {
				case "path":
					ub.set("path", u.arg(1), u.at, "")
					ok(u)
				case "status_code":
					ub.set("expect_status", u.words[1:], u.at, "")
					ok(u)
				case "digest":
					ub.set("expect_digest", strings.ToLower(u.arg(1)), u.at, "")
					ok(u)
				case "regex":
					ub.set("expect_body", u.arg(1), u.at, "")
					ok(u)
				case "virtualhost":
					b.set("host", u.arg(1), u.at, "")
					ok(u)
				default:
					bad(u, NotConverted, "no such HTTP check setting in the director")
				}
			}
			if _, has := ub.get("path"); !has {
				ub.set("path", "/", o.at, "")
			}
			urls = append(urls, ub)
		case "virtualhost":
			b.set("host", o.arg(1), o.at, "")
			ok(o)
		case "enable_sni":
			ok(o) // the director always sends SNI
		case "misc_path":
			cmd := splitCommand(o.arg(1))
			if len(o.words) > 2 {
				cmd = append(cmd, o.words[2:]...)
			}
			if len(cmd) == 0 {
				bad(o, NotConverted, "an empty command")
				continue
			}
			b.set("command", cmd, o.at, "")
			ok(o)
		case "misc_dynamic":
			b.set("dynamic_weight", true, o.at, "")
			ok(o)
		case "user":
			b.set("user", o.arg(1), o.at, "")
			ok(o)
		case "helo_name":
			helo = o.arg(1)
			ok(o)
		case "host":
			hosts = append(hosts, o)
		case "type":
			b.set("query_type", strings.ToUpper(o.arg(1)), o.at, "")
			ok(o)
		case "name":
			b.set("query_name", o.arg(1), o.at, "")
			ok(o)
		case "payload":
			b.set("send", hexEscapes(o.arg(1)), o.at, "")
			ok(o)
		case "require_reply":
			b.set("expect", "^"+regexpBytes(o.arg(1)), o.at, "")
			ok(o)
		case "min_reply_length", "max_reply_length":
			bad(o, NotConverted, "the udp check matches the answer's content, not its length")
		default:
			bad(o, NotConverted, "no such checker setting in the director")
		}
	}
	switch {
	case len(urls) == 1:
		b.items = append(b.items, urls[0].items...)
	case len(urls) > 1:
		// Several url blocks: url entries, as an array of inline tables.
		var list strings.Builder
		list.WriteString("[\n")
		for _, u := range urls {
			var kv []string
			for _, it := range u.items {
				kv = append(kv, it.key+" = "+it.value)
			}
			list.WriteString("  { " + strings.Join(kv, ", ") + " },\n")
		}
		list.WriteString("]")
		b.set("url", rawTOML(list.String()), urls[0].items[0].from, "")
	}
	if kind == "SMTP_CHECK" {
		b.set("steps", rawTOML("[\n    { expect = '^220' },\n    { send = "+tomlValue("HELO "+helo+`\r\n`)+", expect = '^250' },\n    { send = 'QUIT\\r\\n', expect = '^221' },\n  ]"), x.at, "")
	}
	if kind == "UDP_CHECK" {
		if _, has := b.get("expect"); !has {
			recs = append(recs, record{at: x.at, opt: kind, outcome: Approximate,
				msg: "a check that wants an answer: keepalived without require_reply counts silence as up"})
		}
	}
	if kind == "MISC_CHECK" {
		if _, has := b.get("command"); !has {
			bad(x, NotConverted, "a MISC_CHECK without misc_path")
			return nil, recs
		}
	}
	b.set("timeout", seconds(timeout), timeoutAt, map[bool]string{true: "keepalived's default connect_timeout"}[timeoutAt.line == 0])
	b.set("fall", retry+1, retryAt, "a server is down after the first failure and its retries")
	if retry > 0 {
		b.set("retry_interval", seconds(retryDelay), retryDelayAt, map[bool]string{true: "keepalived's default delay_before_retry"}[retryDelayAt.line == 0])
	}
	_ = vsHost
	if len(hosts) == 0 {
		return []*block{b}, recs
	}
	// SMTP_CHECK host blocks: each host is checked instead of the real
	// server, all of them must answer.
	var out []*block
	for _, h := range hosts {
		hb := &block{items: append([]item(nil), b.items...)}
		recs = append(recs, record{at: h.at, opt: h.name()})
		for _, o := range h.children {
			key := map[string]string{"connect_ip": "address", "connect_port": "port", "bindto": "source", "bind_to": "source"}[o.name()]
			if key == "" {
				recs = append(recs, record{at: o.at, opt: o.name(), outcome: NotConverted, msg: "no such setting for a host in the director"})
				continue
			}
			if key == "port" {
				p, err := c.ports.port(o.arg(1))
				if err != nil || p == 0 {
					recs = append(recs, record{at: o.at, opt: o.name(), outcome: NotConverted, msg: fmt.Sprintf("%q is not a port", o.arg(1))})
					continue
				}
				hb.set(key, p, o.at, "")
			} else {
				if _, err := netip.ParseAddr(o.arg(1)); err != nil {
					recs = append(recs, record{at: o.at, opt: o.name(), outcome: NotConverted, msg: fmt.Sprintf("%q is not an address", o.arg(1))})
					continue
				}
				hb.set(key, o.arg(1), o.at, "")
			}
			recs = append(recs, record{at: o.at, opt: o.name()})
		}
		out = append(out, hb)
	}
	return out, recs
}

func parseSeconds(s string) (float64, error) {
	if v, ok := strings.CutSuffix(s, "ms"); ok {
		f, err := strconv.ParseFloat(v, 64)
		return f / 1000, err
	}
	return strconv.ParseFloat(strings.TrimSuffix(s, "s"), 64)
}

// checkName is a check's name: its name key, else its type.
func checkName(b *block) string {
	if v, ok := b.get("name"); ok {
		return v
	}
	v, _ := b.get("type")
	return v
}

// ownChecks writes what a real server's checkers do differently from the
// virtual server's checks as its own check entries: keys that differ
// override, a checker the others lack is added.
func (c *kaConv) ownChecks(r *realOut, vsChecks []*block, interval func(*block)) {
	seen := map[string]bool{}
	for i, rc := range r.checks {
		name := checkName(rc)
		seen[name] = true
		var vc *block
		for _, x := range vsChecks {
			if checkName(x) == name {
				vc = x
			}
		}
		own := &block{}
		nameValue, _ := strconv.Unquote(name)
		own.set("name", nameValue, r.ckNodes[i].at, "")
		if vc == nil {
			own.items = append(own.items[:0], rc.items...)
			if _, ok := own.get("name"); !ok {
				own.set("name", nameValue, r.ckNodes[i].at, "")
			}
			interval(own)
			r.block.checks = append(r.block.checks, own)
			continue
		}
		for _, it := range rc.items {
			if v, ok := vc.get(it.key); !ok || v != it.value {
				own.items = append(own.items, it)
			}
		}
		for _, it := range vc.items {
			if _, ok := rc.get(it.key); !ok && it.key != "interval" && it.key != "name" {
				c.approx(r.ckNodes[i].at, r.ckNodes[i].name(), "the check of line %d with %s = %s, which this checker does not set: an override cannot unset a key", vc.items[0].from.line, it.key, it.value)
			}
		}
		if len(own.items) > 1 {
			r.block.checks = append(r.block.checks, own)
		}
	}
	for _, vc := range vsChecks {
		if !seen[checkName(vc)] {
			c.approx(r.at, "real_server "+r.block.items[0].value, "also checked by %s, a checker the others have and this real server has not", checkName(vc))
		}
	}
}

func kaSeconds(s string) (float64, bool) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 || v > 86400 {
		return 0, false
	}
	return v, true
}

// netmaskBits reads a dotted IPv4 netmask or a prefix length.
func netmaskBits(s string) (int, bool) {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 128 {
		return n, true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return 0, false
	}
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	bits := 0
	for v&0x80000000 != 0 {
		bits++
		v <<= 1
	}
	if v != 0 {
		return 0, false // not contiguous
	}
	return bits, true
}

// splitCommand splits misc_path as keepalived does: blanks separate
// words, single or double quotes group them.
func splitCommand(s string) []string {
	var out []string
	var cur strings.Builder
	in := false
	var q byte
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case q != 0 && ch == q:
			q = 0
		case q != 0:
			cur.WriteByte(ch)
		case ch == '\'' || ch == '"':
			q = ch
			in = true
		case ch == ' ' || ch == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(ch)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// hexEscapes turns keepalived's hex payload ("0a0b...") into \xNN escapes.
func hexEscapes(s string) string {
	var b strings.Builder
	for i := 0; i+1 < len(s); i += 2 {
		b.WriteString(`\x` + s[i:i+2])
	}
	return b.String()
}

func regexpBytes(s string) string { return hexEscapes(s) }

func parseStringList(v string) []string {
	v = strings.Trim(v, "[]")
	if v == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(v, ", ") {
		s, err := strconv.Unquote(p)
		if err == nil {
			out = append(out, s)
		}
	}
	return out
}

var knownSchedulers = map[string]bool{
	"rr": true, "wrr": true, "lc": true, "wlc": true, "lblc": true, "lblcr": true, "dh": true, "sh": true,
	"sed": true, "nq": true, "mh": true, "fo": true, "ovf": true, "twos": true,
}

// wellKnownPorts are the service names ipvsadm and ldirectord print or
// accept most often, as /etc/services has them.
var wellKnownPorts = map[string]int{
	"ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "http": 80, "www": 80, "pop3": 110, "nntp": 119,
	"ntp": 123, "imap": 143, "imap2": 143, "snmp": 161, "ldap": 389, "https": 443, "submission": 587, "ldaps": 636,
	"imaps": 993, "pop3s": 995, "ms-sql-s": 1433, "openvpn": 1194, "radius": 1812, "mysql": 3306, "sip": 5060,
	"postgresql": 5432, "http-alt": 8080, "webcache": 8080, "submissions": 465, "radius-acct": 1813, "rsync": 873,
	"microsoft-ds": 445, "kerberos": 88, "memcache": 11211, "redis": 6379,
}
