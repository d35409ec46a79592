package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Groups: one [[virtual_server]] with addresses = [...] or fwmarks = [...]
// stands for several kernel services that share everything else
// (keepalived's virtual_server_group). The loader expands it into one
// VirtualServer per member, named "NAME@MEMBER" ("web@192.0.2.10:80",
// "web@[2001:db8::10]:443", "web@fwmark10") with Group = NAME. Being
// ordinary virtual servers, the members need nothing new downstream:
// status, metrics, the API, overrides, Diff and reloads and the state
// file key them like any other, and their identical checks are shared,
// so a real server is still probed once whatever the group's size.

// Bounds on expansion, so that a typo in a range ("10.0.0.1-255" meant
// as "-25") is an error rather than hundreds of services made silently.
const (
	MaxGroupMembers  = 256  // services one [[virtual_server]] may expand to
	MaxGroupServices = 1024 // services all groups of a config may expand to
)

// member is one service of a group: an address or a fwmark.
type member struct {
	ap   netip.AddrPort
	mark uint32
}

func (m member) label() string {
	if m.mark != 0 {
		return "fwmark" + strconv.FormatUint(uint64(m.mark), 10)
	}
	return m.ap.String()
}

// addrRange is one entry of addresses: first..last, one port.
type addrRange struct {
	first netip.Addr
	count int // 1 for a single address
	port  uint16
}

// parseAddrRange reads "ip:port", "[ipv6]:port", "a.b.c.d-e:port" (the
// last octet ranges to e) or "[x::a-b]:port" (the last 16-bit group
// ranges to b, in hex), the port already a number.
func parseAddrRange(s string) (addrRange, string) {
	var host, port string
	if strings.HasPrefix(s, "[") {
		h, p, ok := strings.Cut(s[1:], "]:")
		if !ok {
			return addrRange{}, fmt.Sprintf("%q is not an address and port, such as \"[2001:db8::10]:443\" or \"[2001:db8::10-1f]:443\"", s)
		}
		host, port = h, p
	} else {
		i := strings.LastIndexByte(s, ':')
		if i < 0 || strings.Count(s, ":") > 1 {
			if a, err := netip.ParseAddr(s); err == nil {
				return addrRange{}, fmt.Sprintf("%q has no port; write %q", s, netip.AddrPortFrom(a, 80).String())
			}
			return addrRange{}, fmt.Sprintf("%q is not an address and port, such as \"192.0.2.10:80\" or \"192.0.2.10-20:80\"", s)
		}
		host, port = s[:i], s[i+1:]
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return addrRange{}, fmt.Sprintf("%q: port %q is not 1-65535", s, port)
	}
	from, to, isRange := strings.Cut(host, "-")
	first, err := netip.ParseAddr(from)
	if err != nil || first.Zone() != "" {
		return addrRange{}, fmt.Sprintf("%q: %q is not an IP address", s, from)
	}
	r := addrRange{first: first.Unmap(), count: 1, port: uint16(p)}
	if !isRange {
		return r, ""
	}
	if first.Is4() {
		last, err := strconv.ParseUint(to, 10, 8)
		start := uint64(first.As4()[3])
		if err != nil || last < start {
			return addrRange{}, fmt.Sprintf("%q: a range ends in the last octet, from %d to a number %d-255, such as \"%s-%d\"", s, start, start, from, min(start+9, 255))
		}
		r.count = int(last-start) + 1
		return r, ""
	}
	b := first.As16()
	start := uint64(b[14])<<8 | uint64(b[15])
	last, err := strconv.ParseUint(to, 16, 16)
	if err != nil || last < start {
		return addrRange{}, fmt.Sprintf("%q: a range ends in the last group, from %x to a hex number %x-ffff, such as \"[%s-%x]\"", s, start, start, from, min(start+15, 0xffff))
	}
	r.count = int(last-start) + 1
	return r, ""
}

// addrs lists the range's addresses; count is bounded by the caller.
func (r addrRange) addrs() []netip.AddrPort {
	out := make([]netip.AddrPort, 0, r.count)
	a := r.first
	for range r.count {
		out = append(out, netip.AddrPortFrom(a, r.port))
		a = a.Next()
	}
	return out
}

