// Package etcservices reads the services(5) database (/etc/services): the
// names of well-known ports, so that a config may say "10.0.0.1:www" as
// ldirectord and ipvsadm allow. Parse is pure; the caller reads the file.
package etcservices

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// DefaultPath is where the system keeps the database.
const DefaultPath = "/etc/services"

// Table maps service names and aliases to ports, per protocol.
type Table struct {
	ports map[string]map[string]uint16 // protocol -> name -> port
}

// Port returns the port of name under protocol ("tcp", "udp", "sctp").
// Names are case-sensitive, as getservbyname(3) has them.
func (t *Table) Port(name, protocol string) (uint16, bool) {
	if t == nil {
		return 0, false
	}
	p, ok := t.ports[protocol][name]
	return p, ok
}

// Names lists every name known under protocol, sorted, for did-you-mean
// hints.
func (t *Table) Names(protocol string) []string {
	if t == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(t.ports[protocol]))
}

// LineError is a line Parse could not read.
type LineError struct {
	Line int
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Parse reads a services database: per line "name port/protocol
// [aliases...]", "#" to the end of a line a comment. The first entry of a
// name wins, as in getservbyname(3). A malformed line is an error: a
// half-read table would turn a typo in the file into "unknown service".
func Parse(data []byte) (*Table, error) {
	t := &Table{ports: map[string]map[string]uint16{}}
	for i, line := range strings.Split(string(data), "\n") {
		if c := strings.IndexByte(line, '#'); c >= 0 {
			line = line[:c]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 {
			return nil, &LineError{i + 1, fmt.Sprintf("%q has no port/protocol", f[0])}
		}
		num, proto, ok := strings.Cut(f[1], "/")
		if !ok || proto == "" {
			return nil, &LineError{i + 1, fmt.Sprintf("%q is not port/protocol", f[1])}
		}
		port, err := strconv.ParseUint(num, 10, 16)
		if err != nil {
			return nil, &LineError{i + 1, fmt.Sprintf("%q is not a port 0-65535", num)}
		}
		proto = strings.ToLower(proto)
		names := t.ports[proto]
		if names == nil {
			names = map[string]uint16{}
			t.ports[proto] = names
		}
		for _, name := range append(f[:1:1], f[2:]...) {
			if _, seen := names[name]; !seen {
				names[name] = uint16(port)
			}
		}
	}
	return t, nil
}
