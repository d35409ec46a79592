package importer

import (
	"fmt"
	"net/mail"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// ldirectord.cf, as ldirectord's manual describes it: "key = value" lines,
// "#" comments; a line "virtual=..." starts a virtual service whose own
// lines follow, indented; global lines are not indented.

// ldirectord's defaults, where they differ from the director's.
const (
	ldCheckTimeout     = 5
	ldNegotiateTimeout = 30
	ldCheckInterval    = 10
	ldFailureCount     = 1
)

type ldLine struct {
	at    pos
	key   string
	value string
}

type ldVirtual struct {
	ldLine
	opts []ldLine
}

func parseLdirectord(name string, data []byte) ([]ldLine, []*ldVirtual, error) {
	var globals []ldLine
	var virtuals []*ldVirtual
	var cur *ldVirtual
	for i, raw := range strings.Split(string(data), "\n") {
		at := pos{name, i + 1}
		raw = strings.TrimRight(raw, "\r")
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if j := strings.Index(line, " #"); j >= 0 && !strings.Contains(line[:j], `"`) {
			line = strings.TrimSpace(line[:j])
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, nil, &ParseError{File: name, Line: i + 1, Msg: fmt.Sprintf("%q is not a key = value line", line)}
		}
		l := ldLine{at: at, key: strings.ToLower(strings.TrimSpace(k)), value: strings.TrimSpace(v)}
		indented := raw[0] == ' ' || raw[0] == '\t'
		switch {
		case l.key == "virtual" || l.key == "virtual6":
			cur = &ldVirtual{ldLine: l}
			virtuals = append(virtuals, cur)
		case indented && cur != nil:
			cur.opts = append(cur.opts, l)
		case indented:
			return nil, nil, &ParseError{File: name, Line: i + 1, Msg: "an indented line before any virtual="}
		default:
			cur = nil
			globals = append(globals, l)
		}
	}
	return globals, virtuals, nil
}

type ldConv struct {
	tally
	doc   document
	names map[string]int
	ports PortLookup
	// global values, overridable per virtual
	checkTimeout, negotiateTimeout, connectTimeout float64
	checkTimeoutAt, negotiateAt, connectAt         pos
	interval                                       float64
	intervalAt                                     pos
	failure                                        int
	failureAt                                      pos
	fallback, fallback6                            ldLine
	quiescent                                      bool
	// globalFallback is how the global fallback lines fared in the
	// virtuals that use them, by line: counted once, after them all.
	globalFallback map[pos]ldOutcome
}

// ldOutcome is an option's outcome and, unless exact, what the report says.
type ldOutcome struct {
	outcome Outcome
	msg     string
}

// ldForwarding is the director's forwarding for ldirectord's methods.
var ldForwarding = map[string]string{"gate": "dr", "masq": "nat", "ipip": "tun"}

func importLdirectord(name string, data []byte, ports PortLookup) (*Result, error) {
	globals, virtuals, err := parseLdirectord(name, data)
	if err != nil {
		return nil, err
	}
	c := &ldConv{ports: ports, names: map[string]int{}, interval: ldCheckInterval, failure: ldFailureCount, quiescent: true,
		globalFallback: map[pos]ldOutcome{}}
	c.doc.header = []string{
		"Imported from " + name + " (ldirectord) by director import.",
		"Each item names the line it came from; the report on standard error lists",
		"every option that was not converted exactly.",
	}
	c.doc.director.set("on_failure", "quiesce", pos{}, "ldirectord's default quiescent = yes")
	c.doc.director.set("on_shutdown", "flush", pos{}, "ldirectord's default cleanstop = yes")
	var mailOpts []ldLine
	for _, g := range globals {
		switch g.key {
		case "emailalert", "emailalertfrom", "smtp", "emailalertfreq":
			mailOpts = append(mailOpts, g)
		default:
			c.global(g)
		}
	}
	c.email(mailOpts)
	c.doc.defaults.set("interval", seconds(c.interval), c.intervalAt, map[bool]string{true: "ldirectord's default checkinterval"}[c.intervalAt.line == 0])
	c.doc.defaults.set("rise", 1, pos{}, "ldirectord puts a server back after one good check")
	c.doc.defaults.set("fall", c.failure, c.failureAt, map[bool]string{true: "ldirectord's default failurecount"}[c.failureAt.line == 0])
	for _, v := range virtuals {
		c.virtual(v)
	}
	for _, g := range []ldLine{c.fallback, c.fallback6} {
		if o := c.globalFallback[g.at]; g.key != "" && o.outcome != Exact {
			c.note(g.at, g.key, o.outcome, "%s", o.msg)
		} else if g.key != "" {
			c.exact(g.at, g.key)
		}
	}
	sortNotes(c.notes)
	return c.result(&c.doc), nil
}

// email converts the global mail options into [notify.email] when they
// make a complete one (recipients, a sender, a relay).
func (c *ldConv) email(opts []ldLine) {
	if len(opts) == 0 {
		return
	}
	get := map[string]ldLine{}
	for _, o := range opts {
		get[o.key] = o
	}
	var to []string
	problem := ""
	for _, a := range strings.Split(unquote(get["emailalert"].value), ",") {
		if a = strings.TrimSpace(a); a != "" {
			if _, err := mail.ParseAddress(a); err != nil || !strings.Contains(a, "@") {
				problem = fmt.Sprintf("%q is not a mail address", a)
			}
			to = append(to, a)
		}
	}
	from := unquote(get["emailalertfrom"].value)
	relay := unquote(get["smtp"].value)
	switch {
	case len(to) == 0:
		problem = "no emailalert recipients"
	case from == "":
		problem = "no emailalertfrom (ldirectord lets the system choose; the director needs it)"
	case relay == "":
		problem = "no smtp relay (ldirectord then uses the local sendmail)"
	}
	if _, err := mail.ParseAddress(from); problem == "" && (err != nil || !strings.Contains(from, "@")) {
		problem = fmt.Sprintf("%q is not a mail address", from)
	}
	if problem != "" {
		for _, o := range opts {
			c.unsupported(o.at, o.key, "[notify.email] needs a relay, a sender and recipients that are mail addresses: %s", problem)
		}
		return
	}
	if !strings.Contains(relay, ":") {
		relay += ":25"
	}
	c.doc.email.set("server", relay, get["smtp"].at, "")
	c.doc.email.set("from", from, get["emailalertfrom"].at, "")
	c.doc.email.set("to", to, get["emailalert"].at, "")
	for _, k := range []string{"emailalert", "emailalertfrom", "smtp"} {
		c.exact(get[k].at, k)
	}
	if o, ok := get["emailalertfreq"]; ok {
		if n, err := strconv.Atoi(unquote(o.value)); err == nil && n >= 0 {
			c.doc.email.set("repeat", strconv.Itoa(n)+"s", o.at, "")
			c.exact(o.at, o.key)
		} else {
			c.unsupported(o.at, o.key, "%q is not a number of seconds", o.value)
		}
	}
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

func yes(s string) (bool, bool) {
	switch strings.ToLower(unquote(s)) {
	case "yes", "y", "1", "true", "on":
		return true, true
	case "no", "n", "0", "false", "off":
		return false, true
	}
	return false, false
}

// timeouts reads the options shared by the global and virtual sections;
// it says whether it knew the option.
func (c *ldConv) common(l ldLine, t *ldTimeouts) bool {
	num := func() (float64, bool) {
		v, err := strconv.ParseFloat(unquote(l.value), 64)
		if err != nil || v <= 0 {
			c.unsupported(l.at, l.key, "%q is not a number of seconds", l.value)
			return 0, false
		}
		return v, true
	}
	switch l.key {
	case "checktimeout":
		if v, ok := num(); ok {
			t.check, t.checkAt = v, l.at
			c.exact(l.at, l.key)
		}
	case "negotiatetimeout":
		if v, ok := num(); ok {
			t.negotiate, t.negotiateAt = v, l.at
			c.exact(l.at, l.key)
		}
	case "connecttimeout":
		if v, ok := num(); ok {
			t.connect, t.connectAt = v, l.at
			c.exact(l.at, l.key)
		}
	case "failurecount":
		v, err := strconv.Atoi(unquote(l.value))
		if err != nil || v < 1 {
			c.unsupported(l.at, l.key, "%q is not a count", l.value)
			return true
		}
		t.failure, t.failureAt = v, l.at
		c.exact(l.at, l.key)
	case "checkcount":
		v, err := strconv.Atoi(unquote(l.value))
		if err != nil || v < 1 {
			c.unsupported(l.at, l.key, "%q is not a count", l.value)
			return true
		}
		if v == 1 {
			c.exact(l.at, l.key)
		} else {
			c.approx(l.at, l.key, "nothing: a check is not repeated within one round; raise fall instead")
		}
	case "emailalert", "emailalertfreq", "emailalertstatus", "emailalertfrom", "smtp":
		c.unsupported(l.at, l.key, "e-mail alerts are not built in yet; send them from notify_command")
	case "fallbackcommand":
		c.unsupported(l.at, l.key, "the director runs no command for its fallback; notify_command hears every server's change")
	default:
		return false
	}
	return true
}

type ldTimeouts struct {
	check, negotiate, connect       float64
	checkAt, negotiateAt, connectAt pos
	failure                         int
	failureAt                       pos
}

func (c *ldConv) global(l ldLine) {
	t := ldTimeouts{check: c.checkTimeout, negotiate: c.negotiateTimeout, connect: c.connectTimeout,
		checkAt: c.checkTimeoutAt, negotiateAt: c.negotiateAt, connectAt: c.connectAt, failure: c.failure, failureAt: c.failureAt}
	if c.common(l, &t) {
		c.checkTimeout, c.negotiateTimeout, c.connectTimeout = t.check, t.negotiate, t.connect
		c.checkTimeoutAt, c.negotiateAt, c.connectAt = t.checkAt, t.negotiateAt, t.connectAt
		c.failure, c.failureAt = t.failure, t.failureAt
		return
	}
	switch l.key {
	case "checkinterval":
		v, err := strconv.ParseFloat(unquote(l.value), 64)
		if err != nil || v <= 0 {
			c.unsupported(l.at, l.key, "%q is not a number of seconds", l.value)
			return
		}
		c.interval, c.intervalAt = v, l.at
		c.exact(l.at, l.key)
	case "autoreload":
		if on, ok := yes(l.value); ok {
			c.doc.director.set("watch_config", on, l.at, "")
			c.exact(l.at, l.key)
		} else {
			c.unsupported(l.at, l.key, "%q is not yes or no", l.value)
		}
	case "quiescent":
		if on, ok := yes(l.value); ok {
			c.quiescent = on
			c.doc.director.set("on_failure", map[bool]string{true: "quiesce", false: "remove"}[on], l.at, "")
			c.exact(l.at, l.key)
		} else {
			c.unsupported(l.at, l.key, "%q is not yes or no", l.value)
		}
	case "cleanstop":
		if on, ok := yes(l.value); ok {
			c.doc.director.set("on_shutdown", map[bool]string{true: "flush", false: "keep"}[on], l.at, "")
			c.exact(l.at, l.key)
		} else {
			c.unsupported(l.at, l.key, "%q is not yes or no", l.value)
		}
	case "fallback":
		c.fallback = l // counted once the virtuals that use it are read
	case "fallback6":
		c.fallback6 = l
	case "maintenancedir":
		c.doc.director.set("maintenance_dir", unquote(l.value), l.at, "")
		c.approx(l.at, l.key, "maintenance_dir: a file named after a real server drains it, as in ldirectord; see README, Admin overrides, for the names it reads")
	case "readdquiescent":
		c.unsupported(l.at, l.key, "the director puts a quiesced server back when its checks pass, whatever added it")
	case "fork":
		c.ignored(l.at, l.key, "the director always checks concurrently")
	case "logfile", "supervised", "callback", "execute":
		c.ignored(l.at, l.key, "ldirectord's own process and logging; the director logs to standard error (journald)")
	default:
		c.unsupported(l.at, l.key, "not known to the importer")
	}
}

// ldService guesses ldirectord's service from the virtual port.
var ldServiceByPort = map[int]string{21: "ftp", 25: "smtp", 53: "dns", 80: "http", 110: "pop", 119: "nntp", 143: "imap",
	389: "ldap", 443: "https", 587: "submission", 636: "ldaps", 993: "imaps", 995: "pops", 1521: "oracle",
	1812: "radius", 3128: "http_proxy", 3306: "mysql", 5432: "pgsql", 5060: "sip"}

// ldAddr reads "ip:port", "[ipv6]:port", "ip" with port names.
func ldAddr(s string, ports PortLookup) (netip.Addr, int, bool) {
	s = unquote(s)
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return netip.Addr{}, 0, false
		}
		host = s[1:end]
		port = strings.TrimPrefix(s[end+1:], ":")
	} else if i := strings.LastIndex(s, ":"); i >= 0 && strings.Count(s, ":") == 1 {
		host, port = s[:i], s[i+1:]
	} else if strings.Count(s, ":") == 2 && strings.Contains(s, "::") {
		// "192.168.6.2::5060", as the sample writes a port
		i := strings.Index(s, "::")
		if _, err := netip.ParseAddr(s[:i]); err == nil {
			host, port = s[:i], s[i+2:]
		}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	p := 0
	if port != "" {
		var perr error
		p, perr = ports.port(port)
		if perr != nil {
			return netip.Addr{}, 0, false
		}
	}
	return a.Unmap(), p, true
}

func (c *ldConv) virtual(v *ldVirtual) {
	vs := &vsBlock{}
	vs.comment = []string{fmt.Sprintf("%s: %s=%s", v.at, v.key, v.value)}
	val := unquote(v.value)
	fwmark := 0
	var vip netip.Addr
	vport := 0
	if n, err := strconv.Atoi(val); err == nil && n > 0 {
		fwmark = n
	} else if a, p, ok := ldAddr(val, c.ports); ok && p != 0 {
		vip, vport = a, p
	} else {
		reals := 0
		for _, o := range v.opts {
			if o.key == "real" || o.key == "real6" {
				reals++
			}
		}
		c.unsupported(v.at, v.key, "%q is not an address and port or a firewall mark (host names are not resolved); its %d real servers are not converted", v.value, reals)
		return
	}
	c.exact(v.at, v.key)
	t := ldTimeouts{check: c.checkTimeout, negotiate: c.negotiateTimeout, connect: c.connectTimeout,
		checkAt: c.checkTimeoutAt, negotiateAt: c.negotiateAt, connectAt: c.connectAt, failure: c.failure, failureAt: c.failureAt}
	opt := map[string]ldLine{}
	var reals []ldLine
	fallback := c.fallback
	if vip.Is6() || v.key == "virtual6" {
		fallback = c.fallback6
	}
	name := ""
	proto := "tcp"
	for _, o := range v.opts {
		if c.common(o, &t) {
			continue
		}
		switch o.key {
		case "real", "real6":
			reals = append(reals, o)
		case "fallback", "fallback6":
			fallback = o // counted where it is converted, below
		case "servicename":
			name = unquote(o.value)
			c.exact(o.at, o.key)
		case "comment":
			vs.comment = append(vs.comment, unquote(o.value))
			c.exact(o.at, o.key)
		case "scheduler":
			s := strings.ToLower(unquote(o.value))
			if knownSchedulers[s] {
				vs.set("scheduler", s, o.at, "")
				c.exact(o.at, o.key)
			} else {
				c.unsupported(o.at, o.key, "no IPVS scheduler %q; ldirectord's default wrr is used", o.value)
			}
		case "persistent":
			n, err := strconv.Atoi(unquote(o.value))
			if err != nil || n < 0 {
				c.unsupported(o.at, o.key, "%q is not a number of seconds", o.value)
				continue
			}
			vs.set("persistence", strconv.Itoa(n)+"s", o.at, "")
			c.exact(o.at, o.key)
		case "netmask":
			bits, ok := netmaskBits(unquote(o.value))
			if !ok {
				c.unsupported(o.at, o.key, "%q is not a netmask", o.value)
				continue
			}
			vs.set("persistence_netmask", bits, o.at, "")
			c.exact(o.at, o.key)
		case "protocol":
			switch p := strings.ToLower(unquote(o.value)); p {
			case "tcp", "udp", "sctp":
				proto = p
				c.exact(o.at, o.key)
			case "fwm":
				c.exact(o.at, o.key)
			default:
				c.unsupported(o.at, o.key, "no protocol %q; tcp is used", o.value)
			}
		case "ops":
			if on, ok := yes(o.value); ok {
				if on {
					vs.set("ops", true, o.at, "")
				}
				c.exact(o.at, o.key)
			}
		case "quiescent":
			if on, ok := yes(o.value); ok {
				vs.set("on_failure", map[bool]string{true: "quiesce", false: "remove"}[on], o.at, "")
				c.exact(o.at, o.key)
			} else {
				c.unsupported(o.at, o.key, "%q is not yes or no", o.value)
			}
		case "checkinterval":
			c.approx(o.at, o.key, "the global checkinterval: ldirectord reads it per virtual only with fork = yes")
		case "monitorfile":
			c.ignored(o.at, o.key, "the director logs every check's change to standard error")
		case "cleanstop":
			c.unsupported(o.at, o.key, "on_shutdown is set for the whole director")
		case "service", "checktype", "checkport", "request", "receive", "virtualhost", "login", "passwd", "database",
			"secret", "httpmethod", "checkcommand":
			opt[o.key] = o
		default:
			c.unsupported(o.at, o.key, "not known to the importer")
		}
	}
	if name == "" {
		if fwmark != 0 {
			name = "fwmark-" + strconv.Itoa(fwmark)
		} else {
			name = hostPort(vip.String(), vport)
			if proto != "tcp" {
				name += "/" + proto
			}
		}
	}
	c.names[name]++
	if c.names[name] > 1 {
		name += "#" + strconv.Itoa(c.names[name])
	}
	vs.items = append([]item{{key: "name", value: tomlString(name)}}, vs.items...)
	head := []item{}
	if fwmark != 0 {
		head = append(head, item{key: "fwmark", value: strconv.Itoa(fwmark), from: v.at})
		fam := "ipv4"
		if v.key == "virtual6" {
			fam = "ipv6"
		}
		head = append(head, item{key: "family", value: tomlString(fam), from: v.at})
	} else {
		head = append(head, item{key: "address", value: tomlString(hostPort(vip.String(), vport)), from: v.at})
		if proto != "tcp" {
			head = append(head, item{key: "protocol", value: tomlString(proto), from: v.at})
		}
	}
	vs.items = append(vs.items[:1], append(head, vs.items[1:]...)...)
	if _, ok := vs.get("scheduler"); !ok {
		vs.set("scheduler", "wrr", pos{}, "ldirectord's default scheduler")
	}

	// Real servers: the forwarding most of them use is the virtual
	// server's.
	type real struct {
		at     pos
		addr   netip.Addr
		port   int
		fwd    string
		weight int
		pair   []string // its own request and receive
		pairAt pos
	}
	var rs []real
	count := map[string]int{}
	for _, r := range reals {
		f := strings.Fields(r.value)
		if len(f) == 0 {
			c.unsupported(r.at, r.key, "empty")
			continue
		}
		first, last := f[0], ""
		if a, b, ok := strings.Cut(f[0], "->"); ok {
			first = a
			last = b
		}
		var addrs []netip.Addr
		var port int
		if last != "" {
			a1, _, ok1 := ldAddr(first, c.ports)
			a2, p2, ok2 := ldAddr(last, c.ports)
			if !ok1 || !ok2 || !a1.Is4() || !a2.Is4() || a2.Less(a1) {
				c.unsupported(r.at, r.key, "%q is not a range of IPv4 addresses (host names are not resolved); not converted", f[0])
				continue
			}
			for a := a1; ; a = a.Next() {
				addrs = append(addrs, a)
				if a == a2 || len(addrs) > maxGroupMembers {
					break
				}
			}
			if len(addrs) > maxGroupMembers {
				c.unsupported(r.at, r.key, "a range of more than %d addresses; not converted", maxGroupMembers)
				continue
			}
			port = p2
		} else {
			a, p, ok := ldAddr(first, c.ports)
			if !ok {
				c.unsupported(r.at, r.key, "%q is not an address (host names are not resolved); not converted", f[0])
				continue
			}
			addrs, port = []netip.Addr{a}, p
		}
		fwd := "dr"
		weight := 1
		rest := f[1:]
		if len(rest) > 0 {
			switch rest[0] {
			case "gate":
				fwd = "dr"
			case "masq":
				fwd = "nat"
			case "ipip":
				fwd = "tun"
			default:
				c.unsupported(r.at, r.key, "%q is not gate, masq or ipip; not converted", rest[0])
				continue
			}
			rest = rest[1:]
		}
		if len(rest) > 0 {
			if w, err := strconv.Atoi(rest[0]); err == nil && w >= 0 && w <= 65535 {
				weight = w
				rest = rest[1:]
			}
		}
		var pair []string
		if len(rest) > 0 {
			for _, m := range quoted.FindAllStringSubmatch(strings.Join(rest, " "), -1) {
				pair = append(pair, m[1])
			}
			if len(pair) != 2 {
				c.unsupported(r.at, r.key+" "+strings.Join(rest, " "), "only a quoted request and receive are read here; the virtual server's are used")
				pair = nil
			}
		}
		if last != "" {
			c.approx(r.at, r.key, "%d real servers, one per address of the range", len(addrs))
		} else {
			c.exact(r.at, r.key)
		}
		for _, a := range addrs {
			rs = append(rs, real{at: r.at, addr: a, port: port, fwd: fwd, weight: weight, pair: pair, pairAt: r.at})
		}
		count[fwd]++
	}
	vsFwd := "dr"
	for _, f := range []string{"nat", "tun", "dr"} {
		if count[f] > count[vsFwd] {
			vsFwd = f
		}
	}
	if vsFwd != "nat" {
		vs.set("forwarding", vsFwd, pos{}, "")
	} else {
		vs.set("forwarding", "nat", pos{}, "")
	}
	if fallback.key != "" {
		f := strings.Fields(unquote(fallback.value))
		var a netip.Addr
		var p int
		ok := len(f) > 0
		if ok {
			a, p, ok = ldAddr(f[0], c.ports)
		}
		if len(f) == 0 {
			c.fallbackOutcome(fallback, NotConverted, "no address given")
		} else if !ok {
			c.fallbackOutcome(fallback, NotConverted, fmt.Sprintf("%q is not an address (host names are not resolved)", fallback.value))
		} else if a.Is4() == (vip.Is4() || (fwmark != 0 && v.key == "virtual")) {
			// ldirectord forwards the fallback by the method its line
			// names, gate when it names none, to the virtual port when
			// the line has no port or the method is not masq (ipvsadm
			// gives gate and ipip destinations the service's port).
			method, methodSaid := "gate", "gate, its default when the line names no method"
			if len(f) > 1 {
				method, methodSaid = f[1], f[1]
			}
			fwd := ldForwarding[method]
			if fwmark == 0 && (p == 0 || fwd != "nat") {
				p = vport
			}
			s := a.String()
			if p != 0 {
				s = hostPort(s, p)
			}
			vs.set("fallback", s, fallback.at, "")
			switch {
			case fwd == "":
				c.fallbackOutcome(fallback, Approximate, fmt.Sprintf("the real servers' forwarding (%s) in %s: %q is not gate, masq or ipip, which ldirectord refuses", vsFwd, name, method))
			case fwd != vsFwd:
				c.fallbackOutcome(fallback, Approximate, fmt.Sprintf("the real servers' forwarding (%s) in %s: ldirectord forwards the fallback by %s, and the director has no forwarding of the fallback's own", vsFwd, name, methodSaid))
			default:
				c.fallbackOutcome(fallback, Exact, "")
			}
		}
	}
	for _, r := range rs {
		b := &block{}
		port := r.port
		if fwmark == 0 && (r.fwd != "nat" || port == 0) {
			port = vport // ldirectord uses the virtual port unless masq gives one
		}
		s := r.addr.String()
		if port != 0 {
			s = hostPort(s, port)
		}
		b.set("address", s, r.at, "")
		b.set("weight", r.weight, r.at, "")
		if r.fwd != vsFwd {
			b.set("forwarding", r.fwd, r.at, "")
		}
		vs.reals = append(vs.reals, b)
	}
	vs.checks = []*block{c.check(v, opt, t, vport, proto)}
	// A real server's own request and receive override the check's.
	counted := map[pos]bool{}
	for i, r := range rs {
		if r.pair == nil {
			continue
		}
		typ, _ := vs.checks[0].get("type")
		own := &block{}
		switch typ {
		case `"http"`, `"https"`:
			path := r.pair[0]
			if !strings.HasPrefix(path, "/") {
				path = "/" + path
			}
			own.set("path", path, r.pairAt, "")
			own.set("expect_body", r.pair[1], r.pairAt, "")
		case `"tcp"`:
			own.set("send", strings.ReplaceAll(r.pair[0], `\n`, "\n"), r.pairAt, "")
			own.set("expect", r.pair[1], r.pairAt, "")
		default:
			if !counted[r.pairAt] {
				c.unsupported(r.pairAt, "real", "a request and receive of its own for a %s check", typ)
				counted[r.pairAt] = true
			}
			continue
		}
		tn, _ := strconv.Unquote(typ)
		own.items = append([]item{{key: "name", value: tomlString(tn), from: r.pairAt}}, own.items...)
		vs.reals[i].checks = append(vs.reals[i].checks, own)
	}
	if fwmark != 0 {
		zero, some := 0, 0
		for _, r := range rs {
			if r.port == 0 {
				zero++
			} else {
				some++
			}
		}
		c.fwmarkCheckPort(v, vs, opt, zero, some)
	}
	c.doc.vss = append(c.doc.vss, vs)
}

// fallbackOutcome counts how a fallback line converted: a virtual's own
// line at once, a global one after every virtual that uses it is read,
// with the worst outcome (and its message) any of them had.
func (c *ldConv) fallbackOutcome(l ldLine, o Outcome, msg string) {
	if l.at == c.fallback.at || l.at == c.fallback6.at {
		if prev, seen := c.globalFallback[l.at]; !seen || o > prev.outcome {
			c.globalFallback[l.at] = ldOutcome{o, msg}
		}
		return
	}
	if o == Exact {
		c.exact(l.at, l.key)
		return
	}
	c.note(l.at, l.key, o, "%s", msg)
}

// fwmarkCheckPort gives a firewall-mark service's check the port
// ldirectord checks its real servers written without one on: the
// service's (ldirectord's table keeps each real server's port as written,
// as ipvsadm does for a mark, 0 for none; its checks use that port, or the
// service's for 0).
func (c *ldConv) fwmarkCheckPort(v *ldVirtual, vs *vsBlock, opt map[string]ldLine, zero, some int) {
	if zero == 0 {
		return
	}
	b := vs.checks[0]
	if _, has := b.get("port"); has {
		return
	}
	if t, _ := b.get("type"); t == `"icmp"` || t == `"none"` || t == `"exec"` {
		return
	}
	service := ""
	if o, ok := opt["service"]; ok {
		service = strings.ToLower(unquote(o.value))
	}
	port := 0
	for p, s := range ldServiceByPort {
		if s == service {
			port = p
		}
	}
	switch {
	case port == 0:
		c.unsupported(v.at, v.key+" check", "ldirectord checks the real servers written without a port on the service's port, and service=%q has none: set checkport (director check names the real servers)", service)
	case some > 0:
		c.approx(v.at, v.key, "the check's port is %d for every real server: ldirectord checks those written with a port on it, and the others on the service's", port)
		b.set("port", port, optAt(opt, "service"), "ldirectord's port for service="+service)
	default:
		b.set("port", port, optAt(opt, "service"), "ldirectord's port for service="+service)
	}
}

// check builds the virtual server's check from service and checktype.
func (c *ldConv) check(v *ldVirtual, opt map[string]ldLine, t ldTimeouts, vport int, proto string) *block {
	b := &block{}
	checktype := "negotiate"
	if o, ok := opt["checktype"]; ok {
		checktype = strings.ToLower(unquote(o.value))
	}
	service := ldServiceByPort[vport]
	serviceAt := pos{}
	if o, ok := opt["service"]; ok {
		service, serviceAt = strings.ToLower(unquote(o.value)), o.at
	}
	if service == "" {
		service = "none"
	}
	used := map[string]bool{"checktype": true, "service": true}
	timeout, timeoutAt := t.negotiate, t.negotiateAt
	if timeout == 0 {
		timeout, timeoutAt = t.check, t.checkAt
	}
	if timeout == 0 {
		timeout = ldNegotiateTimeout
	}
	at := v.at
	if o, ok := opt["checktype"]; ok {
		at = o.at
	}
	switch checktype {
	case "on":
		b.set("type", "none", at, "")
		c.exact(at, "checktype")
		return c.finishCheck(b, opt, used, "", 0, pos{}, t)
	case "off":
		b.set("type", "none", at, "")
		c.approx(at, "checktype", "type none: the real servers are put in at their weights, where ldirectord leaves them out")
		return c.finishCheck(b, opt, used, "", 0, pos{}, t)
	case "connect", "ping":
		timeout, timeoutAt = t.check, t.checkAt
		if checktype == "connect" && t.connect != 0 {
			timeout, timeoutAt = t.connect, t.connectAt
		}
		if timeout == 0 {
			timeout, timeoutAt = t.negotiate, t.negotiateAt
		}
		if timeout == 0 {
			timeout = ldCheckTimeout
		}
		if checktype == "ping" || proto == "udp" {
			b.set("type", "icmp", at, "")
		} else {
			b.set("type", "tcp", at, "")
		}
		c.exact(at, "checktype")
		if o, ok := opt["service"]; ok {
			c.ignored(o.at, o.key, "checktype %s does not use it", checktype)
		}
		return c.finishCheck(b, opt, used, "", timeout, timeoutAt, t)
	case "external", "external-perl":
		timeout, timeoutAt = t.check, t.checkAt
		if timeout == 0 {
			timeout = ldCheckTimeout
		}
		b.set("type", "exec", at, "")
		cmd := "/bin/true"
		cmdAt := pos{}
		if o, ok := opt["checkcommand"]; ok {
			cmd, cmdAt = unquote(o.value), o.at
			used["checkcommand"] = true
		}
		b.set("command", splitCommand(cmd), cmdAt, "")
		c.approx(at, "checktype", "an exec check: the program gets the server in DIRECTOR_ADDRESS and DIRECTOR_PORT (and the others), not as arguments")
		if o, ok := opt["checkcommand"]; ok {
			c.exact(o.at, o.key)
		}
		if o, ok := opt["service"]; ok {
			c.ignored(o.at, o.key, "checktype %s does not use it", checktype)
		}
		return c.finishCheck(b, opt, used, "", timeout, timeoutAt, t)
	case "negotiate":
		if _, written := opt["checktype"]; written {
			c.exact(at, "checktype") // the default is no option of the file's
		}
	default:
		if _, err := strconv.Atoi(checktype); err == nil {
			c.approx(at, "checktype", "negotiate on every check: connect checks between negotiations are not built in")
		} else {
			c.unsupported(at, "checktype", "%q is not a checktype; negotiate is used", checktype)
		}
	}

	// negotiate: by service
	req := ""
	if o, ok := opt["request"]; ok {
		req = unquote(o.value)
	}
	recv := ""
	if o, ok := opt["receive"]; ok {
		recv = unquote(o.value)
	}
	svcExact := true
	svcNote := ""
	switch service {
	case "http", "https":
		b.set("type", service, v.at, "")
		if service == "https" {
			b.set("tls_skip_verify", true, serviceAt, "ldirectord does not verify certificates")
		}
		path := req
		if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
			svcNote = "the path of the URL, asked of each real server: a request naming another host is not built in"
			if i := strings.Index(strings.SplitN(path, "//", 2)[1], "/"); i >= 0 {
				path = strings.SplitN(path, "//", 2)[1][i:]
			} else {
				path = "/"
			}
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		b.set("path", path, optAt(opt, "request"), "")
		used["request"] = true
		head := strings.EqualFold(unquote(opt["httpmethod"].value), "HEAD")
		if recv != "" && !head {
			b.set("expect_body", recv, optAt(opt, "receive"), "")
			used["receive"] = true
		} else if recv != "" {
			c.approx(optAt(opt, "receive"), "receive", "nothing: a HEAD response has no body to match")
			used["receive"] = true
			delete(opt, "receive")
		}
		copyOpt(b, opt, used, "virtualhost", "host")
		if o, ok := opt["httpmethod"]; ok {
			b.set("method", strings.ToUpper(unquote(o.value)), o.at, "")
			used["httpmethod"] = true
		}
	case "simpletcp":
		b.set("type", "tcp", v.at, "")
		if req != "" {
			b.set("send", strings.ReplaceAll(req, `\n`, "\n"), optAt(opt, "request"), "")
			used["request"] = true
		}
		if recv != "" {
			b.set("expect", recv, optAt(opt, "receive"), "")
			used["receive"] = true
		}
	case "dns":
		b.set("type", "dns", v.at, "")
		if req != "" {
			b.set("query_name", req, optAt(opt, "request"), "")
			qt := "A"
			if a, err := netip.ParseAddr(req); err == nil {
				qt = "PTR"
				b.set("query_name", reverseName(a), optAt(opt, "request"), "")
			}
			b.set("query_type", qt, optAt(opt, "request"), "")
			used["request"] = true
		}
		if recv != "" {
			b.set("expect_answer", recv, optAt(opt, "receive"), "")
			used["receive"] = true
		}
		if proto == "tcp" {
			b.set("transport", "tcp", pos{}, "")
		}
	case "smtp", "submission":
		b.set("type", "dialogue", v.at, "")
		b.set("steps", rawTOML("[\n    { expect = '(?m)^220 ' },\n    { send = 'EHLO director.invalid\\r\\n', expect = '(?m)^250 ' },\n    { send = 'QUIT\\r\\n', expect = '^221' },\n  ]"), serviceAt, "")
	case "pop", "pops":
		b.set("type", "dialogue", v.at, "")
		b.set("steps", rawTOML("[{ expect = '^\\+OK' }, { send = 'QUIT\\r\\n', expect = '^\\+OK' }]"), serviceAt, "")
		if service == "pops" {
			b.set("tls", true, serviceAt, "")
			b.set("tls_skip_verify", true, serviceAt, "ldirectord does not verify certificates")
		}
		svcExact = !hasLogin(opt)
		svcNote = "a greeting and QUIT: logging in is not built in"
	case "imap", "imaps":
		b.set("type", "dialogue", v.at, "")
		b.set("steps", rawTOML("[{ expect = '^\\* OK' }, { send = 'a1 LOGOUT\\r\\n', expect = '(?m)^a1 OK' }]"), serviceAt, "")
		if service == "imaps" {
			b.set("tls", true, serviceAt, "")
			b.set("tls_skip_verify", true, serviceAt, "ldirectord does not verify certificates")
		}
		svcExact = !hasLogin(opt)
		svcNote = "a greeting and LOGOUT: logging in is not built in"
	case "ftp":
		b.set("type", "dialogue", v.at, "")
		b.set("steps", rawTOML("[{ expect = '(?m)^220 ' }, { send = 'QUIT\\r\\n', expect = '^221' }]"), serviceAt, "")
		svcExact = false
		svcNote = "a greeting and QUIT: logging in and fetching the request file are not built in"
	case "nntp":
		b.set("type", "dialogue", v.at, "")
		b.set("steps", rawTOML("[{ expect = '^20[01] ' }, { send = 'QUIT\\r\\n', expect = '^205' }]"), serviceAt, "")
	case "mysql", "pgsql":
		typ := map[string]string{"mysql": "mysql", "pgsql": "postgresql"}[service]
		b.set("type", typ, v.at, "")
		if !copyOpt(b, opt, used, "login", "login") {
			b.set("login", "root", pos{}, "")
		}
		copyOpt(b, opt, used, "database", "database")
		if req != "" {
			b.set("query", req, optAt(opt, "request"), "")
			used["request"] = true
		}
	case "ldap":
		b.set("type", "ldap", v.at, "")
		copyOpt(b, opt, used, "login", "bind_dn")
		if req != "" {
			b.set("search_base", req, optAt(opt, "request"), "")
			used["request"] = true
		}
	case "sip":
		b.set("type", "sip", v.at, "")
		if proto == "tcp" {
			b.set("transport", "tcp", pos{}, "")
		}
	case "none":
		b.set("type", "none", v.at, "")
	default:
		// radius (needs a secret file), oracle, ldaps, http_proxy
		b.set("type", "tcp", v.at, "")
		if proto == "udp" {
			b.set("type", "icmp", v.at, "")
		}
		svcExact = false
		svcNote = "a connect check: the director has no " + service + " check that can be set up from this file alone"
		if service == "radius" {
			svcNote = "an icmp check: a radius check needs the secret in a file (secret_file); write it there and set type = \"radius\""
		}
	}
	if serviceAt.line != 0 || !svcExact {
		at := serviceAt
		if at.line == 0 {
			at = v.at
		}
		if svcExact {
			c.exact(at, "service")
		} else {
			c.approx(at, "service="+service, "%s", svcNote)
		}
	} else if svcNote != "" {
		c.approx(optAt(opt, "request"), "request", "%s", svcNote)
	}
	if service != "none" {
		return c.finishCheck(b, opt, used, service, timeout, timeoutAt, t)
	}
	return c.finishCheck(b, opt, used, service, 0, pos{}, t)
}

// copyOpt sets the check key to the ldirectord option's value, if set.
func copyOpt(b *block, opt map[string]ldLine, used map[string]bool, from, to string) bool {
	o, ok := opt[from]
	if ok {
		b.set(to, unquote(o.value), o.at, "")
		used[from] = true
	}
	return ok
}

var quoted = regexp.MustCompile(`"([^"]*)"`)

func hasLogin(opt map[string]ldLine) bool { _, ok := opt["login"]; return ok }

func optAt(opt map[string]ldLine, key string) pos { return opt[key].at }

// finishCheck sets the timeout and counts the options the check did not use.
func (c *ldConv) finishCheck(b *block, opt map[string]ldLine, used map[string]bool, service string, timeout float64, timeoutAt pos, t ldTimeouts) *block {
	if timeout > 0 {
		b.set("timeout", seconds(timeout), timeoutAt, map[bool]string{true: "ldirectord's default"}[timeoutAt.line == 0])
		if t.failureAt.line != 0 && t.failureAt != c.failureAt {
			b.set("fall", t.failure, t.failureAt, "")
		}
	}
	for _, key := range []string{"checkport", "request", "receive", "virtualhost", "login", "passwd", "database", "secret", "httpmethod", "checkcommand"} {
		o, ok := opt[key]
		if !ok || used[key] {
			if ok {
				c.exact(o.at, key)
			}
			continue
		}
		switch key {
		case "checkport":
			p, err := c.ports.port(unquote(o.value))
			if err != nil || p == 0 {
				c.unsupported(o.at, key, "%q is not a port", o.value)
				continue
			}
			if t, _ := b.get("type"); t == `"icmp"` || t == `"none"` {
				c.ignored(o.at, key, "this check does not use a port")
				continue
			}
			b.set("port", p, o.at, "")
			c.exact(o.at, key)
		case "passwd", "secret":
			c.unsupported(o.at, key, "the director reads secrets from a file: write it to a file only the director can read and set password_file (or secret_file)")
		default:
			c.ignored(o.at, key, "service %s does not use it", service)
		}
	}
	return b
}

// reverseName is the PTR name of an address.
func reverseName(a netip.Addr) string {
	b := a.AsSlice()
	var parts []string
	if a.Is4() {
		for i := len(b) - 1; i >= 0; i-- {
			parts = append(parts, strconv.Itoa(int(b[i])))
		}
		return strings.Join(parts, ".") + ".in-addr.arpa."
	}
	for i := len(b) - 1; i >= 0; i-- {
		parts = append(parts, strconv.FormatInt(int64(b[i]&0xf), 16), strconv.FormatInt(int64(b[i]>>4), 16))
	}
	return strings.Join(parts, ".") + ".ip6.arpa."
}