// groupMembers reads addresses or fwmarks, reporting what is wrong. ok is
// false when any entry is unusable (the members read are then not to be
// used); budget is what MaxGroupServices leaves for this group.
func (l *loader) groupMembers(t table, proto string, budget int) (ms []member, ok bool) {
	ok = true
	limit := min(MaxGroupMembers, budget)
	tooMany := func(n node, total int) {
		why := fmt.Sprintf("a [[virtual_server]] may expand to at most %d", MaxGroupMembers)
		if budget < MaxGroupMembers {
			why = fmt.Sprintf("all groups of a config together may expand to at most %d (%d are left here)", MaxGroupServices, max(budget, 0))
		}
		l.errorf(n, "expands to %d kernel services; %s: check the ranges for a typo (\"10.0.0.1-255\" is 255 addresses), or split the group", total, why)
		ok = false
	}
	if t.has("addresses") {
		list, n, listOK := t.strList("addresses")
		if !listOK {
			return nil, false
		}
		if len(list) == 0 {
			l.errorf(n, "is empty; list the virtual addresses, such as [\"192.0.2.10-20:80\"]")
			return nil, false
		}
		total := 0
		ranges := make([]addrRange, 0, len(list))
		for i, s := range list {
			en := n.elem(i, strconv.Itoa(i))
			numbered, named := l.withPortNumber(s, en, proto)
			if !named {
				ok = false
				continue
			}
			r, msg := parseAddrRange(numbered)
			if msg != "" {
				l.errorf(en, "%s", msg)
				ok = false
				continue
			}
			if msg := refusedVIP(r.first); msg != "" {
				l.errorf(en, "%s", msg)
				ok = false
				continue
			}
			total += r.count
			ranges = append(ranges, r)
		}
		if total > limit {
			tooMany(n, total)
		}
		if !ok {
			return nil, false
		}
		seen := map[netip.AddrPort]int{}
		for i, r := range ranges {
			for _, ap := range r.addrs() {
				if j, dup := seen[ap]; dup {
					l.errorf(n.elem(i, strconv.Itoa(i)), "%s is already in entry %d of addresses", ap, j)
					ok = false
					continue
				}
				seen[ap] = i
				ms = append(ms, member{ap: ap})
			}
		}
		if f := familyOf(ms[0].ap.Addr()); ok {
			for i, r := range ranges {
				if familyOf(r.first) != f {
					l.errorf(n.elem(i, strconv.Itoa(i)), "%s is %s but the first address is %s; one virtual server's addresses share a family (its real servers do): write two virtual servers", r.first, familyName(familyOf(r.first)), familyName(f))
					ok = false
				}
			}
		}
		return ms, ok
	}
	v, n, _ := t.get("fwmarks")
	arr, isArr := v.([]any)
	if !isArr || len(arr) == 0 {
		l.errorf(n, "must be a non-empty array of firewall marks, such as [10, 11]")
		return nil, false
	}
	if len(arr) > limit {
		tooMany(n, len(arr))
		return nil, false
	}
	seen := map[int64]bool{}
	for i, e := range arr {
		en := n.elem(i, strconv.Itoa(i))
		m, isInt := e.(int64)
		switch {
		case !isInt:
			l.errorf(en, "must be an integer, not %s", describe(e))
			ok = false
		case m < 1 || m > 1<<32-1:
			l.errorf(en, "%d is out of range; firewall marks are 1-4294967295", m)
			ok = false
		case seen[m]:
			l.errorf(en, "fwmark %d is listed twice", m)
			ok = false
		default:
			seen[m] = true
			ms = append(ms, member{mark: uint32(m)})
		}
	}
	return ms, ok
}

// refusedVIP returns why a virtual address cannot be used, or "".
func refusedVIP(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return fmt.Sprintf("%s is the unspecified address; give the virtual IP", a)
	case a.IsMulticast():
		return fmt.Sprintf("%s is a multicast address; a virtual service needs a unicast address", a)
	}
	return ""
}

// groupTargets is what expanding a group needs to know of the real
// servers and fallback as written: where each is, and which were written
// without a port (they take each member's port under dr and tun).
type groupTargets struct {
	rsNodes    []node
	rsPortless []bool
	fbNode     node
	fbPortless bool
}

// expand turns the representative vs (parsed with the first member) into
// one virtual server per member. Under dr and tun a real server's port
// must be each member's port; one written without a port takes it.
func (l *loader) expand(vs VirtualServer, ms []member, gt groupTargets, names map[string]int, services map[string]string, n node, vsKey string) []VirtualServer {
	out := make([]VirtualServer, 0, len(ms))
	reported := map[string]bool{} // a real server's port mismatch, once
	for i, m := range ms {
		v := vs
		v.Group = vs.Name
		v.Name = vs.Name + "@" + m.label()
		if line, dup := names[v.Name]; dup {
			l.errorf(n, "its member %s has the name %q, which the virtual server on line %d already uses; rename one", m.label(), v.Name, line)
		}
		names[v.Name] = vs.Line
		if m.mark != 0 {
			v.FWMark = m.mark
		} else {
			v.Address = m.ap
		}
		l.uniqueService(&v, n, vsKey, services)
		if i == 0 {
			out = append(out, v) // vs was checked with this member
			continue
		}
		v.RealServers = make([]RealServer, len(vs.RealServers))
		for j, rs := range vs.RealServers {
			rs.Address = l.memberTarget(&v, rs.Address, rs.Forwarding, gt.rsPortless[j], gt.rsNodes[j], reported)
			v.RealServers[j] = rs
		}
		if vs.Fallback.IsValid() {
			v.Fallback = l.memberTarget(&v, vs.Fallback, vs.Forwarding, gt.fbPortless, gt.fbNode, reported)
		}
		out = append(out, v)
	}
	return out
}

// memberTarget is a real server or fallback address for member v.
func (l *loader) memberTarget(v *VirtualServer, ap netip.AddrPort, fwd string, portless bool, n node, reported map[string]bool) netip.AddrPort {
	if v.FWMark != 0 || fwd == "nat" || !ap.IsValid() {
		return ap
	}
	if portless {
		return netip.AddrPortFrom(ap.Addr(), v.Address.Port())
	}
	if ap.Port() != v.Address.Port() && !reported[n.key] {
		reported[n.key] = true
		l.errorf(n, "port %d differs from the port %d of %s; IPVS cannot change ports with %s forwarding (leave the port out to use each address's own, or forwarding = \"nat\")", ap.Port(), v.Address.Port(), v.Name, fwd)
	}
	return ap
}
