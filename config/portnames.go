package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/lvsdirector/director/internal/etcservices"
	"github.com/lvsdirector/director/internal/safefile"
)

// Port names ("10.0.0.1:www", port = "mysql") are looked up in the
// services database (/etc/services) at load, as ldirectord and ipvsadm do.
// The file is read only when a name is written, and at most once a load.

// Options changes where Parse looks outside the config file.
type Options struct {
	// ServicesFile is the services database for port names; ""
	// means /etc/services.
	ServicesFile string
}

// maxServicesBytes bounds the services file read: Debian's is 13 kB.
const maxServicesBytes = 4 << 20

// portNames resolves port names for one load.
type portNames struct {
	path  string
	read  bool
	table *etcservices.Table
	err   error
}

func (p *portNames) load() (*etcservices.Table, error) {
	if !p.read {
		p.read = true
		data, err := safefile.ReadFile(p.path, maxServicesBytes)
		if err == nil {
			p.table, err = etcservices.Parse(data)
		}
		p.err = err
	}
	return p.table, p.err
}

// isPortName says whether s looks like a service name rather than a
// number or garbage: services(5) names start with a letter.
func isPortName(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '+') {
			return false
		}
	}
	return true
}

// splitPortName splits "ip:name" or "[ipv6]:name" into the part before
// the port and the name; ok is false when the port is not a name (a
// number, none, or not an address with a port at all).
func splitPortName(s string) (host, name string, ok bool) {
	var i int
	if strings.HasPrefix(s, "[") {
		j := strings.Index(s, "]:")
		if j < 0 {
			return "", "", false
		}
		i = j + 1
	} else if strings.Count(s, ":") == 1 {
		i = strings.IndexByte(s, ':')
	} else {
		return "", "", false
	}
	if !isPortName(s[i+1:]) {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// resolvePort returns the port called name under the first of protos
// that has it, or why not (the message ends in a hint).
func (l *loader) resolvePort(name string, protos ...string) (uint16, string) {
	tab, err := l.ports.load()
	if err != nil {
		return 0, fmt.Sprintf("port name %q needs the services database %s, which cannot be read (%v); write the port number", name, l.ports.path, unwrapPath(err))
	}
	for _, p := range protos {
		if port, ok := tab.Port(name, p); ok {
			return port, ""
		}
	}
	msg := fmt.Sprintf("no %s service %q in %s", strings.Join(protos, " or "), name, l.ports.path)
	if m := closest(name, tab.Names(protos[0])); m != "" && m != name {
		return 0, msg + fmt.Sprintf("; did you mean %q?", m)
	}
	return 0, msg + "; write the port number, or a name the file lists"
}

// withPortNumber turns an address written with a port name into the same
// address with its number. ok is false after reporting an unknown name at
// n; an address without a port name is returned unchanged.
func (l *loader) withPortNumber(s string, n node, protos ...string) (string, bool) {
	host, name, isName := splitPortName(s)
	if !isName {
		return s, true
	}
	first, _, _ := strings.Cut(host, "-") // a group's range: "10.0.0.1-20"
	if _, err := netip.ParseAddr(strings.Trim(first, "[]")); err != nil {
		return s, true // not an address: the caller's message says so
	}
	port, msg := l.resolvePort(name, protos...)
	if msg != "" {
		l.errorf(n, "%q: %s", s, msg)
		return s, false
	}
	return host + ":" + strconv.Itoa(int(port)), true
}

// serviceProtocols is which protocols a port name is looked up under for
// a virtual server of protocol proto: its own; for fwmark services
// (no protocol), tcp and then udp.
func serviceProtocols(proto string) []string {
	if proto == "" {
		return []string{"tcp", "udp"}
	}
	return []string{proto}
}

// checkPort reads a check's port: a number 1-65535 or a service name
// (tcp, then udp: a check's type may use either).
func (l *loader) checkPort(t table) (uint16, node, bool) { return l.portKey(t, "port", "tcp", "udp") }

// portKey reads a port key: a number 1-65535 or a service name, looked
// up under the first of protos that lists it.
func (l *loader) portKey(t table, key string, protos ...string) (uint16, node, bool) {
	v, n, present := t.get(key)
	if s, ok := v.(string); present && ok {
		if !isPortName(s) {
			l.errorf(n, "%q is neither a port number nor a service name; ports are 1-65535", s)
			return 0, n, false
		}
		port, msg := l.resolvePort(s, protos...)
		if msg == "" && port == 0 {
			msg = fmt.Sprintf("service %q has port 0 in %s; ports are 1-65535", s, l.ports.path)
		}
		if msg != "" {
			l.errorf(n, "%s", msg)
			return 0, n, false
		}
		return port, n, true
	}
	port, n, ok := t.intRange(key, 1, 65535, "ports are 1-65535")
	return uint16(port), n, ok
}
