package importer

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ipvsadm rules: the output of ipvsadm -S / -Sn (lines of -A and -a
// options) or a shell script of "ipvsadm -A ..." and "ipvsadm -a ..."
// lines. Every service gets a check of type none: ipvsadm checks nothing.

type ipvsService struct {
	at     pos
	key    string // "tcp 10.0.0.1:80", "fwmark 5"
	block  *vsBlock
	fwmark int
	port   int
	fwd    string
	nreals int
}

type ipvsConv struct {
	tally
	doc      document
	services map[string]*ipvsService
	ports    PortLookup
}

func importIpvsadm(name string, data []byte, ports PortLookup) (*Result, error) {
	c := &ipvsConv{ports: ports, services: map[string]*ipvsService{}}
	c.doc.header = []string{
		"Imported from " + name + " (ipvsadm rules) by director import.",
		"ipvsadm checks nothing, so every virtual server has a check of type none:",
		"replace it with a real check (README, Check types) before relying on it.",
	}
	for i, raw := range strings.Split(string(data), "\n") {
		at := pos{name, i + 1}
		line := strings.TrimSpace(strings.TrimRight(raw, "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if strings.HasSuffix(f[0], "ipvsadm") {
			f = f[1:]
		} else if !strings.HasPrefix(f[0], "-") {
			c.unsupported(at, f[0], "a shell command, not an ipvsadm rule; not read")
			continue
		}
		if len(f) == 0 {
			continue
		}
		if err := c.rule(at, f); err != nil {
			return nil, err
		}
	}
	for _, vs := range c.doc.vss {
		none := &block{}
		none.set("type", "none", pos{}, "ipvsadm checks nothing; replace with a real check")
		vs.checks = []*block{none}
	}
	sortNotes(c.notes)
	return c.result(&c.doc), nil
}

func (c *ipvsConv) rule(at pos, f []string) error {
	cmd := f[0]
	var svcKind, svcAddr, sched, netmask, server, fwd, flags string
	persist := -1
	weight := 1
	ops, ipv6 := false, false
	weightSet := false
	var thresholds []string
	for i := 1; i < len(f); i++ {
		arg := func() (string, error) {
			if i+1 >= len(f) {
				return "", &ParseError{File: at.file, Line: at.line, Msg: f[i] + " needs a value"}
			}
			i++
			return f[i], nil
		}
		var err error
		switch f[i] {
		case "-t", "--tcp-service", "-u", "--udp-service", "--sctp-service", "-f", "--fwmark-service":
			svcKind = map[string]string{"-t": "tcp", "--tcp-service": "tcp", "-u": "udp", "--udp-service": "udp",
				"--sctp-service": "sctp", "-f": "fwmark", "--fwmark-service": "fwmark"}[f[i]]
			svcAddr, err = arg()
		case "-s", "--scheduler":
			sched, err = arg()
		case "-p", "--persistent":
			persist = 300
			if i+1 < len(f) && !strings.HasPrefix(f[i+1], "-") {
				persist, err = strconv.Atoi(f[i+1])
				i++
				if err != nil {
					return &ParseError{File: at.file, Line: at.line, Msg: fmt.Sprintf("-p %s: not a number of seconds", f[i])}
				}
			}
		case "-M", "--netmask":
			netmask, err = arg()
		case "-b", "--sched-flags":
			flags, err = arg()
		case "-o", "--ops":
			ops = true
		case "-6", "--ipv6":
			ipv6 = true
		case "-r", "--real-server":
			server, err = arg()
		case "-g", "--gatewaying":
			fwd = "dr"
		case "-m", "--masquerading":
			fwd = "nat"
		case "-i", "--ipip":
			fwd = "tun"
		case "-w", "--weight":
			var w string
			if w, err = arg(); err == nil {
				weight, err = strconv.Atoi(w)
				weightSet = true
				if err != nil || weight < 0 || weight > 65535 {
					return &ParseError{File: at.file, Line: at.line, Msg: fmt.Sprintf("-w %s: not a weight 0-65535", w)}
				}
			}
		case "-x", "--u-threshold", "-y", "--l-threshold":
			thresholds = append(thresholds, f[i])
			_, err = arg()
		case "--pe":
			_, err = arg()
			c.unsupported(at, "--pe", "the director sets no persistence engine")
		default:
			return &ParseError{File: at.file, Line: at.line, Msg: fmt.Sprintf("%s: not an ipvsadm option the importer knows", f[i])}
		}
		if err != nil {
			if pe, ok := err.(*ParseError); ok {
				return pe
			}
			return &ParseError{File: at.file, Line: at.line, Msg: err.Error()}
		}
	}
	switch cmd {
	case "-C", "--clear":
		c.ignored(at, cmd, "the director deletes only what it manages")
		return nil
	case "-A", "--add-service", "-E", "--edit-service":
	case "-a", "--add-server", "-e", "--edit-server":
	default:
		c.unsupported(at, cmd, "only rules that add services and servers are read")
		return nil
	}
	if svcKind == "" {
		return &ParseError{File: at.file, Line: at.line, Msg: cmd + " without -t, -u, --sctp-service or -f"}
	}
	key, fwmark, vip, vport, ok := c.service(svcKind, svcAddr, ipv6)
	if !ok {
		return &ParseError{File: at.file, Line: at.line, Msg: fmt.Sprintf("%q is not a service address (names must be numeric or well-known ports; use ipvsadm -Sn)", svcAddr)}
	}
	s := c.services[key]
	if cmd == "-A" || cmd == "--add-service" || cmd == "-E" || cmd == "--edit-service" {
		if s == nil {
			s = &ipvsService{at: at, key: key, block: &vsBlock{}, fwmark: fwmark, port: vport, fwd: "dr"}
			b := s.block
			b.comment = []string{fmt.Sprintf("%s: %s", at, strings.Join(f, " "))}
			if fwmark != 0 {
				b.set("name", "fwmark-"+strconv.Itoa(fwmark), pos{}, "")
				b.set("fwmark", fwmark, at, "")
				b.set("family", map[bool]string{true: "ipv6", false: "ipv4"}[ipv6], at, "")
			} else {
				n := hostPort(vip.String(), vport)
				if svcKind != "tcp" {
					n += "/" + svcKind
				}
				b.set("name", n, pos{}, "")
				b.set("address", hostPort(vip.String(), vport), at, "")
				if svcKind != "tcp" {
					b.set("protocol", svcKind, at, "")
				}
			}
			c.services[key] = s
			c.doc.vss = append(c.doc.vss, b)
		}
		c.exact(at, cmd)
		if sched == "" {
			sched = "wlc"
		}
		if !knownSchedulers[sched] {
			c.unsupported(at, "-s "+sched, "no such IPVS scheduler; wlc is used")
			sched = "wlc"
		}
		s.block.set("scheduler", sched, at, "")
		if persist >= 0 {
			s.block.set("persistence", strconv.Itoa(persist)+"s", at, "")
			if netmask != "" {
				if bits, ok := netmaskBits(netmask); ok {
					s.block.set("persistence_netmask", bits, at, "")
				} else {
					c.unsupported(at, "-M "+netmask, "not a netmask")
				}
			}
		}
		if flags != "" {
			var list []string
			for _, fl := range strings.Split(flags, ",") {
				switch fl {
				case "sh-fallback", "sh-port", "mh-fallback", "mh-port":
					list = append(list, fl)
				case "flag-1":
					list = append(list, "sh-fallback")
				case "flag-2":
					list = append(list, "sh-port")
				default:
					c.unsupported(at, "-b "+fl, "the director sets no such scheduler flag")
				}
			}
			if len(list) > 0 {
				s.block.set("scheduler_flags", list, at, "")
			}
		}
		if ops {
			s.block.set("ops", true, at, "")
		}
		return nil
	}
	// a real server
	if s == nil {
		c.unsupported(at, cmd+" "+svcAddr, "a real server of a service no -A line adds; not converted")
		return nil
	}
	if fwd == "" {
		fwd = "dr" // ipvsadm's default
	}
	a, p, ok := ldAddr(server, c.ports)
	if !ok {
		return &ParseError{File: at.file, Line: at.line, Msg: fmt.Sprintf("-r %q is not an address (names must be numeric or well-known ports; use ipvsadm -Sn)", server)}
	}
	if s.fwmark == 0 && fwd != "nat" {
		p = s.port // ipvsadm puts the service's port for dr and tun
	}
	if s.fwmark == 0 && p == 0 {
		p = s.port
	}
	rb := &block{}
	addr := a.String()
	if p != 0 {
		addr = hostPort(addr, p)
	}
	rb.set("address", addr, at, "")
	rb.set("weight", weight, at, map[bool]string{true: "", false: "ipvsadm's default"}[weightSet])
	if s.nreals == 0 {
		s.fwd = fwd
		s.block.set("forwarding", fwd, at, "")
	} else if fwd != s.fwd {
		rb.set("forwarding", fwd, at, "")
	}
	s.nreals++
	s.block.reals = append(s.block.reals, rb)
	if len(thresholds) > 0 {
		c.unsupported(at, strings.Join(thresholds, " "), "the director sets no connection thresholds")
	}
	c.exact(at, cmd)
	return nil
}

func (c *ipvsConv) service(kind, addr string, ipv6 bool) (string, int, netip.Addr, int, bool) {
	if kind == "fwmark" {
		n, err := strconv.Atoi(addr)
		if err != nil || n <= 0 {
			return "", 0, netip.Addr{}, 0, false
		}
		return fmt.Sprintf("fwmark %d %v", n, ipv6), n, netip.Addr{}, 0, true
	}
	a, p, ok := ldAddr(addr, c.ports)
	if !ok || p == 0 {
		return "", 0, netip.Addr{}, 0, false
	}
	return kind + " " + hostPort(a.String(), p), 0, a, p, true
}
